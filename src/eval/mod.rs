//! BEIR evaluation: load a dataset split, run every judged query through a [`Searcher`],
//! drop self-hits, compute trec_eval-compatible metrics, time the search.

pub mod beir;
pub mod metrics;
pub mod report;
pub mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tessera_index::store::MultiVector;
use tessera_index::{Fusion, Mode, PlaidParams, SearchParams, Stage};

pub use beir::BeirDataset;
pub use metrics::{evaluate, Evaluation, Metric, Qrels, Run};

use crate::search::{EncodedQuery, Searcher};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Dataset { path: PathBuf, reason: String },
}

/// How to run an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub mode: Mode,
    pub params: SearchParams,
    /// Also run exhaustive search and compare (recall of the mode's top-k, latency ratio).
    pub compare_exhaustive: bool,
    /// Report each first stage's recall of the exhaustive top-k.
    pub stage_recall: bool,
    pub metrics: Vec<Metric>,
    /// Threads for search (query encoding uses candle's own threads).
    pub threads: usize,
    pub progress: bool,
    /// Search (every mode, exhaustive comparisons too) only among documents it admits.
    pub filter: Option<tessera_index::Filter>,
    /// `--reference-run`: sweep rows also report their share of this run's top-k.
    pub reference: Option<Run>,
}

