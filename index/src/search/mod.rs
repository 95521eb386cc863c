//! Search modes: which first stages produce candidates and how their results combine.
//!
//! Grammar (DESIGN.md): a stage name (`exhaustive`, `plaid`, `muvera`, `splade`, `bm25`);
//! stages joined by `+` mean the union of their candidates re-ranked by exact MaxSim;
//! `rrf:` before them means reciprocal-rank fusion of their rankings. A stage whose
//! component the index lacks is a [`IndexError::MissingComponent`] that says what the
//! index has; a stage whose part of the [`Query`] is missing is [`IndexError::QueryLacks`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod stages;

pub use stages::FirstStage;

use crate::allow::Allow;
use crate::component::Component;
use crate::deadline::Deadline;
use crate::error::{IndexError, Result};
use crate::filter::Filter;
use crate::muvera::MuveraParams;
use crate::plaid::PlaidParams;
use crate::reader::{DocAddress, Index, ScoredDoc};
use crate::sparse::SparseVector;
use crate::store::MultiVectorRef;

/// A first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Every document, scored by exact MaxSim.
    Exhaustive,
    Plaid,
    Muvera,
    Splade,
    Bm25,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Exhaustive => "exhaustive",
            Stage::Plaid => "plaid",
            Stage::Muvera => "muvera",
            Stage::Splade => "splade",
            Stage::Bm25 => "bm25",
        }
    }

    /// The index component the stage reads.
    pub fn component(self) -> Component {
        match self {
            Stage::Exhaustive => Component::Store,
            Stage::Plaid => Component::Plaid,
            Stage::Muvera => Component::Muvera,
            Stage::Splade => Component::Splade,
            Stage::Bm25 => Component::Bm25,
        }
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "exhaustive" => Ok(Stage::Exhaustive),
            "plaid" => Ok(Stage::Plaid),
            "muvera" => Ok(Stage::Muvera),
            "splade" => Ok(Stage::Splade),
            "bm25" => Ok(Stage::Bm25),
            other => Err(format!(
                "unknown first stage {other:?}: expected exhaustive, plaid, muvera, splade or bm25"
            )),
        }
    }
}

/// How to combine the stages' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Union of candidates, re-ranked by exact MaxSim on the stored vectors.
    MaxSimRescore,
    /// Reciprocal-rank fusion (k = 60) of each stage's ranking.
    Rrf,
}

/// A parsed `--mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub stages: Vec<Stage>,
    pub fusion: Fusion,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            stages: vec![Stage::Exhaustive],
            fusion: Fusion::MaxSimRescore,
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (fusion, rest) = match s.strip_prefix("rrf:") {
            Some(rest) => (Fusion::Rrf, rest),
            None => (Fusion::MaxSimRescore, s),
        };
        if rest.trim().is_empty() {
            return Err(format!("mode {s:?} names no first stage"));
        }
        let mut stages = Vec::new();
        for part in rest.split('+') {
            let stage: Stage = part.parse()?;
            if stages.contains(&stage) {
                return Err(format!("mode {s:?} names {} twice", stage.name()));
            }
            stages.push(stage);
        }
        Ok(Mode { stages, fusion })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fusion == Fusion::Rrf {
            write!(f, "rrf:")?;
        }
        let names: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        write!(f, "{}", names.join("+"))
    }
}

/// Per-query knobs of the first stages (each `None` = that stage's defaults for k).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    pub plaid: Option<PlaidParams>,
    pub muvera: Option<MuveraParams>,
    /// Candidates `splade` and `bm25` each hand to MaxSim re-ranking in a `+` mode
    /// (default [`sparse_candidates_for_k`]).
    #[serde(default)]
    pub sparse_candidates: Option<usize>,
    /// How the splade stage scores (both exact, identical rankings).
    #[serde(default)]
    pub sparse_scorer: SparseScorer,
    /// BM25 parameters; `None` = tantivy's own scorer (k1 1.2, b 0.75).
    #[serde(default)]
    pub bm25: Option<crate::lexical::Bm25Params>,
    /// With a filter, run `plaid` and `muvera` as exact MaxSim over the allowed documents
    /// when they are at most this share of the live documents (default
    /// [`FILTER_EXACT_BELOW`]; 0 never, 1 always).
    #[serde(default)]
    pub filter_exact_below: Option<f32>,
    /// Give up (with [`IndexError::DeadlineExceeded`]) once this passes.
    #[serde(skip)]
    pub deadline: Deadline,
}

