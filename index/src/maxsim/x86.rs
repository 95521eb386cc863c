//! AVX2 + FMA MaxSim kernel. The only `unsafe` code in the crate besides the mmap.
//!
//! MaxSim kernels (AVX2 + FMA, AVX-512F; f32 or f16 documents) and the refinement
//! stage's selection and selected-rows dot products. Blocks of 4 query rows x 2 document
//! rows keep 8 accumulators in registers, so each loaded document chunk feeds 4 FMAs and
//! each query chunk 2 (6 loads per 8 FMAs). f16 rows are converted in registers as they
//! are loaded (`vcvtph2ps`): converting a document into an f32 buffer first took as long
//! as the products themselves (perf on SciFact PLAID: 19% of the time in `half`'s
//! conversion beside 18% in the kernel).

use std::arch::x86_64::*;

use half::f16;

/// One MaxSim kernel family: `$maxsim(q, d, dim) = Σ_i max_j ⟨q_i, d_j⟩` for row-major
/// f32 `q` and `d` of element type `$t` (f32, or f16 converted in registers as it is
/// loaded, so no f32 copy of the document is written), in blocks of 4 query rows x 2
/// document rows: 8 accumulators, 6 loads per 8 FMAs.
macro_rules! maxsim_kernel {
    ($maxsim:ident, $block:ident, $dots:ident, $feat:literal, $t:ty, $v:ty, $lanes:literal,
     $zero:ident, $fma:ident, $loadq:ident, $loadd:ident, $hsum:ident) => {
        /// # Safety
        /// The CPU must support the features named in the `target_feature` attribute.
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn $maxsim(q: &[f32], d: &[$t], dim: usize) -> f32 {
            assert!(dim > 0 && q.len().is_multiple_of(dim) && d.len().is_multiple_of(dim));
            let (nq, nd) = (q.len() / dim, d.len() / dim);
            let mut total = 0.0f32;
            let mut i = 0;
            while i + 4 <= nq {
                total += $block::<4>(&q[i * dim..(i + 4) * dim], d, nd, dim);
                i += 4;
            }
            while i < nq {
                total += $block::<1>(&q[i * dim..(i + 1) * dim], d, nd, dim);
                i += 1;
            }
            total
        }

        /// Sum over the `QB` query rows in `q` of their best dot product with any row of `d`.
        #[target_feature(enable = $feat)]
        unsafe fn $block<const QB: usize>(q: &[f32], d: &[$t], nd: usize, dim: usize) -> f32 {
            let mut best = [f32::NEG_INFINITY; QB];
            let mut j = 0;
            while j + 2 <= nd {
                let dots = $dots::<QB, 2>(q, &d[j * dim..(j + 2) * dim], dim);
                for (b, row) in best.iter_mut().zip(&dots) {
                    *b = b.max(row[0]).max(row[1]);
                }
                j += 2;
            }
            if j < nd {
                let dots = $dots::<QB, 1>(q, &d[j * dim..(j + 1) * dim], dim);
                for (b, row) in best.iter_mut().zip(&dots) {
                    *b = b.max(row[0]);
                }
            }
            best.iter().sum()
        }

        /// All `QB x DB` dot products between the rows of `q` (QB rows) and `d` (DB rows).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $dots<const QB: usize, const DB: usize>(
            q: &[f32],
            d: &[$t],
            dim: usize,
        ) -> [[f32; DB]; QB] {
            assert!(q.len() == QB * dim && d.len() == DB * dim);
            let chunks = dim / $lanes;
            let mut acc: [[$v; DB]; QB] = [[$zero(); DB]; QB];
            let (qp, dp) = (q.as_ptr(), d.as_ptr());
            for c in 0..chunks {
                let mut dv: [$v; DB] = [$zero(); DB];
                for (jj, v) in dv.iter_mut().enumerate() {
                    // SAFETY: jj < DB and (c + 1) * lanes <= dim, so the lanes lie inside
                    // row jj of `d`, which holds DB * dim values (asserted above).
                    *v = $loadd(dp.add(jj * dim + c * $lanes));
                }
                for (ii, row) in acc.iter_mut().enumerate() {
                    // SAFETY: as above, inside row ii of `q`, which holds QB * dim values.
                    let qv = $loadq(qp.add(ii * dim + c * $lanes));
                    for (a, v) in row.iter_mut().zip(&dv) {
                        *a = $fma(qv, *v, *a);
                    }
                }
            }
            let mut out = [[0.0f32; DB]; QB];
            let tail = chunks * $lanes;
            for ii in 0..QB {
                for jj in 0..DB {
                    let mut s = $hsum(acc[ii][jj]);
                    let (qr, dr) = (&q[ii * dim..(ii + 1) * dim], &d[jj * dim..(jj + 1) * dim]);
                    for k in tail..dim {
                        s += qr[k] * f32::from(dr[k]);
                    }
                    out[ii][jj] = s;
                }
            }
            out
        }
    };
}

