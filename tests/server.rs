//! The HTTP API end to end: the real `tessera serve` binary on an ephemeral loopback
//! port, a real HTTP client (reqwest), every endpoint and error case, results equal to
//! `tessera search`, a corpus of malformed requests, graceful shutdown; and the router
//! served in-process for what needs a custom route (a panicking handler, a slow one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(p: &str) -> PathBuf {
    repo().join("tests/fixtures").join(p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tessera(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One index for every test: tiny-beir, tiny random ColBERT model, real SPLADE-tiny,
/// PLAID and BM25, texts kept.
fn index_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let dir = root.join("tiny");
        tessera(&[
            "index",
            s(&fixture("tiny-beir")),
            "--out",
            s(&dir),
            "--model",
            s(&fixture("tiny-bert")),
            "--components",
            "plaid,splade,bm25",
            "--splade-model",
            s(&repo().join("models/splade-tiny")),
            "--num-centroids",
            "8",
            "--quiet",
        ]);
        dir
    })
}

/// A running `tessera serve`; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// The shared test index, read-only (many tests serve it at once; only one process
    /// may hold its writer lock).
    fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--read-only"];
        args.extend_from_slice(extra);
        Server::serve(index_dir(), &args)
    }

    /// Serve `dir` with the given flags (writable unless they say `--read-only`).
    fn serve(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "serve".to_string(),
            format!("tiny={}", s(dir)),
            "--addr".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(&args)
            .current_dir(repo())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().expect("serve prints its address").unwrap();
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        // The indexes open after the server starts listening: wait for "ready:".
        for line in lines.by_ref() {
            let line = line.unwrap();
            assert!(!line.starts_with("error:"), "tessera serve: {line}");
            if line.starts_with("ready:") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn post(c: &Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let r = c.post(url).json(body).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap())
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

#[test]
fn every_read_endpoint_answers() {
    let srv = Server::start(&[]);
    let c = client();
    let health: Value = c.get(srv.url("/healthz")).send().unwrap().json().unwrap();
    assert_eq!(health, json!({"status": "ok", "indexes": 1, "ready": 1}));
    let ready = c.get(srv.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready, json!({"status": "ready", "indexes": 1, "ready": 1}));

    let list: Value = c.get(srv.url("/indexes")).send().unwrap().json().unwrap();
    assert_eq!(list[0]["name"], "tiny");
    assert_eq!(list[0]["num_docs"], 16);
    assert_eq!(list[0]["status"]["state"], "ready");
    assert!(list[0]["status"]["load_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        list[0]["components"],
        json!(["store", "plaid", "splade", "bm25"])
    );

    let info: Value = c
        .get(srv.url("/indexes/tiny"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["num_docs"], 16);
    assert_eq!(info["stores_text"], true);
    let parts: u64 = info["component_bytes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(parts, info["index_bytes"].as_u64().unwrap());

    let corpus = std::fs::read_to_string(fixture("tiny-beir/corpus.jsonl")).unwrap();
    let first: Value = serde_json::from_str(corpus.lines().next().unwrap()).unwrap();
    let id = first["_id"].as_str().unwrap();
    let doc: Value = c
        .get(srv.url(&format!("/indexes/tiny/documents/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["id"], id);
    let want = format!(
        "{} {}",
        first["title"].as_str().unwrap(),
        first["text"].as_str().unwrap()
    );
    assert_eq!(doc["text"], want.trim());
    assert!(doc["num_vectors"].as_u64().unwrap() > 0);

    let r = c
        .get(srv.url("/indexes/tiny/documents/no-such-doc"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.json().unwrap()), "unknown_document");

    // The OpenAPI document is generated from the handlers: every route is in it.
    let api: Value = c
        .get(srv.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in [
        "/indexes/{name}/search",
        "/indexes/{name}/search/batch",
        "/indexes",
        "/indexes/{name}",
        "/indexes/{name}/documents/{id}",
        "/indexes/{name}/documents",
        "/indexes/{name}/documents/delete",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            api["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    assert!(api["components"]["schemas"].get("SearchRequest").is_some());

    // Metrics count what happened, by route template and status.
    let metrics = c.get(srv.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains(
            "tessera_http_requests_total{method=\"GET\",route=\"/indexes/{name}/documents/{id}\",status=\"404\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tessera_http_errors_total{code=\"unknown_document\"} 1"));
    assert!(metrics.contains("tessera_http_request_duration_seconds_bucket{route=\"/healthz\""));
}

#[test]
fn search_results_equal_the_command_line() {
    let srv = Server::start(&[]);
    let c = client();
    let queries = [
        "vitamin d deficiency and mortality",
        "antibiotic resistance",
        "sleep",
    ];
    for mode in [
        "exhaustive",
        "plaid",
        "bm25",
        "splade",
        "bm25+splade",
        "rrf:bm25+splade",
    ] {
        for q in queries {
            let cli: Value = serde_json::from_str(&tessera(&[
                "search",
                s(index_dir()),
                q,
                "--mode",
                mode,
                "-k",
                "5",
                "--json",
            ]))
            .unwrap();
            let (status, api) = post(
                &c,
                &srv.url("/indexes/tiny/search"),
                &json!({"query": q, "k": 5, "mode": mode}),
            );
            assert_eq!(status, 200, "{api}");
            // Scores are f32 on both sides (JSON prints them with different digits).
            let pairs = |v: &Value| -> Vec<(String, f32)> {
                v["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let id = r["id"].as_str().unwrap().to_string();
                        (id, r["score"].as_f64().unwrap() as f32)
                    })
                    .collect()
            };
            assert_eq!(pairs(&api), pairs(&cli), "{mode} {q:?}");
            assert_eq!(api["mode"], mode);
        }
    }

    // A batch answers like the single requests, in order, texts included on request.
    let batch = json!({"queries": queries.iter().map(|q| json!({"query": q, "k": 3, "include_text": true})).collect::<Vec<_>>()});
    let (status, b) = post(&c, &srv.url("/indexes/tiny/search/batch"), &batch);
    assert_eq!(status, 200, "{b}");
    for (i, q) in queries.iter().enumerate() {
        let (_, one) = post(
            &c,
            &srv.url("/indexes/tiny/search"),
            &json!({"query": q, "k": 3}),
        );
        let ids = |v: &Value| {
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&b["results"][i]), ids(&one));
        assert!(
            b["results"][i]["results"][0]["text"]
                .as_str()
                .unwrap()
                .len()
                > 5
        );
    }
}

#[test]
fn pre_encoded_vectors_search_like_the_text_they_encode() {
    use tessera::encoder::{ColbertEncoder, DeviceSpec, Encoder, LoadOptions, Role};
    let srv = Server::start(&[]);
    let c = client();
    let encoder = ColbertEncoder::load(
        &fixture("tiny-bert"),
        &LoadOptions::default(),
        DeviceSpec::Cpu,
    )
    .unwrap();
    let q = "coffee and heart disease";
    let mv = encoder.encode(&[q], Role::Query).unwrap().remove(0);
    let rows: Vec<Vec<f32>> = mv
        .as_slice()
        .chunks(mv.dim())
        .map(<[f32]>::to_vec)
        .collect();
    let (s1, by_text) = post(
        &c,
        &srv.url("/indexes/tiny/search"),
        &json!({"query": q, "k": 5}),
    );
    let (s2, by_vectors) = post(
        &c,
        &srv.url("/indexes/tiny/search"),
        &json!({"vectors": rows, "k": 5}),
    );
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{by_vectors}");
    assert_eq!(by_text["results"], by_vectors["results"]);
    // Vectors plus text: text-reading stages work too.
    let (s3, both) = post(
        &c,
        &srv.url("/indexes/tiny/search"),
        &json!({"vectors": rows, "query": q, "k": 5, "mode": "bm25+splade"}),
    );
    assert_eq!(s3, 200, "{both}");
    // Vectors alone cannot run bm25.
    let (s4, no_text) = post(
        &c,
        &srv.url("/indexes/tiny/search"),
        &json!({"vectors": rows, "mode": "bm25"}),
    );
    assert_eq!(s4, 400);
    assert_eq!(error_code(&no_text), "unsupported_mode");
}

#[test]
fn each_error_case_has_its_status_and_code() {
    let srv = Server::start(&[
        "--max-query-bytes",
        "64",
        "--max-body-bytes",
        "4096",
        "--max-batch",
        "4",
    ]);
    let c = client();
    let search = srv.url("/indexes/tiny/search");
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"query": "x", "k": 0}), 400, "k_out_of_range"),
        (json!({"query": "x", "k": 1001}), 400, "k_out_of_range"),
        (
            json!({"query": "x", "k": 18446744073709551615u64}),
            400,
            "k_out_of_range",
        ),
        (json!({"query": "x", "k": -1}), 400, "invalid_request"),
        (json!({"query": "x", "k": 1e300}), 400, "invalid_request"),
        (json!({}), 400, "empty_query"),
        (json!({"query": "   "}), 400, "empty_query"),
        (json!({"vectors": []}), 400, "empty_query"),
        (json!({"query": "x".repeat(65)}), 400, "query_too_long"),
        (json!({"vectors": [[0.1, 0.2]]}), 400, "wrong_dimension"),
        (
            json!({"query": "x", "mode": "colbert"}),
            400,
            "invalid_mode",
        ),
        (
            json!({"query": "x", "mode": "muvera"}),
            400,
            "unsupported_mode",
        ),
        (
            json!({"query": "x", "params": {"ncells": 0}}),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "x", "params": {"rescore": "fuzzy"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "x", "colour": "red"}),
            400,
            "invalid_request",
        ),
        (json!({"query": 7}), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let (got, v) = post(&c, &search, &body);
        assert_eq!(got.as_u16(), status, "{body} -> {v}");
        assert_eq!(error_code(&v), code, "{body}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (st, v) = post(&c, &srv.url("/indexes/nope/search"), &json!({"query": "x"}));
    assert_eq!((st.as_u16(), error_code(&v)), (404, "unknown_index"));
    let r = c
        .post(&search)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().unwrap()), "invalid_json");
    let r = c.post(&search).body("{\"query\": \"x\"}").send().unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(error_code(&r.json().unwrap()), "unsupported_media_type");
    let big = json!({"query": "x", "vectors": vec![vec![0.0f32; 8]; 200]});
    let (st, v) = post(&c, &search, &big);
    assert_eq!((st.as_u16(), error_code(&v)), (413, "body_too_large"));
    let batch = |n: usize| json!({"queries": vec![json!({"query": "x"}); n]});
    let (st, v) = post(&c, &srv.url("/indexes/tiny/search/batch"), &batch(5));
    assert_eq!((st.as_u16(), error_code(&v)), (400, "bad_batch_size"));
    let (st, v) = post(&c, &srv.url("/indexes/tiny/search/batch"), &batch(0));
    assert_eq!((st.as_u16(), error_code(&v)), (400, "bad_batch_size"));
    let (st, v) = post(
        &c,
        &srv.url("/indexes/tiny/search/batch"),
        &json!({"queries": [{"query": "x"}, {"query": "y", "k": 0}]}),
    );
    assert_eq!((st.as_u16(), error_code(&v)), (400, "k_out_of_range"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("queries[1]"),
        "{v}"
    );
    let r = c.delete(srv.url("/indexes/tiny/search")).send().unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(&r.json().unwrap()), "method_not_allowed");
    let r = c.get(srv.url("/no/such/route")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.json().unwrap()), "not_found");
}

/// Send raw bytes as one HTTP/1.1 request; the status code of the answer (0 if the
/// server closed the connection without one).
fn raw_request(addr: &str, bytes: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn http_post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[test]
fn malformed_requests_all_get_4xx_and_the_server_keeps_answering() {
    let srv = Server::start(&["--max-body-bytes", "65536"]);
    let path = "/indexes/tiny/search";
    let json_bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"query\"".to_vec(),
        b"42".to_vec(),
        b"{\"query\": \"x\",}".to_vec(),
        b"{'query': 'x'}".to_vec(),
        b"{\"query\": \"x\" \"k\": 3}".to_vec(),
        b"{\"query\": \"\xff\xfe\"}".to_vec(),
        b"\xef\xbb\xbf{\"query\": \"x\"}".to_vec(),
        b"{\"query\": \"\\ud800\"}".to_vec(),
        b"{\"query\": \"x\", \"k\": 1e999}".to_vec(),
        b"{\"query\": \"x\", \"k\": 123456789012345678901234567890}".to_vec(),
        b"{\"query\": \"x\", \"k\": 3.5}".to_vec(),
        b"{\"query\": \"x\", \"k\": \"ten\"}".to_vec(),
        b"{\"query\": \"x\", \"k\": null, \"mode\": 5}".to_vec(),
        b"{\"query\": [\"x\"]}".to_vec(),
        b"{\"query\": {\"text\": \"x\"}}".to_vec(),
        b"{\"vectors\": \"x\"}".to_vec(),
        b"{\"vectors\": [1, 2, 3]}".to_vec(),
        b"{\"vectors\": [[\"a\"]]}".to_vec(),
        b"{\"query\": \"x\", \"include_text\": \"yes\"}".to_vec(),
        b"{\"query\": \"x\", \"params\": \"fast\"}".to_vec(),
        b"{\"query\": \"x\", \"params\": {\"ndocs\": -5}}".to_vec(),
        b"{\"query\": \"x\", \"params\": {\"centroid_score_threshold\": \"high\"}}".to_vec(),
        b"{\"query\": \"x\", \"mode\": \"rrf:\"}".to_vec(),
        b"{\"query\": \"x\", \"mode\": \"plaid+plaid\"}".to_vec(),
        b"{\"query\": \"x\", \"mode\": \"\"}".to_vec(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        format!("{{\"query\": {}\"x\"{}}}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        format!("{{\"query\": \"{}\"}}", "y".repeat(70_000)).into_bytes(),
        format!("{{\"query\": \"{}\"}}", "z".repeat(10_000)).into_bytes(),
    ];
    let mut n = 0;
    for body in &json_bodies {
        let status = raw_request(&srv.addr(), &http_post(path, "application/json", body));
        assert!(
            (400..500).contains(&status),
            "{:?} -> {status}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        n += 1;
    }
    // Malformed HTTP, wrong content types, a lying length.
    let raw: Vec<Vec<u8>> = vec![
        http_post(path, "text/plain", b"{\"query\": \"x\"}"),
        http_post(path, "application/x-www-form-urlencoded", b"query=x"),
        b"POST /indexes/tiny/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{}".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /indexes/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /indexes/tiny/search/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    ];
    for req in &raw {
        let status = raw_request(&srv.addr(), req);
        assert!(
            (400..500).contains(&status),
            "{:?} -> {status}",
            String::from_utf8_lossy(&req[..req.len().min(80)])
        );
        n += 1;
    }
    assert!(n >= 30, "only {n} malformed requests");
    let c = client();
    let health = c.get(srv.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    let (st, _) = post(&c, &srv.url(path), &json!({"query": "vitamin d"}));
    assert_eq!(st, 200);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut srv = Server::start(&[]);
    let c = client();
    assert_eq!(c.get(srv.url("/healthz")).send().unwrap().status(), 200);
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// The router served in-process, with test routes under the same middleware.
fn in_process(
    extra: axum::Router<tessera::server::AppState>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    use tessera::encoder::DeviceSpec;
    use tessera::search::Searcher;
    use tessera::server::{AppState, Limits, Served};
    let searcher = Searcher::open(index_dir(), None, DeviceSpec::Cpu).unwrap();
    let state = AppState::new(
        vec![Served::new("tiny".into(), searcher)],
        Limits {
            max_k: 100,
            max_batch: 8,
            max_body_bytes: 1 << 20,
            max_query_bytes: 1024,
            max_query_vectors: 64,
            ..Limits::default()
        },
        2,
    );
    serve_in_process(state, extra)
}

/// `state` served in-process (see [`in_process`]).
fn serve_in_process(
    state: tessera::server::AppState,
    extra: axum::Router<tessera::server::AppState>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let router = tessera::server::router_with(state, extra);
            let limits = tessera::server::ConnectionLimits::default();
            tessera::server::serve_router(listener, router, limits, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    (format!("http://{addr}"), stop, handle)
}

#[test]
fn an_index_still_loading_is_a_503_and_answers_once_open() {
    use tessera::encoder::DeviceSpec;
    use tessera::search::Searcher;
    use tessera::server::{AppState, Limits, Served};
    let state = AppState::new(
        vec![
            Served::loading("tiny".into()),
            Served::loading("broken".into()),
        ],
        Limits::default(),
        2,
    );
    let tiny = state.served("tiny").unwrap();
    let broken = state.served("broken").unwrap();
    tiny.progress("opening segments", 1, 3);
    let (base, stop, handle) = serve_in_process(state, axum::Router::new());
    let c = client();
    let search = json!({"query": "coffee", "k": 5, "mode": "exhaustive"});

    let (st, list) = get(&c, &format!("{base}/indexes"));
    assert_eq!(st, 200);
    let status = &list[1]["status"];
    assert_eq!(list[1]["name"], "tiny");
    assert_eq!(status["state"], "loading", "{list}");
    assert_eq!(status["step"], "opening segments");
    assert_eq!(
        (
            status["segments_done"].as_u64(),
            status["segments"].as_u64()
        ),
        (Some(1), Some(3))
    );
    assert!(
        list[1].get("num_docs").is_none(),
        "no counts before the index is open: {list}"
    );
    let r = c
        .post(format!("{base}/indexes/tiny/search"))
        .json(&search)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().unwrap();
    assert_eq!(error_code(&v), "index_loading");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 3 segments"),
        "{v}"
    );
    for path in ["/indexes/tiny", "/indexes/tiny/documents/d1"] {
        let (st, v) = get(&c, &format!("{base}{path}"));
        assert_eq!(
            (st.as_u16(), error_code(&v)),
            (503, "index_loading"),
            "{path}"
        );
    }
    let (st, v) = post(
        &c,
        &format!("{base}/indexes/tiny/documents"),
        &json!({"documents": [{"id": "x", "text": "y"}]}),
    );
    assert_eq!(
        (st.as_u16(), error_code(&v)),
        (503, "index_loading"),
        "a write is not refused as read-only"
    );
    let (st, v) = get(&c, &format!("{base}/readyz"));
    assert_eq!((st.as_u16(), v["ready"].as_u64()), (503, Some(0)));
    let (st, v) = get(&c, &format!("{base}/healthz"));
    assert_eq!(
        (st.as_u16(), v["status"].as_str()),
        (200, Some("ok")),
        "live while loading"
    );

    broken.fail("manifest.json: not JSON".into());
    let (st, v) = post(&c, &format!("{base}/indexes/broken/search"), &search);
    assert_eq!((st.as_u16(), error_code(&v)), (503, "index_unavailable"));
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("manifest.json: not JSON"));

    tiny.open_read_only(Searcher::open(index_dir(), None, DeviceSpec::Cpu).unwrap());
    let (st, got) = post(&c, &format!("{base}/indexes/tiny/search"), &search);
    assert_eq!(st, 200, "{got}");
    // The same request to a server whose index was open from the start.
    let (base2, stop2, handle2) = in_process(axum::Router::new());
    let (_, want) = post(&c, &format!("{base2}/indexes/tiny/search"), &search);
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&got), ids(&want));
    assert_eq!(ids(&got).len(), 5);
    let (_, list) = get(&c, &format!("{base}/indexes"));
    assert_eq!(list[1]["status"]["state"], "ready");
    assert_eq!(list[1]["num_docs"], 16);
    assert_eq!(list[0]["status"]["state"], "failed");
    let (st, v) = get(&c, &format!("{base}/readyz"));
    assert_eq!(
        (st.as_u16(), v["ready"].as_u64()),
        (503, Some(1)),
        "one index failed"
    );
    for s in [stop, stop2] {
        s.send(()).unwrap();
    }
    handle.join().unwrap();
    handle2.join().unwrap();
}

#[test]
fn loading_is_logged_and_an_index_that_fails_to_load_stops_the_server() {
    // A good index: the log names each step, then "ready:".
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            &format!("tiny={}", s(index_dir())),
            "--addr",
            "127.0.0.1:0",
            "--read-only",
        ])
        .current_dir(repo())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("ready:") || line.starts_with("error:");
        log.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = log.join("\n");
    assert!(log[0].starts_with("listening on http://"), "{text}");
    assert!(
        text.contains("loading tiny: 1/1 segments open and checked (16 of 16 documents"),
        "{text}"
    );
    assert!(text.contains("ColBERT model"), "{text}");
    assert!(text.contains("loading tiny: ready in"), "{text}");
    assert!(
        log.last().unwrap().starts_with("ready: 1 index(es) open"),
        "{text}"
    );

    // A damaged copy: the server reports the file and exits with status 1.
    let tmp = index_copy();
    let bad = tmp.path().join("tiny");
    std::fs::write(bad.join("manifest.json"), b"{ not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            &format!("bad={}", s(&bad)),
            "--addr",
            "127.0.0.1:0",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("listening on http://"), "{err}");
    assert!(
        err.contains("error: index bad:") && err.contains("manifest.json"),
        "{err}"
    );
}

#[test]
fn a_panicking_request_is_a_500_and_the_server_lives_on() {
    let extra = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("deliberate test panic");
            }
            "unreachable"
        }),
    );
    let (base, stop, handle) = in_process(extra);
    let c = client();
    let r = c.get(format!("{base}/boom")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(error_code(&r.json().unwrap()), "internal");
    let (st, v) = post(
        &c,
        &format!("{base}/indexes/tiny/search"),
        &json!({"query": "coffee"}),
    );
    assert_eq!(st, 200, "{v}");
    stop.send(()).unwrap();
    handle.join().unwrap();
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let extra = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    );
    let (base, stop, handle) = in_process(extra);
    let slow = std::thread::spawn(move || client().get(format!("{base}/slow")).send().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    stop.send(()).unwrap(); // shutdown begins while /slow is in flight
    let r = slow.join().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "done");
    handle.join().unwrap(); // and the server then stops
}

/// Read from `stream` until the server closes it; true if it did before `limit`.
fn closed_by_server_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true, // reset by the server
        }
    }
    false
}

