//! MaxSim scored straight from PLAID's codes and residuals, without decoding a vector.
//!
//! A compressed vector is its centroid `c` plus a residual whose dimension `d` is one of
//! `2^nbits` weights, `w[b_d]`. So `⟨q, c + r⟩ = ⟨q, c⟩ + ⟨q, r⟩`: the first term is the
//! centroid score table PLAID computes once per query anyway, and the second an integer
//! dot product once the weights are bytes. With the query quantised as for an int8
//! store (`q8_i · sq_i`, [`super::int8::QueryI8`]), the weights quantised once per codec
//! (`w8 = round(w / sr)`, `sr = max |w| / 127`) and the int8 centroid table
//! `S8[c, i] = (sc_c · ⟨c8_c, q8_i⟩) · sq_i` ([`super::int8::score_table`]), the score
//! of a document with codes `c_j` and residual buckets `b_j` is defined as
//!
//! `score = Σ_i max_j ( S8[c_j, i] + (sr · ⟨q8_i, w8[b_j]⟩) · sq_i )`
//!
//! with the dot product exact in i32 and the f32 steps after it in this order in every
//! kernel, so the VNNI kernel gives the bits of [`maxsim_codes_scalar`] on every CPU.
//! The decoded vector is not re-normalised (ColBERTv2 normalises `c + r`): the README's
//! "Scoring from codes" (under "Compact indexes") measures that this raised the share of
//! the exhaustive top-100 on SciFact.
//!
//! Why: decoding a SciFact document (240 vectors x 384 dims into f32, normalising,
//! quantising to int8 for the int8 kernel) cost more than scoring it. Here the VNNI
//! kernel reads each 4-dimension group of residual bits through a table of the 4
//! weights' bytes (`ResidualBytes::lut`, 16 / 256 / 65,536 entries at nbits 1 / 2 / 4),
//! broadcast straight into `vpdpbusd`: no decoded row is ever written.

use super::int8::{QueryI8, LANES};
use super::Kernel;
use crate::codec::residual::ResidualQuantizer;

/// A codec's residual weights as bytes, and the kernel's table from one 4-dimension
/// group of residual bits to the 4 weights' bytes plus 128 (`vpdpbusd` multiplies
/// unsigned by signed bytes; the query side is signed).
#[derive(Debug, Clone)]
pub struct ResidualBytes {
    dim: usize,
    nbits: u32,
    /// `max |w| / 127` (1 when every weight is 0).
    scale: f32,
    /// `round(w / scale)` per bucket.
    weights: Vec<i8>,
    /// Per group value `x` (`4 · nbits` bits): byte `t` is `weights[(x >> t·nbits) & mask] + 128`.
    lut: Vec<u32>,
}

impl ResidualBytes {
    pub fn new(q: &ResidualQuantizer) -> Self {
        let max = q.weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let weights: Vec<i8> = q
            .weights
            .iter()
            .map(|&w| (w / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        let (nbits, mask) = (q.nbits, (1u32 << q.nbits) - 1);
        let lut = (0..1u32 << (4 * nbits))
            .map(|x| {
                (0..4).fold(0u32, |word, t| {
                    let w = weights[((x >> (t * nbits)) & mask) as usize];
                    word | (((w as i16 + 128) as u32) << (8 * t))
                })
            })
            .collect();
        ResidualBytes {
            dim: q.dim,
            nbits,
            scale,
            weights,
            lut,
        }
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Bytes of packed residual per vector.
    pub fn packed_len(&self) -> usize {
        (self.dim * self.nbits as usize).div_ceil(8)
    }

    /// Bucket of dimension `d` in one vector's packed residual (the layout of
    /// [`ResidualQuantizer::pack`]).
    fn bucket(&self, packed: &[u8], d: usize) -> usize {
        let per = 8 / self.nbits as usize;
        ((packed[d / per] >> ((d % per) * self.nbits as usize)) & ((1u8 << self.nbits) - 1))
            as usize
    }
}

/// A query prepared for [`maxsim_codes`]: quantised as for an int8 store, its packed
/// form signed (the residual bytes are the unsigned side), each token's `128 · Σ q8_i`,
/// and the int8 centroid score table (`S8`, centroid-major, `k x nq`).
#[derive(Debug)]
pub struct CodesQuery<'t> {
    query: QueryI8,
    /// [`QueryI8`]'s packed layout without the +128 (blocks of 16 tokens, `dim / 4`
    /// groups of 64 bytes), as i8 bits.
    signed: Vec<u8>,
    /// `128 · Σ_d q8_i[d]` per token, padded to whole blocks with 0.
    sums: Vec<i32>,
    table: std::borrow::Cow<'t, [f32]>,
}

impl<'t> CodesQuery<'t> {
    /// `table` must be [`super::int8::score_table`] of the codec's centroids against
    /// `query` (`k x query.len()`).
    pub fn new(query: QueryI8, table: std::borrow::Cow<'t, [f32]>) -> Self {
        let nq = query.len();
        assert!(
            nq == 0 || table.len().is_multiple_of(nq),
            "a centroid table of nq columns"
        );
        let signed = query.packed().iter().map(|&b| b ^ 0x80).collect();
        let mut sums = vec![0i32; nq.div_ceil(LANES) * LANES];
        for (i, s) in sums.iter_mut().take(nq).enumerate() {
            *s = 128 * query.row(i).iter().map(|&v| v as i32).sum::<i32>();
        }
        CodesQuery {
            query,
            signed,
            sums,
            table,
        }
    }

    pub fn query(&self) -> &QueryI8 {
        &self.query
    }

    pub fn len(&self) -> usize {
        self.query.len()
    }

    pub fn is_empty(&self) -> bool {
        self.query.is_empty()
    }

    /// The centroid table's entry for centroid `c`, token `i`.
    fn table(&self, c: u32, i: usize) -> f32 {
        self.table[c as usize * self.len() + i]
    }
}

/// One (query token, document vector) term of the definition (module docs).
fn term(q: &CodesQuery<'_>, r: &ResidualBytes, i: usize, code: u32, packed: &[u8]) -> f32 {
    let dot: i32 = q
        .query
        .row(i)
        .iter()
        .enumerate()
        .map(|(d, &v)| v as i32 * r.weights[r.bucket(packed, d)] as i32)
        .sum();
    q.table(code, i) + (dot as f32 * r.scale) * q.query.scales()[i]
}

/// Per query token: the document vector that maximises its term and that term (the
/// definition, for explanations; ties keep the first vector).
pub fn codes_best_terms(
    q: &CodesQuery<'_>,
    r: &ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
) -> Vec<(usize, f32)> {
    let len = r.packed_len();
    assert_eq!(residuals.len(), codes.len() * len, "one residual per code");
    (0..q.len())
        .map(|i| {
            codes
                .iter()
                .zip(residuals.chunks_exact(len))
                .map(|(&c, p)| term(q, r, i, c, p))
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, s)| {
                        if s > acc.1 {
                            (j, s)
                        } else {
                            acc
                        }
                    },
                )
        })
        .collect()
}

