use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::{Hit, MaxSim, TopK};
use crate::deadline::Deadline;
use crate::error::{IndexError, Result};
use crate::store::{MultiVectorRef, TokenStore};

/// Exact MaxSim of `query` against every document; best `k`, best first.
/// Runs on the current rayon pool (wrap in `ThreadPool::install` to bound threads).
pub fn search_exhaustive(store: &TokenStore, query: MultiVectorRef<'_, f32>, k: usize) -> Vec<Hit> {
    score_par(store, query, k, 0..store.num_docs(), Deadline::NONE).expect("no deadline")
}

/// [`search_exhaustive`] that stops with [`IndexError::DeadlineExceeded`] at `deadline`.
pub fn search_exhaustive_until(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    deadline: Deadline,
) -> Result<Vec<Hit>> {
    score_par(store, query, k, 0..store.num_docs(), deadline)
}

/// Exact MaxSim over the given candidate documents only (the rescoring step every
/// first stage ends in). Out-of-range candidates are ignored.
pub fn search_candidates(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    candidates: &[u32],
) -> Vec<Hit> {
    search_candidates_until(store, query, k, candidates, Deadline::NONE).expect("no deadline")
}

/// [`search_candidates`] that stops with [`IndexError::DeadlineExceeded`] at `deadline`.
pub fn search_candidates_until(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    candidates: &[u32],
    deadline: Deadline,
) -> Result<Vec<Hit>> {
    let n = store.num_docs();
    let docs = candidates.iter().map(|&c| c as usize).filter(|&c| c < n);
    score_par(store, query, k, docs.collect::<Vec<_>>(), deadline)
}

/// Documents scored between two looks at the clock (one look costs ~25 ns, one
/// SciFact-sized MaxSim ~70 µs).
const CLOCK_EVERY: usize = 16;

fn score_par<I>(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    docs: I,
    deadline: Deadline,
) -> Result<Vec<Hit>>
where
    I: IntoParallelIterator<Item = usize>,
    I::Iter: IndexedParallelIterator,
{
    let stop = AtomicBool::new(false);
    let top = docs
        .into_par_iter()
        .with_min_len(64)
        .fold(
            || (TopK::new(k), MaxSim::default(), 0usize),
            |(mut top, mut scorer, mut seen), i| {
                seen += 1;
                if seen % CLOCK_EVERY == 0 && deadline.expired() {
                    stop.store(true, Ordering::Relaxed);
                }
                if !stop.load(Ordering::Relaxed) {
                    let score = scorer.score(query, store.doc(i));
                    top.push(Hit {
                        doc: i as u32,
                        score,
                    });
                }
                (top, scorer, seen)
            },
        )
        .map(|(top, _, _)| top)
        .reduce(|| TopK::new(k), TopK::merge)
        .into_sorted();
    if stop.load(Ordering::Relaxed) {
        return Err(IndexError::DeadlineExceeded);
    }
    Ok(top)
}
