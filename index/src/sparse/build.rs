//! Inverting documents' sparse vectors into impact postings.
//!
//! File `s<N>.sparse` (kind `impacts`, one per segment), little-endian, every array at an offset aligned
//! for its type:
//!
//! ```text
//! offsets      (V + 1) x u64   postings of term t are [offsets[t], offsets[t+1])
//! max_impact   V x u8          largest impact in each list (MaxScore's upper bounds),
//!              zero-padded to a multiple of 8 bytes
//! docs         P x u32         document numbers, strictly increasing within a list
//! impacts      P x u8          quantised weights, 1..=255
//! ```
//!
//! `V` (vocabulary size), `P` (postings) and the dequantisation `scale` are in the
//! manifest. `impact = round(weight / scale)` with `scale = max weight / 255`; weights
//! that round to zero are dropped (counted in the build report).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{SparseConfig, SparseVector};
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileWriter, SparseFiles};

/// Most postings one inversion pass holds (16 Mi: 64 MiB of document numbers and 16 MiB
/// of impacts); a segment with more is inverted in several passes over its spill file.
pub const SPARSE_PASS_POSTINGS: u64 = 16 << 20;

/// Collects documents' sparse vectors (in store order) until [`SparseBuilder::finish`].
///
/// Memory is bounded, not proportional to the postings. Each document's `(term, weight)`
/// pairs are appended to a spill file, `<prefix>.sparse.spill`; its name is in the
/// index's naming scheme, so what a writer that dies leaves is collected. At finish, one
/// pass over the spill counts each term's postings and finds its largest impact under
/// the final quantisation scale; then passes over ranges of terms, each holding at most
/// [`SPARSE_PASS_POSTINGS`] postings, write the lists in order (as the PLAID IVF is
/// written from its codes file). The impacts of each pass wait in a second spill, since
/// the file holds every document number before the first impact. What stays in memory
/// is one `u32` per document, the per-term counts and one pass.
pub struct SparseBuilder {
    config: SparseConfig,
    spill_path: PathBuf,
    impacts_path: PathBuf,
    spill: BufWriter<File>,
    /// Postings of each document, in store order.
    doc_lens: Vec<u32>,
    pairs: u64,
    max_weight: f32,
    pass_postings: u64,
}

impl SparseBuilder {
    /// A builder for segment `prefix` in `dir`; its spill file is created now.
    pub fn create(dir: &Path, prefix: &str, config: SparseConfig) -> Result<Self> {
        let spill_path = dir.join(format!("{prefix}.sparse.spill"));
        let file = File::create(&spill_path).map_err(|e| IndexError::io(&spill_path, e))?;
        Ok(SparseBuilder {
            config,
            spill_path,
            impacts_path: dir.join(format!("{prefix}.sparse.impacts.spill")),
            spill: BufWriter::with_capacity(1 << 20, file),
            doc_lens: Vec::new(),
            pairs: 0,
            max_weight: 0.0,
            pass_postings: SPARSE_PASS_POSTINGS,
        })
    }

    /// Hold at most `postings` per inversion pass (tests use tiny limits).
    pub fn with_pass_postings(mut self, postings: u64) -> Self {
        self.pass_postings = postings.max(1);
        self
    }

    pub fn num_docs(&self) -> usize {
        self.doc_lens.len()
    }

    /// Whether `v` can be added (its terms are inside the vocabulary).
    pub fn check(&self, v: &SparseVector) -> Result<()> {
        match v.terms().last() {
            Some(&t) if t as usize >= self.config.vocab_size => {
                Err(IndexError::InvalidArgument(format!(
                    "sparse term id {t} is outside the vocabulary of {}",
                    self.config.vocab_size
                )))
            }
            _ => Ok(()),
        }
    }

    /// Append the next document's vector (an empty vector is a document no term matches).
    pub fn add(&mut self, v: &SparseVector) -> Result<()> {
        self.check(v)?;
        let mut buf = Vec::with_capacity(v.len() * 8);
        for (t, w) in v.iter() {
            buf.extend_from_slice(&t.to_le_bytes());
            buf.extend_from_slice(&w.to_le_bytes());
            self.max_weight = self.max_weight.max(w);
        }
        self.spill
            .write_all(&buf)
            .map_err(|e| IndexError::io(&self.spill_path, e))?;
        self.doc_lens.push(v.len() as u32);
        self.pairs += v.len() as u64;
        Ok(())
    }

