//! BEIR evaluation: load a dataset split, run every judged query through a [`Searcher`],
//! drop self-hits, compute trec_eval-compatible metrics, time the search.

pub mod beir;
pub mod metrics;
pub mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tessera_index::store::MultiVector;
use tessera_index::{Mode, PlaidParams, SearchParams};

pub use beir::BeirDataset;
pub use metrics::{evaluate, Evaluation, Metric, Qrels, Run};

use crate::search::Searcher;

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
    pub metrics: Vec<Metric>,
    /// Threads for search (query encoding uses candle's own threads).
    pub threads: usize,
    pub progress: bool,
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
    pub index_bytes: u64,
    pub bytes_per_vector: f64,
    pub num_docs: usize,
    pub num_vectors: usize,
    /// From the build that produced the index (null if it did not record it).
    pub encode_docs_per_s: Option<f64>,
    pub encode_tokens_per_s: Option<f64>,
    /// With `--compare-exhaustive`: the mode against exhaustive MaxSim in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_exhaustive: Option<VsExhaustive>,
}

/// A mode compared with exhaustive exact MaxSim on the same queries, same process.
#[derive(Debug, Clone, Serialize)]
pub struct VsExhaustive {
    /// Mean over queries of |mode top-k ∩ exhaustive top-k| / |exhaustive top-k|.
    pub recall_at_k: f64,
    pub k: usize,
    pub exhaustive_latency_ms: Latency,
    pub exhaustive_metrics: BTreeMap<String, f64>,
    /// Exhaustive p50 / mode p50, and the same for p95.
    pub speedup_p50: f64,
    pub speedup_p95: f64,
}

/// One row of `--sweep`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub params: PlaidParams,
    pub recall_vs_exhaustive: f64,
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
    encoded: Vec<MultiVector>,
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
        bar: &'a ProgressBar,
    ) -> crate::Result<(Self, Vec<f64>)> {
        let (encoded, encode_ms) = encode_all(dataset, searcher, bar)?;
        let passes = Passes {
            dataset,
            searcher,
            encoded,
            pool: thread_pool(threads),
            bar,
        };
        Ok((passes, encode_ms))
    }

    /// Every query through `mode`, timed one by one; self-hits dropped.
    fn run(&self, k: usize, mode: &Mode, params: &SearchParams) -> crate::Result<Pass> {
        self.run_with(|q| self.searcher.search_vectors(q, k, mode, params))
    }

    /// Every query through `search`, timed one by one on the pool; self-hits dropped.
    fn run_with<F>(&self, search: F) -> crate::Result<Pass>
    where
        F: Fn(&MultiVector) -> crate::Result<Vec<crate::search::SearchHit>> + Sync,
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

