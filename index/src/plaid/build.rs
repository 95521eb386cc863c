//! Writing a segment's PLAID data: every vector's centroid code and packed residual, and
//! the IVF (centroid -> the segment's documents having a vector there). Codes come from
//! encoding the segment's vectors with the index's codec ([`encode_segment`]) or, when
//! segments merge, are copied from the merged segments ([`PlaidSegmentWriter::add_doc`]):
//! one codec per index makes them valid everywhere.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{rows_f32, PlaidCodec};
use crate::error::Result;
use crate::segment::{ComponentKind, FileWriter, MappedFile, PlaidSegmentFiles};
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
    /// Keep the centroids as int8 with one f32 scale per centroid (a quarter of the f32
    /// table: 5 bytes per vector on SciFact), quantised as an int8 store quantises
    /// vectors; encoding and search use the dequantised ones. Wins over `f16_centroids`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8_centroids: bool,
    /// Most bytes the k-means sample (f32 rows) may take: the sample is cut to fit
    /// (`--memory-budget` gives half the budget). `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sample_bytes: Option<u64>,
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
            int8_centroids: false,
            max_sample_bytes: None,
        }
    }
}

/// Default [`PlaidConfig::assign_probe`]: 8 of ~128 coarse cells at SciFact's 16,384
/// centroids (README "Building PLAID").
pub const DEFAULT_ASSIGN_PROBE: usize = 8;

/// The CLI's `assign_probe` for a store without vectors, where the codes alone rank
/// (README "Compact indexes": SciFact's share of the exhaustive top-100 0.916 at 8,
/// 0.925 at 32).
pub const COMPACT_ASSIGN_PROBE: usize = 32;

/// Vectors encoded per block (bounds memory: block x k scores).
const ENCODE_BLOCK: usize = 1 << 15;

/// Streams one segment's codes and residuals to disk, document by document.
pub struct PlaidSegmentWriter {
    codes: FileWriter,
    residuals: FileWriter,
    /// Vectors per document (the codes file holds them back to back).
    doc_lens: Vec<u32>,
    num_docs: u32,
    num_centroids: usize,
    /// Most document numbers one IVF pass holds ([`IVF_PASS_PAIRS`]; smaller in tests).
    ivf_pass_pairs: u64,
    norm_sum: f64,
    norms_known: bool,
    vectors: usize,
    dir: std::path::PathBuf,
    prefix: String,
}

impl PlaidSegmentWriter {
    pub fn create(dir: &Path, prefix: &str, codec: &PlaidCodec) -> Result<Self> {
        Self::with_centroids(dir, prefix, codec.num_centroids())
    }

