//! The first stages, one [`FirstStage`] per component, and the passes every mode is
//! made of: gathering a stage's candidates over the segments, exact MaxSim over given
//! documents (re-ranking), exhaustive MaxSim.
//!
//! A stage is prepared once per query with what every segment shares (PLAID's centroid
//! scores from the index's one codec, MUVERA's query FDE, BM25's index-wide statistics),
//! then asked for each segment's candidates among that segment's allowed documents.
//! Stage scores are comparable across segments (one codec, one FDE encoder, BM25 with
//! the whole index's statistics, SPLADE dequantised), so the best `depth` over all
//! segments are kept. Final rankings break score ties by external id, so a result does
//! not depend on how the documents are spread over segments.

use super::{Query, Scope, SearchParams, SparseScorer, Stage};
use crate::allow::Allow;
use crate::deadline::Deadline;
use crate::error::Result;
use crate::lexical::{Bm25Params, Bm25Statistics};
use crate::maxsim::{Hit, Scan};
use crate::muvera::MuveraParams;
use crate::plaid::{PlaidParams, PlaidQuery};
use crate::reader::{DocAddress, Index, ScoredDoc};
use crate::sparse::SparseVector;
use crate::store::MultiVectorRef;

/// A first stage, prepared for one query: the work every segment shares is done, and
/// each segment is asked for its candidates among its allowed documents.
pub trait FirstStage: Sync {
    /// The stage's best candidates in segment `segment` among `allow`, best first, at
    /// most `depth`, with the stage's own scores (comparable across segments).
    fn segment_candidates(
        &self,
        index: &Index,
        segment: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>>;

    /// How many candidates the stage hands to MaxSim re-ranking in a `+` mode.
    fn depth(&self) -> usize;

    /// Those candidates, over every segment, among the documents `scope` allows.
    fn candidates(
        &self,
        index: &Index,
        scope: &Scope,
        deadline: Deadline,
    ) -> Result<Vec<DocAddress>> {
        Ok(gather(index, scope, self, self.depth(), deadline)?
            .into_iter()
            .map(|h| h.addr)
            .collect())
    }

    /// The stage's own top `k`: by default the best `k` by the stage's own scores (the
    /// sparse stages); the vector stages re-rank their candidates by exact MaxSim.
    fn rank(
        &self,
        index: &Index,
        scope: &Scope,
        k: usize,
        deadline: Deadline,
    ) -> Result<Vec<ScoredDoc>> {
        gather(index, scope, self, k, deadline)
    }
}

/// Every allowed document, scored by exact MaxSim.
struct ExhaustiveStage<'q> {
    vectors: MultiVectorRef<'q, f32>,
    /// For segments without vectors: the query prepared once for all of them.
    codes: Codes<'q>,
}

impl FirstStage for ExhaustiveStage<'_> {
    fn segment_candidates(
        &self,
        index: &Index,
        s: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>> {
        maxsim_segment(index, s, allow, &self.codes, depth, None, Deadline::NONE)
    }

    fn depth(&self) -> usize {
        usize::MAX
    }

    fn candidates(
        &self,
        index: &Index,
        scope: &Scope,
        _deadline: Deadline,
    ) -> Result<Vec<DocAddress>> {
        Ok(index
            .live_docs()
            .filter(|a| scope.allow(a.segment as usize).contains(a.doc))
            .collect())
    }

    fn rank(
        &self,
        index: &Index,
        scope: &Scope,
        k: usize,
        deadline: Deadline,
    ) -> Result<Vec<ScoredDoc>> {
        exhaustive(index, scope, self.vectors, k, deadline)
    }
}

struct PlaidStage<'q> {
    vectors: MultiVectorRef<'q, f32>,
    query: PlaidQuery,
    params: PlaidParams,
    k: usize,
}

