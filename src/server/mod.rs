//! `tessera serve`: the HTTP search API (axum).
//!
//! Indexes are opened once and served by name; indexes built with the same model share
//! one loaded encoder. Query encoding and search run on tokio's blocking pool, at most
//! one per core at a time (a semaphore), so the async runtime never stalls and a burst
//! of requests queues instead of thrashing; exhaustive MaxSim inside uses rayon. Errors
//! are one type with stable codes (`error.rs`); a panic while answering a request is a
//! 500 for that request only. SIGINT/SIGTERM stop accepting connections and let
//! in-flight requests finish.

mod api;
mod conn;
mod error;
mod metrics;
mod page;
mod writes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub use api::{ApiDoc, AppState, Limits, Served};
pub use conn::ConnectionLimits;
pub use error::{ApiError, ErrorCode};
pub use writes::{WriteOutcome, WriterHandle};

use crate::encoder::DeviceSpec;
use crate::search::{EncoderCache, Searcher};

/// The API's routes with their middleware.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The API plus `extra` routes (a web page, an admin endpoint), under the same
/// middleware: body limit, panic catching, metrics.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let limits = state.limits();
    extra
        .route("/", get(page::index_html))
        .route("/ui/app.js", get(page::app_js))
        .route("/ui/style.css", get(page::style_css))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics_text))
        .route("/openapi.json", get(api::openapi_json))
        .route("/indexes", get(api::list_indexes))
        .route("/indexes/{name}", get(api::index_info))
        .route("/indexes/{name}/search", post(api::search))
        .route("/indexes/{name}/search/batch", post(api::search_batch))
        .route("/indexes/{name}/explain", post(api::explain))
        .route(
            "/indexes/{name}/documents/{id}",
            get(api::document).delete(api::delete_document),
        )
        .route("/indexes/{name}/documents", post(api::add_documents))
        .route("/indexes/{name}/documents/delete", post(api::delete_documents))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // A declared length over the limit is refused before any body is read.
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                let declared = req
                    .headers()
                    .get(axum::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
                    use axum::response::IntoResponse;
                    return ApiError::new(
                        ErrorCode::BodyTooLarge,
                        "request body is larger than the server accepts (--max-body-bytes)",
                    )
                    .into_response();
                }
                next.run(req).await
            },
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        // The per-request deadline: past it the client gets 503 `deadline_exceeded` (the
        // search itself stops at the same deadline, see `api::Plan`).
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                use axum::response::IntoResponse;
                // A write answers once committed (it cannot be half undone): not cut.
                if is_write(&req) {
                    return next.run(req).await;
                }
                match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::new(
                        ErrorCode::DeadlineExceeded,
                        format!(
                            "the request took longer than this server's limit of {:.3} s (--request-timeout) and was stopped",
                            limits.request_timeout.as_secs_f64()
                        ),
                    )
                    .into_response(),
                }
            },
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Whether a request changes an index (the document routes other than GET).
fn is_write(req: &axum::extract::Request) -> bool {
    req.method() != axum::http::Method::GET
        && req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| p.as_str().starts_with("/indexes/{name}/documents"))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::new(
        ErrorCode::Internal,
        "the request failed unexpectedly; the server keeps running",
    )
    .into_response()
}

/// Serve `router(state)` on `listener` until `shutdown` completes; in-flight requests
/// finish first. Connections are capped and stalled ones closed (see [`conn`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), limits, shutdown).await
}

/// [`serve`] for any router (the API with extra routes, see [`router_with`]).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, router, limits, shutdown).await
}

/// What `tessera serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `(name, directory)` of each index.
    pub indexes: Vec<(String, PathBuf)>,
    pub addr: String,
    pub device: DeviceSpec,
    pub limits: Limits,
    pub connections: ConnectionLimits,
    pub concurrent_searches: usize,
    /// Show the server's file-system paths in `GET /indexes/{name}`.
    pub expose_paths: bool,
    /// Refuse writes; pick up commits made by other processes instead (checked every
    /// `reload_interval`).
    pub read_only: bool,
    pub reload_interval: std::time::Duration,
    /// Writes arriving within this of the first of a group are committed together.
    pub group_window: std::time::Duration,
}

/// Bind, then open the indexes in the background (sharing encoders) while already
/// answering: an index's requests get 503 `index_loading` until it is open, `/readyz` is
/// 503 until all are, and stderr logs each step. Serves until SIGINT/SIGTERM; exits with
/// the error if an index fails to load.
pub fn run(config: ServeConfig) -> crate::Result<()> {
    let served: Vec<Served> = config
        .indexes
        .iter()
        .map(|(name, _)| Served::loading(name.clone()))
        .collect();
    let state = AppState::new(served, config.limits, config.concurrent_searches)
        .with_expose_paths(config.expose_paths);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Io {
            what: "starting the async runtime".into(),
            source: e,
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.addr)
            .await
            .map_err(|e| crate::Error::Io {
                what: format!("binding {}", config.addr),
                source: e,
            })?;
        let addr = listener.local_addr().map_err(|e| crate::Error::Io {
            what: "reading the bound address".into(),
            source: e,
        })?;
        let names: Vec<&str> = config.indexes.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "listening on http://{addr} · indexes: {} (loading; /readyz answers 200 once all are open)",
            names.join(", ")
        );
        raise_fd_limit(config.connections.max_connections);
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<crate::Error>();
        let failure = Arc::new(std::sync::Mutex::new(None::<String>));
        spawn_loader(config.clone(), state.clone(), failed_tx);
        let stop = {
            let failure = failure.clone();
            async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    Ok(e) = failed_rx => {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    }
                }
            }
        };
        serve(listener, state, config.connections, stop)
            .await
            .map_err(|e| crate::Error::Io {
                what: "serving".into(),
                source: e,
            })?;
        if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(crate::Error::Usage(format!(
                "not serving: an index failed to load: {e}"
            )));
        }
        eprintln!("stopped");
        Ok(())
    })
}

