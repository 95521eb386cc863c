use rayon::prelude::*;

use super::{Hit, MaxSim, TopK};
use crate::store::{MultiVectorRef, TokenStore};

/// Exact MaxSim of `query` against every document; best `k`, best first.
/// Runs on the current rayon pool (wrap in `ThreadPool::install` to bound threads).
pub fn search_exhaustive(store: &TokenStore, query: MultiVectorRef<'_, f32>, k: usize) -> Vec<Hit> {
    score_par(store, query, k, 0..store.num_docs())
}

/// Exact MaxSim over the given candidate documents only (the rescoring step every
/// first stage ends in). Out-of-range candidates are ignored.
pub fn search_candidates(
    store: &TokenStore,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    candidates: &[u32],
) -> Vec<Hit> {
    let n = store.num_docs();
    let docs = candidates.iter().map(|&c| c as usize).filter(|&c| c < n);
    score_par(store, query, k, docs.collect::<Vec<_>>())
}

fn score_par<I>(store: &TokenStore, query: MultiVectorRef<'_, f32>, k: usize, docs: I) -> Vec<Hit>
where
    I: IntoParallelIterator<Item = usize>,
    I::Iter: IndexedParallelIterator,
{
    docs.into_par_iter()
        .with_min_len(64)
        .fold(
            || (TopK::new(k), MaxSim::default()),
            |(mut top, mut scorer), i| {
                let score = scorer.score(query, store.doc(i));
                top.push(Hit {
                    doc: i as u32,
                    score,
                });
                (top, scorer)
            },
        )
        .map(|(top, _)| top)
        .reduce(|| TopK::new(k), TopK::merge)
        .into_sorted()
}
