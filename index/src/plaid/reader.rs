//! A segment's PLAID data read straight off memory maps, validated once at open.

use std::path::Path;

use super::PlaidCodec;
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, MappedFile, PlaidSegmentFiles};

/// One segment's codes, residuals and IVF (the centroids are the codec's).
pub struct PlaidSegment {
    num_centroids: usize,
    packed_len: usize,
    codes: MappedFile,
    residuals: MappedFile,
    ivf: MappedFile,
}

fn cast<'a, T: bytemuck::Pod>(f: &'a MappedFile, bytes: &'a [u8]) -> Result<&'a [T]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| IndexError::corrupt(f.path(), format!("misaligned array: {e}")))
}

impl PlaidSegment {
    pub fn open(
        dir: &Path,
        files: &PlaidSegmentFiles,
        codec: &PlaidCodec,
        num_docs: usize,
        num_vectors: usize,
        verify: bool,
    ) -> Result<Self> {
        let codes = MappedFile::open(dir, &files.codes, ComponentKind::Codes, verify)?;
        let residuals = MappedFile::open(dir, &files.residuals, ComponentKind::Residuals, verify)?;
        let ivf = MappedFile::open(dir, &files.ivf, ComponentKind::Ivf, verify)?;
        let k = codec.num_centroids();
        let packed_len = codec.quantizer().packed_len();
        let expect = |f: &MappedFile, want: usize, what: &str| {
            if f.payload().len() == want {
                Ok(())
            } else {
                Err(IndexError::corrupt(
                    f.path(),
                    format!(
                        "holds {} bytes, expected {want} ({what})",
                        f.payload().len()
                    ),
                ))
            }
        };
        expect(&codes, num_vectors * 4, "one u32 code per vector")?;
        expect(
            &residuals,
            num_vectors * packed_len,
            "packed residual per vector",
        )?;
        let code_slice: &[u32] = cast(&codes, codes.payload())?;
        if let Some(bad) = code_slice.iter().position(|&c| c as usize >= k) {
            return Err(IndexError::corrupt(
                codes.path(),
                format!("vector {bad} has centroid id >= {k}"),
            ));
        }
        let off_bytes = (k + 1) * 8;
        if ivf.payload().len() < off_bytes || !(ivf.payload().len() - off_bytes).is_multiple_of(4) {
            return Err(IndexError::corrupt(
                ivf.path(),
                "size does not fit k + 1 offsets and u32 ids",
            ));
        }
        let offsets: &[u64] = cast(&ivf, &ivf.payload()[..off_bytes])?;
        let docs: &[u32] = cast(&ivf, &ivf.payload()[off_bytes..])?;
        if offsets[0] != 0
            || offsets[k] as usize != docs.len()
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(IndexError::corrupt(
                ivf.path(),
                "IVF offsets are not monotone over the id list",
            ));
        }
        if docs.iter().any(|&d| d as usize >= num_docs) {
            return Err(IndexError::corrupt(
                ivf.path(),
                "IVF names a document beyond the store",
            ));
        }
        Ok(PlaidSegment {
            num_centroids: k,
            packed_len,
            codes,
            residuals,
            ivf,
        })
    }

    /// Centroid id of every vector, in store order.
    /// Document `d`'s vectors decoded from codes and residuals (row-major f32).
    pub fn decompress_doc(
        &self,
        codec: &PlaidCodec,
        store: &crate::store::TokenStore,
        d: usize,
    ) -> Vec<f32> {
        let dim = codec.dim();
        let (start, len) = (store.doc_offset(d), store.doc_len(d));
        let mut out = vec![0f32; len * dim];
        for (j, row) in out.chunks_exact_mut(dim).enumerate() {
            codec.decode(self.codes()[start + j], self.residual(start + j), row);
        }
        out
    }

    pub fn codes(&self) -> &[u32] {
        bytemuck::cast_slice(self.codes.payload())
    }

    /// Packed residuals of vectors `a..b`.
    pub fn residuals(&self, a: usize, b: usize) -> &[u8] {
        &self.residuals.payload()[a * self.packed_len..b * self.packed_len]
    }

    /// Packed residual of vector `v`.
    pub fn residual(&self, v: usize) -> &[u8] {
        self.residuals(v, v + 1)
    }

    /// Documents with a vector in centroid `c`, ascending.
    pub fn ivf_list(&self, c: usize) -> &[u32] {
        let off_bytes = (self.num_centroids + 1) * 8;
        let p = self.ivf.payload();
        let offsets: &[u64] = bytemuck::cast_slice(&p[..off_bytes]);
        let docs: &[u32] = bytemuck::cast_slice(&p[off_bytes..]);
        &docs[offsets[c] as usize..offsets[c + 1] as usize]
    }
}
