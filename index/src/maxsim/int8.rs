//! MaxSim on int8 stores with the query quantised too: integer dot products.
//!
//! An int8 store keeps row `j` as `d8_j * sd_j` (`store/README.md`). The query is
//! quantised the same way, token by token (`q8_i * sq_i`, max |q| / 127, rounded after a
//! division), and the score is defined as
//!
//! `score = Σ_i sq_i · max_j (sd_j · ⟨q8_i, d8_j⟩)`
//!
//! with the dot product exact in i32, its conversion to f32, the product by `sd_j`, the
//! maximum and the sum over `i` (in token order) done identically by every kernel. So
//! each kernel gives the same bits as [`maxsim_i8_scalar`], the definition, on every CPU.
//!
//! Why: with f32 queries an int8 document had to be dequantised and scored by the f32
//! kernel, slower than the f16 kernel it replaces. With AVX-512 VNNI, `vpdpbusd` does 64
//! byte products per instruction against 16 f32 FMAs: on the SciFact shapes (32 query
//! tokens, ~240 document tokens, 384-d) the measured ratio is in the README's kernel
//! table (`cargo bench --bench maxsim`). Query quantisation adds an error of the same
//! order as the store's own (a share of the exhaustive top-100 is in the README).

use super::Kernel;
use crate::store::MultiVectorRef;

/// Query tokens per SIMD block (one 512-bit register of i32 lanes).
pub(crate) const LANES: usize = 16;

/// A query quantised for the int8 kernels. Built once per query, shared by the threads
/// that score documents against it.
#[derive(Debug, Clone)]
pub struct QueryI8 {
    nq: usize,
    dim: usize,
    /// Per token: the scale (`max |q_i| / 127`, 0 for a zero row).
    scales: Vec<f32>,
    /// Row-major `nq x dim` quantised values.
    values: Vec<i8>,
    /// For the VNNI kernel (`dim % 4 == 0`): blocks of 16 tokens (the last padded with
    /// zero tokens), each `dim / 4` groups of 64 bytes: lane `l` holds the 4 values of
    /// token `16 b + l` at dims `4 g .. 4 g + 4`, plus 128 (`vpdpbusd` multiplies unsigned
    /// by signed bytes; the kernel subtracts `128 · Σ d8_j` again).
    packed: Vec<u8>,
}

impl QueryI8 {
    pub fn new(query: MultiVectorRef<'_, f32>) -> Self {
        let (nq, dim) = (query.len(), query.dim());
        let (mut values, mut scales) = (Vec::with_capacity(nq * dim), Vec::with_capacity(nq));
        quantize_rows(query.as_slice(), dim, &mut values, &mut scales);
        let mut packed = Vec::new();
        if dim.is_multiple_of(4) {
            let (blocks, groups) = (nq.div_ceil(LANES), dim / 4);
            packed = vec![128u8; blocks * groups * 64];
            for (i, row) in values.chunks_exact(dim).enumerate() {
                let (b, l) = (i / LANES, i % LANES);
                for g in 0..groups {
                    for t in 0..4 {
                        packed[(b * groups + g) * 64 + l * 4 + t] =
                            (row[4 * g + t] as i16 + 128) as u8;
                    }
                }
            }
        }
        QueryI8 {
            nq,
            dim,
            scales,
            values,
            packed,
        }
    }

    pub fn len(&self) -> usize {
        self.nq
    }

