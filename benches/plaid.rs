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
//!   (a quarter of the f32 table's 2 MiB, so the rows the codes gather stay in L2);
//! - `codes_maxsim_nbits{1,2,4}`: MaxSim straight from the document's codes and
//!   residuals (`maxsim::codes`, what an index without vectors and `--rescore
//!   decompressed` score by) vs `decode_int8_maxsim_nbits{1,2,4}`: what they did before
//!   (decode every vector, quantise the rows, int8 MaxSim) and `exact_maxsim` on f16.
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
use tessera_index::maxsim::codes::{maxsim_codes, maxsim_codes_scalar, CodesQuery, ResidualBytes};
use tessera_index::maxsim::int8::{quantize_rows, score_table, QueryI8, RowsI8};
use tessera_index::maxsim::{Kernel, MaxSim};
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
    // The codes path: random unit-scale centroids, their int8 table against the query.
    let centroids: Vec<f32> = (0..K * DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let rows_i8 = RowsI8::new(&centroids, DIM);
    let q8 = QueryI8::new(MultiVectorRef::new(&query, DIM));
    let mut table_i8 = vec![0.0f32; K * NQ];
    score_table(&rows_i8, &q8, &mut table_i8, true);
    let codes_query = CodesQuery::new(q8.clone(), std::borrow::Cow::Borrowed(&table_i8));
    let residual_bytes: Vec<ResidualBytes> = decoders
        .iter()
        .map(|(nbits, ..)| {
            ResidualBytes::new(&ResidualQuantizer::fit(
                DIM,
                *nbits,
                residual_sample.clone(),
            ))
        })
        .collect();
    let codes_score = |r: &ResidualBytes, packed: &[u8]| {
        maxsim_codes(&codes_query, r, &codes, packed, Kernel::detect())
    };
    let (mut values, mut scales) = (Vec::new(), Vec::new());
    let mut decode_int8 = |dec: &ResidualDecoder, packed: &[u8], out: &mut [f32]| {
        let len = packed.len() / ND;
        for ((row, p), &c) in out
            .chunks_exact_mut(DIM)
            .zip(packed.chunks_exact(len))
            .zip(&codes)
        {
            dec.decode(&centroids[c as usize * DIM..(c as usize + 1) * DIM], p, row);
        }
        values.clear();
        scales.clear();
        quantize_rows(out, DIM, &mut values, &mut scales);
        MaxSim::default().score_i8(&q8, MultiVectorRef::new(&values, DIM), &scales)
    };
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
        for ((_, dec, packed), r) in decoders.iter().zip(&residual_bytes) {
            assert_eq!(
                codes_score(r, packed).to_bits(),
                maxsim_codes_scalar(&codes_query, r, &codes, packed).to_bits()
            );
            assert!(decode_int8(dec, packed, &mut out).is_finite());
        }
        println!("bench smoke check: decode, codes MaxSim and centroid interaction run");
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
        for ((nbits, dec, packed), r) in decoders.iter().zip(&residual_bytes) {
            g.bench_function(format!("codes_maxsim_nbits{nbits}"), |b| {
                b.iter(|| codes_score(r, black_box(packed)))
            });
            g.bench_function(format!("decode_int8_maxsim_nbits{nbits}"), |b| {
                b.iter(|| decode_int8(dec, black_box(packed), &mut out))
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
    for ((nbits, dec, packed), r) in decoders.iter().zip(&residual_bytes) {
        let fused = seconds_per_call(2000, || {
            black_box(codes_score(r, black_box(packed)));
        });
        let before = seconds_per_call(2000, || {
            black_box(decode_int8(dec, black_box(packed), &mut out));
        });
        println!(
            "ratio: codes MaxSim nbits={nbits} {:.2} us vs decode+int8 MaxSim {:.2} us ({:.2}x faster) vs exact f16 MaxSim {:.2} us ({:.2}x faster) per document",
            fused * 1e6,
            before * 1e6,
            before / fused,
            exact * 1e6,
            exact / fused
        );
    }
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
