//! Per-request overrides of the first stages' knobs: the one shape the command line's
//! flags (`cli::SearchParamArgs`) and the HTTP API's `params` object both turn into, then
//! into the library's [`SearchParams`] for a given k.

use serde::{Deserialize, Serialize};
use tessera_index::lexical::Bm25Params;
use tessera_index::{MuveraParams, PlaidParams, Rescore, SearchParams, SparseScorer};

/// First-stage knobs a caller may set; `None` keeps the default for k (DESIGN.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParamOverrides {
    /// PLAID: centroids probed per query token [default: 1 for k<=10, 4 for k<=100, else 4].
    pub ncells: Option<u32>,
    /// PLAID: centroid pruning threshold [default: 0.5 / 0.45 / 0.4 by k].
    pub centroid_score_threshold: Option<f32>,
    /// PLAID: documents kept after pruned centroid interaction; ndocs/4 reach exact MaxSim
    /// [default: 256 / 1536 / max(4k, 4096) by k].
    pub ndocs: Option<u32>,
    /// PLAID: score survivors on the stored f16 vectors (exact) or on decompressed residuals.
    pub rescore: Option<RescoreChoice>,
    /// PLAID: refine the ndocs/4 survivors by token-pruned MaxSim, computing a query
    /// token's dot products only with document tokens whose centroid score is within this
    /// margin of its best; a negative value turns refinement off.
    pub refine_margin: Option<f32>,
    /// PLAID: with refinement, how many of the best refined documents get full MaxSim.
    pub exact_docs: Option<u32>,
    /// MUVERA: documents taken from the HNSW and re-ranked by exact MaxSim
    /// [default: max(10k, 1000)].
    pub candidates: Option<u32>,
    /// MUVERA: HNSW search breadth [default: the number of candidates].
    pub ef_search: Option<u32>,
    /// splade and bm25: documents each hands to exact MaxSim re-ranking in a `+` mode
    /// [default: max(k, 100)].
    pub sparse_candidates: Option<u32>,
    /// splade: exhaustive (the faster on every collection measured) or maxscore (dynamic
    /// pruning); both exact, identical rankings [default: exhaustive].
    pub sparse_scorer: Option<SparseScorerChoice>,
    /// bm25: score with this k1 instead of tantivy's fixed scorer (k1 1.2, b 0.75).
    pub bm25_k1: Option<f32>,
    /// bm25: score with this b (Anserini: 0.4).
    pub bm25_b: Option<f32>,
    /// With a filter: run plaid and muvera as exact MaxSim over the allowed documents
    /// when they are at most this share of the collection (0 never, 1 always)
    /// [default: 0.1].
    pub filter_exact_below: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SparseScorerChoice {
    Exhaustive,
    Maxscore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RescoreChoice {
    Exact,
    Decompressed,
}

impl ParamOverrides {
    /// The range checks the command line applies, for values that arrive as JSON.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("ncells", self.ncells),
            ("ndocs", self.ndocs),
            ("exact_docs", self.exact_docs),
            ("candidates", self.candidates),
            ("ef_search", self.ef_search),
            ("sparse_candidates", self.sparse_candidates),
        ] {
            if v == Some(0) {
                return Err(format!("params.{name} must be at least 1"));
            }
        }
        if self
            .centroid_score_threshold
            .is_some_and(|t| !t.is_finite())
        {
            return Err("params.centroid_score_threshold must be a finite number".into());
        }
        if self.refine_margin.is_some_and(|m| m.is_nan()) {
            return Err("params.refine_margin must be a number".into());
        }
        if self.bm25_k1.is_some_and(|k| !(k.is_finite() && k >= 0.0)) {
            return Err("bm25_k1 must be a finite number >= 0".into());
        }
        if self.bm25_b.is_some_and(|b| !(0.0..=1.0).contains(&b)) {
            return Err("bm25_b must be in 0..=1".into());
        }
        if self
            .filter_exact_below
            .is_some_and(|f| !(0.0..=1.0).contains(&f))
        {
            return Err("params.filter_exact_below must be in 0..=1".into());
        }
        Ok(())
    }

    /// The library's parameters for a top-`k` search: defaults for k, then these.
    pub fn params(&self, k: usize) -> SearchParams {
        let muvera = (self.candidates.is_some() || self.ef_search.is_some()).then(|| {
            let mut p = MuveraParams::for_k(k);
            if let Some(c) = self.candidates {
                p.candidates = c as usize;
                p.ef_search = p.ef_search.max(p.candidates);
            }
            if let Some(e) = self.ef_search {
                p.ef_search = e as usize;
            }
            p
        });
        let touches_plaid = self.ncells.is_some()
            || self.centroid_score_threshold.is_some()
            || self.ndocs.is_some()
            || self.rescore.is_some()
            || self.refine_margin.is_some()
            || self.exact_docs.is_some();
        let plaid = touches_plaid.then(|| {
            let mut p = PlaidParams::for_k(k);
            if let Some(n) = self.ncells {
                p.ncells = n as usize;
            }
            if let Some(t) = self.centroid_score_threshold {
                p.centroid_score_threshold = t;
            }
            if let Some(n) = self.ndocs {
                p.ndocs = n as usize;
            }
            if let Some(m) = self.refine_margin {
                p.refine_margin = (m >= 0.0).then_some(m);
            }
            if let Some(n) = self.exact_docs {
                p.exact_docs = n as usize;
            }
            if let Some(r) = self.rescore {
                p.rescore = match r {
                    RescoreChoice::Exact => Rescore::Exact,
                    RescoreChoice::Decompressed => Rescore::Decompressed,
                };
            }
            p
        });
        SearchParams {
            plaid,
            muvera,
            sparse_candidates: self.sparse_candidates.map(|c| c as usize),
            sparse_scorer: match self.sparse_scorer {
                None | Some(SparseScorerChoice::Exhaustive) => SparseScorer::Exhaustive,
                Some(SparseScorerChoice::Maxscore) => SparseScorer::MaxScore,
            },
            bm25: (self.bm25_k1.is_some() || self.bm25_b.is_some()).then(|| Bm25Params {
                k1: self.bm25_k1.unwrap_or(Bm25Params::TANTIVY.k1),
                b: self.bm25_b.unwrap_or(Bm25Params::TANTIVY.b),
            }),
            filter_exact_below: self.filter_exact_below,
            deadline: Default::default(),
        }
    }
}
