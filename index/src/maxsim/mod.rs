//! Exact MaxSim: `score(Q, D) = Σ_i max_j ⟨q_i, d_j⟩`, the late-interaction score.
//!
//! [`maxsim_scalar`] is the reference every other kernel is tested against. [`MaxSim`]
//! picks the fastest kernel this CPU supports once, at run time, and owns the scratch
//! buffer the SIMD kernels convert f16 document rows into.

pub mod codes;
pub mod int8;
mod scalar;
mod search;
mod topk;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use std::sync::OnceLock;

use half::f16;
use half::slice::HalfFloatSliceExt;

pub use scalar::maxsim_scalar;
pub use search::{search_candidates, search_exhaustive, search_exhaustive_until, Scan};
pub(crate) use topk::PREALLOCATE;
pub use topk::{Hit, TopK};

use crate::store::MultiVectorRef;

/// The kernels this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// Portable reference (also what non-x86 builds use).
    Scalar,
    /// AVX2 + FMA, 4 query rows x 2 document rows per register block.
    Avx2Fma,
    /// AVX-512F, the same blocking on 16-lane registers.
    Avx512,
}

impl Kernel {
    /// The best kernel this CPU runs, detected once.
    pub fn detect() -> Kernel {
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c");
                if avx2 && is_x86_feature_detected!("avx512f") {
                    return Kernel::Avx512;
                }
                if avx2 {
                    return Kernel::Avx2Fma;
                }
            }
            Kernel::Scalar
        })
    }

    /// Every kernel this CPU runs, scalar first (for benches and equivalence tests).
    pub fn available() -> Vec<Kernel> {
        let best = Kernel::detect();
        [Kernel::Scalar, Kernel::Avx2Fma, Kernel::Avx512]
            .into_iter()
            .filter(|k| *k <= best)
            .collect()
    }

    /// `self` if this CPU runs it, else the best kernel it does run.
    pub fn supported(self) -> Kernel {
        self.min(Kernel::detect())
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2Fma => "avx2+fma",
            Kernel::Avx512 => "avx512f",
        }
    }
}

/// A MaxSim scorer bound to one kernel, with a reusable f32 scratch for document rows.
/// Not shared between threads: give each rayon worker its own (it is cheap).
#[derive(Debug, Clone)]
pub struct MaxSim {
    kernel: Kernel,
    doc_f32: Vec<f32>,
    /// The int8 kernel's per-row sums.
    sums: Vec<i32>,
}

impl Default for MaxSim {
    fn default() -> Self {
        Self::new(Kernel::detect())
    }
}

