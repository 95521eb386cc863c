//! The SIMD MaxSim kernel against the scalar reference, and exhaustive search against
//! a brute-force scan, on seeded random data.

use half::f16;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::maxsim::{maxsim_scalar, Kernel, MaxSim};
use tessera_index::store::MultiVectorRef;
use tessera_index::{Index, IndexWriter, ModelInfo};

fn random_unit_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}

fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Shapes cover 1 token, query rows not a multiple of 4, odd doc counts and
    /// dimensions that are not multiples of 8 (the scalar tail).
    #[test]
    fn simd_equals_scalar(seed in any::<u64>(), nq in 1usize..40, nd in 1usize..70, dim in 1usize..130) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = random_unit_rows(&mut rng, nq, dim);
        let d = to_f16(&random_unit_rows(&mut rng, nd, dim));
        let (q, d) = (MultiVectorRef::new(&q, dim), MultiVectorRef::new(&d, dim));
        let want = maxsim_scalar(q, d);
        for kernel in Kernel::available() {
            let got = MaxSim::new(kernel).score(q, d);
            // Same products, different summation order: within 1e-5 per unit of score.
            prop_assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{} {got} scalar {want}", kernel.name());
        }
    }
}

#[test]
fn realistic_shape_simd_equals_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (nq, nd, dim) = (32, 240, 384);
    let q = random_unit_rows(&mut rng, nq, dim);
    let d = to_f16(&random_unit_rows(&mut rng, nd, dim));
    let (q, d) = (MultiVectorRef::new(&q, dim), MultiVectorRef::new(&d, dim));
    let want = maxsim_scalar(q, d);
    for kernel in Kernel::available() {
        let got = MaxSim::new(kernel).score(q, d);
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{} {got} scalar {want}",
            kernel.name()
        );
    }
}

#[test]
fn this_machine_runs_a_simd_kernel() {
    // The CI and development machines have AVX2 + FMA; if detection silently fell back
    // to scalar the equivalence tests above would compare scalar with itself.
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(Kernel::detect() >= Kernel::Avx2Fma);
        assert!(Kernel::available().contains(&Kernel::Avx2Fma));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        assert_eq!(Kernel::detect(), Kernel::Avx512);
    }
}

#[test]
fn exhaustive_search_equals_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let dim = 48;
    let dir = tempfile::tempdir().unwrap();
    let model = ModelInfo {
        name: "random".into(),
        dim,
        weights_sha256: "-".into(),
        encoder: Default::default(),
    };
    let mut w = IndexWriter::create(dir.path(), model).unwrap();
    let mut docs = Vec::new();
    for i in 0..500 {
        let n = rng.gen_range(1..40);
        let v = random_unit_rows(&mut rng, n, dim);
        w.add(&format!("doc-{i}"), &v).unwrap();
        docs.push(to_f16(&v));
    }
    w.commit(serde_json::json!({})).unwrap();
    let index = Index::open(dir.path()).unwrap();
    for trial in 0..5 {
        let q = random_unit_rows(&mut rng, 1 + trial * 7, dim);
        let qv = MultiVectorRef::new(&q, dim);
        let mut brute: Vec<(usize, f32)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (i, maxsim_scalar(qv, MultiVectorRef::new(d, dim))))
            .collect();
        brute.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let hits = index.search_exhaustive(qv, 20);
        assert_eq!(hits.len(), 20);
        for (h, (i, s)) in hits.iter().zip(&brute) {
            assert!((h.score - s).abs() < 1e-4, "score {} vs {s}", h.score);
            // Ids agree unless two brute-force scores are within rounding of each other.
            if h.addr.doc as usize != *i {
                let other = brute
                    .iter()
                    .find(|(j, _)| *j == h.addr.doc as usize)
                    .unwrap()
                    .1;
                assert!(
                    (other - s).abs() < 1e-4,
                    "doc {} ranked where brute force has {i}",
                    h.addr.doc
                );
            }
        }
        let k_all = index.search_exhaustive(qv, 10_000);
        assert_eq!(
            k_all.len(),
            500,
            "k larger than the corpus returns every document"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// PLAID's centroid scores (`Kernel::dot_matrix`) on every kernel against a plain
    /// triple loop, for shapes that leave partial register blocks on both sides.
    #[test]
    fn every_kernel_computes_the_score_table(seed in any::<u64>(), na in 1usize..40, nb in 1usize..12, dim in 1usize..70) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = random_unit_rows(&mut rng, na, dim);
        let b = random_unit_rows(&mut rng, nb, dim);
        for kernel in Kernel::available() {
            let mut out = vec![0.0f32; na * nb];
            kernel.dot_matrix(&a, &b, dim, &mut out);
            for i in 0..na {
                for j in 0..nb {
                    let want: f32 = (0..dim).map(|d| a[i * dim + d] * b[j * dim + d]).sum();
                    prop_assert!((out[i * nb + j] - want).abs() < 1e-5, "{} [{i},{j}]", kernel.name());
                }
            }
        }
    }

    /// Centroid interaction's inner loop (`Kernel::max_rows`) on every kernel against the
    /// scalar loop, query lengths around the 16-lane register and 64-lane group edges.
    #[test]
    fn every_kernel_takes_the_same_row_maxima(seed in any::<u64>(), nq in 1usize..140, k in 1usize..30, n in 0usize..50) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scores: Vec<f32> = (0..k * nq).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let codes: Vec<u32> = (0..n).map(|_| rng.gen_range(0..k as u32)).collect();
        let start: Vec<f32> = (0..nq).map(|_| rng.gen_range(-1.0f32..0.0)).collect();
        let mut want = start.clone();
        Kernel::Scalar.max_rows(&codes, &scores, nq, &mut want);
        for (i, w) in want.iter().enumerate() {
            let direct = codes.iter().map(|&c| scores[c as usize * nq + i]).fold(start[i], f32::max);
            prop_assert_eq!(*w, direct);
        }
        for kernel in Kernel::available() {
            let mut got = start.clone();
            kernel.max_rows(&codes, &scores, nq, &mut got);
            prop_assert_eq!(&got, &want, "{}", kernel.name());
        }
    }

    /// The byte-table twin (`Kernel::max_rows_u8`), query lengths around the 64-lane
    /// register and the 256-lane pass edges, odd code counts (the paired loop's tail).
    #[test]
    fn every_kernel_takes_the_same_byte_row_maxima(seed in any::<u64>(), nq in 1usize..300, k in 1usize..30, n in 0usize..51) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let table: Vec<u8> = (0..k * nq).map(|_| rng.gen()).collect();
        let codes: Vec<u32> = (0..n).map(|_| rng.gen_range(0..k as u32)).collect();
        let start: Vec<u8> = (0..nq).map(|_| rng.gen_range(0..64)).collect();
        let want: Vec<u8> = (0..nq)
            .map(|i| codes.iter().map(|&c| table[c as usize * nq + i]).fold(start[i], u8::max))
            .collect();
        for kernel in Kernel::available() {
            let mut got = start.clone();
            kernel.max_rows_u8(&codes, &table, nq, &mut got);
            prop_assert_eq!(&got, &want, "{}", kernel.name());
        }
    }
}
