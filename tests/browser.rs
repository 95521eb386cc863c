//! The search page in a real browser: Debian's Chromium, driven through WebDriver
//! (chromedriver) by `fantoccini`, against `tessera serve` on the tiny fixture. Each check
//! compares what the page shows with what the JSON API answers for the same request.
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`;
//! `scripts/test.sh` installs them where missing). Set TESSERA_SKIP_BROWSER=1 to skip on a
//! machine that cannot have a browser; without it a missing browser is a failure.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
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

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn build_index(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "index",
            s(&fixture("tiny-beir")),
            "--out",
            s(dir),
            "--model",
        ])
        .arg(fixture("tiny-bert"))
        .args([
            "--components",
            "store,plaid,bm25",
            "--num-centroids",
            "8",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn serve(dir: &Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            &format!("tiny={}", s(dir)),
            "--addr",
            "127.0.0.1:0",
            "--read-only",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    // The indexes open after the server starts listening: wait for "ready:".
    for line in lines.by_ref() {
        let line = line.unwrap();
        assert!(!line.starts_with("error:"), "tessera serve: {line}");
        if line.starts_with("ready:") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), format!("http://{addr}"))
}

fn chromedriver() -> Option<(Proc, u16)> {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let proc = Proc(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((proc, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on {port}");
}

/// The API's answer (on a thread of its own: reqwest's blocking client may not run inside
/// the async runtime that drives the browser).
fn api(base: &str, path: &str, body: &Value) -> Value {
    let (url, body) = (format!("{base}{path}"), body.clone());
    std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    })
    .join()
    .unwrap()
}

/// Kills every browser process of this test's profile directory on drop, so a failed
/// check (a panic skips closing the WebDriver session) leaves no Chromium running.
struct BrowserGuard(PathBuf);

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        let _ = Command::new("pkill").arg("-f").arg(&self.0).status();
    }
}

async fn browser(port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session")
}

/// Result ids on the page once `status` says they are there.
async fn page_ids(c: &Client) -> Vec<String> {
    c.wait().for_element(Locator::Css("#status")).await.unwrap();
    for _ in 0..100 {
        let status = c
            .find(Locator::Id("status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if status.contains("result") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ids = Vec::new();
    for li in c.find_all(Locator::Css("#results li.hit")).await.unwrap() {
        ids.push(li.attr("data-id").await.unwrap().unwrap());
    }
    ids
}

fn api_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {v}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_search_page_shows_what_the_api_answers() {
    if std::env::var_os("TESSERA_SKIP_BROWSER").is_some() {
        eprintln!("TESSERA_SKIP_BROWSER set: browser test skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    build_index(&dir);
    let (_server, base) = serve(&dir);
    let (_driver, port) = chromedriver().expect(
        "chromedriver not found: apt-get install chromium chromium-driver (scripts/test.sh does)",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let profile = tmp.path().join("chromium-profile");
    let _guard = BrowserGuard(profile.clone());
    rt.block_on(async {
        let c = browser(port, &profile).await;
        let result = run_checks(&c, &base, tmp.path()).await;
        loading_checks(&c, &base, &dir).await;
        c.close().await.unwrap();
        result
    });
}

async fn run_checks(c: &Client, base: &str, out: &Path) {
    c.goto(&format!("{base}/")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .unwrap();

    // The mode selector lists what the index can run, exhaustive first.
    let mut modes = Vec::new();
    for o in c.find_all(Locator::Css("#mode option")).await.unwrap() {
        modes.push(o.attr("value").await.unwrap().unwrap());
    }
    assert_eq!(
        modes,
        [
            "exhaustive",
            "plaid",
            "bm25",
            "plaid+bm25",
            "rrf:plaid+bm25"
        ]
    );

    // Type a query, press Enter: the ids equal the API's for the same request.
    let q = "vitamin d and mortality in the elderly";
    let input = c.find(Locator::Id("q")).await.unwrap();
    input.send_keys(q).await.unwrap();
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    let shown = page_ids(c).await;
    let expected = api(
        base,
        "/indexes/tiny/search",
        &json!({"query": q, "k": 10, "mode": "exhaustive"}),
    );
    assert_eq!(shown, api_ids(&expected));
    // The URL holds the query: reloading it searches again.
    let url = c.current_url().await.unwrap();
    assert!(url.query().unwrap().contains("q=vitamin"), "{url}");
    c.goto(url.as_str()).await.unwrap();
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .unwrap();
    assert_eq!(page_ids(c).await, shown);
    std::fs::write(out.join("results.png"), c.screenshot().await.unwrap()).unwrap();

    // Switch mode.
    c.find(Locator::Css("#mode option[value=bm25]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bm25 = api(
        base,
        "/indexes/tiny/search",
        &json!({"query": q, "k": 10, "mode": "bm25"}),
    );
    assert_eq!(page_ids(c).await, api_ids(&bm25));
    let status = c
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.contains("bm25") && status.contains("query encoding"),
        "{status}"
    );

    // Explain the first result: hovering each query token outlines exactly the document
    // tokens of the vector the API says it matched.
    let first = &api_ids(&bm25)[0];
    c.find(Locator::Css("#results li.hit .explain-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css(".explanation .qtok"))
        .await
        .unwrap();
    let e = api(
        base,
        "/indexes/tiny/explain",
        &json!({"query": q, "id": first}),
    );
    let chips = c
        .find_all(Locator::Css(".explanation .qtok"))
        .await
        .unwrap();
    assert_eq!(chips.len(), e["query_tokens"].as_array().unwrap().len());
    for (i, chip) in chips.iter().enumerate() {
        let matched = e["query_tokens"][i]["matched_vector"].as_u64().unwrap() as usize;
        let want: String = e["document_vectors"][matched]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["text"].as_str())
            .collect();
        let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element: chip.clone(),
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        c.perform_actions(hover).await.unwrap();
        let mut got = String::new();
        for t in c
            .find_all(Locator::Css(".explanation .tok.hl"))
            .await
            .unwrap()
        {
            got.push_str(&t.text().await.unwrap());
        }
        let got: String = got.split_whitespace().collect();
        assert_eq!(
            got, want,
            "query token {i}: outlined {got:?}, the API matched {want:?}"
        );
    }
    std::fs::write(out.join("explanation.png"), c.screenshot().await.unwrap()).unwrap();

    // An invalid request shows the API's error.
    let k = c.find(Locator::Id("k")).await.unwrap();
    k.clear().await.unwrap();
    k.send_keys("0").await.unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = c
        .wait()
        .for_element(Locator::Css("#error:not([hidden])"))
        .await
        .unwrap();
    let text = err.text().await.unwrap();
    let api_err = api(
        base,
        "/indexes/tiny/search",
        &json!({"query": q, "k": 0, "mode": "bm25"}),
    );
    assert!(
        text.contains(api_err["error"]["code"].as_str().unwrap()),
        "{text} vs {api_err}"
    );
    assert!(
        text.contains(api_err["error"]["message"].as_str().unwrap()),
        "{text} vs {api_err}"
    );
}

/// An index served in-process that is still loading: the page says so and keeps Search
/// disabled; once the index is published it searches the query from its URL on its own.
async fn loading_checks(c: &Client, base: &str, dir: &Path) {
    use tessera::server::{AppState, Limits, Served};
    let state = AppState::new(vec![Served::loading("tiny".into())], Limits::default(), 2);
    let served = state.served("tiny").unwrap();
    served.progress("opening segments", 0, 1);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            tessera::server::serve(listener, state, Default::default(), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    let loading_base = format!("http://{}", addr_rx.recv().unwrap());
    let q = "vitamin d and mortality in the elderly";
    c.goto(&format!(
        "{loading_base}/?index=tiny&q=vitamin+d+and+mortality+in+the+elderly"
    ))
    .await
    .unwrap();
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .unwrap();
    let note = c
        .wait()
        .for_element(Locator::Css("#loading:not([hidden])"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        note.contains("still loading") && note.contains("0/1 segments"),
        "{note}"
    );
    let option = c
        .find(Locator::Css("#index option"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(option.contains("loading"), "{option}");
    let go = c.find(Locator::Id("go")).await.unwrap();
    assert_eq!(go.attr("disabled").await.unwrap().as_deref(), Some("true"));
    assert!(c
        .find_all(Locator::Css("#results li.hit"))
        .await
        .unwrap()
        .is_empty());

    // Publish the index: the page notices within its polling interval and searches.
    let searcher =
        tessera::search::Searcher::open(dir, None, tessera::encoder::DeviceSpec::Cpu).unwrap();
    served.open_read_only(searcher);
    c.wait()
        .for_element(Locator::Css("#loading[hidden]"))
        .await
        .unwrap();
    let expected = api(
        base,
        "/indexes/tiny/search",
        &json!({"query": q, "k": 10, "mode": "exhaustive"}),
    );
    assert_eq!(page_ids(c).await, api_ids(&expected));
    stop.send(()).unwrap();
    server.join().unwrap();
}