/// Encode one query at a time (the latency a live search pays).
fn encode_all(
    dataset: &BeirDataset,
    searcher: &Searcher,
    bar: &ProgressBar,
) -> crate::Result<(Vec<MultiVector>, Vec<f64>)> {
    let mut encode_ms = Vec::with_capacity(dataset.queries.len());
    let mut encoded = Vec::with_capacity(dataset.queries.len());
    for (_, text) in &dataset.queries {
        let t = Instant::now();
        encoded.push(
            searcher
                .encode_queries(&[text.as_str()])?
                .pop()
                .expect("one out"),
        );
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
    let (passes, _) = Passes::encode(dataset, searcher, options.threads, &bar)?;
    let exhaustive = passes.run(k, &Mode::default(), &SearchParams::default())?;
    let exh_latency = Latency::from_samples(&exhaustive.latency_ms);
    let mut rows = Vec::with_capacity(grid.len());
    for p in grid {
        let params = SearchParams {
            plaid: Some(*p),
            muvera: None,
        };
        let pass = passes.run(k, &mode, &params)?;
        let latency = Latency::from_samples(&pass.latency_ms);
        rows.push(SweepRow {
            params: *p,
            recall_vs_exhaustive: recall_against(&pass.run, &exhaustive.run, k),
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
    let graph_config = index
        .manifest()
        .components
        .muvera
        .as_ref()
        .expect("checked")
        .config
        .graph;
    let k = options.retrieval_depth();
    let n = dataset.queries.len() as u64;
    let bar = progress(
        options.progress,
        n * (2 + 2 * candidate_counts.len() as u64),
    );
    let (passes, _) = Passes::encode(dataset, searcher, options.threads, &bar)?;
    let exhaustive = passes.run(k, &Mode::default(), &SearchParams::default())?;
    let exh_latency = Latency::from_samples(&exhaustive.latency_ms);
    let correlation = passes
        .pool
        .install(|| fde_maxsim_correlation(index, &passes.encoded, 200));
    let t = Instant::now();
    let baseline = passes.pool.install(|| {
        tessera_index::muvera::SingleVectorBaseline::build(index.store(), graph_config)
    })?;
    let baseline_build_seconds = t.elapsed().as_secs_f64();
    let store = index.store();
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
                plaid: None,
                muvera: Some(params),
            },
        )?;
        let single = passes.run_with(|q| {
            let cands = baseline.candidates(q.view(), &params);
            let hits = tessera_index::maxsim::search_candidates(store, q.view(), k, &cands);
            Ok(hits
                .into_iter()
                .map(|h| crate::search::SearchHit {
                    id: store.doc_id(h.doc as usize).to_string(),
                    score: h.score,
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

/// Pearson correlation between FDE dot products and exact MaxSim scores over
/// `docs_per_query` seeded random documents per query: overall, and the mean of the
/// per-query correlations (how well the FDE ranks documents for one query).
pub fn fde_maxsim_correlation(
    index: &tessera_index::Index,
    queries: &[MultiVector],
    docs_per_query: usize,
) -> FdeCorrelation {
    use rand::{Rng, SeedableRng};
    let muvera = index.muvera().expect("checked by the caller");
    let store = index.store();
    let encoder = muvera.encoder();
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
pub fn run_eval(
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
) -> crate::Result<(EvalReport, Run)> {
    searcher.index().check_mode(&options.mode)?;
    let k = options.retrieval_depth();
    let n = dataset.queries.len() as u64;
    let bar = progress(
        options.progress,
        n * if options.compare_exhaustive { 3 } else { 2 },
    );
    let (passes, encode_ms) = Passes::encode(dataset, searcher, options.threads, &bar)?;
    let pass = passes.run(k, &options.mode, &options.params)?;
    let latency_ms = Latency::from_samples(&pass.latency_ms);
    let vs_exhaustive = if options.compare_exhaustive {
        let exh = passes.run(k, &Mode::default(), &SearchParams::default())?;
        let exh_latency = Latency::from_samples(&exh.latency_ms);
        Some(VsExhaustive {
            recall_at_k: recall_against(&pass.run, &exh.run, k),
            k,
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
        num_queries: evaluation.num_queries,
        metrics: evaluation.mean,
        latency_ms,
        qps: passes.encoded.len() as f64 / search_seconds.max(1e-9),
        query_encode_ms: Latency::from_samples(&encode_ms),
        threads: options.threads,
        kernel: tessera_index::maxsim::Kernel::detect().name().to_string(),
        index_bytes: manifest.index_bytes(),
        bytes_per_vector: manifest.index_bytes() as f64 / manifest.num_vectors.max(1) as f64,
        num_docs: manifest.num_docs,
        num_vectors: manifest.num_vectors,
        encode_docs_per_s: build_stat("encode_docs_per_s"),
        encode_tokens_per_s: build_stat("encode_tokens_per_s"),
        vs_exhaustive,
    };
    Ok((report, run))
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
        s.push_str(&format!("{:<14} {:>8}\n", "metric", "value"));
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
        s.push_str(&format!(
            "query encoding p50 {:.2} ms · p95 {:.2} ms\n",
            self.query_encode_ms.p50, self.query_encode_ms.p95
        ));
        s.push_str(&format!(
            "index          {} docs · {} vectors · {:.1} MB · {:.1} bytes/vector\n",
            self.num_docs,
            self.num_vectors,
            self.index_bytes as f64 / 1e6,
            self.bytes_per_vector
        ));
        if let (Some(d), Some(t)) = (self.encode_docs_per_s, self.encode_tokens_per_s) {
            s.push_str(&format!(
                "encoding       {d:.1} docs/s · {t:.0} tokens/s (at build)\n"
            ));
        }
        s
    }
}
