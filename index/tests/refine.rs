//! PLAID's refinement (token-pruned MaxSim, `plaid/refine.rs`): every SIMD kernel
//! against the scalar reference on seeded random data, the margin's two limits (an
//! infinite margin is exact MaxSim; any margin is a lower bound of it), and refinement
//! in a real index against exhaustive search.

use half::f16;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::maxsim::{maxsim_scalar, Kernel};
use tessera_index::plaid::{pruned_maxsim_scalar, Refiner};
use tessera_index::store::MultiVectorRef;

fn unit_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}

/// A query, a document of `nd` tokens (f16, as the store keeps it), `k` centroids (the
/// document's tokens assigned to random ones) and the centroid-major score table.
struct Case {
    dim: usize,
    query: Vec<f32>,
    doc: Vec<f16>,
    codes: Vec<u32>,
    scores: Vec<f32>,
}

fn case(seed: u64, nq: usize, nd: usize, dim: usize, k: usize) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let query = unit_rows(&mut rng, nq, dim);
    let doc: Vec<f16> = unit_rows(&mut rng, nd, dim)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let centroids = unit_rows(&mut rng, k, dim);
    let codes: Vec<u32> = (0..nd).map(|_| rng.gen_range(0..k as u32)).collect();
    let mut scores = vec![0.0f32; k * nq];
    for c in 0..k {
        for i in 0..nq {
            scores[c * nq + i] = (0..dim)
                .map(|d| centroids[c * dim + d] * query[i * dim + d])
                .sum();
        }
    }
    Case {
        dim,
        query,
        doc,
        codes,
        scores,
    }
}

impl Case {
    fn row(&self, j: usize) -> Vec<f32> {
        self.doc[j * self.dim..(j + 1) * self.dim]
            .iter()
            .map(|v| v.to_f32())
            .collect()
    }

    fn refined(&self, kernel: Kernel, margin: f32) -> f32 {
        let mut r = Refiner::new(kernel);
        r.score(
            &self.query,
            self.dim,
            &self.scores,
            &self.codes,
            margin,
            |j, out| out.copy_from_slice(&self.row(j)),
        )
    }

    fn reference(&self, margin: f32) -> f32 {
        pruned_maxsim_scalar(
            &self.query,
            self.dim,
            &self.scores,
            &self.codes,
            margin,
            |j| self.row(j),
        )
    }

    fn exact(&self) -> f32 {
        maxsim_scalar(
            MultiVectorRef::new(&self.query, self.dim),
            MultiVectorRef::new(&self.doc, self.dim),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Shapes cover one token, query counts not a multiple of 4 or 8 (the selection and
    /// dot-product tails), dimensions not a multiple of 8 or 16, and margins from
    /// "only the best centroid" to "every pair".
    #[test]
    fn every_kernel_equals_the_scalar_reference(
        seed in any::<u64>(), nq in 1usize..40, nd in 1usize..60, dim in 1usize..100,
        k in 1usize..20, margin in prop_oneof![Just(0.0f32), 0.0f32..0.5, Just(f32::INFINITY)],
    ) {
        let c = case(seed, nq, nd, dim, k);
        let want = c.reference(margin);
        for kernel in Kernel::available() {
            let got = c.refined(kernel, margin);
            // Same selected pairs, different summation order.
            prop_assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{} {got} scalar {want}", kernel.name());
        }
    }

    /// Every computed pair is a true dot product, so a pruned score never exceeds
    /// MaxSim; with an infinite margin it is MaxSim.
    #[test]
    fn refinement_is_a_lower_bound_that_an_infinite_margin_makes_exact(
        seed in any::<u64>(), nq in 1usize..33, nd in 1usize..60, margin in 0.0f32..0.4,
    ) {
        let c = case(seed, nq, nd, 48, 8);
        let exact = c.exact();
        let tol = 1e-4 * exact.abs().max(1.0);
        prop_assert!(c.refined(Kernel::detect(), margin) <= exact + tol);
        prop_assert!((c.refined(Kernel::detect(), f32::INFINITY) - exact).abs() <= tol);
        // A wider margin computes a superset of the pairs: never a lower score.
        prop_assert!(c.refined(Kernel::detect(), margin + 0.2) + tol >= c.refined(Kernel::detect(), margin));
    }
}

#[test]
fn realistic_shape_every_kernel_equals_the_scalar_reference() {
    // SciFact with MiniLM: 32 query tokens, ~240 document tokens of 384 dimensions.
    let c = case(5, 32, 240, 384, 64);
    for margin in [0.0, 0.1, 0.3, f32::INFINITY] {
        let want = c.reference(margin);
        for kernel in Kernel::available() {
            let got = c.refined(kernel, margin);
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{} margin {margin}: {got} vs {want}",
                kernel.name()
            );
        }
    }
    assert!((c.refined(Kernel::detect(), f32::INFINITY) - c.exact()).abs() < 1e-3);
}

#[test]
fn a_zero_margin_computes_only_each_query_tokens_best_centroid_tokens() {
    let c = case(9, 16, 100, 32, 40);
    let mut r = Refiner::new(Kernel::detect());
    r.score(&c.query, c.dim, &c.scores, &c.codes, 0.0, |j, out| {
        out.copy_from_slice(&c.row(j))
    });
    // Per query token: the document tokens sharing its best centroid (ties aside).
    let nq = 16;
    let expected: u64 = (0..nq)
        .map(|i| {
            let s = |j: usize| c.scores[c.codes[j] as usize * nq + i];
            let best = (0..c.codes.len()).map(s).fold(f32::NEG_INFINITY, f32::max);
            (0..c.codes.len()).filter(|&j| s(j) >= best).count() as u64
        })
        .sum();
    assert_eq!(r.pairs, expected);
    assert!(r.pairs < (nq * 100) as u64 / 4);
}
