//! MaxSim kernel against a BLAS-class f32 matmul on the same shapes.
//!
//! What: one query of 32 x 384 (f32) against one document of 240 x 384 (stored f16), the
//! shape of a ColBERT query against a SciFact-length MiniLM document. The MaxSim kernels
//! (runtime-dispatched SIMD, and the scalar reference) include the f16 -> f32 conversion
//! and the row max; the baseline is `gemm` (the crate candle's CPU matmul uses, called
//! through `tessera_index::codec::linalg::dot_matrix`) computing
//! only the 32 x 240 dot-product matrix from f32 inputs, single-threaded.
//! Both do 2 * 32 * 240 * 384 floating-point operations.
//!
//! Run: `cargo bench --bench maxsim` (criterion's report, then a ratio line that compares
//! the two in this process: MaxSim GFLOP/s / matmul GFLOP/s).

mod common;
use common::seconds_per_call;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::codec::linalg::dot_matrix;
use tessera_index::maxsim::int8::{maxsim_i8_scalar, QueryI8};
use tessera_index::maxsim::{maxsim_scalar, Kernel, MaxSim};
use tessera_index::store::MultiVectorRef;

const NQ: usize = 32;
const ND: usize = 240;
const DIM: usize = 384;
const FLOPS: f64 = 2.0 * (NQ * ND * DIM) as f64;

struct Data {
    q: Vec<f32>,
    d16: Vec<f16>,
    d32: Vec<f32>,
    /// The document as an int8 store keeps it (values, per-row scales).
    d8: Vec<i8>,
    d8s: Vec<f32>,
}

fn data() -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let q: Vec<f32> = (0..NQ * DIM).map(|_| rng.gen_range(-0.1..0.1)).collect();
    let d16: Vec<f16> = (0..ND * DIM)
        .map(|_| f16::from_f32(rng.gen_range(-0.1..0.1)))
        .collect();
    let d32: Vec<f32> = d16.iter().map(|v| v.to_f32()).collect();
    let (mut d8, mut d8s) = (Vec::new(), Vec::new());
    for row in d32.chunks_exact(DIM) {
        let s = row.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        d8s.push(s);
        d8.extend(row.iter().map(|x| (x / s).round() as i8));
    }
    Data {
        q,
        d16,
        d32,
        d8,
        d8s,
    }
}

/// 32 x 240 = Q (32 x 384, row-major) . D^T (D is 240 x 384 row-major), one thread:
/// the `gemm` product the index uses for k-means and PLAID (`codec::linalg`).
fn matmul(q: &[f32], d: &[f32], out: &mut [f32]) {
    dot_matrix(q, d, DIM, out);
}

