//! Writing a segment's PLAID data: every vector's centroid code and packed residual, and
//! the IVF (centroid -> the segment's documents having a vector there). Codes come from
//! encoding the segment's vectors with the index's codec ([`encode_segment`]) or, when
//! segments merge, are copied from the merged segments ([`PlaidSegmentWriter::add_doc`]):
//! one codec per index makes them valid everywhere.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{rows_f32, PlaidCodec};
use crate::error::Result;
use crate::segment::{ComponentKind, FileWriter, PlaidSegmentFiles};
use crate::store::TokenStore;

/// How the PLAID codec is trained. Every field has a ColBERTv2-like default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaidConfig {
    /// Bits per residual dimension: 1, 2 or 4.
    pub nbits: u32,
    /// Number of centroids; default `2^floor(log2(16 * sqrt(n_vectors)))` of the build
    /// that trains the codec.
    pub num_centroids: Option<usize>,
    /// k-means trains on `sample_per_centroid * k` sampled vectors (at most all of them).
    pub sample_per_centroid: usize,
    pub kmeans_iterations: usize,
    pub seed: u64,
    /// Coarse cells searched when assigning a vector to a centroid (k-means' own steps
    /// and encoding), out of ~sqrt(k) (`codec::TwoLevel`); 0 = exact assignment against
    /// every centroid (what indexes built before this setting used).
    #[serde(default)]
    pub assign_probe: usize,
    /// Keep the centroids as f16 (half the table: 10 of SciFact's ~120 PLAID bytes per
    /// vector). Trained in f32, rounded once; encoding and search use the rounded ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub f16_centroids: bool,
}

impl Default for PlaidConfig {
    fn default() -> Self {
        PlaidConfig {
            nbits: 2,
            num_centroids: None,
            sample_per_centroid: 16,
            kmeans_iterations: 8,
            seed: 12345,
            assign_probe: DEFAULT_ASSIGN_PROBE,
            f16_centroids: false,
        }
    }
}

/// Default [`PlaidConfig::assign_probe`]: 8 of ~128 coarse cells at SciFact's 16,384
/// centroids (README "Building PLAID").
pub const DEFAULT_ASSIGN_PROBE: usize = 8;

/// Vectors encoded per block (bounds memory: block x k scores).
const ENCODE_BLOCK: usize = 1 << 15;

/// Streams one segment's codes and residuals to disk, document by document.
pub struct PlaidSegmentWriter {
    codes: FileWriter,
    residuals: FileWriter,
    /// (centroid, document) once per centroid a document has a vector in.
    pairs: Vec<(u32, u32)>,
    num_docs: u32,
    num_centroids: usize,
    norm_sum: f64,
    norms_known: bool,
    vectors: usize,
    dir: std::path::PathBuf,
    prefix: String,
}

impl PlaidSegmentWriter {
    pub fn create(dir: &Path, prefix: &str, codec: &PlaidCodec) -> Result<Self> {
        Ok(PlaidSegmentWriter {
            codes: FileWriter::create(dir, &format!("{prefix}.plaid.codes"), ComponentKind::Codes)?,
            residuals: FileWriter::create(
                dir,
                &format!("{prefix}.plaid.residuals"),
                ComponentKind::Residuals,
            )?,
            pairs: Vec::new(),
            num_docs: 0,
            num_centroids: codec.num_centroids(),
            norm_sum: 0.0,
            norms_known: true,
            vectors: 0,
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
        })
    }

    /// Append the next document: its vectors' codes and packed residuals, and the sum of
    /// its residual norms when known (copied codes carry none).
    pub fn add_doc(&mut self, codes: &[u32], packed: &[u8], norm_sum: Option<f64>) -> Result<()> {
        self.codes.write(bytemuck::cast_slice(codes))?;
        self.residuals.write(packed)?;
        let mut unique = codes.to_vec();
        unique.sort_unstable();
        unique.dedup();
        self.pairs
            .extend(unique.into_iter().map(|c| (c, self.num_docs)));
        self.num_docs += 1;
        self.vectors += codes.len();
        match norm_sum {
            Some(s) => self.norm_sum += s,
            None => self.norms_known = false,
        }
        Ok(())
    }

    /// Write the IVF and finish the files.
    pub fn finish(mut self) -> Result<PlaidSegmentFiles> {
        let k = self.num_centroids;
        self.pairs.sort_unstable();
        let mut offsets = vec![0u64; k + 1];
        for &(c, _) in &self.pairs {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..k {
            offsets[c + 1] += offsets[c];
        }
        let docs: Vec<u32> = self.pairs.iter().map(|&(_, d)| d).collect();
        let mut ivf = FileWriter::create(
            &self.dir,
            &format!("{}.plaid.ivf", self.prefix),
            ComponentKind::Ivf,
        )?;
        ivf.write(bytemuck::cast_slice(&offsets))?;
        ivf.write(bytemuck::cast_slice(&docs))?;
        Ok(PlaidSegmentFiles {
            codes: self.codes.finish()?,
            residuals: self.residuals.finish()?,
            ivf: ivf.finish()?,
            mean_residual_norm: (self.norms_known && self.vectors > 0)
                .then(|| (self.norm_sum / self.vectors as f64) as f32),
        })
    }
}

/// Encode every vector of a segment's store with `codec` and write its PLAID files.
pub fn encode_segment(
    dir: &Path,
    prefix: &str,
    store: &TokenStore,
    codec: &PlaidCodec,
    assign_probe: usize,
) -> Result<PlaidSegmentFiles> {
    let mut w = PlaidSegmentWriter::create(dir, prefix, codec)?;
    let packed_len = codec.quantizer().packed_len();
    let n_docs = store.num_docs();
    let mut d = 0;
    while d < n_docs {
        // A block of whole documents, about ENCODE_BLOCK vectors.
        let start = store.doc_offset(d);
        let mut end_doc = d;
        while end_doc < n_docs
            && (end_doc == d
                || store.doc_offset(end_doc) + store.doc_len(end_doc) - start <= ENCODE_BLOCK)
        {
            end_doc += 1;
        }
        let end = store.doc_offset(end_doc - 1) + store.doc_len(end_doc - 1);
        let rows = rows_f32(store, start..end);
        let mut packed = Vec::with_capacity((end - start) * packed_len);
        let (codes, norms) = codec.encode(&rows, &mut packed, assign_probe);
        for doc in d..end_doc {
            let a = store.doc_offset(doc) - start;
            let b = a + store.doc_len(doc);
            let norm: f64 = norms[a..b].iter().map(|&x| f64::from(x)).sum();
            w.add_doc(
                &codes[a..b],
                &packed[a * packed_len..b * packed_len],
                Some(norm),
            )?;
        }
        d = end_doc;
    }
    w.finish()
}