impl EvalOptions {
    /// How many results each query retrieves: the largest metric cutoff.
    pub fn retrieval_depth(&self) -> usize {
        self.metrics.iter().map(|m| m.cutoff()).max().unwrap_or(100)
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `ms` (empty -> zeros).
    pub fn from_samples(ms: &[f64]) -> Latency {
        if ms.is_empty() {
            return Latency {
                p50: 0.0,
                p95: 0.0,
                mean: 0.0,
            };
        }
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Latency {
            p50: pct(50.0),
            p95: pct(95.0),
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// The `tessera eval --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: String,
    pub split: String,
    pub index: PathBuf,
    pub mode: String,
    pub num_queries: usize,
    pub metrics: BTreeMap<String, f64>,
    /// Search only (query already encoded), per query.
    pub latency_ms: Latency,
    /// Queries per second over the search phase.
    pub qps: f64,
    /// Query encoding, per query (one query per forward pass, as a live search does).
    pub query_encode_ms: Latency,
    pub threads: usize,
    pub kernel: String,
    /// How the index keeps vectors (`--store`): f16 (exact MaxSim), int8 or none.
    pub store: String,
    pub index_bytes: u64,
    pub bytes_per_vector: f64,
    pub num_docs: usize,
    pub num_vectors: usize,
    /// From the build that produced the index (null if it did not record it).
    pub encode_docs_per_s: Option<f64>,
    pub encode_tokens_per_s: Option<f64>,
    /// Bytes on disk per component.
    pub component_bytes: BTreeMap<String, u64>,
    /// With `--compare-exhaustive`: the mode against exhaustive MaxSim in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_exhaustive: Option<VsExhaustive>,
    /// With `--reference-run`: the run against the reference run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_reference: Option<VsReference>,
    /// With `--stage-recall`: each first stage against the exhaustive MaxSim top-k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageRecall>>,
    /// When the mode uses splade: MaxScore against exhaustive sparse scoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseReport>,
    /// With a filter: what it allowed, its cost, and the planner's decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterReport>,
    /// Each query's search latency (for `--report`'s histogram; not in the JSON).
    #[serde(skip)]
    pub latency_samples_ms: Vec<f64>,
    /// Each judged query's metrics (for `--report`'s per-query scatter; not in the JSON).
    #[serde(skip)]
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
}

/// A filtered evaluation's filter.
#[derive(Debug, Clone, Serialize)]
pub struct FilterReport {
    pub allowed_docs: usize,
    pub live_docs: usize,
    /// allowed / live.
    pub selectivity: f64,
    /// Evaluating the filter into per-segment allow-sets, per query (inside the search
    /// latency).
    pub filter_ms: Latency,
    /// The mode run (plaid/muvera become exhaustive over the allowed documents below
    /// `filter_exact_below`).
    pub ran: String,
    pub exact: bool,
}

/// One first stage measured against exhaustive MaxSim (same encoded queries).
#[derive(Debug, Clone, Serialize)]
pub struct StageRecall {
    pub stage: String,
    /// Mean over queries of |stage's own top-k ∩ exhaustive top-k| / |exhaustive top-k|.
    pub top_k_recall: f64,
    /// The same for the candidates the stage hands to a `+` mode's re-ranking.
    pub candidates_recall: f64,
    pub mean_candidates: f64,
    /// The stage's own top-k search, per query.
    pub latency_ms: Latency,
}

/// SPLADE's pruned search against exhaustive sparse scoring, search only, same queries.
#[derive(Debug, Clone, Serialize)]
pub struct SparseReport {
    pub k: usize,
    pub maxscore_latency_ms: Latency,
    pub exhaustive_latency_ms: Latency,
    pub speedup_p50: f64,
    pub speedup_p95: f64,
    /// Σ postings touched / Σ postings in the query terms' lists.
    pub postings_touched_fraction: f64,
    pub mean_postings_per_query: f64,
    pub mean_query_terms: f64,
    /// Queries whose MaxScore top-k equals the exhaustive one (must be all).
    pub identical_rankings: usize,
    pub num_queries: usize,
}

/// A mode compared with exhaustive exact MaxSim on the same queries, same process.
#[derive(Debug, Clone, Serialize)]
pub struct VsExhaustive {
    /// Mean over queries of |mode top-k ∩ exhaustive top-k| / |exhaustive top-k|.
    pub recall_at_k: f64,
    pub k: usize,
    /// The same for the top 10 (or the top k when k < 10).
    pub recall_at_10: f64,
    pub exhaustive_latency_ms: Latency,
    pub exhaustive_metrics: BTreeMap<String, f64>,
    /// Exhaustive p50 / mode p50, and the same for p95.
    pub speedup_p50: f64,
    pub speedup_p95: f64,
}

/// A run compared with a reference run read from a TREC file (`--reference-run`), for
/// example exhaustive search on the f16 index when this index keeps compact vectors.
#[derive(Debug, Clone, Serialize)]
pub struct VsReference {
    pub file: PathBuf,
    /// Mean over the reference's queries of |top-k ∩ reference top-k| / |reference top-k|.
    pub share_at_k: f64,
    pub k: usize,
    /// The same at 10.
    pub share_at_10: f64,
}

/// Mean share of each reference query's top `k` that `run`'s top `k` holds (both ranked
/// by score as trec_eval does); queries the run lacks count as 0.
pub fn share_of_reference(run: &metrics::Run, reference: &metrics::Run, k: usize) -> f64 {
    let top = |r: &Vec<(String, f64)>| -> Vec<String> {
        let mut r = r.clone();
        metrics::trec_order(&mut r);
        r.into_iter().take(k).map(|(d, _)| d).collect()
    };
    let mut sum = 0.0;
    for (qid, want) in reference {
        let want = top(want);
        if want.is_empty() {
            continue;
        }
        let got: std::collections::HashSet<String> = run
            .get(qid)
            .map(|r| top(r).into_iter().collect())
            .unwrap_or_default();
        sum += want.iter().filter(|d| got.contains(*d)).count() as f64 / want.len() as f64;
    }
    sum / reference.len().max(1) as f64
}

/// One row of `--sweep`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub params: PlaidParams,
    /// Share of the exhaustive top-k found.
    pub recall_vs_exhaustive: f64,
    /// Share of the exhaustive top-10 found in the top 10.
    pub recall_at_10_vs_exhaustive: f64,
    /// With `--reference-run`: share of the reference's top-k, and of its top 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_vs_reference: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_at_10_vs_reference: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    pub latency_ms: Latency,
    pub qps: f64,
    pub speedup_p50: f64,
}

/// The result of one pass of every query through one mode.
struct Pass {
    run: Run,
    latency_ms: Vec<f64>,
    seconds: f64,
}

/// Encoded queries plus what every search pass over them shares.
struct Passes<'a> {
    dataset: &'a BeirDataset,
    searcher: &'a Searcher,
    filter: Option<&'a tessera_index::Filter>,
    encoded: Vec<EncodedQuery>,
    pool: rayon::ThreadPool,
    bar: &'a ProgressBar,
}

impl<'a> Passes<'a> {
    /// Encode every query (one at a time, timed: the latency a live search pays) and
    /// set up the search pool. Returns the per-query encoding times too.
    fn encode(
        dataset: &'a BeirDataset,
        searcher: &'a Searcher,
        threads: usize,
        filter: Option<&'a tessera_index::Filter>,
        bar: &'a ProgressBar,
    ) -> crate::Result<(Self, Vec<f64>)> {
        let (encoded, encode_ms) = encode_all(dataset, searcher, bar)?;
        let passes = Passes {
            dataset,
            searcher,
            filter,
            encoded,
            pool: thread_pool(threads),
            bar,
        };
        Ok((passes, encode_ms))
    }

