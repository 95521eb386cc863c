//! AVX2 + FMA MaxSim kernel. The only `unsafe` code in the crate besides the mmap.
//!
//! Blocks of 4 query rows x 2 document rows keep 8 accumulators in registers, so each
//! loaded document chunk feeds 4 FMAs and each query chunk 2 (6 loads per 8 FMAs).

use std::arch::x86_64::*;

/// `Σ_i max_j ⟨q_i, d_j⟩` for row-major f32 `q` and `d` of dimension `dim`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn maxsim_avx2(q: &[f32], d: &[f32], dim: usize) -> f32 {
    assert!(dim > 0 && q.len().is_multiple_of(dim) && d.len().is_multiple_of(dim));
    let (nq, nd) = (q.len() / dim, d.len() / dim);
    let mut total = 0.0f32;
    let mut i = 0;
    while i + 4 <= nq {
        total += block_max::<4>(&q[i * dim..(i + 4) * dim], d, nd, dim);
        i += 4;
    }
    while i < nq {
        total += block_max::<1>(&q[i * dim..(i + 1) * dim], d, nd, dim);
        i += 1;
    }
    total
}

/// Sum over the `QB` query rows in `q` of their best dot product with any row of `d`.
#[target_feature(enable = "avx2,fma")]
unsafe fn block_max<const QB: usize>(q: &[f32], d: &[f32], nd: usize, dim: usize) -> f32 {
    let mut best = [f32::NEG_INFINITY; QB];
    let mut j = 0;
    while j + 2 <= nd {
        let dots = dots::<QB, 2>(q, &d[j * dim..(j + 2) * dim], dim);
        for (b, row) in best.iter_mut().zip(&dots) {
            *b = b.max(row[0]).max(row[1]);
        }
        j += 2;
    }
    if j < nd {
        let dots = dots::<QB, 1>(q, &d[j * dim..(j + 1) * dim], dim);
        for (b, row) in best.iter_mut().zip(&dots) {
            *b = b.max(row[0]);
        }
    }
    best.iter().sum()
}

/// All `QB x DB` dot products between the rows of `q` (QB rows) and `d` (DB rows).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots<const QB: usize, const DB: usize>(
    q: &[f32],
    d: &[f32],
    dim: usize,
) -> [[f32; DB]; QB] {
    assert!(q.len() == QB * dim && d.len() == DB * dim);
    let chunks = dim / 8;
    let mut acc = [[_mm256_setzero_ps(); DB]; QB];
    let (qp, dp) = (q.as_ptr(), d.as_ptr());
    for c in 0..chunks {
        let mut dv = [_mm256_setzero_ps(); DB];
        for (jj, v) in dv.iter_mut().enumerate() {
            // SAFETY: jj < DB and c * 8 + 8 <= dim, so the 8 lanes lie inside row jj of
            // `d`, which holds DB * dim values (asserted above).
            *v = _mm256_loadu_ps(dp.add(jj * dim + c * 8));
        }
        for (ii, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above, inside row ii of `q`, which holds QB * dim values.
            let qv = _mm256_loadu_ps(qp.add(ii * dim + c * 8));
            for (a, v) in row.iter_mut().zip(&dv) {
                *a = _mm256_fmadd_ps(qv, *v, *a);
            }
        }
    }
    let mut out = [[0.0f32; DB]; QB];
    let tail = chunks * 8;
    for ii in 0..QB {
        for jj in 0..DB {
            let mut s = hsum(acc[ii][jj]);
            let (qr, dr) = (&q[ii * dim..(ii + 1) * dim], &d[jj * dim..(jj + 1) * dim]);
            for k in tail..dim {
                s += qr[k] * dr[k];
            }
            out[ii][jj] = s;
        }
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
    _mm_cvtss_f32(s)
}
