//! PLAID's refinement kernel (token-pruned MaxSim, `index/src/plaid/refine.rs`) beside
//! the exact f16 MaxSim it stands in for, on the same candidates.
//!
//! Data: SciFact-shaped and clustered like real token vectors: 1,024 unit centroids;
//! 64 documents of 240 tokens, each token a centroid plus a random residual of norm 0.6
//! (MiniLM's mean residual norm on SciFact is 0.60), normalised and assigned to its
//! nearest centroid by inner product as the index does; a 32-token query whose tokens
//! are noisy copies of document tokens. Per document: exact MaxSim on f16 rows (each
//! SIMD kernel this CPU has), refinement on f16 rows at several margins, refinement on
//! vectors decompressed from 2-bit residuals, and the old decompressed path (decode
//! every token, then MaxSim).
//!
//! Run: `cargo bench --bench refine` (criterion report, then ns/document and the share
//! of the 32 x 240 dot products refinement computed).

mod common;
use common::seconds_per_call;

use std::hint::black_box;

use criterion::Criterion;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::codec::linalg::dot_matrix;
use tessera_index::codec::{nearest_ip, ResidualDecoder, ResidualQuantizer};
use tessera_index::maxsim::{Kernel, MaxSim};
use tessera_index::plaid::Refiner;
use tessera_index::store::MultiVectorRef;

const ND: usize = 240;
const NQ: usize = 32;
const DIM: usize = 384;
const K: usize = 1024;
const DOCS: usize = 64;
const MARGINS: [f32; 4] = [0.05, 0.1, 0.2, 0.3];

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn noisy(rng: &mut ChaCha8Rng, base: &[f32], norm: f32) -> Vec<f32> {
    let mut r: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    unit(&mut r);
    let mut v: Vec<f32> = base.iter().zip(&r).map(|(b, x)| b + norm * x).collect();
    unit(&mut v);
    v
}

struct Data {
    query: Vec<f32>,
    scores: Vec<f32>,
    centroids: Vec<f32>,
    /// Per document: f16 rows, codes, packed 2-bit residuals.
    docs: Vec<(Vec<f16>, Vec<u32>, Vec<u8>)>,
    quantizer: ResidualQuantizer,
}

fn data() -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut centroids = Vec::with_capacity(K * DIM);
    for _ in 0..K {
        let mut c: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        unit(&mut c);
        centroids.extend(c);
    }
    let mut rows32 = Vec::new();
    for _ in 0..DOCS * ND {
        let c = rng.gen_range(0..K);
        rows32.push(noisy(&mut rng, &centroids[c * DIM..(c + 1) * DIM], 0.6));
    }
    let flat: Vec<f32> = rows32.concat();
    let codes = nearest_ip(&flat, &centroids, DIM);
    let residuals: Vec<f32> = flat
        .chunks_exact(DIM)
        .zip(&codes)
        .flat_map(|(v, &c)| {
            let c = &centroids[c as usize * DIM..(c as usize + 1) * DIM];
            v.iter().zip(c).map(|(a, b)| a - b).collect::<Vec<_>>()
        })
        .collect();
    let quantizer = ResidualQuantizer::fit(DIM, 2, residuals[..200_000].to_vec());
    let mut packed = vec![0u8; quantizer.packed_len()];
    let mut docs = Vec::new();
    for d in 0..DOCS {
        let (a, b) = (d * ND, (d + 1) * ND);
        let mut p = Vec::new();
        for r in residuals[a * DIM..b * DIM].chunks_exact(DIM) {
            quantizer.pack(r, &mut packed);
            p.extend_from_slice(&packed);
        }
        let f16s: Vec<f16> = flat[a * DIM..b * DIM]
            .iter()
            .map(|&x| f16::from_f32(x))
            .collect();
        docs.push((f16s, codes[a..b].to_vec(), p));
    }
    // Query tokens: noisy copies of tokens of random documents.
    let mut query = Vec::with_capacity(NQ * DIM);
    for _ in 0..NQ {
        let t = rng.gen_range(0..DOCS * ND);
        query.extend(noisy(&mut rng, &rows32[t], 0.8));
    }
    let mut scores = vec![0.0f32; K * NQ];
    dot_matrix(&centroids, &query, DIM, &mut scores);
    Data {
        query,
        scores,
        centroids,
        docs,
        quantizer,
    }
}

