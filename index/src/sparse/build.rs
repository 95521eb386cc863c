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

use std::path::Path;

use super::{SparseConfig, SparseVector};
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileWriter, SparseFiles};

/// Collects documents' sparse vectors (in store order) until [`SparseBuilder::finish`].
pub struct SparseBuilder {
    config: SparseConfig,
    terms: Vec<u32>,
    weights: Vec<f32>,
    doc_starts: Vec<usize>,
    max_weight: f32,
}

impl SparseBuilder {
    pub fn new(config: SparseConfig) -> Self {
        SparseBuilder {
            config,
            terms: Vec::new(),
            weights: Vec::new(),
            doc_starts: vec![0],
            max_weight: 0.0,
        }
    }

    pub fn num_docs(&self) -> usize {
        self.doc_starts.len() - 1
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
        for (t, w) in v.iter() {
            self.terms.push(t);
            self.weights.push(w);
            self.max_weight = self.max_weight.max(w);
        }
        self.doc_starts.push(self.terms.len());
        Ok(())
    }

    /// Quantise, invert and write `<prefix>.sparse` in `dir`.
    pub fn finish(self, dir: &Path, prefix: &str) -> Result<SparseFiles> {
        let started = std::time::Instant::now();
        let v = self.config.vocab_size;
        let num_docs = self.num_docs();
        let scale = if self.max_weight > 0.0 {
            self.max_weight / 255.0
        } else {
            1.0
        };
        let quantise = |w: f32| (w / scale).round().min(255.0) as u8;

        let mut counts = vec![0u64; v + 1];
        let mut dropped = 0usize;
        for (&t, &w) in self.terms.iter().zip(&self.weights) {
            if quantise(w) > 0 {
                counts[t as usize + 1] += 1;
            } else {
                dropped += 1;
            }
        }
        let mut offsets = counts;
        for t in 0..v {
            offsets[t + 1] += offsets[t];
        }
        let num_postings = offsets[v] as usize;
        let mut cursor: Vec<u64> = offsets[..v].to_vec();
        let mut docs = vec![0u32; num_postings];
        let mut impacts = vec![0u8; num_postings];
        let mut max_impact = vec![0u8; v.next_multiple_of(8)];
        for (doc, range) in self.doc_starts.windows(2).enumerate() {
            for i in range[0]..range[1] {
                let q = quantise(self.weights[i]);
                if q == 0 {
                    continue;
                }
                let t = self.terms[i] as usize;
                let at = cursor[t] as usize;
                docs[at] = doc as u32;
                impacts[at] = q;
                cursor[t] += 1;
                max_impact[t] = max_impact[t].max(q);
            }
        }

        let name = format!("{prefix}.sparse");
        let mut w = FileWriter::create(dir, &name, ComponentKind::SparsePostings)?;
        w.write(bytemuck::cast_slice(&offsets))?;
        w.write(&max_impact)?;
        w.write(bytemuck::cast_slice(&docs))?;
        w.write(&impacts)?;
        let postings = w.finish()?;
        Ok(SparseFiles {
            vocab_size: v,
            num_postings,
            scale,
            postings,
            model: self.config.model,
            build: serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "dropped_below_one_step": dropped,
                "mean_terms_per_doc": num_postings as f64 / num_docs.max(1) as f64,
            }),
        })
    }
}