    pub fn is_empty(&self) -> bool {
        self.nq == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Row `i`'s quantised values.
    pub fn row(&self, i: usize) -> &[i8] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    pub(crate) fn packed(&self) -> &[u8] {
        &self.packed
    }
}

/// The definition (module docs): `Σ_i sq_i · max_j (sd_j · ⟨q8_i, d8_j⟩)`, 0 for an empty
/// query or document.
pub fn maxsim_i8_scalar(query: &QueryI8, doc: MultiVectorRef<'_, i8>, scales: &[f32]) -> f32 {
    assert_eq!(
        query.dim(),
        doc.dim(),
        "query and document dimensions differ"
    );
    assert_eq!(doc.len(), scales.len(), "one scale per document row");
    if query.is_empty() || doc.is_empty() {
        return 0.0;
    }
    let mut total = 0.0f32;
    for i in 0..query.len() {
        let q = query.row(i);
        let mut best = f32::NEG_INFINITY;
        for (d, &s) in doc.rows().zip(scales) {
            let dot: i32 = q.iter().zip(d).map(|(&a, &b)| a as i32 * b as i32).sum();
            best = best.max(dot as f32 * s);
        }
        total += query.scales()[i] * best;
    }
    total
}

/// Whether this CPU runs the VNNI kernel (AVX-512F + BW + VNNI).
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`maxsim_i8_scalar`]'s value, the same bits, through `kernel`'s family: with
/// [`Kernel::Avx512`], VNNI where the CPU has it and `dim % 4 == 0`; with it otherwise
/// and with [`Kernel::Avx2Fma`], AVX2 (`vpmaddwd`); with [`Kernel::Scalar`], the
/// definition. `sums` is the VNNI kernel's scratch (the rows' `128 · Σ d8_j`).
pub fn maxsim_i8(
    query: &QueryI8,
    doc: MultiVectorRef<'_, i8>,
    scales: &[f32],
    sums: &mut Vec<i32>,
    kernel: Kernel,
) -> f32 {
    assert_eq!(
        query.dim(),
        doc.dim(),
        "query and document dimensions differ"
    );
    assert_eq!(doc.len(), scales.len(), "one scale per document row");
    if query.is_empty() || doc.is_empty() {
        return 0.0;
    }
    let kernel = kernel.supported();
    #[cfg(target_arch = "x86_64")]
    {
        if kernel == Kernel::Avx512 && vnni_available() && query.dim().is_multiple_of(4) {
            // SAFETY: the CPU has avx512f, avx512bw and avx512vnni (`vnni_available`),
            // and the packed query exists because dim % 4 == 0.
            return unsafe { super::x86::maxsim_i8_vnni(query, doc.as_slice(), scales, sums) };
        }
        if kernel >= Kernel::Avx2Fma {
            // SAFETY: `supported` keeps Avx2Fma and above only where avx2 was detected.
            return unsafe {
                super::x86::maxsim_i8_avx2(
                    &query.values,
                    &query.scales,
                    doc.as_slice(),
                    scales,
                    query.dim(),
                )
            };
        }
    }
    let _ = sums;
    maxsim_i8_scalar(query, doc, scales)
}

