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

/// The load/store mask of a 16-lane register whose first `left` lanes are in bounds.
#[inline]
fn mask16(left: usize) -> u16 {
    if left >= 16 {
        u16::MAX
    } else {
        (1u16 << left) - 1
    }
}

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
            *m = mask16(left);
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
            *m = mask16(left);
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

/// [`super::int8::maxsim_i8_scalar`]'s exact value with `vpdpbusd` (AVX-512 VNNI): the
/// packed query (16 tokens x 4 dims of unsigned bytes per register, `QueryI8`) against
/// each document row's 4-byte groups broadcast as signed bytes, so the i32 lanes are
/// finished dot products of 16 query tokens with one row (no horizontal sums). Two query
/// registers x 4 document rows = 8 accumulators per pass. The packed query carries
/// `+128`; `128 · Σ d8_j` (`sums`, from a first pass over the rows) is subtracted in
/// i32, so every dot product is exact and the f32 steps after it are the scalar ones.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `query.dim() % 4 == 0`,
/// `d.len() == scales.len() * dim` (asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // t and b index several parallel register arrays
pub(crate) unsafe fn maxsim_i8_vnni(
    query: &super::int8::QueryI8,
    d: &[i8],
    scales: &[f32],
    sums: &mut Vec<i32>,
) -> f32 {
    use super::int8::LANES;
    let dim = query.dim();
    assert!(dim.is_multiple_of(4) && d.len() == scales.len() * dim);
    let (nq, nd, groups) = (query.len(), scales.len(), dim / 4);
    let packed = query.packed();
    assert_eq!(packed.len(), nq.div_ceil(LANES) * groups * 64);
    // 128 · Σ d8_j per row: 64 bytes at a time against a register of ones, then the rest.
    sums.clear();
    let ones = _mm512_set1_epi8(1);
    let full = dim / 64;
    for row in d.chunks_exact(dim) {
        let mut acc = _mm512_setzero_si512();
        for c in 0..full {
            // SAFETY: (c + 1) * 64 <= dim bytes of this row.
            let v = _mm512_loadu_si512(row.as_ptr().add(c * 64).cast());
            acc = _mm512_dpbusd_epi32(acc, ones, v);
        }
        let mut s = _mm512_reduce_add_epi32(acc);
        for &v in &row[full * 64..] {
            s += v as i32;
        }
        sums.push(128 * s);
    }
    let (dp, qp) = (d.as_ptr(), packed.as_ptr());
    let mut best = vec![f32::NEG_INFINITY; nq.div_ceil(LANES) * LANES];
    let blocks = nq.div_ceil(LANES);
    let mut b0 = 0;
    while b0 < blocks {
        let nb = (blocks - b0).min(2);
        let mut top = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
        let mut j = 0;
        while j < nd {
            let rows = (nd - j).min(4);
            let mut acc = [[_mm512_setzero_si512(); 2]; 4];
            for g in 0..groups {
                // SAFETY: (b0 + b) < blocks and g < groups: inside `packed` (asserted).
                let q0 = _mm512_loadu_si512(qp.add((b0 * groups + g) * 64).cast());
                let q1 = if nb == 2 {
                    _mm512_loadu_si512(qp.add(((b0 + 1) * groups + g) * 64).cast())
                } else {
                    q0
                };
                for t in 0..rows {
                    // SAFETY: j + t < nd and 4 g + 4 <= dim: inside row j + t of `d`.
                    let dv = _mm512_set1_epi32(
                        dp.add((j + t) * dim + 4 * g).cast::<i32>().read_unaligned(),
                    );
                    acc[t][0] = _mm512_dpbusd_epi32(acc[t][0], q0, dv);
                    acc[t][1] = _mm512_dpbusd_epi32(acc[t][1], q1, dv);
                }
            }
            for t in 0..rows {
                let corr = _mm512_set1_epi32(sums[j + t]);
                let s = _mm512_set1_ps(scales[j + t]);
                for b in 0..nb {
                    let raw = _mm512_sub_epi32(acc[t][b], corr);
                    let v = _mm512_mul_ps(_mm512_cvtepi32_ps(raw), s);
                    top[b] = _mm512_max_ps(top[b], v);
                }
            }
            j += rows;
        }
        for b in 0..nb {
            // SAFETY: (b0 + b + 1) * LANES <= best.len().
            _mm512_storeu_ps(best.as_mut_ptr().add((b0 + b) * LANES), top[b]);
        }
        b0 += nb;
    }
    let mut total = 0.0f32;
    for (i, &s) in query.scales().iter().enumerate() {
        total += s * best[i];
    }
    total
}

