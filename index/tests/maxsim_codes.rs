//! MaxSim straight from PLAID codes and residuals (`maxsim::codes`) against a reference
//! written here from its definition,
//! `Σ_i max_j ( S8[c_j, i] + (sr · ⟨q8_i, w8[b_j]⟩) · sq_i )`, with the residual bits
//! packed here from the documented layout: every kernel this CPU runs must give the
//! same bits at nbits 1, 2 and 4, on shapes that cover one token, more than two
//! 16-token query blocks, vector counts that are not multiples of 4 and dimensions that
//! are not multiples of 4 or 64. And the score tracks exact f32 MaxSim on the decoded
//! vectors `c + w[b]`.

use std::borrow::Cow;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::codec::ResidualQuantizer;
use tessera_index::maxsim::codes::{codes_best_terms, maxsim_codes, CodesQuery, ResidualBytes};
use tessera_index::maxsim::int8::{score_table, QueryI8, RowsI8};
use tessera_index::maxsim::Kernel;
use tessera_index::store::MultiVectorRef;

/// Per-vector symmetric quantisation, as the store's format defines it.
fn quantise(v: &[f32], dim: usize) -> (Vec<i8>, Vec<f32>) {
    let (mut out, mut scales) = (Vec::new(), Vec::new());
    for row in v.chunks_exact(dim) {
        let s = row.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        scales.push(s);
        out.extend(row.iter().map(|&x| match s == 0.0 {
            true => 0,
            false => (x / s).round().clamp(-127.0, 127.0) as i8,
        }));
    }
    (out, scales)
}

fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// One vector's buckets packed as `plaid/README.md` says: dimension `j` in byte
/// `j / (8 / nbits)` at bit offset `(j % (8 / nbits)) * nbits`.
fn pack(buckets: &[u8], nbits: usize) -> Vec<u8> {
    let per = 8 / nbits;
    let mut out = vec![0u8; (buckets.len() * nbits).div_ceil(8)];
    for (j, &b) in buckets.iter().enumerate() {
        out[j / per] |= b << ((j % per) * nbits);
    }
    out
}

struct Case {
    dim: usize,
    nbits: usize,
    weights: Vec<f32>,
    centroids: Vec<f32>,
    query: Vec<f32>,
    codes: Vec<u32>,
    buckets: Vec<Vec<u8>>,
}

