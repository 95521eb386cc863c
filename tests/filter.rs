//! Metadata fields and filters end to end, through the `tessera` binary and its HTTP
//! API, on the tiny BEIR fixture with the tiny random model: fields read from a corpus
//! (top level and BEIR's `metadata`), a value of the wrong type refused with file:line or
//! skipped; filtered results against a reference (the unfiltered exhaustive ranking of
//! every document, filtered by a predicate written here); malformed filters refused by
//! the CLI (non-zero exit) and over HTTP (400 `invalid_filter`); fields through `add`,
//! HTTP writes, `include_fields` and `eval --filter`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tessera")
}

fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(!out.status.success(), "tessera {args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    stderr
}

const TENANTS: [&str; 3] = ["acme", "bolt", "cori"];

/// The tiny corpus with fields: tenant (top level), year and tags (in `metadata`).
fn corpus_with_fields(dir: &Path) -> (PathBuf, Vec<(String, Value)>) {
    let mut lines = Vec::new();
    let mut fields = Vec::new();
    let src = std::fs::read_to_string(fixture("tiny-beir/corpus.jsonl")).unwrap();
    for (i, l) in src.lines().enumerate() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        let tenant = TENANTS[i % 3];
        let year = 2015 + (i as i64 % 8);
        let tags: Vec<&str> = ["x", "y", "z"]
            .iter()
            .enumerate()
            .filter(|(t, _)| (i >> t) & 1 == 1)
            .map(|(_, t)| *t)
            .collect();
        v["tenant"] = json!(tenant);
        v["metadata"] = json!({"year": year, "tags": tags});
        // As stored: an empty list is no value.
        let mut stored = json!({"tenant": tenant, "year": year});
        if !tags.is_empty() {
            stored["tags"] = json!(tags);
        }
        fields.push((v["_id"].as_str().unwrap().to_string(), stored));
        lines.push(v.to_string());
    }
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, fields)
}

fn build(dir: &Path, corpus: &Path) {
    ok(&[
        "index",
        s(corpus),
        "--out",
        s(dir),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid,bm25",
        "--num-centroids",
        "8",
        "--field",
        "tenant:keyword",
        "--field",
        "year:int",
        "--field",
        "tags:keyword",
        "--quiet",
    ]);
}

