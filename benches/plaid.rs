//! PLAID's two inner loops, each beside the exact work it replaces.
//!
//! What, on one SciFact-sized document (240 token vectors of 384 dims) and a 32-token
//! query, with 16,384 centroids as PLAID uses for SciFact:
//! - `residual_decode_nbits{1,2,4}`: decompress the document (centroid + looked-up
//!   residual, normalised) vs `f16_to_f32`: converting the same document from the store;
//! - `centroid_interaction`: PLAID's approximate score from the document's 240 centroid
//!   codes and the precomputed 32 x 16,384 score table vs `exact_maxsim`: the SIMD MaxSim
//!   of the same document, i.e. how much cheaper a candidate is to score approximately;
//!   `centroid_interaction8`: the same on the byte copy of the table that search uses
//!   (a quarter of the f32 table's 2 MiB, so the rows the codes gather stay in L2).
//!
//! Run: `cargo bench --bench plaid` (criterion report, then the ratios measured here).

mod common;
use common::seconds_per_call;

use std::hint::black_box;

use criterion::Criterion;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::codec::{ResidualDecoder, ResidualQuantizer};
use tessera_index::maxsim::MaxSim;
use tessera_index::plaid::{centroid_interaction, centroid_interaction8};
use tessera_index::store::MultiVectorRef;

const ND: usize = 240;
const NQ: usize = 32;
const DIM: usize = 384;
const K: usize = 16_384;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let doc: Vec<f16> = (0..ND * DIM)
        .map(|_| f16::from_f32(rng.gen_range(-0.1..0.1)))
        .collect();
    let query: Vec<f32> = (0..NQ * DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let centroid: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let residual_sample: Vec<f32> = (0..100_000).map(|_| rng.gen_range(-0.05..0.05)).collect();
    let codes: Vec<u32> = (0..ND).map(|_| rng.gen_range(0..K as u32)).collect();
    let scores: Vec<f32> = (0..K * NQ).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let table8: Vec<u8> = scores
        .iter()
        .map(|&s| (s.max(0.0) * 255.0 + 0.5) as u8)
        .collect();
    let mut best8 = vec![0u8; NQ];
    let decoders: Vec<(u32, ResidualDecoder, Vec<u8>)> = [1u32, 2, 4]
        .iter()
        .map(|&nbits| {
            let q = ResidualQuantizer::fit(DIM, nbits, residual_sample.clone());
            let packed: Vec<u8> = (0..ND * q.packed_len()).map(|_| rng.gen()).collect();
            (nbits, ResidualDecoder::new(&q), packed)
        })
        .collect();
    let mut out = vec![0.0f32; ND * DIM];
    let mut best = vec![0.0f32; NQ];
    let mut scorer = MaxSim::default();
    let (qv, dv) = (
        MultiVectorRef::new(&query, DIM),
        MultiVectorRef::new(&doc, DIM),
    );

    let decode = |dec: &ResidualDecoder, packed: &[u8], out: &mut [f32]| {
        let len = packed.len() / ND;
        for (row, p) in out.chunks_exact_mut(DIM).zip(packed.chunks_exact(len)) {
            dec.decode(&centroid, p, row);
        }
    };

    if !std::env::args().any(|a| a == "--bench") {
        // Under `cargo test --all-targets`: check the pieces run and agree in shape only.
        for (_, dec, packed) in &decoders {
            decode(dec, packed, &mut out);
            assert!(out
                .chunks_exact(DIM)
                .all(|r| (r.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-3));
        }
        let approx = centroid_interaction(&codes, &scores, NQ, &mut best);
        assert!(approx.is_finite());
        // Bytes are max(s, 0) in 1/255 steps: the two agree within half a step a token
        // wherever every token's best score is positive.
        let approx8 = centroid_interaction8(&codes, &table8, NQ, &mut best8) as f32 / 255.0;
        if best.iter().all(|&b| b > 0.0) {
            assert!((approx8 - approx).abs() <= NQ as f32 * 0.5 / 255.0 + 1e-4);
        }
        println!("bench smoke check: decode and centroid interaction run");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("plaid_240x384");
        for (nbits, dec, packed) in &decoders {
            g.bench_function(format!("residual_decode_nbits{nbits}"), |b| {
                b.iter(|| decode(dec, black_box(packed), &mut out))
            });
        }
        g.bench_function("f16_to_f32", |b| {
            b.iter(|| black_box(&doc).convert_to_f32_slice(&mut out))
        });
        g.bench_function("centroid_interaction", |b| {
            b.iter(|| centroid_interaction(black_box(&codes), black_box(&scores), NQ, &mut best))
        });
        g.bench_function("exact_maxsim", |b| {
            b.iter(|| scorer.score(black_box(qv), black_box(dv)))
        });
        g.finish();
    }
    c.final_summary();

    let interaction = seconds_per_call(5000, || {
        black_box(centroid_interaction(
            black_box(&codes),
            black_box(&scores),
            NQ,
            &mut best,
        ));
    });
    let interaction8 = seconds_per_call(5000, || {
        black_box(centroid_interaction8(
            black_box(&codes),
            black_box(&table8),
            NQ,
            &mut best8,
        ));
    });
    let exact = seconds_per_call(2000, || {
        black_box(scorer.score(black_box(qv), black_box(dv)));
    });
    let convert = seconds_per_call(5000, || black_box(&doc).convert_to_f32_slice(&mut out));
    println!(
        "\nratio: centroid interaction {:.2} us vs exact MaxSim {:.2} us per document: {:.1}x cheaper",
        interaction * 1e6,
        exact * 1e6,
        exact / interaction
    );
    println!(
        "ratio: centroid interaction on the byte table {:.2} us vs f32 table {:.2} us: {:.1}x cheaper",
        interaction8 * 1e6,
        interaction * 1e6,
        interaction / interaction8
    );
    for (nbits, dec, packed) in &decoders {
        let t = seconds_per_call(2000, || decode(dec, black_box(packed), &mut out));
        println!(
            "ratio: decode nbits={nbits} {:.2} us vs f16->f32 conversion {:.2} us per document: {:.1}x ({:.0} M dims/s)",
            t * 1e6,
            convert * 1e6,
            t / convert,
            (ND * DIM) as f64 / t / 1e6
        );
    }
}