    /// Every query through `mode`, timed one by one; self-hits dropped.
    fn run(&self, k: usize, mode: &Mode, params: &SearchParams) -> crate::Result<Pass> {
        self.run_with(|q| {
            self.searcher
                .search_query(&q.filtered(self.filter), k, mode, params)
        })
    }

    /// Every query through `search`, timed one by one on the pool; self-hits dropped.
    fn run_with<F>(&self, search: F) -> crate::Result<Pass>
    where
        F: Fn(&EncodedQuery) -> crate::Result<Vec<crate::search::SearchHit>> + Sync,
    {
        let mut latency_ms = Vec::with_capacity(self.encoded.len());
        let mut run = Run::new();
        let started = Instant::now();
        for ((qid, _), q) in self.dataset.queries.iter().zip(&self.encoded) {
            let t = Instant::now();
            let hits = self.pool.install(|| search(q))?;
            latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
            run.insert(
                qid.clone(),
                hits.into_iter()
                    .map(|h| (h.id, f64::from(h.score)))
                    .collect(),
            );
            self.bar.inc(1);
        }
        let seconds = started.elapsed().as_secs_f64();
        drop_self_hits(&mut run);
        Ok(Pass {
            run,
            latency_ms,
            seconds,
        })
    }
}

/// Mean over queries of the overlap of `run`'s top-k with `reference`'s top-k.
pub fn recall_against(run: &Run, reference: &Run, k: usize) -> f64 {
    if reference.is_empty() {
        return 0.0;
    }
    let mut sum = 0.0;
    for (qid, want) in reference {
        let want: std::collections::HashSet<&str> =
            want.iter().take(k).map(|(d, _)| d.as_str()).collect();
        if want.is_empty() {
            sum += 1.0;
            continue;
        }
        let got = run.get(qid).map_or(0, |r| {
            r.iter()
                .take(k)
                .filter(|(d, _)| want.contains(d.as_str()))
                .count()
        });
        sum += got as f64 / want.len() as f64;
    }
    sum / reference.len() as f64
}

fn progress(enabled: bool, len: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "evaluating {bar:40.cyan/blue} {pos}/{len} steps  {per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    b
}

/// Encode one query at a time (the latency a live search pays), for every stage the
/// index has.
fn encode_all(
    dataset: &BeirDataset,
    searcher: &Searcher,
    bar: &ProgressBar,
) -> crate::Result<(Vec<EncodedQuery>, Vec<f64>)> {
    let mut encode_ms = Vec::with_capacity(dataset.queries.len());
    let mut encoded = Vec::with_capacity(dataset.queries.len());
    if let Some(vectors) = &dataset.query_vectors {
        let dim = searcher.index().dim();
        for ((_, text), rows) in dataset.queries.iter().zip(vectors) {
            let vectors = MultiVector::new(rows.clone(), dim);
            tessera_index::search::check_query_vectors(vectors.view())
                .map_err(|e| crate::Error::Usage(format!("query vectors: {e}")))?;
            encoded.push(EncodedQuery {
                text: text.clone(),
                vectors,
                sparse: None,
                truncated: false,
            });
            encode_ms.push(0.0);
            bar.inc(1);
        }
        return Ok((encoded, encode_ms));
    }
    for (_, text) in &dataset.queries {
        let t = Instant::now();
        encoded.push(searcher.encode_query(text)?);
        encode_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    Ok((encoded, encode_ms))
}

fn thread_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Run PLAID at each of `grid`'s settings (and exhaustive once) on the same encoded
/// queries; one row per setting.
pub fn run_sweep(
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
    grid: &[PlaidParams],
) -> crate::Result<(Vec<SweepRow>, Latency)> {
    let mode: Mode = "plaid".parse().expect("valid mode");
    searcher.index().check_mode(&mode)?;
    let k = options.retrieval_depth();
    let n = dataset.queries.len() as u64;
    let bar = progress(options.progress, n * (2 + grid.len() as u64));
    let (passes, _) = Passes::encode(
        dataset,
        searcher,
        options.threads,
        options.filter.as_ref(),
        &bar,
    )?;
    let exhaustive = passes.run(k, &Mode::default(), &SearchParams::default())?;
    let exh_latency = Latency::from_samples(&exhaustive.latency_ms);
    let mut rows = Vec::with_capacity(grid.len());
    for p in grid {
        let params = SearchParams {
            plaid: Some(*p),
            ..SearchParams::default()
        };
        let pass = passes.run(k, &mode, &params)?;
        let latency = Latency::from_samples(&pass.latency_ms);
        rows.push(SweepRow {
            params: *p,
            recall_vs_exhaustive: recall_against(&pass.run, &exhaustive.run, k),
            recall_at_10_vs_exhaustive: recall_against(&pass.run, &exhaustive.run, k.min(10)),
            share_vs_reference: options
                .reference
                .as_ref()
                .map(|r| share_of_reference(&pass.run, r, k)),
            share_at_10_vs_reference: options
                .reference
                .as_ref()
                .map(|r| share_of_reference(&pass.run, r, k.min(10))),
            metrics: evaluate(&pass.run, &dataset.qrels, &options.metrics).mean,
            qps: passes.encoded.len() as f64 / pass.seconds.max(1e-9),
            speedup_p50: exh_latency.p50 / latency.p50.max(1e-9),
            latency_ms: latency,
        });
    }
    bar.finish_and_clear();
    Ok((rows, exh_latency))
}

/// One row of `--muvera-curve`: a first stage at one candidate count.
#[derive(Debug, Clone, Serialize)]
pub struct CurveRow {
    pub method: String,
    pub candidates: usize,
    pub recall_vs_exhaustive: f64,
    pub metrics: BTreeMap<String, f64>,
    pub latency_ms: Latency,
    pub speedup_p50: f64,
}

/// MUVERA and the single-vector baseline (mean document vector in the same kind of
/// HNSW) at each candidate count, every candidate set re-ranked by exact MaxSim,
/// against exhaustive search on the same encoded queries.
pub fn run_muvera_curve(
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
    candidate_counts: &[usize],
) -> crate::Result<(Vec<CurveRow>, Latency, f64, FdeCorrelation)> {
    let mode: Mode = "muvera".parse().expect("valid mode");
    let index = searcher.index();
    index.check_mode(&mode)?;
    let store = single_segment(index, "--muvera-curve")?;
    let graph_config = index.manifest().settings.muvera.expect("checked").graph;
    let k = options.retrieval_depth();
    let n = dataset.queries.len() as u64;
    let bar = progress(
        options.progress,
        n * (2 + 2 * candidate_counts.len() as u64),
    );
    let (passes, _) = Passes::encode(
        dataset,
        searcher,
        options.threads,
        options.filter.as_ref(),
        &bar,
    )?;
    let exhaustive = passes.run(k, &Mode::default(), &SearchParams::default())?;
    let exh_latency = Latency::from_samples(&exhaustive.latency_ms);
    let vectors: Vec<MultiVector> = passes.encoded.iter().map(|q| q.vectors.clone()).collect();
    let correlation = passes
        .pool
        .install(|| fde_maxsim_correlation(index, &vectors, 200));
    let t = Instant::now();
    let baseline = passes
        .pool
        .install(|| tessera_index::muvera::SingleVectorBaseline::build(store, graph_config))?;
    let baseline_build_seconds = t.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for &c in candidate_counts {
        let params = tessera_index::MuveraParams {
            candidates: c,
            ef_search: c,
        };
        let muvera = passes.run(
            k,
            &mode,
            &SearchParams {
                muvera: Some(params),
                ..SearchParams::default()
            },
        )?;
        let single = passes.run_with(|q| {
            let q = q.vectors.view();
            let cands = baseline.candidates(q, &params);
            let hits = tessera_index::maxsim::search_candidates(store, q, k, &cands);
            Ok(hits
                .into_iter()
                .map(|h| crate::search::SearchHit {
                    id: store.doc_id(h.doc as usize).to_string(),
                    score: h.score,
                    addr: tessera_index::DocAddress {
                        segment: 0,
                        doc: h.doc,
                    },
                })
                .collect())
        })?;
        for (method, pass) in [("muvera", muvera), ("single-vector", single)] {
            let latency = Latency::from_samples(&pass.latency_ms);
            rows.push(CurveRow {
                method: method.to_string(),
                candidates: c,
                recall_vs_exhaustive: recall_against(&pass.run, &exhaustive.run, k),
                metrics: evaluate(&pass.run, &dataset.qrels, &options.metrics).mean,
                speedup_p50: exh_latency.p50 / latency.p50.max(1e-9),
                latency_ms: latency,
            });
        }
    }
    bar.finish_and_clear();
    Ok((rows, exh_latency, baseline_build_seconds, correlation))
}

/// The store of a one-segment index, for diagnostics written against one store.
fn single_segment<'a>(
    index: &'a tessera_index::Index,
    what: &str,
) -> crate::Result<&'a tessera_index::store::TokenStore> {
    if index.store_kind() != tessera_index::StoreKind::F16 {
        return Err(crate::Error::Usage(format!(
            "{what} compares with exact MaxSim on the f16 vectors; this index keeps {} \
             (--store): rebuild it with --store f16",
            index.store_kind().as_str()
        )));
    }
    if index.num_segments() != 1 || index.manifest().deleted_docs() > 0 {
        return Err(crate::Error::Usage(format!(
            "{what} needs an index of one segment without deletions; this one has {} segments \
             and {} deleted documents: run `tessera compact` first",
            index.num_segments(),
            index.manifest().deleted_docs()
        )));
    }
    Ok(index.segment(0).store())
}

