//! Request and response types (their JSON schema is generated from these definitions for
//! `/openapi.json`) and the handlers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_index::store::MultiVector;
use tessera_index::{Deadline, Mode, Query, SearchParams};
use tokio::sync::Semaphore;
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ApiJson, ErrorBody, ErrorCode};
use super::metrics;
use super::writes::{
    DeleteRequest, DocumentsRequest, NewDocument, ReadyDoc, WriteOp, WriteOutcome, WriteResponse,
    WriterHandle,
};
use crate::search::{EncodedQuery, ParamOverrides, Searcher};

/// Limits on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_k: usize,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub max_query_bytes: usize,
    pub max_query_vectors: usize,
    /// Largest `ndocs`, `candidates`, `ef_search` and `sparse_candidates` (each sets how
    /// much a first stage scores, and so memory and time).
    pub max_candidates: usize,
    /// Largest PLAID `ncells`.
    pub max_ncells: usize,
    /// Largest response body; a bigger one is refused (`response_too_large`).
    pub max_response_bytes: usize,
    /// A request still running after this is answered 503 `deadline_exceeded`, and its
    /// search stops (writes are not cut: they answer once committed).
    pub request_timeout: std::time::Duration,
    /// Most documents (or ids) in one write request.
    pub max_write_docs: usize,
}

impl Default for Limits {
    /// The defaults of `tessera serve`.
    fn default() -> Self {
        Limits {
            max_k: 1000,
            max_batch: 256,
            max_body_bytes: 2 << 20,
            max_query_bytes: 4096,
            max_query_vectors: 512,
            max_candidates: 100_000,
            max_ncells: 1024,
            max_response_bytes: 16 << 20,
            request_timeout: std::time::Duration::from_secs(30),
            max_write_docs: 1000,
        }
    }
}

/// One served index: the current snapshot with its encoders, and the writer that
/// commits requests (none when served read-only). `tessera serve` answers before its
/// indexes are open: until an index is loaded its requests get 503 `index_loading`, and
/// `GET /indexes` shows how far loading has got.
pub struct Served {
    pub name: String,
    ready: OnceLock<Ready>,
    status: Mutex<LoadStatus>,
}

struct Ready {
    current: Arc<RwLock<Searcher>>,
    writer: Option<WriterHandle>,
}

/// Where loading an index stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LoadStatus {
    /// Still opening: segments opened and checked so far, of all, and what it is doing.
    Loading {
        step: String,
        segments_done: usize,
        segments: usize,
        elapsed_s: f64,
        #[serde(skip)]
        #[schema(ignore)]
        started: Instant,
    },
    Ready {
        /// Seconds loading took.
        load_s: f64,
    },
    /// Loading failed (`tessera serve` exits after reporting it).
    Failed { error: String },
}

impl Served {
    /// A read-only index.
    pub fn new(name: String, searcher: Searcher) -> Self {
        let served = Served::loading(name);
        served.finish(Ready {
            current: Arc::new(RwLock::new(searcher)),
            writer: None,
        });
        served
    }

    /// An index that takes writes: its writer (and lock) is opened now, in a thread that
    /// commits requests arriving within `group_window` of each other together.
    pub fn writable(
        name: String,
        dir: std::path::PathBuf,
        searcher: Searcher,
        group_window: std::time::Duration,
    ) -> crate::Result<Self> {
        let served = Served::loading(name);
        served.open_writable(dir, searcher, group_window)?;
        Ok(served)
    }

    /// An index still being opened: its requests are answered 503 `index_loading` until
    /// [`Served::open_read_only`] or [`Served::open_writable`] publishes it.
    pub fn loading(name: String) -> Self {
        Served {
            name,
            ready: OnceLock::new(),
            status: Mutex::new(LoadStatus::Loading {
                step: "waiting".into(),
                segments_done: 0,
                segments: 0,
                elapsed_s: 0.0,
                started: Instant::now(),
            }),
        }
    }