impl FirstStage for PlaidStage<'_> {
    fn segment_candidates(
        &self,
        index: &Index,
        s: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>> {
        let seg = index.segment(s);
        let plaid = seg.plaid().expect("the index has plaid");
        let mut hits = plaid.candidates(seg.store(), &self.query, self.k, &self.params, allow);
        hits.truncate(depth);
        Ok(hits)
    }

    /// The best `ndocs / 4` by full centroid interaction (one codec: scores compare).
    fn depth(&self) -> usize {
        (self.params.ndocs / 4).max(self.k)
    }

    fn rank(
        &self,
        index: &Index,
        scope: &Scope,
        k: usize,
        deadline: Deadline,
    ) -> Result<Vec<ScoredDoc>> {
        let mut candidates = self.candidates(index, scope, deadline)?;
        if let Some(margin) = self.params.refine_margin {
            let keep = self.params.exact_docs.max(k);
            candidates = self.refine(index, scope, &candidates, margin, keep);
            deadline.check()?;
        }
        let codes = Codes::new(self.vectors, self.query.int8_scores());
        match self.params.rescore {
            crate::Rescore::Exact => rescore_with(index, scope, &codes, k, &candidates, deadline),
            crate::Rescore::Decompressed => {
                rescore_decompressed(index, scope, &codes, k, &candidates)
            }
        }
    }
}

impl PlaidStage<'_> {
    /// The best `keep` of `docs` by token-pruned MaxSim (`plaid/refine.rs`), on the
    /// vectors the last stage will read (stored or decompressed); scores compare across
    /// segments (every computed pair is a true dot product), ties by external id.
    fn refine(
        &self,
        index: &Index,
        scope: &Scope,
        docs: &[DocAddress],
        margin: f32,
        keep: usize,
    ) -> Vec<DocAddress> {
        if docs.len() <= keep {
            return docs.to_vec();
        }
        let codec = index.codec().expect("the index has plaid");
        let mut all = Vec::new();
        for (s, mut docs) in by_segment(docs) {
            let seg = index.segment(s);
            let allow = scope.allow(s);
            docs.retain(|&d| allow.contains(d));
            let plaid = seg.plaid().expect("the index has plaid");
            let hits = plaid.refine(
                codec,
                seg.store(),
                &self.query,
                self.vectors,
                &docs,
                margin,
                self.params.rescore,
            );
            all.extend(hits.into_iter().map(|h| scored(s, h)));
        }
        best(index, all, keep).into_iter().map(|h| h.addr).collect()
    }
}

struct MuveraStage<'q> {
    vectors: MultiVectorRef<'q, f32>,
    fde: Vec<f32>,
    params: MuveraParams,
}

impl FirstStage for MuveraStage<'_> {
    fn segment_candidates(
        &self,
        index: &Index,
        s: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>> {
        let muvera = index.segment(s).muvera().expect("the index has muvera");
        let params = MuveraParams {
            candidates: depth,
            ef_search: self.params.ef_search.max(depth),
        };
        Ok(muvera.candidates(&self.fde, &params, allow))
    }

    /// The best `candidates` by FDE inner product (one seeded encoder: scores compare).
    fn depth(&self) -> usize {
        self.params.candidates
    }

    fn rank(
        &self,
        index: &Index,
        scope: &Scope,
        k: usize,
        deadline: Deadline,
    ) -> Result<Vec<ScoredDoc>> {
        let candidates = self.candidates(index, scope, deadline)?;
        rescore(index, scope, self.vectors, k, &candidates, deadline)
    }
}

struct SpladeStage<'q> {
    query: &'q SparseVector,
    scorer: SparseScorer,
    depth: usize,
}

impl FirstStage for SpladeStage<'_> {
    fn segment_candidates(
        &self,
        index: &Index,
        s: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>> {
        let splade = index.segment(s).splade().expect("the index has splade");
        Ok(match self.scorer {
            SparseScorer::Exhaustive => splade.search_exhaustive(self.query, depth, allow).0,
            SparseScorer::MaxScore => splade.search(self.query, depth, allow).0,
        })
    }

    fn depth(&self) -> usize {
        self.depth
    }
}

struct Bm25Stage<'q> {
    text: &'q str,
    params: Option<Bm25Params>,
    stats: Bm25Statistics,
    depth: usize,
}

impl FirstStage for Bm25Stage<'_> {
    fn segment_candidates(
        &self,
        index: &Index,
        s: usize,
        allow: &Allow,
        depth: usize,
    ) -> Result<Vec<Hit>> {
        let bm25 = index.segment(s).bm25().expect("the index has bm25");
        match self.params {
            None => bm25.search(self.text, depth, &self.stats, allow),
            Some(p) => bm25.search_with(self.text, depth, p, &self.stats, allow),
        }
    }

    fn depth(&self) -> usize {
        self.depth
    }
}