maxsim_kernel!(
    maxsim_avx2,
    block_max,
    dots,
    "avx2,fma",
    f32,
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_fmadd_ps,
    load8,
    load8,
    hsum
);
maxsim_kernel!(
    maxsim_avx2_f16,
    block_max_f16,
    dots_f16,
    "avx2,fma,f16c",
    f16,
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_fmadd_ps,
    load8,
    load8_f16,
    hsum
);
maxsim_kernel!(
    maxsim_avx512,
    block_max512,
    dots512,
    "avx512f",
    f32,
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_fmadd_ps,
    load16,
    load16,
    hsum512
);
maxsim_kernel!(
    maxsim_avx512_f16,
    block_max512_f16,
    dots512_f16,
    "avx512f",
    f16,
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_fmadd_ps,
    load16,
    load16_f16,
    hsum512
);

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load8(p: *const f32) -> __m256 {
    // SAFETY: the caller keeps p..p+8 inside one slice.
    _mm256_loadu_ps(p)
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn load8_f16(p: *const f16) -> __m256 {
    // SAFETY: the caller keeps p..p+8 inside one slice; f16 is 2 bytes, so that is 16 bytes.
    _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load16(p: *const f32) -> __m512 {
    // SAFETY: the caller keeps p..p+16 inside one slice.
    _mm512_loadu_ps(p)
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load16_f16(p: *const f16) -> __m512 {
    // SAFETY: the caller keeps p..p+16 inside one slice (32 bytes).
    _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn hsum512(v: __m512) -> f32 {
    _mm512_reduce_add_ps(v)
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

/// Push every `i` with `values[i] >= threshold[i]` onto `out`, ascending; 8 compares at a
/// time.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn select_at_least_avx2(values: &[f32], threshold: &[f32], out: &mut Vec<u32>) {
    let n = values.len().min(threshold.len());
    let chunks = n / 8;
    let (vp, tp) = (values.as_ptr(), threshold.as_ptr());
    for c in 0..chunks {
        // SAFETY: c * 8 + 8 <= n, inside both slices.
        let v = _mm256_loadu_ps(vp.add(c * 8));
        let t = _mm256_loadu_ps(tp.add(c * 8));
        let mut mask = _mm256_movemask_ps(_mm256_cmp_ps(v, t, _CMP_GE_OQ)) as u32;
        while mask != 0 {
            out.push((c * 8) as u32 + mask.trailing_zeros());
            mask &= mask - 1;
        }
    }
    for i in chunks * 8..n {
        if values[i] >= threshold[i] {
            out.push(i as u32);
        }
    }
}

/// `out[n] = ⟨q_{rows[n]}, d⟩`, four query rows per pass over `d` (each loaded chunk of
/// `d` feeds four FMAs).
///
/// # Safety
/// The CPU must support AVX2 and FMA; every `(rows[n] + 1) * dim <= q.len()`,
/// `d.len() == dim`, `out.len() == rows.len()` (the caller asserts these).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dots_selected_avx2(
    q: &[f32],
    dim: usize,
    rows: &[u32],
    d: &[f32],
    out: &mut [f32],
) {
    let chunks = dim / 8;
    let tail = chunks * 8;
    let dp = d.as_ptr();
    let mut n = 0;
    while n < rows.len() {
        let take = (rows.len() - n).min(4);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut ptrs = [q.as_ptr(); 4];
        for t in 0..take {
            ptrs[t] = q.as_ptr().add(rows[n + t] as usize * dim);
        }
        for c in 0..chunks {
            // SAFETY: c * 8 + 8 <= dim: inside `d` and inside each selected row of `q`
            // (rows checked by the caller); unused lanes re-read row 0 of `q`.
            let dv = _mm256_loadu_ps(dp.add(c * 8));
            for t in 0..4 {
                acc[t] = _mm256_fmadd_ps(_mm256_loadu_ps(ptrs[t].add(c * 8)), dv, acc[t]);
            }
        }
        for t in 0..take {
            let mut s = hsum(acc[t]);
            let qr = &q[rows[n + t] as usize * dim..(rows[n + t] as usize + 1) * dim];
            for k in tail..dim {
                s += qr[k] * d[k];
            }
            out[n + t] = s;
        }
        n += take;
    }
}

/// AVX-512 twin of [`dots_selected_avx2`].
///
/// # Safety
/// As [`dots_selected_avx2`], with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dots_selected_avx512(
    q: &[f32],
    dim: usize,
    rows: &[u32],
    d: &[f32],
    out: &mut [f32],
) {
    let chunks = dim / 16;
    let tail = chunks * 16;
    let dp = d.as_ptr();
    let mut n = 0;
    while n < rows.len() {
        let take = (rows.len() - n).min(4);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut ptrs = [q.as_ptr(); 4];
        for t in 0..take {
            ptrs[t] = q.as_ptr().add(rows[n + t] as usize * dim);
        }
        for c in 0..chunks {
            // SAFETY: c * 16 + 16 <= dim: inside `d` and each selected row of `q`.
            let dv = _mm512_loadu_ps(dp.add(c * 16));
            for t in 0..4 {
                acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(ptrs[t].add(c * 16)), dv, acc[t]);
            }
        }
        for t in 0..take {
            let mut s = _mm512_reduce_add_ps(acc[t]);
            let qr = &q[rows[n + t] as usize * dim..(rows[n + t] as usize + 1) * dim];
            for k in tail..dim {
                s += qr[k] * d[k];
            }
            out[n + t] = s;
        }
        n += take;
    }
}

/// `dst = src` as f32, 8 values per `vcvtph2ps`.
///
/// # Safety
/// The CPU must support AVX2 and F16C; `dst.len() == src.len()` (asserted).
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn f16_to_f32_avx2(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    let chunks = src.len() / 8;
    for c in 0..chunks {
        // SAFETY: (c + 1) * 8 <= len for both slices.
        let v = load8_f16(src.as_ptr().add(c * 8));
        _mm256_storeu_ps(dst.as_mut_ptr().add(c * 8), v);
    }
    for k in chunks * 8..src.len() {
        dst[k] = src[k].to_f32();
    }
}

/// `out[i * nb + j] = ⟨a_i, b_j⟩` for row-major f32 `a` (`na x dim`, many rows: the
/// centroids) and `b` (`nb x dim`, few: the query tokens), as outer products: `b` is
/// transposed once (`dim x nb`, padded to 16 lanes), then 4 rows of `a` at a time each
/// broadcast one value per dimension against the transposed row, so the accumulators
/// hold finished outputs (no horizontal sums) and `b` stays in L1.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // r indexes several parallel register arrays
pub(crate) unsafe fn dot_matrix_avx512(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0 && a.len().is_multiple_of(dim) && b.len().is_multiple_of(dim));
    let (na, nb) = (a.len() / dim, b.len() / dim);
    assert_eq!(out.len(), na * nb);
    // Lane groups of 16 query tokens, at most two per pass (8 accumulators with 4 rows).
    let groups = nb.div_ceil(16);
    let width = groups * 16;
    let mut bt = vec![0.0f32; dim * width];
    for j in 0..nb {
        for d in 0..dim {
            bt[d * width + j] = b[j * dim + d];
        }
    }
    let mut g = 0;
    while g < groups {
        let gs = (groups - g).min(2);
        let mut masks = [0u16; 2];
        for (t, m) in masks.iter_mut().enumerate().take(gs) {
            let left = nb - (g + t) * 16;
            *m = if left >= 16 {
                u16::MAX
            } else {
                (1u16 << left) - 1
            };
        }
        let mut i = 0;
        while i < na {
            let rows = (na - i).min(4);
            let mut acc = [[_mm512_setzero_ps(); 2]; 4];
            let ap = a.as_ptr().add(i * dim);
            for d in 0..dim {
                // SAFETY: d < dim and (g + t) * 16 + 16 <= width: inside row d of `bt`.
                let b0 = _mm512_loadu_ps(bt.as_ptr().add(d * width + g * 16));
                let b1 = if gs == 2 {
                    _mm512_loadu_ps(bt.as_ptr().add(d * width + g * 16 + 16))
                } else {
                    b0
                };
                for r in 0..rows {
                    // SAFETY: r < rows <= na - i: inside row i + r of `a`.
                    let av = _mm512_set1_ps(*ap.add(r * dim + d));
                    acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
                }
            }
            for r in 0..rows {
                for t in 0..gs {
                    // SAFETY: the mask keeps lanes < nb - (g + t) * 16: inside output row
                    // i + r, which holds nb values.
                    _mm512_mask_storeu_ps(
                        out.as_mut_ptr().add((i + r) * nb + (g + t) * 16),
                        masks[t],
                        acc[r][t],
                    );
                }
            }
            i += rows;
        }
        g += gs;
    }
}

