//! SPLADE impact postings: a learned sparse first stage.
//!
//! Each document is a [`SparseVector`] over the model's vocabulary. At commit the
//! vectors are inverted into one postings list per term, `(document, impact)` with the
//! impact quantised to `u8` on one index-wide scale, and written as one footed file
//! (layout in [`build`]). Search is exact: a query's score for a document is
//! `Σ_t q_t · impact_{t,d}`, computed in integers (query weights quantised to 16 bits),
//! so pruned and exhaustive scoring agree bit for bit. [`SparseIndex::search`] prunes
//! with MaxScore (Turtle & Flood 1995): once the lists still to come cannot lift an
//! unseen document into the top k, they are only probed for the documents that can
//! still make it, never walked.

mod build;
mod search;

pub use build::{SparseBuilder, SPARSE_PASS_POSTINGS};
pub use search::{DocumentCursor, SparseIndex, SparseStats};

use serde::{Deserialize, Serialize};

/// A sparse vector: strictly increasing term ids with positive weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    terms: Vec<u32>,
    weights: Vec<f32>,
}

impl SparseVector {
    /// Build from `(term, weight)` pairs in any order. Non-positive or non-finite weights
    /// are dropped; a repeated term keeps its largest weight.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> Self {
        pairs.retain(|(_, w)| w.is_finite() && *w > 0.0);
        pairs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        pairs.dedup_by_key(|p| p.0);
        let (terms, weights) = pairs.into_iter().unzip();
        SparseVector { terms, weights }
    }

    pub fn terms(&self) -> &[u32] {
        &self.terms
    }

    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.terms.iter().copied().zip(self.weights.iter().copied())
    }

    /// Exact float dot product (the unquantised score, for tests and diagnostics).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.terms.len() && j < other.terms.len() {
            match self.terms[i].cmp(&other.terms[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.weights[i] * other.weights[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

/// What the SPLADE component is built with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseConfig {
    /// Vocabulary size of the model: term ids must be below it.
    pub vocab_size: usize,
    /// The application's record of the model that made the vectors (directory, weight
    /// hash, settings), kept in the manifest so queries are encoded the same way.
    pub model: serde_json::Value,
}

/// Largest quantised query weight: query weights are scaled so the largest is this.
pub const QUERY_WEIGHT_MAX: f32 = 65_535.0;