/// [`super::int8::score_table`] with `vpdpbusd`: 4 rows x 2 query registers (32 tokens)
/// per pass, as [`maxsim_i8_vnni`], each finished lane multiplied by its row's and its
/// token's scale and stored (masked for the last partial register).
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `dim % 4 == 0` and
/// `out.len() == rows.len() * query.len()` (asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // t and b index several parallel register arrays
pub(crate) unsafe fn score_table_i8_vnni(
    rows: &super::int8::RowsI8,
    query: &super::int8::QueryI8,
    out: &mut [f32],
) {
    use super::int8::LANES;
    let dim = query.dim();
    let (n, nq, groups) = (rows.len(), query.len(), dim / 4);
    assert!(dim.is_multiple_of(4) && rows.dim() == dim && out.len() == n * nq);
    let packed = query.packed();
    let blocks = nq.div_ceil(LANES);
    assert_eq!(packed.len(), blocks * groups * 64);
    let mut qs = vec![0.0f32; blocks * LANES];
    qs[..nq].copy_from_slice(query.scales());
    let (dp, qp, op) = (rows.values().as_ptr(), packed.as_ptr(), out.as_mut_ptr());
    let (sums, scales) = (rows.sums(), rows.scales());
    let mut b0 = 0;
    while b0 < blocks {
        let nb = (blocks - b0).min(2);
        let mut masks = [0u16; 2];
        let mut qsv = [_mm512_setzero_ps(); 2];
        for b in 0..nb {
            let left = nq - (b0 + b) * LANES;
            masks[b] = mask16(left);
            qsv[b] = _mm512_loadu_ps(qs.as_ptr().add((b0 + b) * LANES));
        }
        let mut c = 0;
        while c < n {
            let take = (n - c).min(4);
            let mut acc = [[_mm512_setzero_si512(); 2]; 4];
            for g in 0..groups {
                // SAFETY: b0 + b < blocks, g < groups: inside `packed` (asserted).
                let q0 = _mm512_loadu_si512(qp.add((b0 * groups + g) * 64).cast());
                let q1 = if nb == 2 {
                    _mm512_loadu_si512(qp.add(((b0 + 1) * groups + g) * 64).cast())
                } else {
                    q0
                };
                for t in 0..take {
                    // SAFETY: c + t < n and 4 g + 4 <= dim: inside row c + t.
                    let dv = _mm512_set1_epi32(
                        dp.add((c + t) * dim + 4 * g).cast::<i32>().read_unaligned(),
                    );
                    acc[t][0] = _mm512_dpbusd_epi32(acc[t][0], q0, dv);
                    acc[t][1] = _mm512_dpbusd_epi32(acc[t][1], q1, dv);
                }
            }
            for t in 0..take {
                let corr = _mm512_set1_epi32(sums[c + t]);
                let s = _mm512_set1_ps(scales[c + t]);
                for b in 0..nb {
                    let raw = _mm512_sub_epi32(acc[t][b], corr);
                    let v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(raw), s), qsv[b]);
                    // SAFETY: the mask keeps lanes < nq - (b0 + b) * 16: inside output
                    // row c + t, which holds nq values.
                    _mm512_mask_storeu_ps(op.add((c + t) * nq + (b0 + b) * LANES), masks[b], v);
                }
            }
            c += take;
        }
        b0 += nb;
    }
}

