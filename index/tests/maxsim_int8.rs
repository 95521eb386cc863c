//! The int8 MaxSim (`maxsim::int8`) against a reference written here from its
//! definition, `Σ_i sq_i · max_j (sd_j · ⟨q8_i, d8_j⟩)` with both sides quantised per
//! vector (max |x| / 127, round after a division): every kernel this CPU runs must give
//! the same bits, on shapes that cover one token, more than two 16-token query blocks,
//! document row counts that are not multiples of 4 and dimensions that are not
//! multiples of 4 or 64. And the int8 score stays close to exact f32 MaxSim.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::maxsim::int8::{vnni_available, QueryI8};
use tessera_index::maxsim::{Kernel, MaxSim};
use tessera_index::store::MultiVectorRef;

/// Per-vector symmetric quantisation, as the store's format defines it.
fn quantise(v: &[f32], dim: usize) -> (Vec<i8>, Vec<f32>) {
    let (mut out, mut scales) = (Vec::new(), Vec::new());
    for row in v.chunks_exact(dim) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = max / 127.0;
        scales.push(s);
        for &x in row {
            out.push(if s == 0.0 {
                0
            } else {
                (x / s).round().clamp(-127.0, 127.0) as i8
            });
        }
    }
    (out, scales)
}

fn reference(q: &[f32], d8: &[i8], ds: &[f32], dim: usize) -> f32 {
    let (q8, qs) = quantise(q, dim);
    let mut total = 0.0f32;
    for (i, qrow) in q8.chunks_exact(dim).enumerate() {
        let mut best = f32::NEG_INFINITY;
        for (j, drow) in d8.chunks_exact(dim).enumerate() {
            let mut dot = 0i64;
            for k in 0..dim {
                dot += i64::from(qrow[k]) * i64::from(drow[k]);
            }
            let v = dot as i32 as f32 * ds[j];
            if v > best {
                best = v;
            }
        }
        total += qs[i] * best;
    }
    total
}

fn rows(rng: &mut ChaCha8Rng, n: usize, dim: usize, zero_every: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * dim);
    for r in 0..n {
        let zero = zero_every > 0 && r % zero_every == zero_every - 1;
        v.extend((0..dim).map(|_| {
            if zero {
                0.0
            } else {
                rng.gen_range(-1.0f32..1.0)
            }
        }));
    }
    v
}

fn check(q: &[f32], d: &[f32], dim: usize) -> Result<(), TestCaseError> {
    let (d8, ds) = quantise(d, dim);
    let want = reference(q, &d8, &ds, dim);
    let query = QueryI8::new(MultiVectorRef::new(q, dim));
    let (q8, qs) = quantise(q, dim);
    prop_assert_eq!(query.scales(), &qs[..]);
    for i in 0..query.len() {
        prop_assert_eq!(query.row(i), &q8[i * dim..(i + 1) * dim]);
    }
    for kernel in Kernel::available() {
        let got = MaxSim::new(kernel).score_i8(&query, MultiVectorRef::new(&d8, dim), &ds);
        prop_assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{}: {} vs {}",
            kernel.name(),
            got,
            want
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_kernel_gives_the_definitions_bits(
        seed in any::<u64>(), nq in 1usize..70, nd in 1usize..40, dim in 1usize..200, zero_every in 0usize..5,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = rows(&mut rng, nq, dim, zero_every);
        let d = rows(&mut rng, nd, dim, zero_every);
        check(&q, &d, dim)?;
    }
}

#[test]
fn realistic_shape_gives_the_definitions_bits_and_tracks_exact_maxsim() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (nq, nd, dim) = (32, 240, 384);
    let unit = |v: Vec<f32>| -> Vec<f32> {
        v.chunks_exact(dim)
            .flat_map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                r.iter().map(move |x| x / n).collect::<Vec<_>>()
            })
            .collect()
    };
    let q = unit(rows(&mut rng, nq, dim, 0));
    let d = unit(rows(&mut rng, nd, dim, 0));
    check(&q, &d, dim).unwrap();
    let (d8, ds) = quantise(&d, dim);
    let query = QueryI8::new(MultiVectorRef::new(&q, dim));
    let got = MaxSim::default().score_i8(&query, MultiVectorRef::new(&d8, dim), &ds);
    let exact = tessera_index::maxsim::maxsim_scalar(
        MultiVectorRef::new(&q, dim),
        MultiVectorRef::new(
            &d.iter()
                .map(|&x| half::f16::from_f32(x))
                .collect::<Vec<_>>(),
            dim,
        ),
    );
    // Random unit vectors in 384-d: each best dot is ~0.2, each int8 error ~1e-3.
    assert!(
        (got - exact).abs() <= 0.01 * exact.abs(),
        "int8 {got} vs exact {exact}"
    );
    assert_ne!(got.to_bits(), exact.to_bits(), "the int8 path was taken");
}

#[test]
fn the_vnni_kernel_runs_where_the_cpu_has_it() {
    let has = std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni");
    assert_eq!(vnni_available(), has);
    eprintln!("VNNI kernel on this CPU: {has}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// PLAID's int8 centroid score table: each entry is `(sc_c · ⟨c8_c, q8_i⟩) · sq_i`,
    /// computed here from the definition, from the SIMD kernel and the scalar one alike.
    #[test]
    fn the_int8_score_table_is_the_definition(
        seed in any::<u64>(), n in 1usize..40, nq in 1usize..70, dim in 1usize..130,
    ) {
        use tessera_index::maxsim::int8::{score_table, RowsI8};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let c = rows(&mut rng, n, dim, 3);
        let q = rows(&mut rng, nq, dim, 0);
        let table = RowsI8::new(&c, dim);
        let query = QueryI8::new(MultiVectorRef::new(&q, dim));
        let ((c8, cs), (q8, qs)) = (quantise(&c, dim), quantise(&q, dim));
        prop_assert_eq!(table.values(), &c8[..]);
        prop_assert_eq!(table.scales(), &cs[..]);
        let mut want = vec![0.0f32; n * nq];
        for a in 0..n {
            for i in 0..nq {
                let dot: i64 = (0..dim).map(|k| i64::from(c8[a * dim + k]) * i64::from(q8[i * dim + k])).sum();
                want[a * nq + i] = (dot as i32 as f32 * cs[a]) * qs[i];
            }
        }
        for simd in [false, true] {
            let mut got = vec![f32::NAN; n * nq];
            score_table(&table, &query, &mut got, simd);
            let (g, w): (Vec<u32>, Vec<u32>) = (got.iter().map(|x| x.to_bits()).collect(), want.iter().map(|x| x.to_bits()).collect());
            prop_assert_eq!(g, w, "simd {}", simd);
        }
    }
}