/// Prepare `stage` for `query` (checked by the caller): the work all segments share.
/// The one place a stage name becomes its implementation.
pub(super) fn prepare<'q>(
    index: &Index,
    stage: Stage,
    query: &Query<'q>,
    k: usize,
    params: &SearchParams,
) -> Result<Box<dyn FirstStage + 'q>> {
    let vectors = || query.vectors.expect("checked by check_query");
    let sparse_depth = params
        .sparse_candidates
        .unwrap_or_else(|| super::sparse_candidates_for_k(k));
    Ok(match stage {
        Stage::Exhaustive => Box::new(ExhaustiveStage {
            vectors: vectors(),
            codes: Codes::new(vectors(), None),
        }),
        Stage::Plaid => {
            let p = params.plaid.unwrap_or_else(|| PlaidParams::for_k(k));
            let codec = index.codec().expect("the index has plaid");
            Box::new(PlaidStage {
                vectors: vectors(),
                query: codec.prepare(vectors(), &p),
                params: p,
                k,
            })
        }
        Stage::Muvera => {
            let p = params.muvera.unwrap_or_else(|| MuveraParams::for_k(k));
            let encoder = index.fde_encoder().expect("the index has muvera");
            Box::new(MuveraStage {
                vectors: vectors(),
                fde: encoder.encode_query(vectors().as_slice()),
                params: p,
            })
        }
        Stage::Splade => Box::new(SpladeStage {
            query: query.sparse.expect("checked by check_query"),
            scorer: params.sparse_scorer,
            depth: sparse_depth,
        }),
        Stage::Bm25 => {
            let segments: Vec<_> = (0..index.num_segments())
                .filter_map(|s| index.segment(s).bm25())
                .collect();
            Box::new(Bm25Stage {
                text: query.text.expect("checked by check_query"),
                params: params.bm25,
                stats: Bm25Statistics::new(&segments),
                depth: sparse_depth,
            })
        }
    })
}

/// A stage's best `depth` candidates over every segment, by the stage's scores (ties by
/// external id).
pub(super) fn gather<S: FirstStage + ?Sized>(
    index: &Index,
    scope: &Scope,
    stage: &S,
    depth: usize,
    deadline: Deadline,
) -> Result<Vec<ScoredDoc>> {
    let mut all = Vec::new();
    for s in 0..index.num_segments() {
        let allow = scope.allow(s);
        if allow.is_none_allowed() {
            continue;
        }
        for hit in stage.segment_candidates(index, s, allow, depth)? {
            all.push(scored(s, hit));
        }
        deadline.check()?;
    }
    Ok(best(index, all, depth))
}

fn scored(segment: usize, h: Hit) -> ScoredDoc {
    ScoredDoc {
        addr: DocAddress {
            segment: segment as u32,
            doc: h.doc,
        },
        score: h.score,
    }
}

/// The best `k` of `all`, ties by external id.
fn best(index: &Index, mut all: Vec<ScoredDoc>, k: usize) -> Vec<ScoredDoc> {
    all.sort_by(|a, b| index.rank_cmp(a, b));
    all.truncate(k);
    all
}

/// MaxSim in segment `s` over `docs` (all when `None`) among `allow`: on the kept
/// vectors (exact for f16, approximate for int8), or, in a segment that keeps none, on
/// vectors decoded from PLAID's codes and residuals (approximate).
fn maxsim_segment(
    index: &Index,
    s: usize,
    allow: &Allow,
    codes: &Codes<'_>,
    k: usize,
    docs: Option<&[u32]>,
    deadline: Deadline,
) -> Result<Vec<Hit>> {
    let query = codes.vectors;
    let seg = index.segment(s);
    if seg.store().has_vectors() {
        let scan = Scan {
            allow: allow.clone(),
            ranks: Some(seg.ids().ranks()),
            deadline,
            ..Scan::new(seg.store(), query, k)
        };
        return match docs {
            None => scan.all(),
            Some(d) => scan.candidates(d),
        };
    }
    let (codec, plaid) = index
        .codec()
        .zip(seg.plaid())
        .expect("a store without vectors is only built with plaid");
    let n = seg.store().num_docs() as u32;
    let docs: Vec<u32> = match docs {
        None => (0..n).filter(|&d| allow.contains(d)).collect(),
        Some(d) => d
            .iter()
            .copied()
            .filter(|&d| d < n && allow.contains(d))
            .collect(),
    };
    deadline.check()?;
    let q = codes.get(codec);
    Ok(plaid.rescore_decompressed(codec, seg.store(), q, k, &docs, seg.ids().ranks()))
}