/// Pearson correlation between FDE dot products and exact MaxSim scores over
/// `docs_per_query` seeded random documents per query: overall, and the mean of the
/// per-query correlations (how well the FDE ranks documents for one query).
pub fn fde_maxsim_correlation(
    index: &tessera_index::Index,
    queries: &[MultiVector],
    docs_per_query: usize,
) -> FdeCorrelation {
    use rand::{Rng, SeedableRng};
    let encoder = index.fde_encoder().expect("checked by the caller");
    let store = index.segment(0).store();
    let fdes = tessera_index::muvera::document_fdes(store, encoder);
    let dim = encoder.output_dim();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut scorer = tessera_index::maxsim::MaxSim::default();
    let (mut xs, mut ys, mut per_query) = (Vec::new(), Vec::new(), Vec::new());
    for q in queries {
        let qf = encoder.encode_query(q.as_slice());
        let (mut qx, mut qy) = (Vec::new(), Vec::new());
        for _ in 0..docs_per_query {
            let d = rng.gen_range(0..store.num_docs());
            let f = &fdes[d * dim..(d + 1) * dim];
            qx.push(f64::from(qf.iter().zip(f).map(|(a, b)| a * b).sum::<f32>()));
            qy.push(f64::from(scorer.score(q.view(), store.doc(d))));
        }
        per_query.push(pearson(&qx, &qy));
        xs.extend(qx);
        ys.extend(qy);
    }
    FdeCorrelation {
        pairs: xs.len(),
        pearson: pearson(&xs, &ys),
        mean_per_query_pearson: per_query.iter().sum::<f64>() / per_query.len().max(1) as f64,
    }
}