/// Open each index of `config` in turn on a thread of its own, publish it into `state`
/// and log the steps; on the first failure, mark the index failed and send the error.
fn spawn_loader(
    config: ServeConfig,
    state: AppState,
    failed: tokio::sync::oneshot::Sender<crate::Error>,
) {
    let _ = std::thread::Builder::new()
        .name("loader".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let mut cache = EncoderCache::default();
            let mut watched = Vec::new();
            for (name, dir) in &config.indexes {
                let served = state.served(name).expect("every configured index is served");
                match load_one(&config, &served, dir, &mut cache) {
                    Ok(Some(cell)) => watched.push((dir.clone(), cell)),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("error: index {name}: {e}");
                        served.fail(e.to_string());
                        let _ = failed.send(crate::Error::Usage(format!("index {name}: {e}")));
                        return;
                    }
                }
            }
            let (colbert, splade) = cache.loaded();
            eprintln!(
                "ready: {} index(es) open in {:.1} s · {colbert} ColBERT and {splade} SPLADE model(s) loaded",
                config.indexes.len(),
                started.elapsed().as_secs_f64()
            );
            if !watched.is_empty() {
                spawn_reloader(watched, config.reload_interval);
            }
        });
}

/// Open one index with progress logged (a line per segment, at most about one a
/// second, and the last), then publish it; a read-only index's cell comes back for the
/// reloader.
fn load_one(
    config: &ServeConfig,
    served: &Served,
    dir: &std::path::Path,
    cache: &mut EncoderCache,
) -> crate::Result<Option<Arc<std::sync::RwLock<Searcher>>>> {
    use crate::search::LoadStep;
    let name = &served.name;
    let t = std::time::Instant::now();
    eprintln!("loading {name}: {}", dir.display());
    let mut last_log = std::time::Instant::now();
    let mut progress = |step: LoadStep| match step {
        LoadStep::Index(p) => {
            served.progress("opening segments", p.segments_done, p.segments);
            let done = p.segments_done == p.segments;
            if p.segments_done > 0 && (done || last_log.elapsed().as_secs_f64() >= 1.0) {
                last_log = std::time::Instant::now();
                eprintln!(
                    "loading {name}: {}/{} segments open and checked ({} of {} documents, {:.1} s)",
                    p.segments_done,
                    p.segments,
                    p.docs_done,
                    p.docs,
                    t.elapsed().as_secs_f64()
                );
            }
            if done {
                served.progress("loading models", p.segments_done, p.segments);
            }
        }
        LoadStep::Model { what, dir, seconds } => {
            eprintln!(
                "loading {name}: {what} model {} loaded in {seconds:.1} s",
                dir.display()
            );
        }
    };
    let searcher = Searcher::open_shared(dir, config.device, cache, &mut progress)?;
    let cell = if config.read_only {
        Some(served.open_read_only(searcher))
    } else {
        served.progress("opening the writer", 0, 0);
        served.open_writable(dir.to_path_buf(), searcher, config.group_window)?;
        None
    };
    eprintln!(
        "loading {name}: ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(cell)
}

/// Read-only indexes follow commits made by other processes (`tessera add`, another
/// server): when an index's manifest changes, its new snapshot is published; searches in
/// flight finish on the one they started with.
fn spawn_reloader(
    indexes: Vec<(PathBuf, std::sync::Arc<std::sync::RwLock<Searcher>>)>,
    every: std::time::Duration,
) {
    let stamp = |dir: &PathBuf| {
        std::fs::metadata(dir.join(tessera_index::segment::MANIFEST_NAME))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen: Vec<_> = indexes.iter().map(|(d, _)| stamp(d)).collect();
    let _ = std::thread::Builder::new()
        .name("reloader".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            for (i, (dir, cell)) in indexes.iter().enumerate() {
                let now = stamp(dir);
                if now == seen[i] {
                    continue;
                }
                let current = cell.read().unwrap_or_else(|e| e.into_inner()).clone();
                match current.index().reload() {
                    Ok(index) => {
                        seen[i] = now;
                        *cell.write().unwrap_or_else(|e| e.into_inner()) =
                            current.with_index(index);
                    }
                    // A commit in progress elsewhere, or a damaged index: keep serving the
                    // snapshot we have and try again next time.
                    Err(e) => eprintln!("warning: {}: not reloaded: {e}", dir.display()),
                }
            }
        });
}

/// Every connection holds a file descriptor: ask the kernel for enough of them (the soft
/// limit is often 1,024) for `--max-connections` plus the index files and some slack.
fn raise_fd_limit(max_connections: usize) {
    let want = max_connections as u64 + 256;
    match rlimit::increase_nofile_limit(want) {
        Ok(got) if got < want => eprintln!(
            "warning: the open-file limit is {got}; with --max-connections {max_connections} \
             the server may run out of file descriptors (raise `ulimit -n`)"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot read the open-file limit: {e}"),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("shutting down: no new connections, finishing in-flight requests");
}