    fn with_centroids(dir: &Path, prefix: &str, num_centroids: usize) -> Result<Self> {
        Ok(PlaidSegmentWriter {
            codes: FileWriter::create(dir, &format!("{prefix}.plaid.codes"), ComponentKind::Codes)?,
            residuals: FileWriter::create(
                dir,
                &format!("{prefix}.plaid.residuals"),
                ComponentKind::Residuals,
            )?,
            doc_lens: Vec::new(),
            num_docs: 0,
            num_centroids,
            ivf_pass_pairs: IVF_PASS_PAIRS,
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
        self.doc_lens.push(codes.len() as u32);
        self.num_docs += 1;
        self.vectors += codes.len();
        match norm_sum {
            Some(s) => self.norm_sum += s,
            None => self.norms_known = false,
        }
        Ok(())
    }

    /// Finish the files and write the IVF from the codes file on disk: one pass counts
    /// each centroid's documents, then passes over ranges of centroids (each holding at
    /// most [`IVF_PASS_PAIRS`] document numbers) write the lists in order. Memory: the
    /// per-centroid counts and one range, not every (centroid, document) pair.
    pub fn finish(self) -> Result<PlaidSegmentFiles> {
        Ok(self.finish_timed()?.0)
    }

    /// [`PlaidSegmentWriter::finish`], and the seconds spent writing the IVF.
    pub fn finish_timed(self) -> Result<(PlaidSegmentFiles, f64)> {
        let k = self.num_centroids;
        let codes_entry = self.codes.finish()?;
        let ivf_started = std::time::Instant::now();
        let residuals_entry = self.residuals.finish()?;
        let mapped = MappedFile::open(&self.dir, &codes_entry, ComponentKind::Codes, false)?;
        let codes: &[u32] = bytemuck::cast_slice(mapped.payload());
        let mut scratch = Vec::new();
        // Each document's distinct centroids, in document order.
        let for_each_doc = |scratch: &mut Vec<u32>, f: &mut dyn FnMut(u32, &[u32])| {
            let mut at = 0usize;
            for (d, &len) in self.doc_lens.iter().enumerate() {
                scratch.clear();
                scratch.extend_from_slice(&codes[at..at + len as usize]);
                scratch.sort_unstable();
                scratch.dedup();
                f(d as u32, scratch);
                at += len as usize;
            }
        };
        let mut offsets = vec![0u64; k + 1];
        for_each_doc(&mut scratch, &mut |_, unique| {
            for &c in unique {
                offsets[c as usize + 1] += 1;
            }
        });
        for c in 0..k {
            offsets[c + 1] += offsets[c];
        }
        let mut ivf = FileWriter::create(
            &self.dir,
            &format!("{}.plaid.ivf", self.prefix),
            ComponentKind::Ivf,
        )?;
        ivf.write(bytemuck::cast_slice(&offsets))?;
        let mut lo = 0usize;
        while lo < k {
            let mut hi = lo + 1;
            while hi < k && offsets[hi + 1] - offsets[lo] <= self.ivf_pass_pairs {
                hi += 1;
            }
            let base = offsets[lo];
            let mut docs = vec![0u32; (offsets[hi] - base) as usize];
            let mut cursor: Vec<u64> = offsets[lo..hi].iter().map(|&o| o - base).collect();
            for_each_doc(&mut scratch, &mut |d, unique| {
                let from = unique.partition_point(|&c| (c as usize) < lo);
                for &c in unique[from..].iter().take_while(|&&c| (c as usize) < hi) {
                    let slot = &mut cursor[c as usize - lo];
                    docs[*slot as usize] = d;
                    *slot += 1;
                }
            });
            ivf.write(bytemuck::cast_slice(&docs))?;
            lo = hi;
        }
        let files = PlaidSegmentFiles {
            codes: codes_entry,
            residuals: residuals_entry,
            ivf: ivf.finish()?,
            mean_residual_norm: (self.norms_known && self.vectors > 0)
                .then(|| (self.norm_sum / self.vectors as f64) as f32),
        };
        Ok((files, ivf_started.elapsed().as_secs_f64()))
    }
}

/// Most document numbers one IVF pass holds (64 MB); a segment with more (centroid,
/// document) pairs writes its IVF in several passes over the codes.
pub const IVF_PASS_PAIRS: u64 = 16 << 20;

/// Seconds [`encode_segment`] spent on each part.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeTimes {
    /// Assignment to centroids and residual encoding (codes and residuals written).
    pub encode: f64,
    /// The IVF, from the codes.
    pub ivf: f64,
}

/// Encode every vector of a segment's store with `codec` and write its PLAID files.
pub fn encode_segment(
    dir: &Path,
    prefix: &str,
    store: &TokenStore,
    codec: &PlaidCodec,
    assign_probe: usize,
) -> Result<(PlaidSegmentFiles, EncodeTimes)> {
    let started = std::time::Instant::now();
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
        // Read once: let the pages go, so a store larger than memory streams through.
        store.release_vectors(start..end);
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
    let (files, ivf) = w.finish_timed()?;
    let times = EncodeTimes {
        encode: started.elapsed().as_secs_f64() - ivf,
        ivf,
    };
    Ok((files, times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The IVF written in passes over ranges of centroids (every pass limit, one pair
    /// per pass included) equals the lists built directly from the codes.
    #[test]
    fn ivf_in_passes_equals_the_lists_from_the_codes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let k = 37;
        let docs: Vec<Vec<u32>> = (0..200)
            .map(|_| {
                let n = rng.gen_range(1..30);
                // Skewed: low centroids are common, some centroids stay empty.
                (0..n)
                    .map(|_| (rng.gen_range(0..k * k) as f64).sqrt() as u32)
                    .collect()
            })
            .collect();
        let mut want: Vec<Vec<u32>> = vec![Vec::new(); k];
        for (d, codes) in docs.iter().enumerate() {
            for c in 0..k as u32 {
                if codes.contains(&c) {
                    want[c as usize].push(d as u32);
                }
            }
        }
        for limit in [1u64, 7, 100, IVF_PASS_PAIRS] {
            let dir = tempfile::tempdir().unwrap();
            let mut w = PlaidSegmentWriter::with_centroids(dir.path(), "s1", k).unwrap();
            w.ivf_pass_pairs = limit;
            for codes in &docs {
                w.add_doc(codes, &vec![0u8; codes.len()], Some(0.0))
                    .unwrap();
            }
            let files = w.finish().unwrap();
            let ivf = MappedFile::open(dir.path(), &files.ivf, ComponentKind::Ivf, true).unwrap();
            let bytes = ivf.payload();
            let offsets: &[u64] = bytemuck::cast_slice(&bytes[..(k + 1) * 8]);
            let lists: &[u32] = bytemuck::cast_slice(&bytes[(k + 1) * 8..]);
            for c in 0..k {
                let got = &lists[offsets[c] as usize..offsets[c + 1] as usize];
                assert_eq!(got, want[c].as_slice(), "centroid {c}, pass limit {limit}");
            }
            assert_eq!(lists.len(), want.iter().map(Vec::len).sum::<usize>());
        }
    }
}