/// The definition (module docs): 0 for an empty query or document.
pub fn maxsim_codes_scalar(
    q: &CodesQuery<'_>,
    r: &ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
) -> f32 {
    assert_eq!(q.query.dim(), r.dim, "query and codec dimensions differ");
    if q.is_empty() || codes.is_empty() {
        return 0.0;
    }
    codes_best_terms(q, r, codes, residuals)
        .iter()
        .fold(0.0f32, |t, &(_, s)| t + s)
}

/// [`maxsim_codes_scalar`]'s value, the same bits: the VNNI kernel where the CPU has it,
/// `kernel` allows it ([`Kernel::Avx512`]) and `dim % 4 == 0`; otherwise, with
/// [`Kernel::Avx2Fma`] and up, the rows expanded to bytes and dotted by a loop compiled
/// for AVX2 (`vpmaddwd`); with [`Kernel::Scalar`], the definition.
pub fn maxsim_codes(
    q: &CodesQuery<'_>,
    r: &ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
    kernel: Kernel,
) -> f32 {
    assert_eq!(q.query.dim(), r.dim, "query and codec dimensions differ");
    assert_eq!(
        residuals.len(),
        codes.len() * r.packed_len(),
        "one residual per code"
    );
    if q.is_empty() || codes.is_empty() {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    if kernel.supported() == Kernel::Avx512
        && super::int8::vnni_available()
        && r.dim.is_multiple_of(4)
    {
        let t = &q.table;
        assert!(
            codes.iter().all(|&c| (c as usize + 1) * q.len() <= t.len()),
            "every code inside the centroid table"
        );
        // SAFETY: avx512f/bw/vnni detected; dim % 4 == 0; every code's table row and
        // every vector's residual bytes are in bounds (asserted above).
        return unsafe {
            match r.nbits {
                1 => super::x86::maxsim_codes_vnni::<1>(q, &q.signed, &q.sums, r, codes, residuals),
                2 => super::x86::maxsim_codes_vnni::<2>(q, &q.signed, &q.sums, r, codes, residuals),
                _ => super::x86::maxsim_codes_vnni::<4>(q, &q.signed, &q.sums, r, codes, residuals),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if kernel.supported() >= Kernel::Avx2Fma {
        // SAFETY: `supported` keeps Avx2Fma and above only where avx2 was detected.
        return unsafe { maxsim_codes_avx2(q, r, codes, residuals) };
    }
    let _ = kernel;
    maxsim_codes_scalar(q, r, codes, residuals)
}

/// [`maxsim_codes_expanded`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn maxsim_codes_avx2(
    q: &CodesQuery<'_>,
    r: &ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
) -> f32 {
    maxsim_codes_expanded(q, r, codes, residuals)
}

/// The definition with each vector's residual expanded to its weights' bytes first, and
/// the dot products as plain i32 loops the compiler vectorises: the same integers, the
/// same f32 steps in the same order, so the same bits.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn maxsim_codes_expanded(
    q: &CodesQuery<'_>,
    r: &ResidualBytes,
    codes: &[u32],
    residuals: &[u8],
) -> f32 {
    let (nq, dim, len) = (q.len(), r.dim, r.packed_len());
    let mut row = vec![0i8; dim];
    let mut best = vec![f32::NEG_INFINITY; nq];
    for (&c, packed) in codes.iter().zip(residuals.chunks_exact(len)) {
        for (d, v) in row.iter_mut().enumerate() {
            *v = r.weights[r.bucket(packed, d)];
        }
        for (i, b) in best.iter_mut().enumerate() {
            let dot: i32 = q
                .query
                .row(i)
                .iter()
                .zip(&row)
                .map(|(&a, &w)| a as i32 * w as i32)
                .sum();
            let v = q.table(c, i) + (dot as f32 * r.scale) * q.query.scales()[i];
            if v > *b {
                *b = v;
            }
        }
    }
    best.iter().fold(0.0f32, |t, &s| t + s)
}

/// What the x86 kernel reads of a [`CodesQuery`] and [`ResidualBytes`].
impl CodesQuery<'_> {
    pub(crate) fn table_slice(&self) -> &[f32] {
        &self.table
    }
}

impl ResidualBytes {
    pub(crate) fn lut(&self) -> &[u32] {
        &self.lut
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }
}