/// [`max_rows_avx512`] on a byte table: 64 query tokens per register (`vpmaxub`), up to
/// four registers, the last partial one through a load mask.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW; every `(code + 1) * nq <= table.len()`
/// (asserted).
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::needless_range_loop)] // r indexes the accumulators and their masks together
pub(crate) unsafe fn max_rows_u8_avx512(codes: &[u32], table: &[u8], nq: usize, best: &mut [u8]) {
    assert!(best.len() == nq && codes.iter().all(|&c| (c as usize + 1) * nq <= table.len()));
    let tp = table.as_ptr();
    let mut lane = 0;
    while lane < nq {
        let regs = (nq - lane).div_ceil(64).min(4);
        let mut masks = [0u64; 4];
        for (r, m) in masks.iter_mut().enumerate().take(regs) {
            let left = nq - lane - r * 64;
            *m = if left >= 64 {
                u64::MAX
            } else {
                (1u64 << left) - 1
            };
        }
        let mut acc = [_mm512_setzero_si512(); 4];
        for r in 0..regs {
            // SAFETY: the mask covers only lanes < nq - lane - r*64, inside `best`.
            acc[r] = _mm512_maskz_loadu_epi8(masks[r], best.as_ptr().add(lane + r * 64).cast());
        }
        // Two accumulators per register, so consecutive codes do not wait on each other.
        let mut acc2 = acc;
        let mut pairs = codes.chunks_exact(2);
        for pair in &mut pairs {
            let (a, b) = (
                tp.add(pair[0] as usize * nq + lane),
                tp.add(pair[1] as usize * nq + lane),
            );
            for r in 0..regs {
                // SAFETY: lanes lane + r*64 + (set bits of the mask) < nq, inside rows
                // pair[0] and pair[1] (checked above).
                let va = _mm512_maskz_loadu_epi8(masks[r], a.add(r * 64).cast());
                let vb = _mm512_maskz_loadu_epi8(masks[r], b.add(r * 64).cast());
                acc[r] = _mm512_max_epu8(acc[r], va);
                acc2[r] = _mm512_max_epu8(acc2[r], vb);
            }
        }
        for &c in pairs.remainder() {
            let row = tp.add(c as usize * nq + lane);
            for r in 0..regs {
                // SAFETY: as above, inside row c.
                let v = _mm512_maskz_loadu_epi8(masks[r], row.add(r * 64).cast());
                acc[r] = _mm512_max_epu8(acc[r], v);
            }
        }
        for r in 0..regs {
            let m = _mm512_max_epu8(acc[r], acc2[r]);
            // SAFETY: as the loads above.
            _mm512_mask_storeu_epi8(best.as_mut_ptr().add(lane + r * 64).cast(), masks[r], m);
        }
        lane += regs * 64;
    }
}