    /// Record progress of a loading index (shown by `GET /indexes`).
    pub fn progress(&self, step: impl Into<String>, segments_done: usize, segments: usize) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let LoadStatus::Loading {
            step: s,
            segments_done: d,
            segments: n,
            ..
        } = &mut *status
        {
            *s = step.into();
            *d = segments_done;
            *n = segments;
        }
    }

    /// Publish a loaded read-only index; returns its snapshot cell (for a reloader).
    pub fn open_read_only(&self, searcher: Searcher) -> Arc<RwLock<Searcher>> {
        let current = Arc::new(RwLock::new(searcher));
        self.finish(Ready {
            current: current.clone(),
            writer: None,
        });
        current
    }

    /// Open the index's writer (taking its lock) and publish it.
    pub fn open_writable(
        &self,
        dir: std::path::PathBuf,
        searcher: Searcher,
        group_window: std::time::Duration,
    ) -> crate::Result<()> {
        let current = Arc::new(RwLock::new(searcher));
        let writer = WriterHandle::spawn(&self.name, dir, current.clone(), group_window)?;
        self.finish(Ready {
            current,
            writer: Some(writer),
        });
        Ok(())
    }

    /// Record that loading failed.
    pub fn fail(&self, error: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = LoadStatus::Failed { error };
    }

    fn finish(&self, ready: Ready) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let load_s = match &*status {
            LoadStatus::Loading { started, .. } => started.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        if self.ready.set(ready).is_ok() {
            *status = LoadStatus::Ready { load_s };
        }
    }

    /// Where loading stands, with the time spent so far.
    pub fn status(&self) -> LoadStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let LoadStatus::Loading {
            elapsed_s, started, ..
        } = &mut status
        {
            *elapsed_s = started.elapsed().as_secs_f64();
        }
        status
    }

    fn ready(&self) -> Result<&Ready, ApiError> {
        if let Some(r) = self.ready.get() {
            return Ok(r);
        }
        Err(match self.status() {
            LoadStatus::Failed { error } => ApiError::new(
                ErrorCode::IndexUnavailable,
                format!("index {:?} failed to load: {error}", self.name),
            ),
            LoadStatus::Loading {
                step,
                segments_done,
                segments,
                elapsed_s,
                ..
            } => ApiError::new(
                ErrorCode::IndexLoading,
                format!(
                    "index {:?} is still loading ({step}; {segments_done} of {segments} \
                     segments open after {elapsed_s:.1} s); retry shortly",
                    self.name
                ),
            ),
            LoadStatus::Ready { .. } => unreachable!("ready is set before the status says so"),
        })
    }

    /// The newest snapshot (searches in flight keep the one they started with), or
    /// `index_loading` while the index is being opened.
    pub fn searcher(&self) -> Result<Searcher, ApiError> {
        Ok(self
            .ready()?
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    /// Publish a newer snapshot (ignored while loading).
    pub fn replace(&self, searcher: Searcher) {
        let Some(ready) = self.ready.get() else {
            return;
        };
        let mut cur = ready.current.write().unwrap_or_else(|e| e.into_inner());
        if searcher.index().generation() >= cur.index().generation() {
            *cur = searcher;
        }
    }

    /// The writer (`None` when served read-only), or `index_loading`.
    pub fn writer(&self) -> Result<Option<&WriterHandle>, ApiError> {
        Ok(self.ready()?.writer.as_ref())
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    indexes: BTreeMap<String, Arc<Served>>,
    limits: Limits,
    /// Show file-system paths in `GET /indexes/{name}` (`--expose-paths`).
    expose_paths: bool,
    /// Searches running at once (encoding and MaxSim are CPU-bound: more than the cores
    /// only adds queueing inside the threads).
    permits: Arc<Semaphore>,
    /// Write requests being encoded at once: one, apart from the searches' permits, so
    /// searches never queue behind write encoding. Measured on 2 cores (README "The live
    /// index on SciFact"): with writes sharing the search permits, 10 text documents/s
    /// left 8 searches in 30 s (p99 25.9 s); with this one permit, search p99 128 ms; with
    /// as many write permits as search permits, 204 ms.
    write_permits: Arc<Semaphore>,
}

impl AppState {
    pub fn new(indexes: Vec<Served>, limits: Limits, concurrent_searches: usize) -> Self {
        AppState(Arc::new(Inner {
            indexes: indexes
                .into_iter()
                .map(|s| (s.name.clone(), Arc::new(s)))
                .collect(),
            limits,
            expose_paths: false,
            permits: Arc::new(Semaphore::new(concurrent_searches.max(1))),
            write_permits: Arc::new(Semaphore::new(1)),
        }))
    }

    /// Show (or hide, the default) the server's paths in `GET /indexes/{name}`.
    pub fn with_expose_paths(self, expose: bool) -> Self {
        let inner = Arc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("with_expose_paths is called before the state is shared"));
        AppState(Arc::new(Inner {
            expose_paths: expose,
            ..inner
        }))
    }

    pub fn limits(&self) -> Limits {
        self.0.limits
    }

    /// Indexes loaded and answering.
    pub fn ready_count(&self) -> usize {
        self.0
            .indexes
            .values()
            .filter(|s| s.ready.get().is_some())
            .count()
    }

    /// A served index by name (loading or not).
    pub fn served(&self, name: &str) -> Option<Arc<Served>> {
        self.0.indexes.get(name).cloned()
    }

    fn index(&self, name: &str) -> Result<Arc<Served>, ApiError> {
        self.0.indexes.get(name).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownIndex,
                format!(
                    "no index named {name:?} (served: {})",
                    self.0
                        .indexes
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Run CPU work off the async runtime, at most `permits` at once. A panic inside is
    /// an `internal` error for this request only.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.blocking_on(&self.0.permits, work).await
    }

    /// [`AppState::blocking`] for encoding written documents, under its own permit.
    async fn blocking_write<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.blocking_on(&self.0.write_permits, work).await
    }

    async fn blocking_on<T: Send + 'static>(
        &self,
        permits: &Arc<Semaphore>,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "server is shutting down"))?;
        // The permit goes with the work: a request given up at its deadline keeps its slot
        // until the search has actually stopped.
        let work = move || {
            let _permit = permit;
            work()
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(e) => Err(ApiError::new(
                ErrorCode::Internal,
                format!("the search failed unexpectedly ({e}); the server keeps running"),
            )),
        }
    }
}

