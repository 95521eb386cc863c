//! Exact MaxSim: `score(Q, D) = Σ_i max_j ⟨q_i, d_j⟩`, the late-interaction score.
//!
//! [`maxsim_scalar`] is the reference every other kernel is tested against. [`MaxSim`]
//! picks the fastest kernel this CPU supports once, at run time, and owns the scratch
//! buffer the SIMD kernels convert f16 document rows into.

mod scalar;
mod search;
mod topk;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use half::f16;
use half::slice::HalfFloatSliceExt;

pub use scalar::maxsim_scalar;
pub use search::{search_candidates, search_exhaustive, search_exhaustive_until, Scan};
pub(crate) use topk::PREALLOCATE;
pub use topk::{Hit, TopK};

use crate::store::MultiVectorRef;

/// The kernels this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable reference (also what non-x86 builds use).
    Scalar,
    /// AVX2 + FMA, 4 query rows x 2 document rows per register block.
    Avx2Fma,
}

impl Kernel {
    /// The best kernel this CPU runs, detected once.
    pub fn detect() -> Kernel {
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Kernel::Avx2Fma;
            }
            Kernel::Scalar
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2Fma => "avx2+fma",
        }
    }
}

/// A MaxSim scorer bound to one kernel, with a reusable f32 scratch for document rows.
/// Not shared between threads: give each rayon worker its own (it is cheap).
#[derive(Debug, Clone)]
pub struct MaxSim {
    kernel: Kernel,
    doc_f32: Vec<f32>,
}

impl Default for MaxSim {
    fn default() -> Self {
        Self::new(Kernel::detect())
    }
}

impl MaxSim {
    /// A scorer using `kernel`. Asking for a kernel the CPU lacks falls back to scalar.
    pub fn new(kernel: Kernel) -> Self {
        let kernel = match kernel {
            Kernel::Avx2Fma if Kernel::detect() != Kernel::Avx2Fma => Kernel::Scalar,
            k => k,
        };
        MaxSim {
            kernel,
            doc_f32: Vec::new(),
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
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2Fma is only selected after runtime detection of avx2 and fma.
            Kernel::Avx2Fma => unsafe {
                x86::maxsim_avx2(query.as_slice(), doc.as_slice(), query.dim())
            },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2Fma => unreachable!("Avx2Fma is never selected off x86_64"),
        }
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
            Kernel::Avx2Fma => {
                // f16 -> f32 once per document (half uses F16C when present), then an
                // all-f32 register-blocked kernel: each converted row is reused by every
                // query row, so the conversion is ~1/n_query of the work.
                self.doc_f32.resize(doc.as_slice().len(), 0.0);
                doc.as_slice().convert_to_f32_slice(&mut self.doc_f32);
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: `Kernel::Avx2Fma` is only ever selected after
                    // `is_x86_feature_detected!` confirmed avx2 and fma (see `new`/`detect`).
                    unsafe { x86::maxsim_avx2(query.as_slice(), &self.doc_f32, query.dim()) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("Avx2Fma is never selected off x86_64")
            }
        }
    }
}
