//! ColBERTv2 residual compression: a vector is its nearest centroid plus a residual whose
//! every dimension is quantised to `nbits` bits. Bucket cut-offs are the quantiles of the
//! training residuals (one set for all dimensions, as ColBERTv2), bucket weights the
//! quantile mid-points. Decoding goes through a lookup table that turns one byte of codes
//! into `8 / nbits` dimensions at once.

use serde::{Deserialize, Serialize};

use super::linalg::normalize_rows;

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
    pub fn decode(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        let per = self.per_byte;
        for ((o, c), byte) in out.chunks_mut(per).zip(centroid.chunks(per)).zip(packed) {
            let w = &self.lut[*byte as usize * per..(*byte as usize + 1) * per];
            for ((o, c), w) in o.iter_mut().zip(c).zip(w) {
                *o = c + w;
            }
        }
        normalize_rows(out, self.dim);
    }
}