fn main() {
    let d = data();
    let decoder = ResidualDecoder::new(&d.quantizer);
    let plen = d.quantizer.packed_len();
    let qv = MultiVectorRef::new(&d.query, DIM);
    let centroid = |c: u32| &d.centroids[c as usize * DIM..(c as usize + 1) * DIM];

    let exact_all = |scorer: &mut MaxSim| -> f32 {
        d.docs
            .iter()
            .map(|(rows, _, _)| scorer.score(qv, MultiVectorRef::new(rows, DIM)))
            .sum()
    };
    let refine_all = |r: &mut Refiner, margin: f32| -> f32 {
        d.docs
            .iter()
            .map(|(rows, codes, _)| {
                r.score(&d.query, DIM, &d.scores, codes, margin, |j, out| {
                    rows[j * DIM..(j + 1) * DIM].convert_to_f32_slice(out)
                })
            })
            .sum()
    };
    let refine_decoded_all = |r: &mut Refiner, margin: f32| -> f32 {
        d.docs
            .iter()
            .map(|(_, codes, packed)| {
                r.score(&d.query, DIM, &d.scores, codes, margin, |j, out| {
                    decoder.decode(centroid(codes[j]), &packed[j * plen..(j + 1) * plen], out)
                })
            })
            .sum()
    };
    let mut buf = vec![0.0f32; ND * DIM];
    let mut decode_then_maxsim = |scorer: &mut MaxSim| -> f32 {
        d.docs
            .iter()
            .map(|(_, codes, packed)| {
                for (j, row) in buf.chunks_exact_mut(DIM).enumerate() {
                    decoder.decode(centroid(codes[j]), &packed[j * plen..(j + 1) * plen], row);
                }
                scorer.score_f32(qv, MultiVectorRef::new(&buf, DIM))
            })
            .sum()
    };

    if !std::env::args().any(|a| a == "--bench") {
        // Under `cargo test --all-targets`: refinement is a lower bound of MaxSim and an
        // infinite margin is MaxSim, on this data too.
        let exact = exact_all(&mut MaxSim::default());
        let inf = refine_all(&mut Refiner::default(), f32::INFINITY);
        let pruned = refine_all(&mut Refiner::default(), 0.1);
        assert!((exact - inf).abs() < 1e-3 * exact.abs(), "{exact} {inf}");
        assert!(pruned <= exact + 1e-3, "{pruned} {exact}");
        println!("bench smoke check: refinement {pruned} <= exact {exact} = infinite margin {inf}");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("refine_64_docs_32x240x384");
        for kernel in Kernel::available().into_iter().skip(1) {
            let mut s = MaxSim::new(kernel);
            g.bench_function(format!("exact_f16_{}", kernel.name()), |b| {
                b.iter(|| black_box(exact_all(&mut s)))
            });
            for m in MARGINS {
                let mut r = Refiner::new(kernel);
                g.bench_function(format!("refine_f16_margin{m}_{}", kernel.name()), |b| {
                    b.iter(|| black_box(refine_all(&mut r, m)))
                });
            }
        }
        g.finish();
    }
    c.final_summary();

    let per_doc = |s: f64| s / DOCS as f64 * 1e9;
    let mut exact_ns = 0.0;
    for kernel in Kernel::available().into_iter().skip(1) {
        let mut s = MaxSim::new(kernel);
        let t = seconds_per_call(30, || {
            black_box(exact_all(&mut s));
        });
        exact_ns = per_doc(t);
        println!(
            "\nexact f16 MaxSim [{}]: {:.0} ns/document",
            kernel.name(),
            exact_ns
        );
        for m in MARGINS {
            let mut r = Refiner::new(kernel);
            let t = seconds_per_call(30, || {
                black_box(refine_all(&mut r, m));
            });
            let mut counted = Refiner::new(kernel);
            let score = refine_all(&mut counted, m);
            let exact = exact_all(&mut MaxSim::new(kernel));
            println!(
                "refine f16 margin {m} [{}]: {:.0} ns/document ({:.1}x cheaper), {:.2}% of pairs computed, {:.1} rows fetched/document, score {:.4} of exact",
                kernel.name(),
                per_doc(t),
                exact_ns / per_doc(t),
                100.0 * counted.pairs as f64 / (DOCS * NQ * ND) as f64,
                counted.rows as f64 / DOCS as f64,
                score / exact
            );
        }
    }
    let mut s = MaxSim::default();
    let t_old = seconds_per_call(10, || {
        black_box(decode_then_maxsim(&mut s));
    });
    println!(
        "\ndecompressed, decode every token then MaxSim: {:.0} ns/document",
        per_doc(t_old)
    );
    for m in MARGINS {
        let mut r = Refiner::default();
        let t = seconds_per_call(30, || {
            black_box(refine_decoded_all(&mut r, m));
        });
        println!(
            "decompressed, refine margin {m}: {:.0} ns/document ({:.1}x cheaper than decode-then-MaxSim, {:.1}x than exact f16)",
            per_doc(t),
            per_doc(t_old) / per_doc(t),
            exact_ns / per_doc(t)
        );
    }
}