impl Case {
    fn random(rng: &mut ChaCha8Rng, nq: usize, nd: usize, dim: usize, nbits: usize) -> Case {
        let k = rng.gen_range(1..40);
        let mut weights: Vec<f32> = (0..1 << nbits)
            .map(|_| rng.gen_range(-0.2f32..0.2))
            .collect();
        weights.sort_by(f32::total_cmp);
        let mut row =
            |n: usize| -> Vec<f32> { (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect() };
        let (centroids, query) = (row(k), row(nq));
        let codes = (0..nd).map(|_| rng.gen_range(0..k as u32)).collect();
        let buckets = (0..nd)
            .map(|_| (0..dim).map(|_| rng.gen_range(0..1u8 << nbits)).collect())
            .collect();
        Case {
            dim,
            nbits,
            weights,
            centroids,
            query,
            codes,
            buckets,
        }
    }

    fn quantizer(&self) -> ResidualQuantizer {
        ResidualQuantizer {
            dim: self.dim,
            nbits: self.nbits as u32,
            cutoffs: self
                .weights
                .windows(2)
                .map(|w| (w[0] + w[1]) / 2.0)
                .collect(),
            weights: self.weights.clone(),
        }
    }

    /// `S8[c, i] = (sc_c · ⟨c8_c, q8_i⟩) · sq_i`.
    fn table(&self) -> Vec<f32> {
        let dim = self.dim;
        let (c8, cs) = quantise(&self.centroids, dim);
        let (q8, qs) = quantise(&self.query, dim);
        let nq = qs.len();
        let mut t = Vec::new();
        for (c, crow) in c8.chunks_exact(dim).enumerate() {
            for i in 0..nq {
                t.push((dot(crow, &q8[i * dim..(i + 1) * dim]) as f32 * cs[c]) * qs[i]);
            }
        }
        t
    }

    fn reference(&self) -> f32 {
        let dim = self.dim;
        let max = self.weights.iter().fold(0f32, |m, w| m.max(w.abs()));
        let sr = if max > 0.0 { max / 127.0 } else { 1.0 };
        let w8: Vec<i8> = self
            .weights
            .iter()
            .map(|&w| (w / sr).round() as i8)
            .collect();
        let (q8, qs) = quantise(&self.query, dim);
        let table = self.table();
        let nq = qs.len();
        let mut total = 0.0f32;
        for i in 0..nq {
            let mut best = f32::NEG_INFINITY;
            for (&c, b) in self.codes.iter().zip(&self.buckets) {
                let r8: Vec<i8> = b.iter().map(|&b| w8[b as usize]).collect();
                let d = dot(&q8[i * dim..(i + 1) * dim], &r8);
                let v = table[c as usize * nq + i] + (d as f32 * sr) * qs[i];
                if v > best {
                    best = v;
                }
            }
            total += best;
        }
        total
    }

    fn residuals(&self) -> Vec<u8> {
        self.buckets
            .iter()
            .flat_map(|b| pack(b, self.nbits))
            .collect()
    }

    fn query_i8(&self) -> QueryI8 {
        QueryI8::new(MultiVectorRef::new(&self.query, self.dim))
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let want = case.reference();
    let table = case.table();
    // The library's int8 centroid table is this table.
    let mut lib = vec![0.0; table.len()];
    score_table(
        &RowsI8::new(&case.centroids, case.dim),
        &case.query_i8(),
        &mut lib,
        true,
    );
    prop_assert_eq!(&lib, &table);
    let q = CodesQuery::new(case.query_i8(), Cow::Borrowed(&table));
    let bytes = ResidualBytes::new(&case.quantizer());
    let residuals = case.residuals();
    for kernel in Kernel::available() {
        let got = maxsim_codes(&q, &bytes, &case.codes, &residuals, kernel);
        prop_assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{}: {} vs {}",
            kernel.name(),
            got,
            want
        );
    }
    let terms = codes_best_terms(&q, &bytes, &case.codes, &residuals);
    let sum = terms.iter().fold(0.0f32, |t, &(_, s)| t + s);
    prop_assert_eq!(sum.to_bits(), want.to_bits(), "the terms sum to the score");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_kernel_gives_the_definitions_bits(
        seed in any::<u64>(), nq in 1usize..70, nd in 1usize..20, dim in 1usize..140,
        nbits in prop::sample::select(vec![1usize, 2, 4]),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        check(&Case::random(&mut rng, nq, nd, dim, nbits))?;
    }
}

#[test]
fn realistic_shape_gives_the_definitions_bits_and_tracks_exact_maxsim() {
    for nbits in [1, 2, 4] {
        let mut rng = ChaCha8Rng::seed_from_u64(nbits as u64);
        let (nq, nd, dim) = (32, 240, 384);
        let case = Case::random(&mut rng, nq, nd, dim, nbits);
        check(&case).unwrap();
        // Exact f32 MaxSim of the query against the decoded vectors c + w[b].
        let mut exact = 0.0f64;
        for qrow in case.query.chunks_exact(dim) {
            let best = case
                .codes
                .iter()
                .zip(&case.buckets)
                .map(|(&c, b)| {
                    let crow = &case.centroids[c as usize * dim..(c as usize + 1) * dim];
                    (0..dim)
                        .map(|d| {
                            qrow[d] as f64 * (crow[d] as f64 + case.weights[b[d] as usize] as f64)
                        })
                        .sum::<f64>()
                })
                .fold(f64::NEG_INFINITY, f64::max);
            exact += best;
        }
        let got = case.reference() as f64;
        // Rows of uniform values in [-1, 1): each best dot is ~30, each int8 error ~0.1.
        assert!(
            (got - exact).abs() <= 0.01 * exact.abs(),
            "nbits {nbits}: codes {got} vs exact {exact}"
        );
    }
}

#[test]
fn empty_query_or_document_scores_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let case = Case::random(&mut rng, 3, 0, 8, 2);
    let table = case.table();
    let q = CodesQuery::new(case.query_i8(), Cow::Borrowed(&table));
    let bytes = ResidualBytes::new(&case.quantizer());
    for kernel in Kernel::available() {
        assert_eq!(maxsim_codes(&q, &bytes, &[], &[], kernel), 0.0);
    }
}