/// How FDE dot products track exact MaxSim.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FdeCorrelation {
    pub pairs: usize,
    pub pearson: f64,
    pub mean_per_query_pearson: f64,
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx.sqrt() * vy.sqrt()).max(1e-12)
}

/// BEIR drops a retrieved document whose id is the query's own (ArguAna and Quora hold
/// the queries themselves); so do we, before any metric.
pub fn drop_self_hits(run: &mut Run) {
    for (qid, ranking) in run.iter_mut() {
        ranking.retain(|(doc, _)| doc != qid);
    }
}

/// Evaluate `searcher` on `dataset`. Returns the report and the run (self-hits dropped).
/// The filter's selectivity and cost (evaluated once per query, as a search does) and
/// what the planner ran.
fn filter_report(
    passes: &Passes<'_>,
    filter: &tessera_index::Filter,
    k: usize,
    options: &EvalOptions,
) -> crate::Result<FilterReport> {
    let index = passes.searcher.index();
    let mut ms = Vec::with_capacity(passes.encoded.len());
    let mut scope = None;
    for _ in &passes.encoded {
        let t = Instant::now();
        scope = Some(passes.pool.install(|| index.scope(Some(filter)))?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let scope = match scope {
        Some(s) => s,
        None => index.scope(Some(filter))?,
    };
    let (ran, exact) = match passes.encoded.first() {
        Some(q) => {
            let (_, plan) = index.search_planned(
                &q.filtered(Some(filter)),
                k,
                &options.mode,
                &options.params,
            )?;
            (plan.mode, plan.exact)
        }
        None => (options.mode.to_string(), false),
    };
    Ok(FilterReport {
        allowed_docs: scope.allowed,
        live_docs: scope.live,
        selectivity: scope.allowed as f64 / scope.live.max(1) as f64,
        filter_ms: Latency::from_samples(&ms),
        ran,
        exact,
    })
}

pub fn run_eval(
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
) -> crate::Result<(EvalReport, Run)> {
    searcher.index().check_mode(&options.mode)?;
    let k = options.retrieval_depth();
    let n = dataset.queries.len() as u64;
    let needs_exhaustive = options.compare_exhaustive || options.stage_recall;
    let bar = progress(
        options.progress,
        n * (2
            + u64::from(needs_exhaustive)
            + 2 * u64::from(options.stage_recall) * options.mode.stages.len() as u64),
    );
    let (passes, encode_ms) = Passes::encode(
        dataset,
        searcher,
        options.threads,
        options.filter.as_ref(),
        &bar,
    )?;
    let pass = passes.run(k, &options.mode, &options.params)?;
    let filter = match &options.filter {
        None => None,
        Some(f) => Some(filter_report(&passes, f, k, options)?),
    };
    let latency_ms = Latency::from_samples(&pass.latency_ms);
    let exhaustive = if needs_exhaustive {
        Some(passes.run(k, &Mode::default(), &SearchParams::default())?)
    } else {
        None
    };
    let stages = match (&exhaustive, options.stage_recall) {
        (Some(exh), true) => Some(stage_recalls(&passes, &exh.run, k, options)?),
        _ => None,
    };
    let sparse = if options.mode.stages.contains(&Stage::Splade) {
        Some(passes.pool.install(|| sparse_report(&passes, k)))
    } else {
        None
    };
    let vs_exhaustive = if let (Some(exh), true) = (&exhaustive, options.compare_exhaustive) {
        let exh_latency = Latency::from_samples(&exh.latency_ms);
        Some(VsExhaustive {
            recall_at_k: recall_against(&pass.run, &exh.run, k),
            k,
            recall_at_10: recall_against(&pass.run, &exh.run, k.min(10)),
            exhaustive_metrics: evaluate(&exh.run, &dataset.qrels, &options.metrics).mean,
            speedup_p50: exh_latency.p50 / latency_ms.p50.max(1e-9),
            speedup_p95: exh_latency.p95 / latency_ms.p95.max(1e-9),
            exhaustive_latency_ms: exh_latency,
        })
    } else {
        None
    };
    bar.finish_and_clear();
    let run = pass.run;
    let search_seconds = pass.seconds;
    let evaluation = evaluate(&run, &dataset.qrels, &options.metrics);
    let index = searcher.index();
    let manifest = index.manifest();
    let build = manifest.config.get("build");
    let build_stat = |key: &str| build.and_then(|b| b.get(key)).and_then(|v| v.as_f64());
    let report = EvalReport {
        dataset: dataset.name.clone(),
        split: dataset.split.clone(),
        index: index.dir().to_path_buf(),
        mode: options.mode.to_string(),
        num_queries: match dataset.qrels.is_empty() {
            true => passes.encoded.len(),
            false => evaluation.num_queries,
        },
        metrics: evaluation.mean,
        latency_ms,
        qps: passes.encoded.len() as f64 / search_seconds.max(1e-9),
        query_encode_ms: Latency::from_samples(&encode_ms),
        threads: options.threads,
        kernel: tessera_index::maxsim::Kernel::detect().name().to_string(),
        store: searcher.index().store_kind().as_str().to_string(),
        index_bytes: manifest.index_bytes(),
        bytes_per_vector: manifest.index_bytes() as f64 / manifest.num_vectors.max(1) as f64,
        num_docs: manifest.num_docs,
        num_vectors: manifest.num_vectors,
        encode_docs_per_s: build_stat("encode_docs_per_s"),
        encode_tokens_per_s: build_stat("encode_tokens_per_s"),
        component_bytes: manifest.component_bytes(),
        vs_exhaustive,
        vs_reference: None,
        stages,
        sparse,
        filter,
        latency_samples_ms: pass.latency_ms,
        per_query: evaluation.per_query,
    };
    Ok((report, run))
}

/// Each stage of the mode, alone: its own top-k and its re-ranking candidates against
/// the exhaustive top-k.
fn stage_recalls(
    passes: &Passes<'_>,
    exhaustive: &Run,
    k: usize,
    options: &EvalOptions,
) -> crate::Result<Vec<StageRecall>> {
    let index = passes.searcher.index();
    let mut out = Vec::new();
    for &stage in &options.mode.stages {
        let alone = Mode {
            stages: vec![stage],
            fusion: Fusion::MaxSimRescore,
        };
        let own = passes.run(k, &alone, &options.params)?;
        let candidates = passes.run_with(|q| {
            let docs = index.stage_candidates(stage, &q.as_query(), k, &options.params)?;
            Ok(docs
                .into_iter()
                .map(|addr| crate::search::SearchHit {
                    id: index.doc_id(addr).to_string(),
                    score: 0.0,
                    addr,
                })
                .collect())
        })?;
        let counts: Vec<f64> = candidates.run.values().map(|r| r.len() as f64).collect();
        out.push(StageRecall {
            stage: stage.name().to_string(),
            top_k_recall: recall_against(&own.run, exhaustive, k),
            candidates_recall: recall_against(&candidates.run, exhaustive, usize::MAX),
            mean_candidates: counts.iter().sum::<f64>() / counts.len().max(1) as f64,
            latency_ms: Latency::from_samples(&own.latency_ms),
        });
    }
    Ok(out)
}

/// MaxScore and exhaustive sparse scoring on every query, one after the other.
fn sparse_report(passes: &Passes<'_>, k: usize) -> SparseReport {
    // Per segment (each is scored alone; the segments' times add up).
    let index = passes.searcher.index();
    let (mut fast_ms, mut slow_ms) = (Vec::new(), Vec::new());
    let (mut touched, mut postings, mut terms, mut identical) = (0usize, 0usize, 0usize, 0usize);
    for q in &passes.encoded {
        let Some(sq) = &q.sparse else { continue };
        let (mut fast_t, mut slow_t, mut same) = (0.0, 0.0, true);
        for s in 0..index.num_segments() {
            let splade = index
                .segment(s)
                .splade()
                .expect("the mode's splade stage was checked");
            let allow = index.allow(s);
            let t = Instant::now();
            let (fast, stats) = splade.search(sq, k, &allow);
            fast_t += t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let (slow, _) = splade.search_exhaustive(sq, k, &allow);
            slow_t += t.elapsed().as_secs_f64() * 1e3;
            touched += stats.touched;
            postings += stats.postings;
            same &= fast == slow;
        }
        fast_ms.push(fast_t);
        slow_ms.push(slow_t);
        terms += sq.len();
        identical += usize::from(same);
    }
    let (fast, slow) = (
        Latency::from_samples(&fast_ms),
        Latency::from_samples(&slow_ms),
    );
    let n = fast_ms.len().max(1) as f64;
    SparseReport {
        k,
        speedup_p50: slow.p50 / fast.p50.max(1e-9),
        speedup_p95: slow.p95 / fast.p95.max(1e-9),
        maxscore_latency_ms: fast,
        exhaustive_latency_ms: slow,
        postings_touched_fraction: touched as f64 / postings.max(1) as f64,
        mean_postings_per_query: postings as f64 / n,
        mean_query_terms: terms as f64 / n,
        identical_rankings: identical,
        num_queries: fast_ms.len(),
    }
}

impl EvalReport {
    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} ({} split, {} queries) · mode {} · index {}\n",
            self.dataset,
            self.split,
            self.num_queries,
            self.mode,
            self.index.display()
        ));
        if self.store != "f16" {
            s.push_str(&format!(
                "vectors kept as {}: MaxSim scores (exhaustive included) are approximate\n",
                self.store
            ));
        }
        if self.metrics.is_empty() {
            s.push_str("no judged query (no qrels): latency and comparisons only\n");
        } else {
            s.push_str(&format!("{:<14} {:>8}\n", "metric", "value"));
        }
        for (name, v) in &self.metrics {
            s.push_str(&format!("{name:<14} {v:>8.4}\n"));
        }
        s.push_str(&format!(
            "search latency  p50 {:.2} ms · p95 {:.2} ms · mean {:.2} ms · {:.1} QPS ({} thread{}, {} kernel)\n",
            self.latency_ms.p50,
            self.latency_ms.p95,
            self.latency_ms.mean,
            self.qps,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.kernel
        ));
        if self.query_encode_ms.p95 > 0.0 {
            s.push_str(&format!(
                "query encoding p50 {:.2} ms · p95 {:.2} ms\n",
                self.query_encode_ms.p50, self.query_encode_ms.p95
            ));
        } else {
            s.push_str("query encoding none (pre-encoded query vectors)\n");
        }
        if let Some(f) = &self.filter {
            s.push_str(&format!(
                "filter         {} of {} documents ({:.2}%) · evaluated in p50 {:.3} ms · ran {}{}\n",
                f.allowed_docs,
                f.live_docs,
                f.selectivity * 100.0,
                f.filter_ms.p50,
                f.ran,
                if f.exact { " (exact over the allowed documents)" } else { "" }
            ));
        }
        s.push_str(&format!(
            "index          {} docs · {} vectors · {:.1} MB · {:.1} bytes/vector\n",
            self.num_docs,
            self.num_vectors,
            self.index_bytes as f64 / 1e6,
            self.bytes_per_vector
        ));
        if let (Some(d), Some(t)) = (
            self.encode_docs_per_s.filter(|&d| d > 0.0),
            self.encode_tokens_per_s,
        ) {
            s.push_str(&format!(
                "encoding       {d:.1} docs/s · {t:.0} tokens/s (at build)\n"
            ));
        }
        let sizes: Vec<String> = self
            .component_bytes
            .iter()
            .map(|(c, b)| format!("{c} {:.1} MB", *b as f64 / 1e6))
            .collect();
        s.push_str(&format!("components     {}\n", sizes.join(" · ")));
        if let Some(v) = &self.vs_exhaustive {
            s.push_str(&format!(
                "vs exhaustive  recall@{} {:.4} · recall@{} {:.4} · exhaustive p50 {:.2} ms · speedup p50 {:.1}x, p95 {:.1}x\n",
                v.k, v.recall_at_k, v.k.min(10), v.recall_at_10, v.exhaustive_latency_ms.p50, v.speedup_p50, v.speedup_p95
            ));
        }
        if let Some(v) = &self.vs_reference {
            s.push_str(&format!(
                "vs reference   share of top-{} {:.4} · of top-10 {:.4} ({})\n",
                v.k,
                v.share_at_k,
                v.share_at_10,
                v.file.display()
            ));
        }
        for st in self.stages.iter().flatten() {
            s.push_str(&format!(
                "stage {:<8} top-k recall vs exhaustive {:.4} · {:.0} candidates recall {:.4} · p50 {:.2} ms\n",
                st.stage, st.top_k_recall, st.mean_candidates, st.candidates_recall, st.latency_ms.p50
            ));
        }
        if let Some(sp) = &self.sparse {
            s.push_str(&format!(
                "splade search  MaxScore p50 {:.3} ms, p95 {:.3} ms · exhaustive p50 {:.3} ms, p95 {:.3} ms · {:.1}x / {:.1}x · {:.1}% of postings touched · {}/{} rankings identical\n",
                sp.maxscore_latency_ms.p50, sp.maxscore_latency_ms.p95,
                sp.exhaustive_latency_ms.p50, sp.exhaustive_latency_ms.p95,
                sp.speedup_p50, sp.speedup_p95,
                100.0 * sp.postings_touched_fraction,
                sp.identical_rankings, sp.num_queries
            ));
        }
        s
    }
}