/// `POST /indexes/{name}/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Query text. Needed by `bm25` and `splade`; encoded into token vectors unless
    /// `vectors` is given.
    pub query: Option<String>,
    /// Pre-encoded query token vectors: rows of the index's dimension (L2-normalised, as
    /// the encoder makes them).
    pub vectors: Option<Vec<Vec<f32>>>,
    /// Number of results, 1..=max_k [default: 10].
    pub k: Option<u64>,
    /// First stages, as `tessera search --mode` [default: exhaustive].
    pub mode: Option<String>,
    /// First-stage knobs, as the `tessera search` flags of the same names.
    #[serde(default, deserialize_with = "super::error::object_or_null")]
    pub params: Option<ParamOverrides>,
    /// Include each result's stored text.
    #[serde(default)]
    pub include_text: bool,
    /// Only documents this filter admits (Qdrant's filter JSON: `must`, `should`,
    /// `must_not` with `match`, `range`, `is_empty`, `has_id` and nested filters).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Include each result's metadata fields.
    #[serde(default)]
    pub include_fields: bool,
}

/// `POST /indexes/{name}/search/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[serde(deserialize_with = "super::error::objects")]
    pub queries: Vec<SearchRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    pub rank: usize,
    pub id: String,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The document's metadata fields (with `include_fields`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub index: String,
    pub mode: String,
    pub k: usize,
    /// The query text was longer than a model's query length and was cut to it.
    pub query_truncated: bool,
    /// Server time for this query: encoding and search.
    pub took_ms: f64,
    /// Of which: encoding the query (its share of a batch's encoding).
    pub encode_ms: f64,
    /// Of which: searching and gathering the results.
    pub search_ms: f64,
    /// The scores are approximate: the index keeps int8 vectors or none (`--store`),
    /// so MaxSim runs on dequantised or PLAID-decoded rows. Absent when exact.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
    /// With a filter: documents it allowed, what it cost, whether plaid/muvera ran as
    /// exact MaxSim over the allowed documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<tessera_index::Plan>,
    pub results: Vec<SearchResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<SearchResponse>,
    pub took_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexSummary {
    pub name: String,
    /// `loading` (with progress), `ready` or `failed`; the other fields are there once
    /// the index is ready.
    pub status: LoadStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_docs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_vectors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether this server takes writes for the index (not `--read-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexInfo {
    #[serde(flatten)]
    pub summary: IndexSummary,
    /// The index directory on the server (only with `tessera serve --expose-paths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    pub generation: u64,
    pub created_by: String,
    pub model_weights_sha256: String,
    pub stores_text: bool,
    pub index_bytes: u64,
    pub component_bytes: BTreeMap<String, u64>,
    /// Segments (live and deleted counts), the PLAID codec and its drift.
    pub report: crate::info::IndexReport,
    /// The build configuration recorded in the manifest (absolute paths in it reduced to
    /// their last component unless the server runs with `--expose-paths`).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    pub id: String,
    /// The segment holding it, and its number there (both change when segments merge).
    pub segment: u64,
    pub doc: u32,
    pub num_vectors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its metadata fields (when the index declares fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub indexes: usize,
    /// Indexes loaded and answering (the rest are still loading).
    pub ready: usize,
}

/// A validated request, ready to run.
struct Plan {
    /// Where the request came in; its deadline counts from here.
    text: Option<String>,
    vectors: Option<MultiVector>,
    k: usize,
    mode: Mode,
    params: SearchParams,
    include_text: bool,
    filter: Option<tessera_index::Filter>,
    include_fields: bool,
}

impl Plan {
    fn new(
        req: SearchRequest,
        searcher: &Searcher,
        limits: &Limits,
        deadline: Deadline,
    ) -> Result<Plan, ApiError> {
        let k = req.k.unwrap_or(10);
        if k == 0 || k > limits.max_k as u64 {
            return Err(ApiError::new(
                ErrorCode::KOutOfRange,
                format!("k must be in 1..={}, got {k}", limits.max_k),
            ));
        }
        let k = k as usize;
        let text = match req.query {
            Some(t) if t.len() > limits.max_query_bytes => {
                return Err(ApiError::new(
                    ErrorCode::QueryTooLong,
                    format!(
                        "query is {} bytes; the limit is {} (--max-query-bytes)",
                        t.len(),
                        limits.max_query_bytes
                    ),
                ))
            }
            Some(t) if t.trim().is_empty() => {
                return Err(ApiError::new(ErrorCode::EmptyQuery, "query text is blank"))
            }
            other => other,
        };
        let dim = searcher.index().dim();
        let vectors = match req.vectors {
            None => None,
            Some(rows) => Some(query_vectors(rows, dim, limits.max_query_vectors)?),
        };
        if text.is_none() && vectors.is_none() {
            return Err(ApiError::new(
                ErrorCode::EmptyQuery,
                "give `query` (text) or `vectors` (pre-encoded token vectors)",
            ));
        }
        let mode: Mode = req
            .mode
            .as_deref()
            .unwrap_or("exhaustive")
            .parse()
            .map_err(|e: String| ApiError::new(ErrorCode::InvalidMode, e))?;
        searcher
            .index()
            .check_mode(&mode)
            .map_err(|e| ApiError::new(ErrorCode::UnsupportedMode, e.to_string()))?;
        let args = req.params.unwrap_or_default();
        args.validate()
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
        check_depths(&args, limits)?;
        let mut params = args.params(k);
        params.deadline = deadline;
        let filter = match &req.filter {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(searcher.parse_filter(v, "filter")?),
        };
        Ok(Plan {
            text,
            vectors,
            k,
            mode,
            params,
            include_text: req.include_text,
            filter,
            include_fields: req.include_fields,
        })
    }
}

/// Each first-stage depth within the server's caps, or `param_out_of_range` naming it.
fn check_depths(args: &ParamOverrides, limits: &Limits) -> Result<(), ApiError> {
    let caps = [
        ("ncells", args.ncells, limits.max_ncells, "--max-ncells"),
        (
            "ndocs",
            args.ndocs,
            limits.max_candidates,
            "--max-candidates",
        ),
        (
            "exact_docs",
            args.exact_docs,
            limits.max_candidates,
            "--max-candidates",
        ),
        (
            "candidates",
            args.candidates,
            limits.max_candidates,
            "--max-candidates",
        ),
        (
            "ef_search",
            args.ef_search,
            limits.max_candidates,
            "--max-candidates",
        ),
        (
            "sparse_candidates",
            args.sparse_candidates,
            limits.max_candidates,
            "--max-candidates",
        ),
    ];
    for (name, value, cap, flag) in caps {
        if let Some(v) = value.filter(|&v| v as usize > cap) {
            return Err(ApiError::new(
                ErrorCode::ParamOutOfRange,
                format!("params.{name} is {v}; this server allows at most {cap} ({flag})"),
            ));
        }
    }
    Ok(())
}

fn query_vectors(rows: Vec<Vec<f32>>, dim: usize, max: usize) -> Result<MultiVector, ApiError> {
    if rows.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyQuery,
            "`vectors` has no rows",
        ));
    }
    if rows.len() > max {
        return Err(ApiError::new(
            ErrorCode::InvalidVectors,
            format!("{} query vectors; the limit is {max}", rows.len()),
        ));
    }
    let mut data = Vec::with_capacity(rows.len() * dim);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != dim {
            return Err(ApiError::new(
                ErrorCode::WrongDimension,
                format!(
                    "vectors[{i}] has {} values; the index's dimension is {dim}",
                    row.len()
                ),
            ));
        }
        if row.iter().any(|v| !v.is_finite()) {
            return Err(ApiError::new(
                ErrorCode::InvalidVectors,
                format!("vectors[{i}] holds a non-finite value"),
            ));
        }
        data.extend_from_slice(row);
    }
    let vectors = MultiVector::new(data, dim);
    tessera_index::search::check_query_vectors(vectors.view())
        .map_err(|e| ApiError::new(ErrorCode::InvalidVectors, e.to_string()))?;
    Ok(vectors)
}

