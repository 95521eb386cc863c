//! Prometheus metrics (`GET /metrics`): requests by route, method and status, a latency
//! histogram by route, errors by code. One process-wide registry.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    errors: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new("tessera_http_requests_total", "HTTP requests answered"),
        &["route", "method", "status"],
    )
    .expect("valid metric");
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "tessera_http_request_duration_seconds",
            "Time from request to response",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["route"],
    )
    .expect("valid metric");
    let errors = IntCounterVec::new(
        Opts::new("tessera_http_errors_total", "Error responses by error code"),
        &["code"],
    )
    .expect("valid metric");
    for c in [&requests, &errors] {
        registry
            .register(Box::new(c.clone()))
            .expect("registered once");
    }
    registry
        .register(Box::new(latency.clone()))
        .expect("registered once");
    Metrics {
        registry,
        requests,
        latency,
        errors,
    }
});

/// Count an error response.
pub fn error(code: &str) {
    METRICS.errors.with_label_values(&[code]).inc();
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("Prometheus text is UTF-8")
}

/// The method as a label: the standard ones by name, anything else `other` (a client
/// inventing methods must not grow the label set, and with it `/metrics`, without bound).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: time every request, label it with its route template (not the raw path,
/// so index names and ids do not explode the label set).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let m = &*METRICS;
    m.requests
        .with_label_values(&[&route, method, response.status().as_str()])
        .inc();
    m.latency
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    response
}
