//! MUVERA FDE encoding speed, in documents per second.
//!
//! What: one SciFact-sized document (240 token vectors of 384 dims) encoded into a
//! paper-setting FDE (k_sim 5, d_proj 32, 20 repetitions: 20,480 dims), and a 32-token
//! query FDE; the baseline in the same process is one exact SIMD MaxSim of a 32-token
//! query against the same document, so the ratio says how many MaxSim evaluations one
//! document encoding costs.
//!
//! Run: `cargo bench --bench fde`.

mod common;
use common::seconds_per_call;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::maxsim::MaxSim;
use tessera_index::muvera::{FdeConfig, FdeEncoder};
use tessera_index::store::MultiVectorRef;

const ND: usize = 240;
const NQ: usize = 32;
const DIM: usize = 384;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let doc: Vec<f32> = (0..ND * DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let query: Vec<f32> = (0..NQ * DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let doc16: Vec<f16> = doc.iter().map(|&v| f16::from_f32(v)).collect();
    let enc = FdeEncoder::new(DIM, FdeConfig::default());
    let mut scorer = MaxSim::default();

    if !std::env::args().any(|a| a == "--bench") {
        assert_eq!(enc.encode_document(&doc).len(), 20 * 32 * 32);
        println!("bench smoke check: FDE of a 240-token document has 20,480 dims");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("fde_240x384_paper_settings");
        g.throughput(Throughput::Elements(1));
        g.bench_function("encode_document", |b| {
            b.iter(|| enc.encode_document(black_box(&doc)))
        });
        g.bench_function("encode_query_32", |b| {
            b.iter(|| enc.encode_query(black_box(&query)))
        });
        g.bench_function("exact_maxsim_baseline", |b| {
            b.iter(|| {
                scorer.score(
                    MultiVectorRef::new(black_box(&query), DIM),
                    MultiVectorRef::new(black_box(&doc16), DIM),
                )
            })
        });
        g.finish();
    }
    c.final_summary();

    let encode = seconds_per_call(200, || {
        black_box(enc.encode_document(black_box(&doc)));
    });
    let maxsim = seconds_per_call(2000, || {
        black_box(scorer.score(
            MultiVectorRef::new(&query, DIM),
            MultiVectorRef::new(&doc16, DIM),
        ));
    });
    println!(
        "\nratio: FDE encoding {:.0} documents/s per thread ({:.1} us) = {:.1} exact MaxSim evaluations ({:.1} us each)",
        1.0 / encode,
        encode * 1e6,
        encode / maxsim,
        maxsim * 1e6
    );
}
