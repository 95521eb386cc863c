use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::{Hit, MaxSim, TopK};
use crate::allow::Allow;
use crate::deadline::Deadline;
use crate::error::{IndexError, Result};
use crate::store::{MultiVectorRef, TokenStore};

/// Exact MaxSim of `query` against every document of `store`; best `k`, best first,
/// ties to the lower document number. Runs on the current rayon pool (wrap in
/// `ThreadPool::install` to bound threads).
pub fn search_exhaustive(store: &TokenStore, query: MultiVectorRef<'_, f32>, k: usize) -> Vec<Hit> {
    let scan = Scan::new(store, query, k);
    scan.run(0..store.num_docs()).expect("no deadline")
}

/// Exact MaxSim over the given candidate documents only (the rescoring step every
/// first stage ends in). Out-of-range candidates are ignored.
pub fn search_candidates(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    candidates: &[u32],
) -> Vec<Hit> {
    Scan::new(store, query, k)
        .candidates(candidates)
        .expect("no deadline")
}

/// [`search_exhaustive`] that stops with [`IndexError::DeadlineExceeded`] at `deadline`.
pub fn search_exhaustive_until(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    deadline: Deadline,
) -> Result<Vec<Hit>> {
    Scan {
        deadline,
        ..Scan::new(store, query, k)
    }
    .run(0..store.num_docs())
}

/// One exact-MaxSim pass over some documents of one segment's store.
pub struct Scan<'a> {
    pub store: &'a TokenStore,
    pub query: MultiVectorRef<'a, f32>,
    pub k: usize,
    /// Documents the scan may return (the rest are skipped unscored).
    pub allow: Allow,
    /// Tie key of each document (its id's rank in the segment); `None`: the document number.
    pub ranks: Option<&'a [u32]>,
    pub deadline: Deadline,
}

/// Documents scored between two looks at the clock (one look costs ~25 ns, one
/// SciFact-sized MaxSim ~70 µs).
const CLOCK_EVERY: usize = 16;

impl<'a> Scan<'a> {
    pub fn new(store: &'a TokenStore, query: MultiVectorRef<'a, f32>, k: usize) -> Self {
        Scan {
            store,
            query,
            k,
            allow: Allow::all(),
            ranks: None,
            deadline: Deadline::NONE,
        }
    }

    /// Every allowed document of the store.
    pub fn all(&self) -> Result<Vec<Hit>> {
        self.run(0..self.store.num_docs())
    }

    /// The allowed documents among `candidates` (out-of-range ones ignored).
    pub fn candidates(&self, candidates: &[u32]) -> Result<Vec<Hit>> {
        let n = self.store.num_docs();
        let docs: Vec<usize> = candidates
            .iter()
            .map(|&c| c as usize)
            .filter(|&c| c < n)
            .collect();
        self.run(docs)
    }

    fn run<I>(&self, docs: I) -> Result<Vec<Hit>>
    where
        I: IntoParallelIterator<Item = usize>,
        I::Iter: IndexedParallelIterator,
    {
        let stop = AtomicBool::new(false);
        // An int8 store scores against the query quantised once (`int8`).
        let query_i8 = (self.store.kind() == crate::segment::StoreKind::Int8)
            .then(|| super::int8::QueryI8::new(self.query));
        let query_i8 = query_i8.as_ref();
        let (store, query, allow, ranks, deadline) = (
            self.store,
            self.query,
            &self.allow,
            self.ranks,
            self.deadline,
        );
        let top = docs
            .into_par_iter()
            .with_min_len(64)
            .fold(
                || (TopK::new(self.k), MaxSim::default(), 0usize),
                |(mut top, mut scorer, mut seen), i| {
                    seen += 1;
                    if seen % CLOCK_EVERY == 0 && deadline.expired() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if !stop.load(Ordering::Relaxed) && allow.contains(i as u32) {
                        let score = scorer.score_rows(query, query_i8, store.rows(i));
                        let tie = ranks.map_or(i as u32, |r| r[i]);
                        top.push_tied(
                            Hit {
                                doc: i as u32,
                                score,
                            },
                            tie,
                        );
                    }
                    (top, scorer, seen)
                },
            )
            .map(|(top, _, _)| top)
            .reduce(|| TopK::new(self.k), TopK::merge)
            .into_sorted();
        if stop.load(Ordering::Relaxed) {
            return Err(IndexError::DeadlineExceeded);
        }
        Ok(top)
    }
}