fn ids(out: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(out).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The predicates the filters below mean, written from Qdrant's semantics.
fn predicate(name: &str, f: &Value) -> bool {
    let tags: Vec<&str> = f["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap()).collect())
        .unwrap_or_default();
    let year = f["year"].as_i64().unwrap();
    match name {
        "tenant" => f["tenant"] == "acme",
        "year" => (2017..2020).contains(&year),
        "tags-any" => tags.contains(&"x") || tags.contains(&"z"),
        "combined" => f["tenant"] != "bolt" && (year >= 2019 || tags.is_empty()),
        "none" => false,
        _ => unreachable!(),
    }
}

const FILTERS: [(&str, &str); 5] = [
    (
        "tenant",
        r#"{"must": [{"key": "tenant", "match": {"value": "acme"}}]}"#,
    ),
    (
        "year",
        r#"{"must": [{"key": "year", "range": {"gte": 2017, "lt": 2020}}]}"#,
    ),
    (
        "tags-any",
        r#"{"should": [{"key": "tags", "match": {"any": ["x", "z"]}}]}"#,
    ),
    (
        "combined",
        r#"{"must_not": [{"key": "tenant", "match": {"value": "bolt"}}], "must": [{"should": [{"key": "year", "range": {"gte": 2019}}, {"is_empty": {"key": "tags"}}]}]}"#,
    ),
    (
        "none",
        r#"{"must": [{"key": "tenant", "match": {"value": "nobody"}}]}"#,
    ),
];

#[test]
fn filtered_cli_search_matches_the_reference_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, fields) = corpus_with_fields(tmp.path());
    let dir = tmp.path().join("idx");
    build(&dir, &corpus);
    let info: Value = serde_json::from_str(&ok(&["info", s(&dir), "--json"])).unwrap();
    assert!(info.to_string().contains("fields"), "{info}");
    let query = "vitamin deficiency in older adults";
    // The unfiltered exhaustive ranking of every document is the reference order.
    let all = ids(&ok(&["search", s(&dir), query, "-k", "16", "--json"]));
    assert_eq!(all.len(), 16);
    for (name, filter) in FILTERS {
        let want: Vec<String> = all
            .iter()
            .filter(|id| predicate(name, &fields.iter().find(|(i, _)| i == *id).unwrap().1))
            .cloned()
            .collect();
        let got = ids(&ok(&[
            "search",
            s(&dir),
            query,
            "-k",
            "16",
            "--json",
            "--filter",
            filter,
        ]));
        assert_eq!(got, want, "exhaustive, filter {name}");
        // Top 3 of the filtered ranking.
        let top = ids(&ok(&[
            "search",
            s(&dir),
            query,
            "-k",
            "3",
            "--json",
            "--filter",
            filter,
        ]));
        assert_eq!(
            top,
            want.iter().take(3).cloned().collect::<Vec<_>>(),
            "{name}"
        );
        // plaid (never exact, and the default planner) returns every matching document
        // at k = 16, in exact MaxSim order; bm25 a subset.
        for extra in [&["--filter-exact-below", "0"][..], &[][..]] {
            let mut args = vec![
                "search",
                s(&dir),
                query,
                "-k",
                "16",
                "--json",
                "--mode",
                "plaid",
                "--filter",
                filter,
            ];
            args.extend_from_slice(extra);
            assert_eq!(ids(&ok(&args)), want, "plaid {extra:?}, filter {name}");
        }
        let bm25 = ids(&ok(&[
            "search",
            s(&dir),
            query,
            "-k",
            "16",
            "--json",
            "--mode",
            "bm25",
            "--filter",
            filter,
        ]));
        assert!(
            bm25.iter().all(|id| want.contains(id)),
            "bm25 {name}: {bm25:?}"
        );
    }
    // Fields with results; the plan in --json.
    let out: Value = serde_json::from_str(&ok(&[
        "search",
        s(&dir),
        query,
        "-k",
        "2",
        "--json",
        "--include-fields",
        "--filter",
        FILTERS[0].1,
    ]))
    .unwrap();
    let r = &out["results"][0];
    let want = &fields
        .iter()
        .find(|(i, _)| i == r["id"].as_str().unwrap())
        .unwrap()
        .1;
    assert_eq!(&r["fields"], want);
    assert_eq!(out["plan"]["allowed_docs"], 6);
    assert_eq!(out["plan"]["filtered"], true);
    // A filter from a file.
    let file = tmp.path().join("f.json");
    std::fs::write(&file, FILTERS[1].1).unwrap();
    let from_file = ids(&ok(&[
        "search",
        s(&dir),
        query,
        "-k",
        "16",
        "--json",
        "--filter",
        &format!("@{}", s(&file)),
    ]));
    assert_eq!(
        from_file,
        ids(&ok(&[
            "search",
            s(&dir),
            query,
            "-k",
            "16",
            "--json",
            "--filter",
            FILTERS[1].1
        ]))
    );
    // eval --filter reports the filter; --filter-selectivity draws a share of the ids.
    let report: Value = serde_json::from_str(&ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&dir),
        "--mode",
        "plaid",
        "--json",
        "--compare-exhaustive",
        "--filter",
        FILTERS[0].1,
    ]))
    .unwrap();
    assert_eq!(report["filter"]["allowed_docs"], 6);
    assert_eq!(report["filter"]["live_docs"], 16);
    assert_eq!(report["vs_exhaustive"]["recall_at_k"], 1.0, "{report}");
    let report: Value = serde_json::from_str(&ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&dir),
        "--json",
        "--filter-selectivity",
        "0.5",
    ]))
    .unwrap();
    assert_eq!(report["filter"]["allowed_docs"], 8);
}