#[test]
fn a_client_sending_its_headers_too_slowly_is_cut() {
    let srv = Server::start(&["--header-timeout", "1", "--idle-timeout", "30"]);
    let mut slow = TcpStream::connect(srv.addr()).unwrap();
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 100 ms: the head would take 7 s; the server must close before.
    let mut cut = false;
    for b in head.iter() {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if closed_by_server_within(&mut slow, Duration::from_millis(1)) {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a 7 s request head was let through a 1 s header timeout"
    );
    // A silent connection is cut too: it owes its first head within the timeout.
    let mut silent = TcpStream::connect(srv.addr()).unwrap();
    assert!(closed_by_server_within(
        &mut silent,
        Duration::from_secs(10)
    ));
    // And the server still answers.
    assert_eq!(
        client().get(srv.url("/healthz")).send().unwrap().status(),
        200
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let srv = Server::start(&["--header-timeout", "10", "--idle-timeout", "1"]);
    let mut conn = TcpStream::connect(srv.addr()).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive (no Connection: close), then idle: closed after about a second, long
    // before the 10 s header timeout.
    let t = std::time::Instant::now();
    assert!(closed_by_server_within(&mut conn, Duration::from_secs(8)));
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "closed before it was idle"
    );
}

#[test]
fn slow_connections_beyond_the_cap_wait_and_valid_requests_are_served() {
    let srv = Server::start(&["--max-connections", "4", "--header-timeout", "1"]);
    // Take every slot with connections that never send a request.
    let mut hogs: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(srv.addr()).unwrap())
        .collect();
    // A valid request waits for a slot (it is not refused) and is served once the
    // header timeout frees one.
    let r = client().get(srv.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    for h in &mut hogs {
        assert!(closed_by_server_within(h, Duration::from_secs(10)));
    }
}

#[test]
fn a_request_past_its_deadline_is_a_503_and_its_search_stops() {
    // A deadline that has passed before the search starts: the search refuses to run
    // (it checks the deadline between and inside its stages) and the client gets 503.
    let srv = Server::start(&["--request-timeout", "0.000001"]);
    let c = client();
    for mode in ["exhaustive", "plaid", "bm25+splade", "rrf:plaid+bm25"] {
        let (st, v) = post(
            &c,
            &srv.url("/indexes/tiny/search"),
            &json!({"query": "vitamin", "mode": mode}),
        );
        assert_eq!(
            (st.as_u16(), error_code(&v)),
            (503, "deadline_exceeded"),
            "{mode}: {v}"
        );
    }
}

#[test]
fn search_depths_are_capped_with_an_error_naming_the_parameter() {
    let srv = Server::start(&["--max-candidates", "5000", "--max-ncells", "64"]);
    let c = client();
    let url = srv.url("/indexes/tiny/search");
    for (param, value, cap) in [
        ("ndocs", 4_000_000_000u64, 5000),
        ("candidates", 5001, 5000),
        ("ef_search", 1_000_000, 5000),
        ("sparse_candidates", 4_294_967_295, 5000),
        ("ncells", 65, 64),
    ] {
        let body = json!({"query": "x", "mode": "plaid", "params": {param: value}});
        let (st, v) = post(&c, &url, &body);
        assert_eq!(
            (st.as_u16(), error_code(&v)),
            (400, "param_out_of_range"),
            "{param}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(param) && msg.contains(&cap.to_string()),
            "{msg}"
        );
    }
    // At the cap, fine.
    let body = json!({"query": "x", "mode": "bm25+splade", "params": {"sparse_candidates": 5000}});
    assert_eq!(post(&c, &url, &body).0, 200);
}

#[test]
fn an_oversized_response_is_refused() {
    let srv = Server::start(&["--max-response-bytes", "2000"]);
    let c = client();
    let url = srv.url("/indexes/tiny/search");
    let (st, _) = post(&c, &url, &json!({"query": "x", "k": 3}));
    assert_eq!(st, 200);
    let (st, v) = post(
        &c,
        &url,
        &json!({"query": "x", "k": 16, "include_text": true}),
    );
    assert_eq!((st.as_u16(), error_code(&v)), (400, "response_too_large"));
    let batch = json!({"queries": vec![json!({"query": "x", "k": 16}); 8]});
    let (st, v) = post(&c, &srv.url("/indexes/tiny/search/batch"), &batch);
    assert_eq!((st.as_u16(), error_code(&v)), (400, "response_too_large"));
}

#[test]
fn made_up_methods_do_not_grow_the_metrics() {
    let srv = Server::start(&[]);
    for i in 0..60 {
        let req = format!("FOO{i} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = raw_request(&srv.addr(), req.as_bytes());
        assert_eq!(status, 405, "FOO{i}");
    }
    let metrics = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!metrics.contains("FOO"), "invented methods became labels");
    assert!(
        metrics.contains("method=\"other\",route=\"/healthz\",status=\"405\"} 60"),
        "{metrics}"
    );
}

#[test]
fn huge_query_vectors_are_refused_and_scores_are_numbers() {
    let srv = Server::start(&[]);
    let c = client();
    let url = srv.url("/indexes/tiny/search");
    let mut row = vec![0.0f32; 32];
    row[0] = 3e38;
    let (st, v) = post(&c, &url, &json!({"vectors": [row.clone()], "k": 5}));
    assert_eq!(
        (st.as_u16(), error_code(&v)),
        (400, "invalid_vectors"),
        "{v}"
    );
    row[0] = 1.0;
    let (st, v) = post(&c, &url, &json!({"vectors": [row], "k": 5}));
    assert_eq!(st, 200, "{v}");
    for r in v["results"].as_array().unwrap() {
        assert!(r["score"].as_f64().unwrap().is_finite(), "{r}");
    }
}

#[test]
fn structs_sent_as_arrays_are_refused() {
    let srv = Server::start(&[]);
    let path = "/indexes/tiny/search";
    for body in [
        &b"[\"vitamin\", null, 5]"[..],
        b"{\"query\": \"x\", \"params\": [4, 0.5, 100]}",
        b"{\"query\": \"x\", \"params\": []}",
    ] {
        let status = raw_request(&srv.addr(), &http_post(path, "application/json", body));
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
    }
    let batch = b"{\"queries\": [[\"vitamin\"]]}";
    let status = raw_request(
        &srv.addr(),
        &http_post("/indexes/tiny/search/batch", "application/json", batch),
    );
    assert_eq!(status, 400);
}

#[test]
fn index_info_hides_server_paths_unless_asked() {
    let root = index_dir().parent().unwrap().display().to_string();
    let repo_path = repo().display().to_string();
    let srv = Server::start(&[]);
    let info = client()
        .get(srv.url("/indexes/tiny"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!info.contains(&root), "index path shown: {info}");
    assert!(!info.contains(&repo_path), "repository path shown: {info}");
    assert!(info.contains("\"num_docs\":16"), "{info}");
    drop(srv);
    let srv = Server::start(&["--expose-paths"]);
    let info: Value = client()
        .get(srv.url("/indexes/tiny"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(info["dir"].as_str().unwrap().contains(&root), "{info}");
}

/// A private copy of the shared test index (writers hold its lock).
fn index_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("tiny");
    copy_dir(index_dir(), &dst);
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "writer.lock" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

fn get(c: &Client, url: &str) -> (StatusCode, Value) {
    let r = c.get(url).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap())
}

fn delete_req(c: &Client, url: &str) -> (StatusCode, Value) {
    let r = c.delete(url).send().unwrap();
    let status = r.status();
    (status, r.json().unwrap())
}

#[test]
fn documents_are_added_upserted_and_deleted_over_http() {
    let tmp = index_copy();
    let srv = Server::serve(&tmp.path().join("tiny"), &[]);
    let c = client();
    let docs = srv.url("/indexes/tiny/documents");
    let search = srv.url("/indexes/tiny/search");
    let text = "Zebrafish regenerate their heart muscle after injury";
    let (st, v) = post(
        &c,
        &docs,
        &json!({"documents": [{"id": "new-1", "text": text}]}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["added"].as_u64(), v["replaced"].as_u64()),
        (Some(1), Some(0))
    );
    let g1 = v["generation"].as_u64().unwrap();
    // Visible to the next search: the document's own text finds it first.
    let (_, r) = post(&c, &search, &json!({"query": text, "k": 1}));
    assert_eq!(r["results"][0]["id"], "new-1", "{r}");
    let (st, d) = get(&c, &srv.url("/indexes/tiny/documents/new-1"));
    assert_eq!((st.as_u16(), d["text"].as_str()), (200, Some(text)));
    // The same id again: refused without upsert, replaced with it.
    let (st, v) = post(
        &c,
        &docs,
        &json!({"documents": [{"id": "new-1", "text": "other"}]}),
    );
    assert_eq!((st.as_u16(), error_code(&v)), (409, "document_exists"));
    let other = "Cold exposure activates brown adipose tissue";
    let (st, v) = post(
        &c,
        &docs,
        &json!({"documents": [{"id": "new-1", "text": other}], "upsert": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["added"].as_u64(), v["replaced"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(v["generation"].as_u64().unwrap() > g1);
    let (_, d) = get(&c, &srv.url("/indexes/tiny/documents/new-1"));
    assert_eq!(d["text"].as_str(), Some(other));
    // Pre-encoded vectors with their text.
    let rows = vec![vec![0.1f32; 32]; 3];
    let (st, v) = post(
        &c,
        &docs,
        &json!({"documents": [{"id": "vec-1", "text": "pre-encoded", "vectors": rows}]}),
    );
    assert_eq!(st, 200, "{v}");
    // Deletes: one by id, a batch with unknown ids reported.
    let (st, v) = delete_req(&c, &srv.url("/indexes/tiny/documents/doc3"));
    assert_eq!((st.as_u16(), v["deleted"].as_u64()), (200, Some(1)), "{v}");
    let (st, v) = delete_req(&c, &srv.url("/indexes/tiny/documents/doc3"));
    assert_eq!((st.as_u16(), error_code(&v)), (404, "unknown_document"));
    let (st, v) = post(
        &c,
        &srv.url("/indexes/tiny/documents/delete"),
        &json!({"ids": ["doc4", "nope", "vec-1"]}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["deleted"], 2);
    assert_eq!(v["not_found"], json!(["nope"]));
    let (_, r) = post(&c, &search, &json!({"query": "x", "k": 100}));
    let ids: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 16 + 2 - 3, "{ids:?}");
    assert!(!ids.contains(&"doc3") && !ids.contains(&"doc4") && !ids.contains(&"vec-1"));
    // Bad documents are refused with the document named.
    for (body, code) in [
        (
            json!({"documents": [{"id": "", "text": "x"}]}),
            "invalid_document",
        ),
        (json!({"documents": [{"id": "a"}]}), "invalid_document"),
        (
            json!({"documents": [{"id": "a", "vectors": [[0.1]]}]}),
            "invalid_document",
        ),
        (
            json!({"documents": [{"id": "a", "text": "t", "vectors": [[0.1, 0.2]]}]}),
            "wrong_dimension",
        ),
        (
            json!({"documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]}),
            "invalid_document",
        ),
        (json!({"documents": []}), "bad_batch_size"),
    ] {
        let (st, v) = post(&c, &docs, &body);
        assert!(st.is_client_error(), "{body} -> {st} {v}");
        assert_eq!(error_code(&v), code, "{body}");
    }
    // The index info reports segments and deletions.
    let (_, info) = get(&c, &srv.url("/indexes/tiny"));
    assert_eq!(info["writable"], true);
    assert_eq!(info["report"]["live_docs"], 15);
}

#[test]
fn a_read_only_server_refuses_writes_and_follows_other_writers() {
    let tmp = index_copy();
    let dir = tmp.path().join("tiny");
    let srv = Server::serve(&dir, &["--read-only", "--reload-interval", "0.1"]);
    let c = client();
    let (st, v) = post(
        &c,
        &srv.url("/indexes/tiny/documents"),
        &json!({"documents": [{"id": "a", "text": "t"}]}),
    );
    assert_eq!((st.as_u16(), error_code(&v)), (403, "read_only"));
    // Another process deletes a document; the server picks the commit up.
    tessera(&["delete", s(&dir), "--ids", "doc5"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (st, _) = get(&c, &srv.url("/indexes/tiny/documents/doc5"));
        if st == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw the delete"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writes_are_grouped_into_few_commits() {
    let tmp = index_copy();
    let srv = Server::serve(&tmp.path().join("tiny"), &["--group-commit-ms", "300"]);
    let url = srv.url("/indexes/tiny/documents");
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let body = json!({"documents": [{"id": format!("g-{i}"), "text": format!("grouped document number {i}")}]});
                post(&client(), &url, &body)
            })
        })
        .collect();
    let mut generations = std::collections::BTreeSet::new();
    let mut largest_group = 0;
    for t in threads {
        let (st, v) = t.join().unwrap();
        assert_eq!(st, 200, "{v}");
        generations.insert(v["generation"].as_u64().unwrap());
        largest_group = largest_group.max(v["group"].as_u64().unwrap());
    }
    assert!(
        generations.len() < 20,
        "20 requests made {} commits",
        generations.len()
    );
    assert!(largest_group > 1);
    let (_, info) = get(&client(), &srv.url("/indexes/tiny"));
    assert_eq!(info["report"]["live_docs"], 36);
}

#[test]
fn searches_during_writes_never_fail_nor_return_deleted_documents() {
    let tmp = index_copy();
    let srv = Server::serve(&tmp.path().join("tiny"), &["--group-commit-ms", "5"]);
    let base = srv.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // id -> when its delete was acknowledged.
    let acked: std::sync::Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>> =
        Default::default();
    let searchers: Vec<_> = (0..3)
        .map(|t| {
            let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let c = client();
                let modes = ["exhaustive", "plaid", "bm25", "bm25+splade"];
                let (mut n, mut errors) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    let deleted_before: Vec<String> = acked
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, at)| *at < started)
                        .map(|(id, _)| id.clone())
                        .collect();
                    let mode = modes[(n + t) % modes.len()];
                    let (st, v) = post(
                        &c,
                        &format!("{base}/indexes/tiny/search"),
                        &json!({"query": "disease risk and treatment", "k": 100, "mode": mode}),
                    );
                    if st != 200 {
                        errors.push(format!("{mode}: {st} {v}"));
                    } else {
                        for h in v["results"].as_array().unwrap() {
                            let id = h["id"].as_str().unwrap();
                            if deleted_before.iter().any(|d| d == id) {
                                errors.push(format!(
                                    "{mode}: {id} returned after its delete was acknowledged"
                                ));
                            }
                        }
                    }
                    n += 1;
                }
                (n, errors)
            })
        })
        .collect();
    let c = client();
    for i in 0..25 {
        let body = json!({"documents": [{"id": format!("w-{i}"), "text": format!("disease risk study {i}")}]});
        let (st, v) = post(&c, &format!("{base}/indexes/tiny/documents"), &body);
        assert_eq!(st, 200, "{v}");
        let victim = if i % 2 == 0 {
            format!("w-{i}")
        } else {
            format!("doc{}", i / 2 + 1)
        };
        let (st, v) = delete_req(&c, &format!("{base}/indexes/tiny/documents/{victim}"));
        assert_eq!(st, 200, "{victim}: {v}");
        acked
            .lock()
            .unwrap()
            .push((victim, std::time::Instant::now()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for t in searchers {
        let (n, errors) = t.join().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        total += n;
    }
    assert!(total > 20, "only {total} searches ran during the writes");
}

/// Every test query's top documents explained over HTTP: the similarities sum to the
/// exhaustive search score of that document (an independent path: the search kernel),
/// each matched vector exists, every span lies inside the document's text and spells
/// the token it names; the command line explains alike; errors have their codes.
#[test]
fn explanations_sum_to_the_exact_score_and_point_inside_the_text() {
    let srv = Server::start(&[]);
    let c = client();
    let queries = std::fs::read_to_string(fixture("tiny-beir/queries.jsonl")).unwrap();
    let mut explained = 0;
    for line in queries.lines() {
        let q: Value = serde_json::from_str(line).unwrap();
        let q = q["text"].as_str().unwrap();
        let (status, hits) = post(
            &c,
            &srv.url("/indexes/tiny/search"),
            &json!({"query": q, "k": 16, "mode": "exhaustive"}),
        );
        assert_eq!(status, 200, "{hits}");
        for hit in hits["results"].as_array().unwrap() {
            let id = hit["id"].as_str().unwrap();
            let (status, e) = post(
                &c,
                &srv.url("/indexes/tiny/explain"),
                &json!({"query": q, "id": id}),
            );
            assert_eq!(status, 200, "{e}");
            let score = hit["score"].as_f64().unwrap();
            let tokens = e["query_tokens"].as_array().unwrap();
            let sum: f64 = tokens
                .iter()
                .map(|t| t["similarity"].as_f64().unwrap())
                .sum();
            assert!(
                (sum - score).abs() < 1e-4,
                "{q:?} {id}: sum {sum} vs search score {score}"
            );
            assert!((e["score"].as_f64().unwrap() - score).abs() < 1e-4);
            let vectors = e["document_vectors"].as_array().unwrap();
            let text: Vec<char> = e["text"].as_str().unwrap().chars().collect();
            let contributions: f64 = vectors
                .iter()
                .map(|v| v["contribution"].as_f64().unwrap())
                .sum();
            assert!((contributions - sum).abs() < 1e-4);
            for t in tokens {
                let m = t["matched_vector"].as_u64().unwrap() as usize;
                assert!(m < vectors.len());
                // The best match: no other vector scores higher is what the sum checks;
                // here, that the match is a real vector of the document with tokens.
                assert!(!vectors[m]["tokens"].as_array().unwrap().is_empty());
            }
            for v in vectors {
                for t in v["tokens"].as_array().unwrap() {
                    if t["chars"].is_null() {
                        continue;
                    }
                    let (a, b) = (
                        t["chars"]["start"].as_u64().unwrap() as usize,
                        t["chars"]["end"].as_u64().unwrap() as usize,
                    );
                    assert!(a < b && b <= text.len(), "span {a}..{b} of {}", text.len());
                    let span: String = text[a..b].iter().collect();
                    assert_eq!(t["text"].as_str().unwrap(), span);
                    let piece = t["token"].as_str().unwrap().trim_start_matches("##");
                    if span.is_ascii() && !piece.starts_with('[') {
                        assert_eq!(
                            span.to_lowercase(),
                            piece.to_lowercase(),
                            "{id}: token {piece:?} at {a}..{b}"
                        );
                    }
                }
            }
            explained += 1;
        }
    }
    assert!(explained >= 8 * 16, "{explained} explanations");

    // The command line gives the same explanation.
    let (_, e) = post(
        &c,
        &srv.url("/indexes/tiny/explain"),
        &json!({"query": "malaria bed nets", "id": "doc2"}),
    );
    let cli: Value = serde_json::from_str(&tessera(&[
        "search",
        s(index_dir()),
        "malaria bed nets",
        "--explain-id",
        "doc2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(cli["query_tokens"], e["query_tokens"]);
    assert_eq!(cli["document_vectors"], e["document_vectors"]);

    let (status, v) = post(
        &c,
        &srv.url("/indexes/tiny/explain"),
        &json!({"query": "malaria", "id": "no-such-doc"}),
    );
    assert_eq!((status.as_u16(), error_code(&v)), (404, "unknown_document"));
    let (status, v) = post(
        &c,
        &srv.url("/indexes/tiny/explain"),
        &json!({"query": " ", "id": "doc2"}),
    );
    assert_eq!((status.as_u16(), error_code(&v)), (400, "empty_query"));
    let (status, v) = post(
        &c,
        &srv.url("/indexes/tiny/explain"),
        &json!({"query": "x"}),
    );
    assert_eq!((status.as_u16(), error_code(&v)), (400, "invalid_request"));
}

/// An index that keeps no vectors answers every vector mode over HTTP and says its
/// scores are approximate; sparse-only modes and the f16 index do not say so.
#[test]
fn a_compact_index_says_its_scores_are_approximate() {
    let tmp = tempfile::tempdir().unwrap();
    let compact = tmp.path().join("compact");
    tessera(&[
        "rebuild",
        s(index_dir()),
        "--out",
        s(&compact),
        "--components",
        "store,plaid,bm25",
        "--num-centroids",
        "8",
        "--store",
        "none",
    ]);
    let compact_srv = Server::serve(&compact, &["--read-only"]);
    let exact_srv = Server::start(&[]);
    let c = client();
    for mode in ["exhaustive", "plaid", "plaid+bm25", "bm25"] {
        let body = json!({"query": "vitamin d and mortality", "k": 5, "mode": mode});
        let (st, v) = post(&c, &compact_srv.url("/indexes/tiny/search"), &body);
        assert_eq!(st, 200, "{mode}: {v}");
        // bm25 alone returns only the documents sharing a term with the query.
        let n = v["results"].as_array().unwrap().len();
        assert!(n == 5 || (mode == "bm25" && n > 0), "{mode}: {n} results");
        let approximate = mode != "bm25";
        assert_eq!(v.get("approximate").is_some(), approximate, "{mode}: {v}");
        if approximate {
            assert_eq!(v["approximate"], true);
        }
        let (_, v) = post(&c, &exact_srv.url("/indexes/tiny/search"), &body);
        assert!(
            v.get("approximate").is_none(),
            "{mode}: the f16 index is exact"
        );
    }
    let (_, e) = post(
        &c,
        &compact_srv.url("/indexes/tiny/explain"),
        &json!({"query": "vitamin d", "id": "doc1"}),
    );
    assert_eq!(e["approximate"], true, "{e}");
}

/// An index of pre-encoded vectors built without a model, served: vector queries
/// answer with brute-force MaxSim's ranking (exhaustive and plaid), text queries and
/// text writes are 400 `invalid_request` naming the missing model, and vector writes
/// still work.
#[test]
fn an_index_without_a_model_is_searched_and_written_with_vectors() {
    use rand::{Rng, SeedableRng};
    use tessera::encoder::DeviceSpec;
    use tessera::search::Searcher;
    use tessera::server::{AppState, Limits, Served};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nomodel");
    let dim = 8;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut unit = |n: usize| -> Vec<f32> {
        let mut v: Vec<f32> = (0..n * dim).map(|_| rng.gen::<f32>() - 0.5).collect();
        for r in v.chunks_mut(dim) {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= norm);
        }
        v
    };
    let docs: Vec<(String, Vec<f32>)> = (0..60)
        .map(|i| (format!("d{i}"), unit(3 + i % 5)))
        .collect();
    let config = tessera_index::IndexConfig {
        plaid: Some(tessera_index::plaid::PlaidConfig {
            num_centroids: Some(8),
            ..Default::default()
        }),
        store_text: false,
        ..Default::default()
    };
    let mut w = tessera_index::IndexWriter::create_with(
        &path,
        tessera_index::ModelInfo::pre_encoded(dim),
        config,
    )
    .unwrap();
    for (id, v) in &docs {
        w.add(id, v).unwrap();
    }
    w.commit(json!({})).unwrap();
    drop(w);
    let searcher = Searcher::open(&path, None, DeviceSpec::Cpu).unwrap();
    assert!(searcher.encoder().is_err());
    let served = Served::writable(
        "v".into(),
        path.clone(),
        searcher,
        std::time::Duration::from_millis(5),
    )
    .unwrap();
    let state = AppState::new(vec![served], Limits::default(), 2);
    let (base, stop, handle) = serve_in_process(state, axum::Router::new());
    let c = client();
    let q = unit(4);
    let rows: Vec<Vec<f32>> = q.chunks(dim).map(<[f32]>::to_vec).collect();
    let maxsim = |d: &[f32]| -> f32 {
        q.chunks(dim)
            .map(|qr| {
                d.chunks(dim)
                    .map(|dr| qr.iter().zip(dr).map(|(a, b)| a * b).sum::<f32>())
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .sum()
    };
    let mut want: Vec<(String, f32)> = docs.iter().map(|(id, v)| (id.clone(), maxsim(v))).collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    for mode in ["exhaustive", "plaid"] {
        let (st, v) = post(
            &c,
            &format!("{base}/indexes/v/search"),
            &json!({"vectors": rows, "k": 5, "mode": mode}),
        );
        assert_eq!(st, StatusCode::OK, "{v}");
        let got: Vec<f64> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - f64::from(w.1)).abs() < 1e-2, "{mode}: {g} vs {}", w.1);
        }
    }
    let (st, v) = post(
        &c,
        &format!("{base}/indexes/v/search"),
        &json!({"query": "text", "k": 5}),
    );
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_code(&v), "invalid_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a model"),
        "{v}"
    );
    let (st, v) = post(
        &c,
        &format!("{base}/indexes/v/documents"),
        &json!({"documents": [{"id": "t", "text": "some text"}]}),
    );
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a model"),
        "{v}"
    );
    let (st, v) = post(
        &c,
        &format!("{base}/indexes/v/documents"),
        &json!({"documents": [{"id": "new", "vectors": rows}]}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = post(
        &c,
        &format!("{base}/indexes/v/search"),
        &json!({"vectors": rows, "k": 1}),
    );
    assert_eq!(
        v["results"][0]["id"], "new",
        "a document equal to the query is its best match"
    );
    stop.send(()).unwrap();
    handle.join().unwrap();
}