/// [`super::int8::maxsim_i8_scalar`]'s exact value with AVX2 (CPUs without VNNI): bytes
/// widened to i16 (`vpmovsxbw`) and multiplied pairwise into i32 (`vpmaddwd`, exact),
/// in blocks of 4 query rows x 2 document rows as the f32 kernels; the i32 dot products
/// then go through the same f32 steps as the definition.
///
/// # Safety
/// The CPU must support AVX2; `q8.len() == qs.len() * dim`, `d.len() == ds.len() * dim`
/// (asserted).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn maxsim_i8_avx2(
    q8: &[i8],
    qs: &[f32],
    d: &[i8],
    ds: &[f32],
    dim: usize,
) -> f32 {
    assert!(dim > 0 && q8.len() == qs.len() * dim && d.len() == ds.len() * dim);
    let (nq, nd) = (qs.len(), ds.len());
    let mut best = vec![f32::NEG_INFINITY; nq];
    macro_rules! block {
        ($qb:literal, $db:literal, $i:expr, $j:expr) => {{
            let dots = dots_i8_avx2::<$qb, $db>(q8, $i, d, $j, dim);
            for r in 0..$qb {
                for t in 0..$db {
                    best[$i + r] = best[$i + r].max(dots[r][t] as f32 * ds[$j + t]);
                }
            }
        }};
    }
    let mut i = 0;
    while i < nq {
        let four = nq - i >= 4;
        let mut j = 0;
        while j < nd {
            match (four, nd - j >= 2) {
                (true, true) => block!(4, 2, i, j),
                (true, false) => block!(4, 1, i, j),
                (false, true) => block!(1, 2, i, j),
                (false, false) => block!(1, 1, i, j),
            }
            j += if nd - j >= 2 { 2 } else { 1 };
        }
        i += if four { 4 } else { 1 };
    }
    let mut total = 0.0f32;
    for (s, b) in qs.iter().zip(&best) {
        total += s * b;
    }
    total
}

/// Exact i32 dot products of query rows `i..i + QB` with document rows `j..j + DB`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dots_i8_avx2<const QB: usize, const DB: usize>(
    q8: &[i8],
    i: usize,
    d: &[i8],
    j: usize,
    dim: usize,
) -> [[i32; DB]; QB] {
    assert!((i + QB) * dim <= q8.len() && (j + DB) * dim <= d.len());
    let chunks = dim / 16;
    let mut acc = [[_mm256_setzero_si256(); DB]; QB];
    let (qp, dp) = (q8.as_ptr().add(i * dim), d.as_ptr().add(j * dim));
    for c in 0..chunks {
        let mut dv = [_mm256_setzero_si256(); DB];
        for (t, v) in dv.iter_mut().enumerate() {
            // SAFETY: (c + 1) * 16 <= dim: inside row j + t (asserted above).
            *v = _mm256_cvtepi8_epi16(_mm_loadu_si128(dp.add(t * dim + c * 16).cast()));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above, inside row i + r of `q8`.
            let qv = _mm256_cvtepi8_epi16(_mm_loadu_si128(qp.add(r * dim + c * 16).cast()));
            for (a, v) in row.iter_mut().zip(&dv) {
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(qv, *v));
            }
        }
    }
    let mut out = [[0i32; DB]; QB];
    let tail = chunks * 16;
    for r in 0..QB {
        for t in 0..DB {
            let v = acc[r][t];
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            let mut dot = _mm_cvtsi128_si32(s);
            let (qr, dr) = (
                &q8[(i + r) * dim..(i + r + 1) * dim],
                &d[(j + t) * dim..(j + t + 1) * dim],
            );
            for k in tail..dim {
                dot += qr[k] as i32 * dr[k] as i32;
            }
            out[r][t] = dot;
        }
    }
    out
}

