//! The PLAID component read straight off memory maps, validated once at open.

use std::path::Path;

use crate::codec::{ResidualDecoder, ResidualQuantizer};
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, MappedFile, PlaidFiles};

pub struct PlaidIndex {
    pub(super) dim: usize,
    pub(super) num_centroids: usize,
    centroids: MappedFile,
    codes: MappedFile,
    residuals: MappedFile,
    ivf: MappedFile,
    pub(super) quantizer: ResidualQuantizer,
    pub(super) decoder: ResidualDecoder,
}

fn cast<'a, T: bytemuck::Pod>(f: &'a MappedFile, bytes: &'a [u8]) -> Result<&'a [T]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| IndexError::corrupt(f.path(), format!("misaligned array: {e}")))
}

impl PlaidIndex {
    pub fn open(
        dir: &Path,
        files: &PlaidFiles,
        dim: usize,
        num_docs: usize,
        num_vectors: usize,
        verify: bool,
    ) -> Result<Self> {
        let centroids = MappedFile::open(dir, &files.centroids, ComponentKind::Centroids, verify)?;
        let codes = MappedFile::open(dir, &files.codes, ComponentKind::Codes, verify)?;
        let residuals = MappedFile::open(dir, &files.residuals, ComponentKind::Residuals, verify)?;
        let ivf = MappedFile::open(dir, &files.ivf, ComponentKind::Ivf, verify)?;
        let k = files.num_centroids;
        let q = &files.quantizer;
        let buckets = 1usize << q.nbits;
        if q.dim != dim
            || !matches!(q.nbits, 1 | 2 | 4)
            || q.cutoffs.len() + 1 != buckets
            || q.weights.len() != buckets
        {
            return Err(IndexError::Manifest {
                path: dir.join(crate::segment::MANIFEST_NAME),
                reason: "PLAID quantizer does not match its dimension or nbits".into(),
            });
        }
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
        expect(&centroids, k * dim * 4, "centroids x dim x f32")?;
        expect(&codes, num_vectors * 4, "one u32 code per vector")?;
        expect(
            &residuals,
            num_vectors * q.packed_len(),
            "packed residual per vector",
        )?;
        cast::<f32>(&centroids, centroids.payload())?;
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
        Ok(PlaidIndex {
            dim,
            num_centroids: k,
            decoder: ResidualDecoder::new(q),
            quantizer: q.clone(),
            centroids,
            codes,
            residuals,
            ivf,
        })
    }

    pub fn num_centroids(&self) -> usize {
        self.num_centroids
    }

    pub fn quantizer(&self) -> &ResidualQuantizer {
        &self.quantizer
    }

    pub fn centroids(&self) -> &[f32] {
        bytemuck::cast_slice(self.centroids.payload())
    }

    /// Centroid id of every vector, in store order.
    pub fn codes(&self) -> &[u32] {
        bytemuck::cast_slice(self.codes.payload())
    }

    /// Packed residual of vector `v`.
    pub fn residual(&self, v: usize) -> &[u8] {
        let len = self.quantizer.packed_len();
        &self.residuals.payload()[v * len..(v + 1) * len]
    }

    /// Documents with a vector in centroid `c`, ascending.
    pub fn ivf_list(&self, c: usize) -> &[u32] {
        let off_bytes = (self.num_centroids + 1) * 8;
        let p = self.ivf.payload();
        let offsets: &[u64] = bytemuck::cast_slice(&p[..off_bytes]);
        let docs: &[u32] = bytemuck::cast_slice(&p[off_bytes..]);
        &docs[offsets[c] as usize..offsets[c + 1] as usize]
    }

    /// Decompress vector `v` (centroid + residual, normalised) into `out`.
    pub fn decode(&self, v: usize, out: &mut [f32]) {
        let c = self.codes()[v] as usize;
        let centroid = &self.centroids()[c * self.dim..(c + 1) * self.dim];
        self.decoder.decode(centroid, self.residual(v), out);
    }
}