/// Encode what the plans need (texts batched together), search each, shape responses.
fn execute(
    name: &str,
    searcher: &Searcher,
    plans: Vec<Plan>,
) -> Result<Vec<SearchResponse>, ApiError> {
    let started = Instant::now();
    // Texts of plans without vectors get every encoding; with vectors, only SPLADE's.
    let to_encode: Vec<&str> = plans
        .iter()
        .filter(|p| p.vectors.is_none())
        .filter_map(|p| p.text.as_deref())
        .collect();
    let mut encoded = searcher.encode_batch(&to_encode)?.into_iter();
    let encode_ms = started.elapsed().as_secs_f64() * 1e3 / plans.len().max(1) as f64;
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let t = Instant::now();
        let q = match plan.vectors {
            None => encoded.next().expect("one encoding per text-only plan"),
            Some(vectors) => {
                let sparse = match (&plan.text, searcher.splade()) {
                    (Some(text), Some(s)) => s
                        .encode(&[text.as_str()], crate::encoder::Role::Query)
                        .map_err(crate::Error::from)?
                        .pop(),
                    _ => None,
                };
                EncodedQuery {
                    text: plan.text.clone().unwrap_or_default(),
                    vectors,
                    sparse,
                    truncated: false,
                }
            }
        };
        let query = Query {
            text: plan.text.as_deref(),
            ..q.filtered(plan.filter.as_ref())
        };
        let searched = Instant::now();
        let plan_encode_ms = encode_ms + (searched - t).as_secs_f64() * 1e3;
        let (hits, ran) = searcher.search_planned(&query, plan.k, &plan.mode, &plan.params)?;
        let index = searcher.index();
        let mut results = Vec::with_capacity(hits.len());
        for (i, h) in hits.into_iter().enumerate() {
            let fields = match plan.include_fields {
                true => Some(serde_json::Value::Object(
                    index.fields(h.addr).map_err(crate::Error::from)?,
                )),
                false => None,
            };
            results.push(SearchResult {
                rank: i + 1,
                text: plan
                    .include_text
                    .then(|| index.text(h.addr).map(str::to_string))
                    .flatten(),
                fields,
                id: h.id,
                score: h.score,
            });
        }
        out.push(SearchResponse {
            index: name.to_string(),
            mode: plan.mode.to_string(),
            k: plan.k,
            query_truncated: q.truncated,
            took_ms: encode_ms + t.elapsed().as_secs_f64() * 1e3,
            encode_ms: plan_encode_ms,
            search_ms: searched.elapsed().as_secs_f64() * 1e3,
            approximate: searcher.index().scores_are_approximate(&plan.mode),
            filter: ran.filtered.then_some(ran),
            results,
        });
    }
    Ok(out)
}