/// [`super::codes::maxsim_codes_scalar`] with `vpdpbusd`: as [`maxsim_i8_vnni`], 4
/// document vectors x 2 query registers (32 tokens) per pass, but each vector's 4-byte
/// group is looked up from its 4 · NBITS residual bits (`ResidualBytes::lut`, the
/// weights' bytes + 128) instead of loaded from a decoded row; the query side is the
/// signed packing, and `128 · Σ q8_i` is subtracted per token. Then, per lane, the
/// definition's f32 steps: `S8[c_j, i] + (dot · sr) · sq_i`, and the running maximum.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `dim % 4 == 0`; every code
/// indexes a row of the centroid table and `residuals` holds one packed residual per
/// code (the caller asserts both).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // t and b index several parallel register arrays
pub(crate) unsafe fn maxsim_codes_vnni<const NBITS: usize>(
    q: &super::codes::CodesQuery<'_>,
    signed: &[u8],
    sums: &[i32],
    r: &super::codes::ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
) -> f32 {
    use super::int8::LANES;
    let dim = r.dim();
    let (nq, nd, groups) = (q.len(), codes.len(), dim / 4);
    let len = (dim * NBITS).div_ceil(8);
    let blocks = nq.div_ceil(LANES);
    assert!(dim.is_multiple_of(4) && residuals.len() == nd * len);
    assert!(signed.len() == blocks * groups * 64 && sums.len() == blocks * LANES);
    let mut qs = vec![0.0f32; blocks * LANES];
    qs[..nq].copy_from_slice(q.query().scales());
    let (qp, rp, lut, table) = (
        signed.as_ptr(),
        residuals.as_ptr(),
        r.lut().as_ptr(),
        q.table_slice().as_ptr(),
    );
    let srv = _mm512_set1_ps(r.scale());
    let mut best = vec![f32::NEG_INFINITY; blocks * LANES];
    let mut b0 = 0;
    while b0 < blocks {
        let nb = (blocks - b0).min(2);
        let mut masks = [0u16; 2];
        let mut qsv = [_mm512_setzero_ps(); 2];
        let mut corr = [_mm512_setzero_si512(); 2];
        for b in 0..nb {
            masks[b] = mask16(nq - (b0 + b) * LANES);
            qsv[b] = _mm512_loadu_ps(qs.as_ptr().add((b0 + b) * LANES));
            corr[b] = _mm512_loadu_si512(sums.as_ptr().add((b0 + b) * LANES).cast());
        }
        let mut top = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
        let mut j = 0;
        while j < nd {
            let rows = (nd - j).min(4);
            let mut acc = [[_mm512_setzero_si512(); 2]; 4];
            for g in 0..groups {
                // SAFETY: (b0 + b) < blocks and g < groups: inside `signed` (asserted).
                let q0 = _mm512_loadu_si512(qp.add((b0 * groups + g) * 64).cast());
                let q1 = if nb == 2 {
                    _mm512_loadu_si512(qp.add(((b0 + 1) * groups + g) * 64).cast())
                } else {
                    q0
                };
                for t in 0..rows {
                    // SAFETY: j + t < nd and the group's bits lie in that vector's `len`
                    // bytes; the group value is < lut.len() = 2^(4 NBITS).
                    let row = rp.add((j + t) * len);
                    let x = match NBITS {
                        2 => *row.add(g) as usize,
                        1 => ((*row.add(g >> 1) >> ((g & 1) * 4)) & 15) as usize,
                        _ => *row.add(2 * g) as usize | ((*row.add(2 * g + 1) as usize) << 8),
                    };
                    let dv = _mm512_set1_epi32(*lut.add(x) as i32);
                    acc[t][0] = _mm512_dpbusd_epi32(acc[t][0], dv, q0);
                    acc[t][1] = _mm512_dpbusd_epi32(acc[t][1], dv, q1);
                }
            }
            for t in 0..rows {
                let c = *codes.get_unchecked(j + t) as usize;
                for b in 0..nb {
                    let raw = _mm512_sub_epi32(acc[t][b], corr[b]);
                    let v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(raw), srv), qsv[b]);
                    // SAFETY: the code's row of nq entries is inside the table (asserted
                    // by the caller); the mask keeps the load to its nq - 16 (b0 + b).
                    let s = _mm512_maskz_loadu_ps(masks[b], table.add(c * nq + (b0 + b) * LANES));
                    top[b] = _mm512_max_ps(top[b], _mm512_add_ps(s, v));
                }
            }
            j += rows;
        }
        for b in 0..nb {
            // SAFETY: (b0 + b + 1) * LANES <= best.len().
            _mm512_storeu_ps(best.as_mut_ptr().add((b0 + b) * LANES), top[b]);
        }
        b0 += nb;
    }
    best[..nq].iter().fold(0.0f32, |t, &s| t + s)
}