/// The query prepared for scoring straight from PLAID codes (`maxsim::codes`: segments
/// that keep no vectors, `--rescore decompressed`), made on first need, once per query:
/// with `table`, PLAID's int8 centroid table already computed for it.
pub(super) struct Codes<'q> {
    vectors: MultiVectorRef<'q, f32>,
    table: Option<&'q [f32]>,
    once: std::sync::OnceLock<crate::maxsim::codes::CodesQuery<'q>>,
}

impl<'q> Codes<'q> {
    pub(super) fn new(vectors: MultiVectorRef<'q, f32>, table: Option<&'q [f32]>) -> Self {
        Codes {
            vectors,
            table,
            once: std::sync::OnceLock::new(),
        }
    }

    fn get(&self, codec: &crate::plaid::PlaidCodec) -> &crate::maxsim::codes::CodesQuery<'q> {
        self.once
            .get_or_init(|| codec.codes_query(self.vectors, self.table))
    }
}

/// MaxSim against every live document of every segment (exact on f16 stores); the
/// best `k`.
pub(super) fn exhaustive(
    index: &Index,
    scope: &Scope,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    deadline: Deadline,
) -> Result<Vec<ScoredDoc>> {
    let mut all = Vec::new();
    let codes = Codes::new(query, None);
    for s in 0..index.num_segments() {
        let hits = maxsim_segment(index, s, scope.allow(s), &codes, k, None, deadline)?;
        all.extend(hits.into_iter().map(|h| scored(s, h)));
    }
    Ok(best(index, all, k))
}

/// `docs` grouped by segment, each group's document numbers ascending.
fn by_segment(docs: &[DocAddress]) -> Vec<(usize, Vec<u32>)> {
    let mut sorted = docs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(usize, Vec<u32>)> = Vec::new();
    for a in sorted {
        match out.last_mut() {
            Some((s, v)) if *s == a.segment as usize => v.push(a.doc),
            _ => out.push((a.segment as usize, vec![a.doc])),
        }
    }
    out
}

/// MaxSim over the live documents among `docs` (exact on f16 stores, see
/// [`maxsim_segment`]); the best `k` (the re-ranking step every first stage ends in).
pub(super) fn rescore(
    index: &Index,
    scope: &Scope,
    query: MultiVectorRef<'_, f32>,
    k: usize,
    docs: &[DocAddress],
    deadline: Deadline,
) -> Result<Vec<ScoredDoc>> {
    rescore_with(index, scope, &Codes::new(query, None), k, docs, deadline)
}

/// [`rescore`] with the query's [`Codes`] given (PLAID's, which can lend its table).
fn rescore_with(
    index: &Index,
    scope: &Scope,
    codes: &Codes<'_>,
    k: usize,
    docs: &[DocAddress],
    deadline: Deadline,
) -> Result<Vec<ScoredDoc>> {
    let mut all = Vec::new();
    for (s, docs) in by_segment(docs) {
        let hits = maxsim_segment(index, s, scope.allow(s), codes, k, Some(&docs), deadline)?;
        all.extend(hits.into_iter().map(|h| scored(s, h)));
    }
    Ok(best(index, all, k))
}

/// MaxSim straight from PLAID's codes and residuals (`maxsim::codes`, what an index
/// without vectors scores by) in every segment; the best `k`.
fn rescore_decompressed(
    index: &Index,
    scope: &Scope,
    codes: &Codes<'_>,
    k: usize,
    docs: &[DocAddress],
) -> Result<Vec<ScoredDoc>> {
    let codec = index.codec().expect("the index has plaid");
    let query = codes.get(codec);
    let mut all = Vec::new();
    for (s, mut docs) in by_segment(docs) {
        let seg = index.segment(s);
        let allow = scope.allow(s);
        docs.retain(|&d| allow.contains(d));
        let plaid = seg.plaid().expect("the index has plaid");
        let hits =
            plaid.rescore_decompressed(codec, seg.store(), query, k, &docs, seg.ids().ranks());
        all.extend(hits.into_iter().map(|h| scored(s, h)));
    }
    Ok(best(index, all, k))
}
