//! ColBERTv2 residual compression: a vector is its nearest centroid plus a residual whose
//! every dimension is quantised to `nbits` bits. Bucket cut-offs are the quantiles of the
//! training residuals (one set for all dimensions, as ColBERTv2), bucket weights the
//! quantile mid-points. Decoding goes through a lookup table that turns one byte of codes
//! into `8 / nbits` dimensions at once.

use serde::{Deserialize, Serialize};

/// The quantiser: everything but the centroids (stored in their own file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidualQuantizer {
    pub dim: usize,
    pub nbits: u32,
    /// `2^nbits - 1` increasing cut-offs: bucket b holds values in (cutoffs[b-1], cutoffs[b]].
    pub cutoffs: Vec<f32>,
    /// `2^nbits` reconstruction values.
    pub weights: Vec<f32>,
}

impl ResidualQuantizer {
    /// Fit cut-offs and weights to a sample of residual values (any order, any length > 0).
    pub fn fit(dim: usize, nbits: u32, mut residual_values: Vec<f32>) -> Self {
        assert!(matches!(nbits, 1 | 2 | 4), "nbits must be 1, 2 or 4");
        assert!(!residual_values.is_empty());
        residual_values.sort_by(f32::total_cmp);
        let buckets = 1usize << nbits;
        let quantile = |q: f64| {
            let i = ((residual_values.len() - 1) as f64 * q).round() as usize;
            residual_values[i]
        };
        let cutoffs = (1..buckets)
            .map(|i| quantile(i as f64 / buckets as f64))
            .collect();
        let weights = (0..buckets)
            .map(|i| quantile((i as f64 + 0.5) / buckets as f64))
            .collect();
        ResidualQuantizer {
            dim,
            nbits,
            cutoffs,
            weights,
        }
    }

    /// Bytes of packed residual per vector.
    pub fn packed_len(&self) -> usize {
        (self.dim * self.nbits as usize).div_ceil(8)
    }

    fn per_byte(&self) -> usize {
        8 / self.nbits as usize
    }

    fn bucket(&self, v: f32) -> u8 {
        self.cutoffs.partition_point(|&c| c < v) as u8
    }

    /// Quantise `residual` (`dim` values) into `out` (`packed_len()` bytes). Dimension `j`
    /// sits in byte `j / (8/nbits)` at bit offset `(j % (8/nbits)) * nbits`.
    pub fn pack(&self, residual: &[f32], out: &mut [u8]) {
        debug_assert_eq!(residual.len(), self.dim);
        out.fill(0);
        let per = self.per_byte();
        for (j, &v) in residual.iter().enumerate() {
            out[j / per] |= self.bucket(v) << ((j % per) * self.nbits as usize);
        }
    }

    /// The decoding table: for each byte value, the `8/nbits` weights it stands for.
    pub fn lookup_table(&self) -> Vec<f32> {
        let per = self.per_byte();
        let mask = (1u32 << self.nbits) - 1;
        let mut lut = Vec::with_capacity(256 * per);
        for byte in 0..256u32 {
            for p in 0..per {
                lut.push(self.weights[((byte >> (p * self.nbits as usize)) & mask) as usize]);
            }
        }
        lut
    }
}

/// Decoder bound to its lookup table.
#[derive(Debug, Clone)]
pub struct ResidualDecoder {
    dim: usize,
    per_byte: usize,
    lut: Vec<f32>,
}

impl ResidualDecoder {
    pub fn new(q: &ResidualQuantizer) -> Self {
        ResidualDecoder {
            dim: q.dim,
            per_byte: q.per_byte(),
            lut: q.lookup_table(),
        }
    }

    /// `out = centroid + decoded residual`, then L2-normalised (as ColBERTv2 does).
    /// Compiled for AVX-512 and AVX2 too and chosen at run time (the crate is built for
    /// baseline x86-64): the same operations in the same order, so the same bits.
    pub fn decode(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        assert!(
            out.len() == self.dim && centroid.len() == self.dim,
            "one vector of dim"
        );
        #[cfg(target_arch = "x86_64")]
        {
            if crate::maxsim::Kernel::detect() == crate::maxsim::Kernel::Avx512 {
                // SAFETY: Avx512 is detected only where avx512f runs.
                return unsafe { self.decode_avx512(centroid, packed, out) };
            }
            if crate::maxsim::Kernel::detect() == crate::maxsim::Kernel::Avx2Fma {
                // SAFETY: Avx2Fma is detected only where avx2 runs.
                return unsafe { self.decode_avx2(centroid, packed, out) };
            }
        }
        self.decode_body(centroid, packed, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn decode_avx512(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        self.decode_body(centroid, packed, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn decode_avx2(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        self.decode_body(centroid, packed, out)
    }

    #[inline(always)]
    fn decode_body(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        // One monomorphised loop per bytes-to-dimensions ratio: fixed-size chunks let the
        // compiler unroll and vectorise what a runtime `per` left scalar (nbits 2 decode of
        // a SciFact document: 123 us before, see README "Kernel benches").
        let sq = match self.per_byte {
            8 => decode_fixed::<8>(&self.lut, centroid, packed, out),
            4 => decode_fixed::<4>(&self.lut, centroid, packed, out),
            2 => decode_fixed::<2>(&self.lut, centroid, packed, out),
            _ => decode_fixed::<1>(&self.lut, centroid, packed, out),
        };
        if sq > 0.0 {
            let inv = 1.0 / sq.sqrt();
            out.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// `out = centroid + lut[byte]` for whole bytes of `PER` dimensions, the tail (a
/// dimension count not a multiple of `PER`) one dimension at a time; returns `|out|²`.
#[inline(always)]
fn decode_fixed<const PER: usize>(
    lut: &[f32],
    centroid: &[f32],
    packed: &[u8],
    out: &mut [f32],
) -> f32 {
    let whole = out.len() / PER;
    let mut sq = [0.0f32; PER];
    for ((o, c), &byte) in out
        .chunks_exact_mut(PER)
        .zip(centroid.chunks_exact(PER))
        .zip(packed)
    {
        let w: &[f32; PER] = lut[byte as usize * PER..(byte as usize + 1) * PER]
            .try_into()
            .expect("PER weights per byte");
        for t in 0..PER {
            o[t] = c[t] + w[t];
            sq[t] += o[t] * o[t];
        }
    }
    let mut total: f32 = sq.iter().sum();
    if whole * PER < out.len() {
        let byte = packed[whole] as usize;
        for t in 0..out.len() - whole * PER {
            let v = centroid[whole * PER + t] + lut[byte * PER + t];
            out[whole * PER + t] = v;
            total += v * v;
        }
    }
    total
}