/// Search one index.
#[utoipa::path(
    post,
    path = "/indexes/{name}/search",
    params(("name" = String, Path, description = "Index name")),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Ranked results", body = SearchResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Unknown index", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<axum::response::Response, ApiError> {
    let limits = state.limits();
    let deadline = Deadline::after(limits.request_timeout);
    let served = state.index(&name)?;
    let searcher = served.searcher()?;
    let plan = Plan::new(req, &searcher, &limits, deadline)?;
    let mut responses = state
        .blocking(move || execute(&name, &searcher, vec![plan]))
        .await?;
    json_within(
        &responses.pop().expect("one plan, one response"),
        limits.max_response_bytes,
    )
}

/// `POST /indexes/{name}/explain`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The query text.
    pub query: String,
    /// The document's external id.
    pub id: String,
}

/// Why document `id` scores what it does for `query`: per query token, the stored vector
/// it matched (its tokens and their character spans in the document's text) and the
/// similarity; the similarities sum to the exact MaxSim score.
#[utoipa::path(
    post,
    path = "/indexes/{name}/explain",
    params(("name" = String, Path, description = "Index name")),
    request_body = ExplainRequest,
    responses(
        (status = 200, description = "Token-level explanation", body = crate::search::Explanation),
        (status = 400, description = "Blank query, or a document that cannot be explained (no text kept, pre-encoded vectors)", body = ErrorBody),
        (status = 404, description = "Unknown index or document", body = ErrorBody),
    )
)]
pub async fn explain(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ExplainRequest>,
) -> Result<axum::response::Response, ApiError> {
    let limits = state.limits();
    let served = state.index(&name)?;
    let searcher = served.searcher()?;
    if req.query.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyQuery, "query text is blank"));
    }
    if searcher.index().lookup(&req.id).is_none() {
        return Err(ApiError::new(
            ErrorCode::UnknownDocument,
            format!("index {name:?} has no document {:?}", req.id),
        ));
    }
    let explanation = state
        .blocking(move || {
            searcher.explain(&req.query, &req.id).map_err(|e| match e {
                crate::Error::Usage(m) => ApiError::new(ErrorCode::InvalidRequest, m),
                e => ApiError::from(e),
            })
        })
        .await?;
    json_within(&explanation, limits.max_response_bytes)
}

