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
    /// No merge makes a segment of more live documents than this (`None`: no cap).
    /// A MUVERA segment's HNSW holds all its documents' FDEs in memory while it is
    /// built, so the CLI caps merges at the documents whose FDEs fit in half the
    /// memory budget ([`MergePolicy::for_fde_budget`]); `compact` is not capped.
    pub max_merged_docs: Option<usize>,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            merge_factor: 10,
            max_deleted_ratio: 0.2,
            max_merged_docs: None,
        }
    }
}

impl MergePolicy {
    /// A policy that never merges (for tests and benchmarks that want a given layout).
    pub fn never() -> Self {
        MergePolicy {
            merge_factor: usize::MAX,
            max_deleted_ratio: 1.0,
            max_merged_docs: None,
        }
    }

    /// The default policy, with merges capped at the documents whose FDEs
    /// (`fde_bytes_per_doc` each) fit in half of `budget` bytes (at least 1).
    pub fn for_fde_budget(fde_bytes_per_doc: u64, budget: u64) -> Self {
        MergePolicy {
            max_merged_docs: Some(((budget / 2) / fde_bytes_per_doc.max(1)).max(1) as usize),
            ..MergePolicy::default()
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
        let cap = self.max_merged_docs.unwrap_or(usize::MAX);
        tiers
            .into_values()
            .filter(|members| members.len() >= self.merge_factor.max(2))
            .map(|members| {
                // The whole tier, as without a cap, unless it would make a segment above
                // the cap: then its smallest segments that fit, if two or more do.
                let live = |i: usize| segments[i].live_docs();
                if members.iter().map(|&i| live(i)).sum::<usize>() <= cap {
                    return members;
                }
                let mut by_size = members;
                by_size.sort_by_key(|&i| live(i));
                let mut total = 0usize;
                let mut take: Vec<usize> = by_size
                    .into_iter()
                    .take_while(|&i| {
                        total += live(i);
                        total <= cap
                    })
                    .collect();
                take.sort_unstable();
                if take.len() >= 2 {
                    take
                } else {
                    Vec::new()
                }
            })
            .find(|plan| !plan.is_empty())
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

    /// Merge per `p` after every add of `batch` documents, `adds` times; the segments.
    fn simulate(p: &MergePolicy, adds: usize, batch: usize) -> (Vec<usize>, usize) {
        let mut segments: Vec<usize> = Vec::new();
        let mut most = 0;
        for _ in 0..adds {
            segments.push(batch);
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
        (segments, most)
    }

    #[test]
    fn a_cap_bounds_every_merged_segment_and_still_merges_below_it() {
        let capped = MergePolicy::for_fde_budget(80 * 1024, 1000 * 80 * 1024 * 2);
        assert_eq!(capped.max_merged_docs, Some(1000));
        let (segments, _) = simulate(&capped, 3000, 7);
        assert_eq!(segments.iter().sum::<usize>(), 21_000);
        assert!(segments.iter().all(|&d| d <= 1000), "{segments:?}");
        // Merging went on up to the cap: few segments far below it are left.
        assert!(
            segments.len() <= 21_000 / 500 + 20,
            "{} segments",
            segments.len()
        );
        assert!(
            segments.iter().filter(|&&d| d > 500).count() >= 15,
            "{segments:?}"
        );
        // Without the cap the same adds make segments far above it.
        let (free, _) = simulate(&MergePolicy::default(), 3000, 7);
        assert!(free.iter().any(|&d| d > 1000), "{free:?}");
    }

    #[test]
    fn single_document_adds_keep_segments_logarithmic() {
        let (segments, most) = simulate(&MergePolicy::default(), 5000, 1);
        // 5,000 documents: tiers 0..3, at most 9 segments each.
        assert!(most <= 9 * 4, "{most} segments at once");
        assert_eq!(segments.iter().sum::<usize>(), 5000);
    }
}