/// Default [`SearchParams::filter_exact_below`]: at or below this share of the
/// collection, a filtered `plaid` or `muvera` search scores the allowed documents exactly
/// instead. Measured on SciFact (MiniLM, one thread, k 100; README "Filtered search"):
/// exact MaxSim over a 10% filter took p50 42.5 ms against PLAID's 40.6 ms (share 0.983)
/// and MUVERA's 71.6 ms; at 5%, 21.9 ms against 40.6 and 54.3; at 50%, 198 ms against
/// 48.9 and 131. So exact is as fast as PLAID at 10% and exact; MUVERA's break-even lies
/// higher (between 10% and 50%), but one threshold keeps the rule simple.
pub const FILTER_EXACT_BELOW: f32 = 0.1;

/// The documents a search may return, per segment: the live ones, and with a filter only
/// those it admits.
#[derive(Debug, Clone)]
pub struct Scope {
    allows: Vec<Allow>,
    /// Whether a filter restricts it.
    pub filtered: bool,
    /// Documents allowed, over every segment.
    pub allowed: usize,
    /// Live documents, over every segment.
    pub live: usize,
    /// Time spent evaluating the filter.
    pub filter_seconds: f64,
}

impl Scope {
    pub fn allow(&self, segment: usize) -> &Allow {
        &self.allows[segment]
    }
}

/// What a search ran: the mode as executed (a filtered approximate stage may become
/// exact), and what the filter allowed and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The mode run.
    pub mode: String,
    /// Whether `plaid`/`muvera` were replaced by exact MaxSim over the allowed documents.
    pub exact: bool,
    pub filtered: bool,
    pub allowed_docs: usize,
    pub live_docs: usize,
    pub filter_ms: f64,
}

/// Largest L2 norm a query vector may have. Encoders emit unit vectors; a norm far above
/// 1 is a client's mistake, and past ~1e19 scores overflow to infinity.
pub const MAX_QUERY_VECTOR_NORM: f32 = 1000.0;

/// The two exact SPLADE scorers. `Exhaustive` walks every posting into a dense
/// accumulator; `MaxScore` prunes (touches fewer postings) but costs more per posting. On
/// every collection measured (SciFact, synthetic up to 200,000 documents; see the README)
/// the exhaustive scorer was faster, so it is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparseScorer {
    #[default]
    Exhaustive,
    MaxScore,
}

/// Default candidates per lexical/sparse first stage for a final top-`k`: `max(k, 100)`.
/// Chosen on SciFact's *train* split (809 queries, `bm25+splade`, k = 100): 100
/// candidates each gave nDCG@10 0.7123 and Recall@100 0.9417 against exhaustive MaxSim's
/// 0.7104 and 0.9320; 400 gave 0.7104 / 0.9351 (the union's top 10 becomes MaxSim's own);
/// fewer than k cannot fill the ranking.
pub fn sparse_candidates_for_k(k: usize) -> usize {
    k.max(100)
}

/// A query as the stages read it: token vectors for MaxSim (`exhaustive`, `plaid`,
/// `muvera` and every `+` re-ranking), SPLADE weights for `splade`, text for `bm25`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    pub vectors: Option<MultiVectorRef<'a, f32>>,
    pub sparse: Option<&'a SparseVector>,
    pub text: Option<&'a str>,
    /// Only documents this filter admits.
    pub filter: Option<&'a Filter>,
}

impl<'a> Query<'a> {
    /// A query of token vectors only.
    pub fn vectors(v: MultiVectorRef<'a, f32>) -> Self {
        Query {
            vectors: Some(v),
            ..Query::default()
        }
    }
}

/// Reciprocal-rank fusion constant (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;

impl Index {
    /// Fail with the missing component's name if the index cannot run `mode`.
    /// Whether `mode`'s scores are approximate because the index keeps no f16 vectors
    /// (`--store int8|none`): every mode that scores by MaxSim. Sparse stages' own
    /// rankings are as exact as ever.
    pub fn scores_are_approximate(&self, mode: &Mode) -> bool {
        let maxsim = mode
            .stages
            .iter()
            .any(|s| matches!(s, Stage::Exhaustive | Stage::Plaid | Stage::Muvera))
            || (mode.fusion == Fusion::MaxSimRescore && mode.stages.len() > 1);
        maxsim && self.store_kind() != crate::StoreKind::F16
    }

    pub fn check_mode(&self, mode: &Mode) -> Result<()> {
        for stage in &mode.stages {
            if !self.has(stage.component()) {
                return Err(IndexError::MissingComponent {
                    mode: mode.to_string(),
                    component: stage.component().name().to_string(),
                    available: Component::list(self.components()),
                });
            }
        }
        Ok(())
    }