/// The JSON response, or `response_too_large` if it would exceed `max` bytes.
fn json_within<T: Serialize>(body: &T, max: usize) -> Result<axum::response::Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("response: {e}")))?;
    if bytes.len() > max {
        return Err(ApiError::new(
            ErrorCode::ResponseTooLarge,
            format!(
                "the response would be {} bytes; this server sends at most {max} \
                 (--max-response-bytes): ask for fewer results or leave out include_text",
                bytes.len()
            ),
        ));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Search one index with many queries (encoded together).
#[utoipa::path(
    post,
    path = "/indexes/{name}/search/batch",
    params(("name" = String, Path, description = "Index name")),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One response per query, in order", body = BatchResponse),
        (status = 400, description = "Invalid request (the message names the query)", body = ErrorBody),
        (status = 404, description = "Unknown index", body = ErrorBody),
    )
)]
pub async fn search_batch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<axum::response::Response, ApiError> {
    let served = state.index(&name)?;
    let searcher = served.searcher()?;
    let limits = state.limits();
    let deadline = Deadline::after(limits.request_timeout);
    if req.queries.is_empty() || req.queries.len() > limits.max_batch {
        return Err(ApiError::new(
            ErrorCode::BadBatchSize,
            format!(
                "a batch holds 1..={} queries, got {}",
                limits.max_batch,
                req.queries.len()
            ),
        ));
    }
    let plans = req
        .queries
        .into_iter()
        .enumerate()
        .map(|(i, q)| Plan::new(q, &searcher, &limits, deadline).map_err(|e| e.in_query(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let results = state
        .blocking(move || execute(&name, &searcher, plans))
        .await?;
    let response = BatchResponse {
        results,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    json_within(&response, limits.max_response_bytes)
}

fn summary(served: &Served) -> IndexSummary {
    let mut out = IndexSummary {
        name: served.name.clone(),
        status: served.status(),
        num_docs: None,
        num_vectors: None,
        dim: None,
        components: None,
        model: None,
        writable: None,
    };
    if let (Ok(searcher), Ok(writer)) = (served.searcher(), served.writer()) {
        let m = searcher.index().manifest();
        out.num_docs = Some(m.num_docs);
        out.num_vectors = Some(m.num_vectors);
        out.dim = Some(m.dim);
        out.components = Some(m.components.iter().map(|c| c.to_string()).collect());
        out.model = Some(m.model.name.clone());
        out.writable = Some(writer.is_some());
    }
    out
}

/// The served indexes.
#[utoipa::path(get, path = "/indexes", responses((status = 200, body = Vec<IndexSummary>)))]
pub async fn list_indexes(State(state): State<AppState>) -> Json<Vec<IndexSummary>> {
    Json(state.0.indexes.values().map(|s| summary(s)).collect())
}

/// One index: counts, segments, codec, model, configuration, sizes.
#[utoipa::path(
    get,
    path = "/indexes/{name}",
    params(("name" = String, Path, description = "Index name")),
    responses((status = 200, body = IndexInfo), (status = 404, body = ErrorBody))
)]
pub async fn index_info(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<IndexInfo>, ApiError> {
    let served = state.index(&name)?;
    let searcher = served.searcher()?;
    let index = searcher.index();
    let m = index.manifest();
    let expose = state.0.expose_paths;
    Ok(Json(IndexInfo {
        summary: summary(&served),
        dir: expose.then(|| index.dir().display().to_string()),
        generation: m.generation,
        created_by: m.created_by.clone(),
        model_weights_sha256: m.model.weights_sha256.clone(),
        stores_text: index.has_texts(),
        index_bytes: m.index_bytes(),
        component_bytes: m.component_bytes(),
        report: crate::info::IndexReport::of(m),
        config: if expose {
            m.config.clone()
        } else {
            without_paths(m.config.clone())
        },
    }))
}

fn is_absolute_path(s: &str) -> bool {
    let b = s.as_bytes();
    s.starts_with('/') || (b.len() > 2 && b[1] == b':' && matches!(b[2], b'/' | b'\\'))
}

/// `value` with every string that is an absolute path cut to its last component: the
/// server's disk layout is not the client's business.
fn without_paths(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if is_absolute_path(&s) => {
            let last = s.rsplit(['/', '\\']).find(|p| !p.is_empty()).unwrap_or("");
            Value::String(last.to_string())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(without_paths).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, without_paths(v))).collect())
        }
        other => other,
    }
}