fn main() {
    let d = data();
    let q = MultiVectorRef::new(&d.q, DIM);
    let doc = MultiVectorRef::new(&d.d16, DIM);
    let mut scorer = MaxSim::new(Kernel::detect());
    let qi8 = QueryI8::new(q);
    let d8v = MultiVectorRef::new(&d.d8, DIM);
    let mut out = vec![0.0f32; NQ * ND];

    // Under `cargo test --all-targets` (no --bench flag) only check that the three
    // computations agree, so the bench stays compiled and honest without timing anything.
    if !std::env::args().any(|a| a == "--bench") {
        matmul(&d.q, &d.d32, &mut out);
        let from_matmul: f32 = out
            .chunks_exact(ND)
            .map(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .sum();
        let (simd, scalar) = (scorer.score(q, doc), maxsim_scalar(q, doc));
        assert!(
            (simd - scalar).abs() < 1e-5 && (from_matmul - scalar).abs() < 1e-4,
            "{simd} {scalar} {from_matmul}"
        );
        let (i8_fast, i8_ref) = (
            scorer.score_i8(&qi8, d8v, &d.d8s),
            maxsim_i8_scalar(&qi8, d8v, &d.d8s),
        );
        assert_eq!(i8_fast.to_bits(), i8_ref.to_bits());
        assert!(
            (i8_fast - scalar).abs() < 0.01 * scalar.abs(),
            "{i8_fast} {scalar}"
        );
        println!("bench smoke check: maxsim {simd} = scalar {scalar} = matmul+max {from_matmul}; int8 {i8_fast}");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("maxsim_32x240x384");
        g.throughput(Throughput::Elements(FLOPS as u64));
        for kernel in Kernel::available().into_iter().skip(1) {
            let mut s = MaxSim::new(kernel);
            g.bench_function(format!("maxsim_{}", kernel.name()), |b| {
                b.iter(|| s.score(black_box(q), black_box(doc)))
            });
        }
        for kernel in Kernel::available() {
            let mut s = MaxSim::new(kernel);
            g.bench_function(format!("maxsim_int8_{}", kernel.name()), |b| {
                b.iter(|| s.score_i8(black_box(&qi8), black_box(d8v), black_box(&d.d8s)))
            });
        }
        g.bench_function("maxsim_scalar", |b| {
            b.iter(|| maxsim_scalar(black_box(q), black_box(doc)))
        });
        g.bench_function("gemm_f32_matmul", |b| {
            b.iter(|| matmul(black_box(&d.q), black_box(&d.d32), &mut out))
        });
        g.finish();
    }
    c.final_summary();

    // The ratio, measured here in one process so machine noise hits both alike.
    let simd = seconds_per_call(2000, || {
        black_box(scorer.score(black_box(q), black_box(doc)));
    });
    let scalar = seconds_per_call(100, || {
        black_box(maxsim_scalar(black_box(q), black_box(doc)));
    });
    let mm = seconds_per_call(2000, || {
        matmul(black_box(&d.q), black_box(&d.d32), &mut out)
    });
    // PLAID's centroid score table: 16,384 centroids x a 32-token query, 384 dims.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let cents: Vec<f32> = (0..16_384 * DIM)
        .map(|_| rng.gen_range(-0.1..0.1))
        .collect();
    let mut table = vec![0.0f32; 16_384 * NQ];
    let t_gemm = seconds_per_call(20, || {
        dot_matrix(black_box(&cents), black_box(&d.q), DIM, &mut table)
    });
    for kernel in Kernel::available().into_iter().skip(1) {
        let t = seconds_per_call(20, || {
            kernel.dot_matrix(black_box(&cents), black_box(&d.q), DIM, &mut table)
        });
        println!(
            "centroid scores 16384x32x384 [{}]: {:.2} ms vs gemm crate {:.2} ms ({:.2}x)",
            kernel.name(),
            t * 1e3,
            t_gemm * 1e3,
            t_gemm / t
        );
    }
    for kernel in Kernel::available().into_iter().skip(1) {
        let mut s = MaxSim::new(kernel);
        let t = seconds_per_call(2000, || {
            black_box(s.score(black_box(q), black_box(doc)));
        });
        println!(
            "kernel {}: {:.1} us ({:.2}x gemm matmul)",
            kernel.name(),
            t * 1e6,
            t / mm
        );
    }
    // The int8 kernels (quantised query, integer products) on the same document, each
    // against the f16 kernel measured above.
    for kernel in Kernel::available() {
        let mut s = MaxSim::new(kernel);
        let calls = if kernel == Kernel::Scalar { 100 } else { 2000 };
        let t = seconds_per_call(calls, || {
            black_box(s.score_i8(black_box(&qi8), black_box(d8v), black_box(&d.d8s)));
        });
        let name = match kernel {
            Kernel::Avx512 if tessera_index::maxsim::int8::vnni_available() => "avx512-vnni",
            Kernel::Avx512 | Kernel::Avx2Fma => "avx2",
            Kernel::Scalar => "scalar",
        };
        println!(
            "int8 [{name}]: {:.1} us vs f16 kernel [{}] {:.1} us ({:.2}x faster)",
            t * 1e6,
            scorer.kernel().name(),
            simd * 1e6,
            simd / t
        );
    }
    // The int8 centroid score table against the f32 one, same shapes.
    {
        use tessera_index::maxsim::int8::{score_table, RowsI8};
        let rows = RowsI8::new(&cents, DIM);
        let t_f32 = seconds_per_call(20, || {
            Kernel::detect().dot_matrix(black_box(&cents), black_box(&d.q), DIM, &mut table)
        });
        let t_i8 = seconds_per_call(20, || {
            score_table(black_box(&rows), black_box(&qi8), &mut table, true)
        });
        println!(
            "centroid scores 16384x32x384 int8: {:.2} ms vs f32 [{}] {:.2} ms ({:.2}x faster)",
            t_i8 * 1e3,
            Kernel::detect().name(),
            t_f32 * 1e3,
            t_f32 / t_i8
        );
    }
    let gf = |s: f64| FLOPS / s / 1e9;
    println!(
        "\nratio: maxsim[{}] {:.1} GFLOP/s ({:.1} us) / gemm matmul {:.1} GFLOP/s ({:.1} us) = {:.2}; scalar reference {:.1} GFLOP/s",
        scorer.kernel().name(),
        gf(simd),
        simd * 1e6,
        gf(mm),
        mm * 1e6,
        gf(simd) / gf(mm),
        gf(scalar)
    );
}