    /// Every spilled `(document, term, weight)`, in document order.
    fn scan(&self, mut f: impl FnMut(u32, u32, f32)) -> Result<()> {
        let io = |e| IndexError::io(&self.spill_path, e);
        let file = File::open(&self.spill_path).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut block = vec![0u8; 1 << 20];
        let mut doc = 0usize;
        let mut left_in_doc = 0u32;
        let mut remaining = self.pairs;
        while remaining > 0 {
            let n = remaining.min((block.len() / 8) as u64) as usize;
            reader.read_exact(&mut block[..n * 8]).map_err(io)?;
            for pair in block[..n * 8].chunks_exact(8) {
                while left_in_doc == 0 {
                    left_in_doc = self.doc_lens[doc];
                    doc += 1;
                }
                left_in_doc -= 1;
                let t = u32::from_le_bytes(pair[..4].try_into().expect("4 bytes"));
                let w = f32::from_le_bytes(pair[4..].try_into().expect("4 bytes"));
                f(doc as u32 - 1, t, w);
            }
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Quantise, invert and write `<prefix>.sparse` in `dir`; the spill files go when the
    /// builder drops.
    pub fn finish(mut self, dir: &Path, prefix: &str) -> Result<SparseFiles> {
        let started = std::time::Instant::now();
        self.spill
            .flush()
            .map_err(|e| IndexError::io(&self.spill_path, e))?;
        let impacts_path = &self.impacts_path;
        let v = self.config.vocab_size;
        let num_docs = self.num_docs();
        let scale = if self.max_weight > 0.0 {
            self.max_weight / 255.0
        } else {
            1.0
        };
        let quantise = |w: f32| (w / scale).round().min(255.0) as u8;

        // Pass 1: postings per term and each list's largest impact.
        let mut counts = vec![0u64; v + 1];
        let mut max_impact = vec![0u8; v.next_multiple_of(8)];
        let mut dropped = 0usize;
        self.scan(|_, t, w| {
            let q = quantise(w);
            if q > 0 {
                counts[t as usize + 1] += 1;
                max_impact[t as usize] = max_impact[t as usize].max(q);
            } else {
                dropped += 1;
            }
        })?;
        let mut offsets = counts;
        for t in 0..v {
            offsets[t + 1] += offsets[t];
        }
        let num_postings = offsets[v] as usize;

        let name = format!("{prefix}.sparse");
        let mut w = FileWriter::create(dir, &name, ComponentKind::SparsePostings)?;
        w.write(bytemuck::cast_slice(&offsets))?;
        w.write(&max_impact)?;
        let io = |e| IndexError::io(impacts_path, e);
        let mut impacts_out =
            BufWriter::with_capacity(1 << 20, File::create(impacts_path).map_err(io)?);
        // Passes over ranges of terms: document numbers to the file, impacts to the spill.
        let mut passes = 0usize;
        let mut lo = 0usize;
        while lo < v {
            let mut hi = lo + 1;
            while hi < v && offsets[hi + 1] - offsets[lo] <= self.pass_postings {
                hi += 1;
            }
            let base = offsets[lo];
            let len = (offsets[hi] - base) as usize;
            if len > 0 {
                let mut docs = vec![0u32; len];
                let mut impacts = vec![0u8; len];
                let mut cursor: Vec<u64> = offsets[lo..hi].iter().map(|&o| o - base).collect();
                self.scan(|d, t, wt| {
                    let t = t as usize;
                    let q = quantise(wt);
                    if t < lo || t >= hi || q == 0 {
                        return;
                    }
                    let slot = &mut cursor[t - lo];
                    docs[*slot as usize] = d;
                    impacts[*slot as usize] = q;
                    *slot += 1;
                })?;
                passes += 1;
                w.write(bytemuck::cast_slice(&docs))?;
                impacts_out.write_all(&impacts).map_err(io)?;
            }
            lo = hi;
        }
        impacts_out.flush().map_err(io)?;
        drop(impacts_out);
        let mut reader = BufReader::with_capacity(1 << 20, File::open(impacts_path).map_err(io)?);
        let mut block = vec![0u8; 1 << 20];
        let mut left = num_postings;
        while left > 0 {
            let n = left.min(block.len());
            reader.read_exact(&mut block[..n]).map_err(io)?;
            w.write(&block[..n])?;
            left -= n;
        }
        let postings = w.finish()?;
        Ok(SparseFiles {
            vocab_size: v,
            num_postings,
            scale,
            postings,
            model: self.config.model.clone(),
            build: serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "dropped_below_one_step": dropped,
                "mean_terms_per_doc": num_postings as f64 / num_docs.max(1) as f64,
                "passes": passes,
            }),
        })
    }
}

impl Drop for SparseBuilder {
    /// A finished or abandoned builder removes its spill files.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.spill_path);
        let _ = std::fs::remove_file(&self.impacts_path);
    }
}
