//! PLAID's refinement stage, between centroid interaction and exact rescoring:
//! token-pruned MaxSim.
//!
//! MaxSim's work is `nq x nd` dot products per document; almost all of them lose the
//! `max`. Centroid interaction already knows, for every query token `i` and document token
//! `j`, the centroid score `S[code_j, i]` (a table lookup), and the best one per query
//! token, `best_i`. Refinement computes the true dot product `⟨q_i, d_j⟩` only for the
//! pairs whose centroid score is within `margin` of `best_i`, and scores the document
//! `Σ_i max` over those pairs. The residual (`d_j - centroid`) can move a pair's score
//! by about the residual's projection on `q_i`, so a margin of a few residual standard
//! deviations keeps the true maximiser of almost every query token; with an infinite
//! margin every pair is computed and the score is exact MaxSim (`tests`). The score is
//! a lower bound of MaxSim: every computed pair is a true dot product.
//!
//! Document token rows come from the f16 store (converted per selected token) or, for an
//! index answering from its compressed vectors, decompressed from code + residual: the
//! same selection, so the two paths differ only in what a row is.
//!
//! [`pruned_maxsim_scalar`] is the reference the SIMD kernels (AVX-512 where the CPU has
//! it, else AVX2 + FMA) are tested against.

use crate::maxsim::Kernel;

/// Reference token-pruned MaxSim, written for clarity. `query` is `nq x dim` row-major,
/// `scores` the centroid-major table (`scores[c * nq + i] = ⟨q_i, c⟩`), `codes` the
/// document's centroid ids, `row(j)` document token `j` as f32.
pub fn pruned_maxsim_scalar(
    query: &[f32],
    dim: usize,
    scores: &[f32],
    codes: &[u32],
    margin: f32,
    row: impl Fn(usize) -> Vec<f32>,
) -> f32 {
    let nq = query.len() / dim;
    if nq == 0 || codes.is_empty() {
        return 0.0;
    }
    let s = |j: usize, i: usize| scores[codes[j] as usize * nq + i];
    let mut total = 0.0;
    for i in 0..nq {
        let best = (0..codes.len())
            .map(|j| s(j, i))
            .fold(f32::NEG_INFINITY, f32::max);
        let q = &query[i * dim..(i + 1) * dim];
        let mut exact = f32::NEG_INFINITY;
        for j in 0..codes.len() {
            if s(j, i) >= best - margin {
                let d = row(j);
                exact = exact.max(q.iter().zip(&d).map(|(a, b)| a * b).sum());
            }
        }
        total += exact;
    }
    total
}

/// Token-pruned MaxSim with reusable scratch; one per thread.
#[derive(Debug, Clone)]
pub struct Refiner {
    kernel: Kernel,
    best: Vec<f32>,
    threshold: Vec<f32>,
    exact: Vec<f32>,
    selected: Vec<u32>,
    dots: Vec<f32>,
    row: Vec<f32>,
    /// Pairs whose dot product was computed, over every call (for `--explain`-style
    /// figures and the bench).
    pub pairs: u64,
    /// Document tokens fetched (converted or decompressed), over every call.
    pub rows: u64,
}

impl Default for Refiner {
    fn default() -> Self {
        Refiner::new(Kernel::detect())
    }
}

impl Refiner {
    /// A refiner using `kernel` (one the CPU lacks falls back to the best it has).
    pub fn new(kernel: Kernel) -> Self {
        Refiner {
            kernel: kernel.supported(),
            best: Vec::new(),
            threshold: Vec::new(),
            exact: Vec::new(),
            selected: Vec::new(),
            dots: Vec::new(),
            row: Vec::new(),
            pairs: 0,
            rows: 0,
        }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The document's token-pruned MaxSim (see the module docs). `fetch(j, out)` writes
    /// document token `j` as f32 into `out` (`dim` values).
    pub fn score(
        &mut self,
        query: &[f32],
        dim: usize,
        scores: &[f32],
        codes: &[u32],
        margin: f32,
        mut fetch: impl FnMut(usize, &mut [f32]),
    ) -> f32 {
        let nq = query.len() / dim;
        if nq == 0 || codes.is_empty() {
            return 0.0;
        }
        self.best.clear();
        self.best.resize(nq, f32::NEG_INFINITY);
        self.kernel.max_rows(codes, scores, nq, &mut self.best);
        self.threshold.clear();
        self.threshold.extend(self.best.iter().map(|b| b - margin));
        self.exact.clear();
        self.exact.resize(nq, f32::NEG_INFINITY);
        self.row.resize(dim, 0.0);
        self.dots.resize(nq, 0.0);
        for (j, &c) in codes.iter().enumerate() {
            let srow = &scores[c as usize * nq..(c as usize + 1) * nq];
            self.kernel
                .select_at_least(srow, &self.threshold, &mut self.selected);
            if self.selected.is_empty() {
                continue;
            }
            fetch(j, &mut self.row);
            self.rows += 1;
            self.pairs += self.selected.len() as u64;
            let dots = &mut self.dots[..self.selected.len()];
            self.kernel
                .dots_selected(query, dim, &self.selected, &self.row, dots);
            for (&i, &d) in self.selected.iter().zip(dots.iter()) {
                let e = &mut self.exact[i as usize];
                *e = e.max(d);
            }
        }
        self.exact.iter().sum()
    }
}

impl Kernel {
    /// `dst = src` as f32 (F16C on the SIMD kernels).
    pub fn convert_f16(self, src: &[half::f16], dst: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the SIMD kernels are selected only after detection of avx2 and f16c.
            Kernel::Avx2Fma | Kernel::Avx512 => unsafe {
                crate::maxsim::x86::f16_to_f32_avx2(src, dst)
            },
            _ => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.to_f32();
                }
            }
        }
    }

    /// `out` = the indices `i` with `values[i] >= threshold[i]`, ascending.
    pub(crate) fn select_at_least(self, values: &[f32], threshold: &[f32], out: &mut Vec<u32>) {
        out.clear();
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a SIMD kernel is only selected after runtime detection of its features.
            Kernel::Avx2Fma | Kernel::Avx512 => unsafe {
                crate::maxsim::x86::select_at_least_avx2(values, threshold, out)
            },
            _ => {
                for (i, (v, t)) in values.iter().zip(threshold).enumerate() {
                    if v >= t {
                        out.push(i as u32);
                    }
                }
            }
        }
    }

    /// `out[n] = ⟨q_{rows[n]}, d⟩` for the query rows `rows` of `q` (`dim` wide).
    pub(crate) fn dots_selected(
        self,
        q: &[f32],
        dim: usize,
        rows: &[u32],
        d: &[f32],
        out: &mut [f32],
    ) {
        assert!(d.len() == dim && out.len() == rows.len());
        assert!(rows.iter().all(|&i| (i as usize + 1) * dim <= q.len()));
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx512 is only selected after runtime detection of avx512f; every row
            // index was checked to lie inside `q` just above.
            Kernel::Avx512 => unsafe {
                crate::maxsim::x86::dots_selected_avx512(q, dim, rows, d, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for avx2 and fma.
            Kernel::Avx2Fma => unsafe {
                crate::maxsim::x86::dots_selected_avx2(q, dim, rows, d, out)
            },
            _ => {
                for (o, &i) in out.iter_mut().zip(rows) {
                    let qr = &q[i as usize * dim..(i as usize + 1) * dim];
                    *o = qr.iter().zip(d).map(|(a, b)| a * b).sum();
                }
            }
        }
    }
}