#[test]
fn malformed_filters_and_field_values_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, _) = corpus_with_fields(tmp.path());
    let dir = tmp.path().join("idx");
    build(&dir, &corpus);
    for (filter, says) in [
        ("{", "not valid JSON"),
        ("[]", "filter"),
        (
            r#"{"must": [{"key": "colour", "match": {"value": "red"}}]}"#,
            "filter.must[0].key",
        ),
        (
            r#"{"must": [{"key": "year", "match": {"value": "2019"}}]}"#,
            "filter.must[0].match.value",
        ),
        (
            r#"{"must": [{"key": "tenant", "range": {"gt": 1}}]}"#,
            "filter.must[0].range",
        ),
        (r#"{"filter": []}"#, "filter.filter"),
    ] {
        let err = fails(&["search", s(&dir), "q", "--filter", filter]);
        assert!(
            err.contains("invalid filter") && err.contains(says),
            "{filter}: {err}"
        );
    }
    assert!(
        fails(&["search", s(&dir), "q", "--filter", "@/nonexistent/f.json"])
            .contains("/nonexistent/f.json")
    );
    // A value of the wrong type in the corpus: file:line, or skipped.
    let bad = tmp.path().join("bad.jsonl");
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text.push_str(
        r#"{"_id": "odd", "title": "t", "text": "x", "metadata": {"year": "last year"}}"#,
    );
    text.push('\n');
    std::fs::write(&bad, &text).unwrap();
    let args = |out: &Path, skip: bool| {
        let mut a = vec![
            "index".to_string(),
            s(&bad).into(),
            "--out".into(),
            s(out).into(),
            "--model".into(),
            s(&fixture("tiny-bert")).into(),
            "--field".into(),
            "year:int".into(),
            "--quiet".into(),
        ];
        if skip {
            a.push("--skip-malformed".into());
        }
        a
    };
    let a = args(&tmp.path().join("bad"), false);
    let err = fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("bad.jsonl:17") && err.contains("year") && err.contains("int"),
        "{err}"
    );
    let a = args(&tmp.path().join("skipped"), true);
    let out = tessera(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":17: skipped"));
    // An index without fields: a field filter names the problem.
    let plain = tmp.path().join("plain");
    ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&plain),
        "--model",
        s(&fixture("tiny-bert")),
        "--quiet",
    ]);
    let err = fails(&["search", s(&plain), "q", "--filter", FILTERS[0].1]);
    assert!(
        err.contains("unknown field") && err.contains("none"),
        "{err}"
    );
    // add reads the index's fields; a different --field is refused.
    let extra = tmp.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        r#"{"_id": "new1", "title": "Vitamin", "text": "vitamin d", "tenant": "zeta", "metadata": {"year": 2030, "tags": ["x"]}}"#,
    )
    .unwrap();
    let err = fails(&["add", s(&dir), s(&extra), "--field", "colour:keyword"]);
    assert!(err.contains("declares the fields"), "{err}");
    ok(&["add", s(&dir), s(&extra)]);
    let got = ids(&ok(&[
        "search",
        s(&dir),
        "vitamin",
        "--json",
        "--filter",
        r#"{"must": [{"key": "tenant", "match": {"value": "zeta"}}, {"key": "year", "range": {"gte": 2030}}]}"#,
    ]));
    assert_eq!(got, ["new1"]);
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn serve(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "serve",
                &format!("tiny={}", s(dir)),
                "--addr",
                "127.0.0.1:0",
                "--group-commit-ms",
                "5",
            ])
            .current_dir(repo())
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
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn filters_and_fields_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, fields) = corpus_with_fields(tmp.path());
    let dir = tmp.path().join("idx");
    build(&dir, &corpus);
    let cli: Vec<Vec<String>> = FILTERS
        .iter()
        .map(|(_, f)| {
            ids(&ok(&[
                "search",
                s(&dir),
                "malaria nets",
                "-k",
                "5",
                "--json",
                "--mode",
                "plaid",
                "--filter",
                f,
            ]))
        })
        .collect();
    let server = Server::serve(&dir);
    let c = reqwest::blocking::Client::new();
    let post = |path: &str, body: &Value| {
        let r = c
            .post(format!("{}{path}", server.base))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    for ((_, f), want) in FILTERS.iter().zip(&cli) {
        let filter: Value = serde_json::from_str(f).unwrap();
        let (status, v) = post(
            "/indexes/tiny/search",
            &json!({"query": "malaria nets", "k": 5, "mode": "plaid", "filter": filter, "include_fields": true}),
        );
        assert_eq!(status, 200, "{v}");
        let got: Vec<String> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&got, want, "{f}");
        for r in v["results"].as_array().unwrap() {
            let want = &fields
                .iter()
                .find(|(i, _)| i == r["id"].as_str().unwrap())
                .unwrap()
                .1;
            assert_eq!(&r["fields"], want);
        }
        assert_eq!(v["filter"]["filtered"], true);
    }
    // 30+ malformed filters: 400 invalid_filter naming the path; the server keeps answering.
    let bad = [
        json!([]),
        json!(3),
        json!("must"),
        json!({"must": 1}),
        json!({"must": [1]}),
        json!({"must": [{}]}),
        json!({"musts": []}),
        json!({"must": [{"key": "nope", "match": {"value": 1}}]}),
        json!({"must": [{"key": 1, "match": {"value": 1}}]}),
        json!({"must": [{"key": "year"}]}),
        json!({"must": [{"key": "year", "match": {"value": "x"}}]}),
        json!({"must": [{"key": "year", "match": {"any": 1}}]}),
        json!({"must": [{"key": "year", "match": {"any": [1, "a"]}}]}),
        json!({"must": [{"key": "year", "match": {}}]}),
        json!({"must": [{"key": "year", "match": {"value": 1, "except": [2]}}]}),
        json!({"must": [{"key": "year", "range": {}}]}),
        json!({"must": [{"key": "year", "range": {"gte": "2019"}}]}),
        json!({"must": [{"key": "year", "range": {"gte": 1, "gt": 1}}]}),
        json!({"must": [{"key": "year", "range": {"lt": null}}]}),
        json!({"must": [{"key": "year", "range": {"between": [1, 2]}}]}),
        json!({"must": [{"key": "tenant", "range": {"gte": 1}}]}),
        json!({"must": [{"key": "tenant", "match": {"text": "a"}}]}),
        json!({"must": [{"key": "tenant", "match": {"value": true}}]}),
        json!({"must": [{"key": "tags", "match": {"except": "x"}}]}),
        json!({"must": [{"is_empty": "tags"}]}),
        json!({"must": [{"is_empty": {"key": "nope"}}]}),
        json!({"must": [{"is_null": {"key": "tags"}}]}),
        json!({"must": [{"has_id": "doc1"}]}),
        json!({"must": [{"has_id": [1, 2]}]}),
        json!({"should": [{"must": [{"key": "nope", "match": {"value": 1}}]}]}),
        json!({"must": [{"key": "year", "range": {"gte": 1}, "match": {"value": 1}}]}),
        json!({"must_not": {"key": "year"}}),
    ];
    assert!(bad.len() >= 30);
    for f in &bad {
        let (status, v) = post("/indexes/tiny/search", &json!({"query": "q", "filter": f}));
        assert_eq!(status, 400, "{f}: {v}");
        assert_eq!(v["error"]["code"], "invalid_filter", "{f}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("filter"),
            "{v}"
        );
    }
    // Documents written with fields are filtered at once; a bad field value is refused.
    let (status, v) = post(
        "/indexes/tiny/documents",
        &json!({"documents": [{"id": "h1", "text": "malaria nets at night", "fields": {"tenant": "zeta", "year": 2031, "tags": ["q"]}}]}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        "/indexes/tiny/documents",
        &json!({"documents": [{"id": "h2", "text": "x", "fields": {"year": "soon"}}]}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("year"),
        "{v}"
    );
    let (_, v) = post(
        "/indexes/tiny/search",
        &json!({"query": "malaria", "filter": {"must": [{"key": "tenant", "match": {"value": "zeta"}}]}}),
    );
    let got: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["h1"]);
    let doc: Value = c
        .get(format!("{}/indexes/tiny/documents/h1", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        doc["fields"],
        json!({"tenant": "zeta", "year": 2031, "tags": ["q"]})
    );
    // Deleted: never passes a filter again.
    let r = c
        .delete(format!("{}/indexes/tiny/documents/h1", server.base))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, v) = post(
        "/indexes/tiny/search",
        &json!({"query": "malaria", "filter": {"must": [{"has_id": ["h1", "doc2"]}]}}),
    );
    let got: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["doc2"]);
}