/// Many rows (PLAID's centroids) quantised as the store quantises vectors, with each
/// row's `128 · Σ values` for the VNNI kernel: what [`score_table`] scores queries
/// against.
#[derive(Debug, Clone)]
pub struct RowsI8 {
    dim: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl RowsI8 {
    /// Quantise row-major `rows` (`n x dim`).
    pub fn new(rows: &[f32], dim: usize) -> Self {
        let (mut values, mut scales) = (Vec::with_capacity(rows.len()), Vec::new());
        quantize_rows(rows, dim, &mut values, &mut scales);
        Self::from_parts(values, scales, dim)
    }

    /// Rows already quantised (`values` row-major `n x dim`, one scale per row), as
    /// PLAID's int8 centroid file keeps them.
    pub fn from_parts(values: Vec<i8>, scales: Vec<f32>, dim: usize) -> Self {
        assert_eq!(
            values.len(),
            scales.len() * dim,
            "one scale per row of dim values"
        );
        let sums = values
            .chunks_exact(dim.max(1))
            .map(|r| 128 * r.iter().map(|&v| v as i32).sum::<i32>())
            .collect();
        RowsI8 {
            dim,
            values,
            scales,
            sums,
        }
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn values(&self) -> &[i8] {
        &self.values
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    pub(crate) fn sums(&self) -> &[i32] {
        &self.sums
    }
}

/// `out[c * nq + i] = (sc_c · ⟨c8_c, q8_i⟩) · sq_i` for every row `c` of `rows` and token
/// `i` of `query` (the int8 twin of the centroid score table), exact i32 dot products,
/// the same bits from every kernel. With `use_simd`, VNNI where available, else the
/// definition compiled for AVX2 where the CPU has it; scalar otherwise.
pub fn score_table(rows: &RowsI8, query: &QueryI8, out: &mut [f32], use_simd: bool) {
    assert_eq!(rows.dim(), query.dim(), "row and query dimensions differ");
    let (n, nq, dim) = (rows.len(), query.len(), rows.dim());
    assert_eq!(out.len(), n * nq);
    if nq == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_simd && vnni_available() && dim.is_multiple_of(4) {
        // SAFETY: the CPU has avx512f, avx512bw and avx512vnni; dim % 4 == 0.
        unsafe { super::x86::score_table_i8_vnni(rows, query, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_simd && Kernel::detect() >= Kernel::Avx2Fma {
        // SAFETY: avx2 detected.
        unsafe { score_table_avx2(rows, query, out) };
        return;
    }
    let _ = use_simd;
    score_table_body(rows, query, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn score_table_avx2(rows: &RowsI8, query: &QueryI8, out: &mut [f32]) {
    score_table_body(rows, query, out)
}

/// [`score_table`]'s definition, as loops the compiler vectorises where compiled for
/// AVX2 (the CPUs without VNNI: 16,384 x 32 x 384 products per query).
#[inline(always)]
fn score_table_body(rows: &RowsI8, query: &QueryI8, out: &mut [f32]) {
    let (nq, dim) = (query.len(), rows.dim());
    for (c, row) in rows.values().chunks_exact(dim).enumerate() {
        let sc = rows.scales()[c];
        for i in 0..nq {
            let dot: i32 = row
                .iter()
                .zip(query.row(i))
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
            out[c * nq + i] = (dot as f32 * sc) * query.scales()[i];
        }
    }
}

/// Quantise row-major `rows` (`dim` values each) as the store does
/// (the store writer's `quantize_int8`: max |x| / 127, `round(x / scale)`), appending the
/// values and one scale per row: the same bytes, vectorised (AVX-512 or AVX2 where the
/// CPU has them). `f32::round` is a libm call on baseline x86-64, about 5 ns a value,
/// which made scoring decoded rows slower than the f32 kernel; here it is
/// `trunc(x + copysign(0.49999997, x))`, LLVM's own exact lowering of it, which
/// vectorises.
pub fn quantize_rows(rows: &[f32], dim: usize, values: &mut Vec<i8>, scales: &mut Vec<f32>) {
    assert!(dim > 0 && rows.len().is_multiple_of(dim));
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f was detected.
            return unsafe { quantize_rows_avx512(rows, dim, values, scales) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 was detected.
            return unsafe { quantize_rows_avx2(rows, dim, values, scales) };
        }
    }
    quantize_rows_body(rows, dim, values, scales)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_rows_avx512(
    rows: &[f32],
    dim: usize,
    values: &mut Vec<i8>,
    scales: &mut Vec<f32>,
) {
    quantize_rows_body(rows, dim, values, scales)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_rows_avx2(
    rows: &[f32],
    dim: usize,
    values: &mut Vec<i8>,
    scales: &mut Vec<f32>,
) {
    quantize_rows_body(rows, dim, values, scales)
}

#[inline(always)]
fn quantize_rows_body(rows: &[f32], dim: usize, values: &mut Vec<i8>, scales: &mut Vec<f32>) {
    for row in rows.chunks_exact(dim) {
        // Lane-wise maxima (a plain fold with f32::max does not vectorise).
        let mut lanes = [0f32; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for (m, v) in lanes.iter_mut().zip(c) {
                let a = v.abs();
                *m = if a > *m { a } else { *m };
            }
        }
        let mut max = lanes.iter().fold(0f32, |m, &v| if v > m { v } else { m });
        for v in chunks.remainder() {
            max = max.max(v.abs());
        }
        if max == 0.0 {
            values.extend(std::iter::repeat_n(0i8, dim));
            scales.push(0.0);
            continue;
        }
        let scale = max / 127.0;
        values.extend(row.iter().map(|&v| {
            let x = v / scale;
            let y = (x + 0.49999997f32.copysign(x)).trunc().clamp(-127.0, 127.0);
            // NaN to 0 as `as` does; then an unchecked conversion, because the
            // saturating `as` was converted lane by lane with NaN branches.
            let y = if y.is_nan() { 0.0 } else { y };
            // SAFETY: y is finite and within [-127, 127], so it fits an i32.
            unsafe { y.to_int_unchecked::<i32>() as i8 }
        }));
        scales.push(scale);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The vectorised quantiser gives the store's bytes and scales: random rows of many
    /// lengths, zero rows, and rows whose values land exactly on .5 after scaling.
    #[test]
    fn quantize_rows_equals_the_stores_quantiser() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for dim in [1usize, 3, 15, 16, 17, 64, 100, 384] {
            let mut rows: Vec<f32> = (0..dim * 20).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
            rows[..dim].fill(0.0);
            // Max 127 (scale 1): halves are exact ties.
            for (i, v) in rows[dim..2 * dim].iter_mut().enumerate() {
                *v = if i == 0 {
                    127.0
                } else {
                    (i % 254) as f32 - 126.5
                };
            }
            let (mut want, mut want_s) = (Vec::new(), Vec::new());
            for r in rows.chunks_exact(dim) {
                want_s.push(crate::store::quantize_int8(r, &mut want));
            }
            let (mut got, mut got_s) = (Vec::new(), Vec::new());
            super::quantize_rows(&rows, dim, &mut got, &mut got_s);
            assert_eq!(got, want, "dim {dim}");
            assert_eq!(got_s, want_s, "dim {dim}");
        }
    }
}
