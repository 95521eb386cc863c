//! When segments merge: a log (tiered) policy, as Lucene's `LogDocMergePolicy` and
//! tantivy's `LogMergePolicy`. A segment's tier is `floor(log_F(live documents))`; once
//! `F` segments share a tier they merge into one of the next tier, so an index built by
//! n single-document adds holds at most `(F - 1)` segments per tier, `O(F log_F n)` in
//! all. A segment whose tombstones exceed `max_deleted_ratio` of its documents is
//! rewritten without them (xtr-warp-rs compacts at 20% deleted).

use serde::{Deserialize, Serialize};

use crate::segment::SegmentMeta;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MergePolicy {
    /// Segments of one tier that make a merge (F); at least 2.
    pub merge_factor: usize,
    /// A segment with more than this share of its documents tombstoned is rewritten.
    pub max_deleted_ratio: f64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            merge_factor: 10,
            max_deleted_ratio: 0.2,
        }
    }
}

impl MergePolicy {
    /// A policy that never merges (for tests and benchmarks that want a given layout).
    pub fn never() -> Self {
        MergePolicy {
            merge_factor: usize::MAX,
            max_deleted_ratio: 1.0,
        }
    }

    fn tier(&self, live: usize) -> u32 {
        if live <= 1 || self.merge_factor == usize::MAX {
            return 0;
        }
        ((live as f64).ln() / (self.merge_factor.max(2) as f64).ln()).floor() as u32
    }

    /// Positions (in `segments`) of the segments to merge next, or none.
    pub fn plan(&self, segments: &[SegmentMeta]) -> Vec<usize> {
        // Tombstones first: a heavily deleted segment is rewritten alone.
        if let Some(i) = segments.iter().position(|s| {
            s.num_docs > 0
                && (s.num_docs - s.live_docs()) as f64 > self.max_deleted_ratio * s.num_docs as f64
        }) {
            return vec![i];
        }
        if self.merge_factor == usize::MAX {
            return Vec::new();
        }
        let mut tiers: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, s) in segments.iter().enumerate() {
            tiers.entry(self.tier(s.live_docs())).or_default().push(i);
        }
        tiers
            .into_values()
            .find(|members| members.len() >= self.merge_factor.max(2))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(docs: usize) -> SegmentMeta {
        let e = crate::segment::FileEntry {
            name: "x".into(),
            bytes: 0,
            crc32c: 0,
        };
        SegmentMeta {
            id: 0,
            num_docs: docs,
            num_vectors: docs,
            codec: None,
            store: crate::segment::StoreFiles {
                vectors: Some(e.clone()),
                kind: Default::default(),
                offsets: e.clone(),
                doc_ids: e,
                texts: None,
            },
            ids: None,
            plaid: None,
            muvera: None,
            splade: None,
            bm25: None,
            fields: None,
            deletes: None,
            generation: 0,
            build: serde_json::Value::Null,
        }
    }

    #[test]
    fn single_document_adds_keep_segments_logarithmic() {
        let p = MergePolicy::default();
        let mut segments: Vec<usize> = Vec::new();
        let mut most = 0;
        for _ in 0..5000 {
            segments.push(1);
            loop {
                let metas: Vec<SegmentMeta> = segments.iter().map(|&d| seg(d)).collect();
                let plan = p.plan(&metas);
                if plan.is_empty() {
                    break;
                }
                let merged: usize = plan.iter().map(|&i| segments[i]).sum();
                for &i in plan.iter().rev() {
                    segments.remove(i);
                }
                segments.push(merged);
            }
            most = most.max(segments.len());
        }
        // 5,000 documents: tiers 0..3, at most 9 segments each.
        assert!(most <= 9 * 4, "{most} segments at once");
        assert_eq!(segments.iter().sum::<usize>(), 5000);
    }
}