    /// Fail if `query` lacks what `mode` reads; returns the token vectors when it uses them.
    fn check_query<'q>(
        &self,
        mode: &Mode,
        query: &Query<'q>,
    ) -> Result<Option<MultiVectorRef<'q, f32>>> {
        let lacks = |stage: &str, needs| IndexError::QueryLacks {
            mode: mode.to_string(),
            stage: stage.to_string(),
            needs,
        };
        let rescores = mode.fusion == Fusion::MaxSimRescore && mode.stages.len() > 1;
        for &stage in &mode.stages {
            match stage {
                Stage::Splade if query.sparse.is_none() => {
                    return Err(lacks("splade", "SPLADE term weights"))
                }
                Stage::Bm25 if query.text.is_none() => return Err(lacks("bm25", "text")),
                Stage::Exhaustive | Stage::Plaid | Stage::Muvera if query.vectors.is_none() => {
                    return Err(lacks(stage.name(), "token vectors"))
                }
                _ => {}
            }
        }
        if rescores && query.vectors.is_none() {
            return Err(lacks("MaxSim re-ranking", "token vectors"));
        }
        if let Some(v) = query.vectors {
            if v.dim() != self.dim() {
                return Err(IndexError::Dimension {
                    expected: self.dim(),
                    found: v.dim(),
                });
            }
            check_query_vectors(v)?;
        }
        Ok(query.vectors)
    }

    /// The documents `filter` admits among the live ones, per segment (all live
    /// documents without one).
    pub fn scope(&self, filter: Option<&Filter>) -> Result<Scope> {
        let started = std::time::Instant::now();
        let mut allows = Vec::with_capacity(self.num_segments());
        let (mut allowed, mut live) = (0, 0);
        for s in 0..self.num_segments() {
            let alive = self.allow(s);
            let n = self.segment(s).num_docs();
            live += alive.count(n);
            let allow = match filter {
                None => alive,
                Some(f) => {
                    if f.uses_fields() && self.segment(s).fields().is_none() {
                        return Err(IndexError::InvalidArgument(
                            "the filter names fields but the index declares none (index with --field NAME:TYPE)".into(),
                        ));
                    }
                    alive.restricted_to(std::sync::Arc::new(f.evaluate(self.segment(s))?))
                }
            };
            allowed += allow.count(n);
            allows.push(allow);
        }
        Ok(Scope {
            allows,
            filtered: filter.is_some(),
            allowed,
            live,
            filter_seconds: filter.map_or(0.0, |_| started.elapsed().as_secs_f64()),
        })
    }

    /// The mode to run for `mode` under `scope`: with a selective filter (at most
    /// `filter_exact_below` of the live documents), `plaid` and `muvera` become exact
    /// MaxSim over the allowed documents (cheaper there, and exact).
    fn plan(&self, mode: &Mode, scope: &Scope, params: &SearchParams) -> (Mode, bool) {
        let below = params.filter_exact_below.unwrap_or(FILTER_EXACT_BELOW);
        let selective =
            scope.filtered && (scope.allowed as f64) <= f64::from(below) * scope.live as f64;
        let approximate = |s: &Stage| matches!(s, Stage::Plaid | Stage::Muvera);
        if !selective || !mode.stages.iter().any(approximate) || !self.has(Component::Store) {
            return (mode.clone(), false);
        }
        let mut stages: Vec<Stage> = Vec::new();
        for s in &mode.stages {
            let s = if approximate(s) {
                Stage::Exhaustive
            } else {
                *s
            };
            if !stages.contains(&s) {
                stages.push(s);
            }
        }
        (
            Mode {
                stages,
                fusion: mode.fusion,
            },
            true,
        )
    }

    /// The best `k` live documents for `query` under `mode`, best first (ties by
    /// external id), over every segment of the snapshot.
    pub fn search(
        &self,
        query: &Query<'_>,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<ScoredDoc>> {
        Ok(self.search_planned(query, k, mode, params)?.0)
    }

    /// [`Index::search`], also saying what ran ([`Plan`]).
    pub fn search_planned(
        &self,
        query: &Query<'_>,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<(Vec<ScoredDoc>, Plan)> {
        self.check_mode(mode)?;
        self.check_query(mode, query)?;
        let deadline = params.deadline;
        deadline.check()?;
        let scope = self.scope(query.filter)?;
        let (run, exact) = self.plan(mode, &scope, params);
        let hits = self.run_mode(query, k, &run, params, &scope)?;
        deadline.check()?;
        let plan = Plan {
            mode: run.to_string(),
            exact,
            filtered: scope.filtered,
            allowed_docs: scope.allowed,
            live_docs: scope.live,
            filter_ms: scope.filter_seconds * 1e3,
        };
        Ok((hits, plan))
    }

    fn run_mode(
        &self,
        query: &Query<'_>,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
        scope: &Scope,
    ) -> Result<Vec<ScoredDoc>> {
        let deadline = params.deadline;
        Ok(match (mode.fusion, mode.stages.as_slice()) {
            (_, [stage]) => self.stage_ranking(*stage, query, k, params, scope)?,
            (Fusion::MaxSimRescore, stages) => {
                let vectors = query.vectors.expect("checked by check_query");
                if stages.contains(&Stage::Exhaustive) {
                    return stages::exhaustive(self, scope, vectors, k, deadline);
                }
                let mut union = Vec::new();
                for s in stages {
                    let first = stages::prepare(self, *s, query, k, params)?;
                    union.extend(first.candidates(self, scope, deadline)?);
                    deadline.check()?;
                }
                union.sort_unstable();
                union.dedup();
                stages::rescore(self, scope, vectors, k, &union, deadline)?
            }
            (Fusion::Rrf, stages) => {
                let rankings = stages
                    .iter()
                    .map(|s| {
                        deadline.check()?;
                        self.stage_ranking(*s, query, k, params, scope)
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.reciprocal_rank_fusion(&rankings, k)
            }
        })
    }

    /// Exact MaxSim against every live document; the best `k`.
    pub fn search_exhaustive(&self, query: MultiVectorRef<'_, f32>, k: usize) -> Vec<ScoredDoc> {
        let scope = self.scope(None).expect("no filter");
        stages::exhaustive(self, &scope, query, k, Deadline::NONE).expect("no deadline")
    }

    /// One stage's own final ranking (the caller has checked mode and query).
    fn stage_ranking(
        &self,
        stage: Stage,
        query: &Query<'_>,
        k: usize,
        params: &SearchParams,
        scope: &Scope,
    ) -> Result<Vec<ScoredDoc>> {
        stages::prepare(self, stage, query, k, params)?.rank(self, scope, k, params.deadline)
    }

    /// The documents `stage` hands to MaxSim re-ranking in a `+` mode for a final
    /// top-`k` (also what `eval --stage-recall` measures). Checks mode and query.
    pub fn stage_candidates(
        &self,
        stage: Stage,
        query: &Query<'_>,
        k: usize,
        params: &SearchParams,
    ) -> Result<Vec<DocAddress>> {
        let mode = Mode {
            stages: vec![stage],
            fusion: Fusion::MaxSimRescore,
        };
        self.check_mode(&mode)?;
        self.check_query(&mode, query)?;
        let scope = self.scope(query.filter)?;
        let first = stages::prepare(self, stage, query, k, params)?;
        first.candidates(self, &scope, params.deadline)
    }

    /// RRF: `score(d) = Σ_rankings 1 / (RRF_K + rank(d))`, ranks from 1; best `k`, ties by
    /// external id.
    pub fn reciprocal_rank_fusion(&self, rankings: &[Vec<ScoredDoc>], k: usize) -> Vec<ScoredDoc> {
        let mut fused: std::collections::HashMap<DocAddress, f32> =
            std::collections::HashMap::new();
        for ranking in rankings {
            for (rank, hit) in ranking.iter().enumerate() {
                *fused.entry(hit.addr).or_insert(0.0) += 1.0 / (RRF_K + rank as f32 + 1.0);
            }
        }
        let mut all: Vec<ScoredDoc> = fused
            .into_iter()
            .map(|(addr, score)| ScoredDoc { addr, score })
            .collect();
        all.sort_by(|a, b| self.rank_cmp(a, b));
        all.truncate(k);
        all
    }
}

/// Refuse query vectors that are not finite or whose norm is far from an encoder's 1:
/// they would give infinite or meaningless scores.
pub fn check_query_vectors(v: MultiVectorRef<'_, f32>) -> Result<()> {
    for (i, row) in v.rows().enumerate() {
        if row.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::InvalidArgument(format!(
                "query vector {i} holds a non-finite value"
            )));
        }
        // In f64: a row of 3e38s has a finite norm that f32 squares would overflow.
        let norm = row
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm > f64::from(MAX_QUERY_VECTOR_NORM) {
            return Err(IndexError::InvalidArgument(format!(
                "query vector {i} has norm {norm:.3e}; query vectors must be L2-normalised (at most {MAX_QUERY_VECTOR_NORM})"
            )));
        }
    }
    Ok(())
}