impl MaxSim {
    /// A scorer using `kernel`. Asking for a kernel the CPU lacks falls back to scalar.
    pub fn new(kernel: Kernel) -> Self {
        MaxSim {
            kernel: kernel.supported(),
            doc_f32: Vec::new(),
            sums: Vec::new(),
        }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// MaxSim of an f32 query against an f32 document (e.g. decompressed vectors).
    pub fn score_f32(
        &mut self,
        query: MultiVectorRef<'_, f32>,
        doc: MultiVectorRef<'_, f32>,
    ) -> f32 {
        assert_eq!(
            query.dim(),
            doc.dim(),
            "query and document dimensions differ"
        );
        if query.is_empty() || doc.is_empty() {
            return 0.0;
        }
        match self.kernel {
            Kernel::Scalar => query
                .rows()
                .map(|q| {
                    doc.rows()
                        .map(|d| q.iter().zip(d).map(|(a, b)| a * b).sum::<f32>())
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .sum(),
            _ => simd(self.kernel, query.as_slice(), doc.as_slice(), query.dim()),
        }
    }

    /// MaxSim against a document's vectors as the store keeps them: f16 directly; int8
    /// by the int8 definition ([`int8`]: the query quantised too, integer dot products),
    /// with `query_i8` the query quantised once by the caller (quantised here when
    /// `None`). Panics on a document whose vectors are not kept.
    pub fn score_rows(
        &mut self,
        query: MultiVectorRef<'_, f32>,
        query_i8: Option<&int8::QueryI8>,
        rows: crate::store::DocRows<'_>,
    ) -> f32 {
        match rows {
            crate::store::DocRows::F16(doc) => self.score(query, doc),
            crate::store::DocRows::Missing { .. } => {
                panic!("MaxSim needs kept vectors; this store has none")
            }
            crate::store::DocRows::Int8 { values, scales } => match query_i8 {
                Some(q) => self.score_i8(q, values, scales),
                None => self.score_i8(&int8::QueryI8::new(query), values, scales),
            },
        }
    }

    /// The int8 score ([`int8`]) of a quantised query against int8 rows and their scales:
    /// the same bits from every kernel; with the AVX-512 kernel, VNNI where the CPU has
    /// it, else (and with the AVX2 kernel) `vpmaddwd`; scalar with the scalar kernel.
    pub fn score_i8(
        &mut self,
        query: &int8::QueryI8,
        values: MultiVectorRef<'_, i8>,
        scales: &[f32],
    ) -> f32 {
        int8::maxsim_i8(query, values, scales, &mut self.sums, self.kernel)
    }

    /// MaxSim of an f32 query against an f16 document of the same dimension.
    /// An empty query scores 0; an empty document scores 0 too.
    pub fn score(&mut self, query: MultiVectorRef<'_, f32>, doc: MultiVectorRef<'_, f16>) -> f32 {
        assert_eq!(
            query.dim(),
            doc.dim(),
            "query and document dimensions differ"
        );
        if query.is_empty() || doc.is_empty() {
            return 0.0;
        }
        match self.kernel {
            Kernel::Scalar => maxsim_scalar(query, doc),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2Fma is selected only after detection of avx2 and fma; f16c is
            // checked with them (`detect`).
            Kernel::Avx2Fma => unsafe {
                x86::maxsim_avx2_f16(query.as_slice(), doc.as_slice(), query.dim())
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx512 is selected only after detection of avx512f.
            Kernel::Avx512 => unsafe {
                x86::maxsim_avx512_f16(query.as_slice(), doc.as_slice(), query.dim())
            },
            #[allow(unreachable_patterns)]
            _ => {
                // Off x86_64 only scalar exists; kept for the f32 scratch path's shape.
                self.doc_f32.resize(doc.as_slice().len(), 0.0);
                doc.as_slice().convert_to_f32_slice(&mut self.doc_f32);
                simd(self.kernel, query.as_slice(), &self.doc_f32, query.dim())
            }
        }
    }
}

impl Kernel {
    /// `out[i * nb + j] = ⟨a_i, b_j⟩` for row-major `a` (`na x dim`) and `b` (`nb x dim`),
    /// on the calling thread. AVX-512: this crate's register-blocked kernel. Measured on
    /// PLAID's centroid scores (16,384 x 32 x 384, `cargo bench --bench maxsim`, AMD EPYC):
    /// 3.80 ms against 6.34 ms when `gemm` ran AVX2 only, and still 5.21-5.58 ms against
    /// 5.60-5.96 ms (1.07-1.08x, two runs on a busier host) after `gemm`'s own AVX-512
    /// microkernels were switched on (its `x86-v4` feature). Otherwise `gemm`
    /// ([`crate::codec::linalg::dot_matrix`]).
    pub fn dot_matrix(self, a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx512 is selected only after detection of avx512f.
            Kernel::Avx512 => unsafe { x86::dot_matrix_avx512(a, b, dim, out) },
            _ => crate::codec::linalg::dot_matrix(a, b, dim, out),
        }
    }

    /// `best[i] = max(best[i], max_{c in codes} scores[c * nq + i])`: centroid
    /// interaction's inner loop.
    pub fn max_rows(self, codes: &[u32], scores: &[f32], nq: usize, best: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx512 is selected only after detection of avx512f.
            Kernel::Avx512 => unsafe { x86::max_rows_avx512(codes, scores, nq, best) },
            _ => {
                for &c in codes {
                    let row = &scores[c as usize * nq..(c as usize + 1) * nq];
                    for (b, s) in best.iter_mut().zip(row) {
                        *b = b.max(*s);
                    }
                }
            }
        }
    }
}

impl Kernel {
    /// `best[i] = max(best[i], max_{c in codes} table[c * nq + i])` on a byte table
    /// (PLAID's centroid interaction on quantised scores); the same result from every
    /// kernel (integer maxima).
    pub fn max_rows_u8(self, codes: &[u32], table: &[u8], nq: usize, best: &mut [u8]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx512 is selected only after detection of avx512f; avx512bw is
            // checked here.
            Kernel::Avx512 if is_x86_feature_detected!("avx512bw") => unsafe {
                x86::max_rows_u8_avx512(codes, table, nq, best)
            },
            _ => {
                for &c in codes {
                    let row = &table[c as usize * nq..(c as usize + 1) * nq];
                    for (b, s) in best.iter_mut().zip(row) {
                        *b = (*b).max(*s);
                    }
                }
            }
        }
    }
}

/// The SIMD MaxSim of `kernel` (never `Scalar`) on f32 rows.
fn simd(kernel: Kernel, q: &[f32], d: &[f32], dim: usize) -> f32 {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma is only selected after runtime detection of avx2 and fma.
        Kernel::Avx2Fma => unsafe { x86::maxsim_avx2(q, d, dim) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx512 is only selected after runtime detection of avx512f (and avx2).
        Kernel::Avx512 => unsafe { x86::maxsim_avx512(q, d, dim) },
        _ => unreachable!("SIMD kernels are only selected on x86_64 after detection"),
    }
}