/// One document by its external id.
#[utoipa::path(
    get,
    path = "/indexes/{name}/documents/{id}",
    params(
        ("name" = String, Path, description = "Index name"),
        ("id" = String, Path, description = "External document id"),
    ),
    responses((status = 200, body = DocumentResponse), (status = 404, body = ErrorBody))
)]
pub async fn document(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let served = state.index(&name)?;
    let searcher = served.searcher()?;
    let index = searcher.index();
    let addr = index.lookup(&id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownDocument,
            format!("index {name:?} has no document {id:?}"),
        )
    })?;
    let fields = match index.has(tessera_index::Component::Fields) {
        true => Some(serde_json::Value::Object(
            index.fields(addr).map_err(crate::Error::from)?,
        )),
        false => None,
    };
    Ok(Json(DocumentResponse {
        fields,
        num_vectors: index.vectors(addr).len(),
        text: index.text(addr).map(str::to_string),
        id,
        segment: index.segment(addr.segment as usize).id(),
        doc: addr.doc,
    }))
}

fn read_only(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ReadOnly,
        format!("index {name:?} is served read-only (tessera serve --read-only)"),
    )
}

/// Add documents (or, with `"upsert": true`, replace those with the same ids). Answers
/// once the write is committed and visible to searches.
#[utoipa::path(
    post,
    path = "/indexes/{name}/documents",
    params(("name" = String, Path, description = "Index name")),
    request_body = DocumentsRequest,
    responses(
        (status = 200, description = "Committed", body = WriteResponse),
        (status = 400, description = "Invalid document", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 409, description = "An id the index already has (without upsert)", body = ErrorBody),
    )
)]
pub async fn add_documents(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<DocumentsRequest>,
) -> Result<Json<WriteResponse>, ApiError> {
    let started = Instant::now();
    let served = state.index(&name)?;
    let writer = served.writer()?.ok_or_else(|| read_only(&name))?.clone();
    let limits = state.limits();
    if req.documents.is_empty() || req.documents.len() > limits.max_write_docs {
        return Err(ApiError::new(
            ErrorCode::BadBatchSize,
            format!(
                "a write holds 1..={} documents (--max-write-docs), got {}",
                limits.max_write_docs,
                req.documents.len()
            ),
        ));
    }
    let searcher = served.searcher()?;
    let upsert = req.upsert;
    let docs = state
        .blocking_write(move || prepare_documents(&searcher, req.documents, &limits))
        .await?;
    let outcome = writer.write(WriteOp::Put { docs, upsert }).await?;
    Ok(Json(WriteResponse {
        index: name,
        outcome,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// Check documents against the index and encode those given as text (ColBERT, the
/// index's pooling, SPLADE when it has it).
fn prepare_documents(
    searcher: &Searcher,
    docs: Vec<NewDocument>,
    limits: &Limits,
) -> Result<Vec<ReadyDoc>, ApiError> {
    use tessera_index::Component;
    let index = searcher.index();
    let dim = index.dim();
    let needs_text =
        index.has_texts() || index.has(Component::Bm25) || index.has(Component::Splade);
    let bad = |i: usize, msg: String| {
        ApiError::new(ErrorCode::InvalidDocument, format!("documents[{i}]: {msg}"))
    };
    let mut ready = Vec::with_capacity(docs.len());
    let mut to_encode = Vec::new();
    for (i, d) in docs.into_iter().enumerate() {
        if d.id.is_empty() || d.id.len() > 1024 {
            return Err(bad(i, "id must be 1 to 1024 bytes".into()));
        }
        if d.text.is_none() && d.vectors.is_none() {
            return Err(bad(i, "give text, or pre-encoded vectors".into()));
        }
        if needs_text && d.text.is_none() {
            return Err(bad(
                i,
                "this index keeps texts (or builds bm25/splade from them): give the text".into(),
            ));
        }
        let vectors = match d.vectors {
            None => {
                to_encode.push(i);
                Vec::new()
            }
            Some(rows) => {
                if rows.is_empty() || rows.len() > 8192 {
                    return Err(bad(
                        i,
                        format!("{} vector rows; 1..=8192 allowed", rows.len()),
                    ));
                }
                let mut flat = Vec::with_capacity(rows.len() * dim);
                for (r, row) in rows.iter().enumerate() {
                    if row.len() != dim {
                        return Err(ApiError::new(
                            ErrorCode::WrongDimension,
                            format!("documents[{i}].vectors[{r}] has {} values; the index's dimension is {dim}", row.len()),
                        ));
                    }
                    if row.iter().any(|v| !v.is_finite() || v.abs() > 65504.0) {
                        return Err(bad(
                            i,
                            format!("vectors[{r}] holds a value an f16 cannot store"),
                        ));
                    }
                    flat.extend_from_slice(row);
                }
                flat
            }
        };
        let schema = &index.manifest().settings.fields;
        let fields = match &d.fields {
            None => tessera_index::FieldValues::new(),
            Some(_) if schema.is_empty() => {
                return Err(bad(
                    i,
                    "this index declares no fields (create it with --field NAME:TYPE)".into(),
                ))
            }
            Some(f) => schema
                .check(f)
                .map_err(|e| bad(i, format!("fields: {e}")))?,
        };
        ready.push(ReadyDoc {
            id: d.id,
            vectors,
            text: d.text,
            sparse: None,
            fields,
        });
    }
    let _ = limits;
    if !to_encode.is_empty() {
        // An index without a model takes pre-encoded documents only (400 naming it).
        let encoder = searcher.encoder()?;
        let record = crate::search::ModelRecord::read(index.manifest(), index.dir())?;
        let texts: Vec<&str> = to_encode
            .iter()
            .map(|&i| ready[i].text.as_deref().unwrap_or(""))
            .collect();
        let encoded =
            crate::pipeline::encode_texts(encoder, searcher.splade(), record.pooling, &texts)
                .map_err(crate::Error::from)?;
        for (&i, (vectors, sparse)) in to_encode.iter().zip(encoded) {
            ready[i].vectors = vectors;
            ready[i].sparse = sparse;
        }
    }
    // Pre-encoded documents still need SPLADE vectors from their text.
    if let Some(splade) = searcher.splade() {
        let rest: Vec<usize> = (0..ready.len())
            .filter(|i| !to_encode.contains(i))
            .collect();
        if !rest.is_empty() {
            let texts: Vec<&str> = rest
                .iter()
                .map(|&i| ready[i].text.as_deref().unwrap_or(""))
                .collect();
            let sparse = splade
                .encode(&texts, crate::encoder::Role::Document)
                .map_err(crate::Error::from)?;
            for (&i, v) in rest.iter().zip(sparse) {
                ready[i].sparse = Some(v);
            }
        }
    }
    Ok(ready)
}

/// Delete one document by id (404 if no live document has it).
#[utoipa::path(
    delete,
    path = "/indexes/{name}/documents/{id}",
    params(
        ("name" = String, Path, description = "Index name"),
        ("id" = String, Path, description = "External document id"),
    ),
    responses(
        (status = 200, description = "Deleted and committed", body = WriteResponse),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn delete_document(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<WriteResponse>, ApiError> {
    let started = Instant::now();
    let served = state.index(&name)?;
    let writer = served.writer()?.ok_or_else(|| read_only(&name))?.clone();
    let outcome = writer
        .write(WriteOp::Delete {
            ids: vec![id.clone()],
        })
        .await?;
    if outcome.deleted == 0 {
        return Err(ApiError::new(
            ErrorCode::UnknownDocument,
            format!("index {name:?} has no document {id:?}"),
        ));
    }
    Ok(Json(WriteResponse {
        index: name,
        outcome,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// Delete documents by id; ids no live document has are listed, not an error.
#[utoipa::path(
    post,
    path = "/indexes/{name}/documents/delete",
    params(("name" = String, Path, description = "Index name")),
    request_body = DeleteRequest,
    responses(
        (status = 200, description = "Deleted and committed", body = WriteResponse),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn delete_documents(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<Json<WriteResponse>, ApiError> {
    let started = Instant::now();
    let served = state.index(&name)?;
    let writer = served.writer()?.ok_or_else(|| read_only(&name))?.clone();
    let limits = state.limits();
    if req.ids.is_empty() || req.ids.len() > limits.max_write_docs {
        return Err(ApiError::new(
            ErrorCode::BadBatchSize,
            format!(
                "a delete names 1..={} ids (--max-write-docs), got {}",
                limits.max_write_docs,
                req.ids.len()
            ),
        ));
    }
    let outcome = writer.write(WriteOp::Delete { ids: req.ids }).await?;
    Ok(Json(WriteResponse {
        index: name,
        outcome,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        indexes: state.0.indexes.len(),
        ready: state.ready_count(),
    })
}

/// Readiness: 200 once every index is loaded, 503 while any is still loading (the
/// process is live from the start: see `/healthz`).
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let ready = state.ready_count();
    let all = state.0.indexes.len();
    let body = Health {
        status: if ready == all { "ready" } else { "loading" }.into(),
        indexes: all,
        ready,
    };
    let code = if ready == all {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 description of this API")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises"),
    )
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera search API",
        description = "Late-interaction (multi-vector) search over Tessera indexes. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` with a stable code."
    ),
    paths(
        search,
        search_batch,
        explain,
        list_indexes,
        index_info,
        document,
        add_documents,
        delete_document,
        delete_documents,
        healthz,
        readyz,
        metrics_text,
        openapi_json
    ),
    components(schemas(ErrorCode, WriteOutcome, LoadStatus))
)]
pub struct ApiDoc;