/// `best[i] = max(best[i], max_c scores[c * nq + i])` over `codes`: centroid
/// interaction's inner loop, 16 query tokens per register, four registers at a time,
/// the last partial register through a load mask.
///
/// # Safety
/// The CPU must support AVX-512F; every `(code + 1) * nq <= scores.len()` (asserted).
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // r indexes the accumulators and their masks together
pub(crate) unsafe fn max_rows_avx512(codes: &[u32], scores: &[f32], nq: usize, best: &mut [f32]) {
    assert!(best.len() == nq && codes.iter().all(|&c| (c as usize + 1) * nq <= scores.len()));
    let sp = scores.as_ptr();
    let mut lane = 0;
    while lane < nq {
        let regs = (nq - lane).div_ceil(16).min(4);
        let mut masks = [0u16; 4];
        for (r, m) in masks.iter_mut().enumerate().take(regs) {
            let left = nq - lane - r * 16;
            *m = if left >= 16 {
                u16::MAX
            } else {
                (1u16 << left) - 1
            };
        }
        let mut acc = [_mm512_set1_ps(f32::NEG_INFINITY); 4];
        for r in 0..regs {
            // SAFETY: the mask covers only lanes < nq - lane - r*16, inside `best`.
            acc[r] = _mm512_mask_loadu_ps(acc[r], masks[r], best.as_ptr().add(lane + r * 16));
        }
        for &c in codes {
            let row = sp.add(c as usize * nq + lane);
            for r in 0..regs {
                // SAFETY: lanes lane + r*16 + (set bits of the mask) < nq, inside row c
                // (checked above).
                let v = _mm512_mask_loadu_ps(acc[r], masks[r], row.add(r * 16));
                acc[r] = _mm512_max_ps(acc[r], v);
            }
        }
        for r in 0..regs {
            // SAFETY: as the loads above.
            _mm512_mask_storeu_ps(best.as_mut_ptr().add(lane + r * 16), masks[r], acc[r]);
        }
        lane += regs * 16;
    }
}
