//! End-to-end tests of the `tessera` binary on the tiny BEIR fixture with a tiny random
//! model (tests/fixtures/tiny-bert): index, search, eval, caching, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(p: &str) -> PathBuf {
    repo().join("tests/fixtures").join(p)
}

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(repo())
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("tessera-test-cache-unused"),
        )
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
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The ids of `tessera search --json` output, best first.
fn result_ids(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn build_tiny_index(dir: &Path) -> serde_json::Value {
    let out = ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(dir),
        "--model",
        s(&fixture("tiny-bert")),
        "--json",
        "--quiet",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn corpus_texts() -> Vec<(String, String)> {
    std::fs::read_to_string(fixture("tiny-beir/corpus.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = format!(
                "{} {}",
                v["title"].as_str().unwrap(),
                v["text"].as_str().unwrap()
            );
            (
                v["_id"].as_str().unwrap().to_string(),
                text.trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn index_reports_what_it_built() {
    let dir = tempfile::tempdir().unwrap();
    let report = build_tiny_index(&dir.path().join("idx"));
    assert_eq!(report["num_docs"], 16);
    assert_eq!(report["skipped_lines"], 0);
    let nv = report["num_vectors"].as_u64().unwrap();
    assert!(nv > 16 * 5, "one vector per token, got {nv}");
    // f16 vectors of 32 dims = 64 bytes each, plus offsets, ids and footers.
    let bpv = report["bytes_per_vector"].as_f64().unwrap();
    assert!(bpv > 64.0 && bpv < 80.0, "bytes/vector {bpv}");
}

#[test]
fn a_document_is_its_own_best_match() {
    // Query = a document's exact text: every query token finds its identical token
    // vector (cosine 1), which no other document can beat.
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    for (id, text) in corpus_texts().iter().take(6) {
        let out = ok(&["search", s(&idx), text, "-k", "3", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0]["id"].as_str().unwrap(), id, "query {text:?}");
        assert!(results[0]["score"].as_f64() >= results[1]["score"].as_f64());
    }
    let table = ok(&["search", s(&idx), "malaria nets", "-k", "2"]);
    assert!(table.lines().count() == 3, "header + 2 rows:\n{table}");
}

#[test]
fn eval_json_has_every_field_and_agrees_with_its_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let run_file = dir.path().join("run.trec");
    let out = ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--json",
        "--quiet",
        "--threads",
        "1",
        "--run-file",
        s(&run_file),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "dataset",
        "split",
        "index",
        "mode",
        "num_queries",
        "metrics",
        "latency_ms",
        "qps",
        "index_bytes",
        "bytes_per_vector",
        "num_docs",
        "num_vectors",
        "encode_docs_per_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["dataset"], "tiny-beir");
    assert_eq!(v["mode"], "exhaustive");
    assert_eq!(v["num_queries"], 7, "q8 has no judgements");
    for k in ["p50", "p95", "mean"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0);
    }
    // Recompute the metrics from the written run with the library: same numbers.
    let run = tessera::eval::run::read_trec(&run_file).unwrap();
    let (qrels, _) = tessera::eval::beir::read_qrels(&fixture("tiny-beir/qrels/test.tsv")).unwrap();
    let again = tessera::eval::evaluate(&run, &qrels, &tessera::eval::Metric::defaults());
    for (name, value) in &again.mean {
        let reported = v["metrics"][name].as_f64().unwrap();
        assert!(
            (reported - value).abs() < 1e-6,
            "{name}: {reported} vs {value}"
        );
    }
    // The run holds k = 100 (the largest cutoff) or all 16 documents per query.
    assert_eq!(run["q1"].len(), 16);
}

#[test]
fn eval_search_and_run_file_rank_alike() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let run_file = dir.path().join("run.trec");
    ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--quiet",
        "--run-file",
        s(&run_file),
    ]);
    let run = std::fs::read_to_string(&run_file).unwrap();
    let first_q2: Vec<&str> = run
        .lines()
        .filter(|l| l.starts_with("q2 "))
        .take(5)
        .collect();
    let out = ok(&[
        "search",
        s(&idx),
        "do bed nets prevent malaria",
        "-k",
        "5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (line, hit) in first_q2.iter().zip(v["results"].as_array().unwrap()) {
        assert_eq!(line.split(' ').nth(2).unwrap(), hit["id"].as_str().unwrap());
    }
}

#[test]
fn eval_without_index_builds_then_reuses_a_cached_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (data, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    let args = [
        "eval",
        s(&data),
        "--model",
        s(&model),
        "--cache-dir",
        s(&cache),
        "--json",
        "--quiet",
    ];
    let first = tessera(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("building index"));
    let second = tessera(&args);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("using cached index"));
    let a: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(a["metrics"], b["metrics"]);
}

#[test]
fn malformed_corpus_lines_fail_or_are_skipped_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bad.jsonl");
    std::fs::write(
        &corpus,
        concat!(
            "{\"_id\": \"a\", \"title\": \"t\", \"text\": \"vitamin d\"}\n",
            "{\"_id\": \"b\", \"text\": \"malaria nets\"\n",
            "\n",
            "{\"_id\": \"c\", \"text\": 42}\n",
            "[1, 2]\n",
            "{\"text\": \"no id\"}\n",
            "{\"_id\": \"a\", \"text\": \"duplicate\"}\n",
            "{\"_id\": 7, \"text\": \"numeric id is fine\"}\n",
        ),
    )
    .unwrap();
    let model = fixture("tiny-bert");
    let idx = dir.path().join("idx");
    let base = [
        "index",
        s(&corpus),
        "--out",
        s(&idx),
        "--model",
        s(&model),
        "--quiet",
    ];
    let err = fails(&base);
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("invalid JSON"),
        "{err}"
    );
    assert!(
        !idx.join("manifest.json").exists(),
        "a failed build commits nothing"
    );

    let mut skip = base.to_vec();
    skip.extend(["--skip-malformed", "--json"]);
    let out = tessera(&skip);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, why) in [
        (2, "invalid JSON"),
        (4, "must be a string"),
        (5, "JSON object"),
        (6, "missing id"),
        (7, "duplicate"),
    ] {
        assert!(
            stderr.contains(&format!("bad.jsonl:{line}: skipped: ")) && stderr.contains(why),
            "line {line}: {stderr}"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["num_docs"], 2);
    assert_eq!(report["skipped_lines"], 5);
}

#[test]
fn generic_jsonl_with_custom_fields() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("docs.jsonl");
    std::fs::write(
        &corpus,
        "{\"pid\": \"p1\", \"body\": \"coffee and heart disease\"}\n{\"pid\": \"p2\", \"body\": \"sleep and obesity\"}\n",
    )
    .unwrap();
    let idx = dir.path().join("idx");
    let out = ok(&[
        "index",
        s(&corpus),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--id-field",
        "pid",
        "--text-fields",
        "body",
        "--json",
        "--quiet",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["num_docs"], 2);
    let hits = ok(&["search", s(&idx), "sleep and obesity", "-k", "1", "--json"]);
    assert!(hits.contains("\"p2\""), "{hits}");
}

#[test]
fn modes_the_index_cannot_run_name_the_missing_component() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let err = fails(&["search", s(&idx), "malaria", "--mode", "bm25+plaid"]);
    assert!(
        err.contains("\"bm25\" component") && err.contains("it has: store"),
        "{err}"
    );
    let err = fails(&["search", s(&idx), "malaria", "--mode", "rrf:splade"]);
    assert!(err.contains("\"splade\" component"), "{err}");
    let err = fails(&["search", s(&idx), "malaria", "--mode", "colbert"]);
    assert!(err.contains("unknown first stage"), "{err}");
    let err = fails(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&dir.path().join("x")),
        "--components",
        "store,colbert",
    ]);
    assert!(err.contains("unknown component \"colbert\""), "{err}");
    let err = fails(&["search", s(&idx), "malaria", "--mode", "plaid"]);
    assert!(
        err.contains("\"plaid\" component") && err.contains("it has: store"),
        "{err}"
    );
}

#[test]
fn damaged_index_or_wrong_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let err = fails(&[
        "search",
        s(&idx),
        "malaria",
        "--model",
        s(&fixture("tiny-colbert")),
    ]);
    assert!(err.contains("weights differ"), "{err}");

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(idx.join("manifest.json")).unwrap()).unwrap();
    let vectors = idx.join(
        manifest["segments"][0]["store"]["vectors"]["name"]
            .as_str()
            .unwrap(),
    );
    let mut bytes = std::fs::read(&vectors).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&vectors, bytes).unwrap();
    let err = fails(&["search", s(&idx), "malaria"]);
    assert!(
        err.contains("s1.vectors.f16") && err.contains("checksum"),
        "{err}"
    );

    let err = fails(&["search", s(&dir.path().join("nowhere")), "malaria"]);
    assert!(err.contains("no index here"), "{err}");
    let err = fails(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&dir.path().join("y")),
        "--model",
        s(&dir.path().join("no-model")),
    ]);
    assert!(err.contains("model directory not found"), "{err}");
}

#[test]
fn help_explains_every_command() {
    let top = ok(&["--help"]);
    for cmd in ["index", "search", "eval", "rebuild", "serve"] {
        assert!(top.contains(cmd));
        let help = ok(&[cmd, "--help"]);
        assert!(help.len() > 300, "{cmd} --help is too thin");
    }
    assert!(ok(&["eval", "--help"]).contains("--run-file"));
    assert!(ok(&["eval", "--help"]).contains("--stage-recall"));
    assert!(ok(&["index", "--help"]).contains("--splade-model"));
    assert!(ok(&["serve", "--help"]).contains("/openapi.json"));
}

#[test]
fn plaid_index_searches_like_exhaustive_at_maximal_settings() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let out = ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid",
        "--num-centroids",
        "8",
        "--nbits",
        "4",
        "--json",
        "--quiet",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["num_docs"], 16);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(idx.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["codec"]["num_centroids"], 8);
    assert_eq!(manifest["codec"]["quantizer"]["nbits"], 4);

    let q = "vitamin d and mortality in the elderly";
    let exhaustive = ok(&["search", s(&idx), q, "-k", "16", "--json"]);
    let plaid = ok(&[
        "search",
        s(&idx),
        q,
        "-k",
        "16",
        "--json",
        "--mode",
        "plaid",
        "--ncells",
        "8",
        "--centroid-score-threshold",
        "-100",
        "--ndocs",
        "64",
    ]);
    assert_eq!(result_ids(&plaid), result_ids(&exhaustive));

    // eval of PLAID against exhaustive in one run, and the sweep table.
    let out = ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--mode",
        "plaid",
        "--compare-exhaustive",
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = v["vs_exhaustive"]["recall_at_k"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&r));
    let sweep = ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--sweep",
        "--quiet",
    ]);
    assert_eq!(sweep.lines().count(), 2 + 27, "{sweep}");
    // A grid of one's own: the product of the values given, refinement with a margin
    // large enough to be exact reproducing the unrefined rows' recall.
    let grid = ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--sweep",
        "--sweep-grid",
        "ncells=1,2;margin=off,100;exact_docs=10",
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_str(&grid).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{grid}");
    assert!(rows[0]["params"]["refine_margin"].is_null());
    assert_eq!(rows[1]["params"]["refine_margin"].as_f64(), Some(100.0));
    for pair in rows.chunks(2) {
        assert_eq!(
            pair[0]["recall_vs_exhaustive"], pair[1]["recall_vs_exhaustive"],
            "{grid}"
        );
    }
    let err = fails(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--sweep",
        "--sweep-grid",
        "ncells=1;cells=2",
        "--quiet",
    ]);
    assert!(err.contains("unknown key \"cells\""), "{err}");
}

#[test]
fn pooling_reduces_stored_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let base = build_tiny_index(&dir.path().join("plain"));
    let n = base["num_vectors"].as_u64().unwrap();
    let (data, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    for (args, check) in [
        (
            vec!["--pool-factor", "2"],
            Box::new(|m: u64, n: u64| m < n * 6 / 10 && m > n / 3) as Box<dyn Fn(u64, u64) -> bool>,
        ),
        (
            vec!["--pooling", "whole-word"],
            Box::new(|m: u64, n: u64| m <= n),
        ),
    ] {
        let idx = dir.path().join(format!("pooled{}", args.len()));
        let mut cmd = vec![
            "index",
            s(&data),
            "--out",
            s(&idx),
            "--model",
            s(&model),
            "--json",
            "--quiet",
        ];
        cmd.extend(args.iter().copied());
        let report: serde_json::Value = serde_json::from_str(&ok(&cmd)).unwrap();
        let m = report["num_vectors"].as_u64().unwrap();
        assert_eq!(report["vectors_before_pooling"].as_u64().unwrap(), n);
        assert!(check(m, n), "{args:?}: {m} vectors from {n}");
    }
    // Rebuild re-pools stored vectors without the model.
    let rebuilt = dir.path().join("rebuilt");
    let out = ok(&[
        "rebuild",
        s(&dir.path().join("plain")),
        "--out",
        s(&rebuilt),
        "--pool-factor",
        "3",
        "--components",
        "store,plaid",
        "--num-centroids",
        "4",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["num_vectors"].as_u64().unwrap() < n / 2);
    assert_eq!(v["components"], serde_json::json!(["store", "plaid"]));
    ok(&["search", s(&rebuilt), "malaria", "--mode", "plaid"]);
}

#[test]
fn muvera_index_searches_and_its_curve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let (data, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    ok(&[
        "index",
        s(&data),
        "--out",
        s(&idx),
        "--model",
        s(&model),
        "--components",
        "store,muvera",
        "--fde-k-sim",
        "3",
        "--fde-d-proj",
        "8",
        "--fde-reps",
        "4",
        "--quiet",
    ]);
    // Every document as a candidate: the same ranking as exhaustive search.
    let q = "sleep and obesity risk";
    let all = ok(&[
        "search",
        s(&idx),
        q,
        "-k",
        "16",
        "--json",
        "--mode",
        "muvera",
        "--candidates",
        "16",
    ]);
    let exhaustive = ok(&["search", s(&idx), q, "-k", "16", "--json"]);
    assert_eq!(result_ids(&all), result_ids(&exhaustive));
    // Four candidates give four results: the muvera stage really ran.
    let few = ok(&[
        "search",
        s(&idx),
        q,
        "-k",
        "16",
        "--json",
        "--mode",
        "muvera",
        "--candidates",
        "4",
    ]);
    assert_eq!(result_ids(&few).len(), 4);
    let out = ok(&[
        "eval",
        s(&data),
        "--index",
        s(&idx),
        "--muvera-curve",
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["rows"].as_array().unwrap().len(),
        10,
        "5 candidate counts x (muvera, single-vector)"
    );
    let r = v["fde_maxsim_correlation"]["pearson"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&r));
    // Union of two first stages needs both components.
    let err = fails(&["search", s(&idx), q, "--mode", "muvera+plaid"]);
    assert!(err.contains("\"plaid\" component"), "{err}");
}

/// (id, score) pairs of `tessera search --json` output, best first.
fn results(out: &str) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn sparse_and_lexical_stages_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let splade_model = repo().join("models/splade-tiny");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "splade,bm25",
        "--splade-model",
        s(&splade_model),
        "--json",
        "--quiet",
    ]))
    .unwrap();
    // tiny-bert's 225-token vocabulary is not SPLADE-tiny's: tokenised twice.
    assert_eq!(report["splade"]["shared_tokenization"], false);
    assert!(report["splade"]["mean_terms_per_doc"].as_f64().unwrap() > 1.0);

    let (id, title) = corpus_texts().remove(2);
    let query = title
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    let search = |mode: &str, k: &str| {
        results(&ok(&[
            "search",
            s(&idx),
            &query,
            "--mode",
            mode,
            "-k",
            k,
            "--json",
            "--sparse-candidates",
            "50",
        ]))
    };
    // The document's own words find it first by BM25, and within the top 3 by SPLADE.
    assert_eq!(search("bm25", "5")[0].0, id);
    let splade = search("splade", "50");
    assert!(splade.iter().take(3).any(|(d, _)| *d == id), "{splade:?}");

    // bm25+splade: the union of both stages' candidates, each scored by exact MaxSim:
    // every result is a candidate and carries its exhaustive MaxSim score.
    let bm25 = search("bm25", "50");
    let exhaustive: std::collections::HashMap<String, f64> =
        search("exhaustive", "50").into_iter().collect();
    let fused = search("bm25+splade", "10");
    assert!(!fused.is_empty());
    for (d, score) in &fused {
        assert!(
            bm25.iter().chain(&splade).any(|(c, _)| c == d),
            "{d} is no candidate"
        );
        assert!(
            (score - exhaustive[d]).abs() < 1e-4,
            "{d}: {score} vs {}",
            exhaustive[d]
        );
    }
    assert!(fused.windows(2).all(|w| w[0].1 >= w[1].1));

    // rrf:bm25+splade: Σ 1 / (60 + rank) over the two rankings (each cut at k).
    let k = 5;
    let mut want: std::collections::HashMap<String, f64> = Default::default();
    for ranking in [&bm25, &splade] {
        for (rank, (d, _)) in ranking.iter().take(k).enumerate() {
            *want.entry(d.clone()).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
        }
    }
    let rrf = search("rrf:bm25+splade", &k.to_string());
    assert_eq!(rrf.len(), want.len().min(k));
    for (d, score) in &rrf {
        assert!(
            (score - want[d]).abs() < 1e-6,
            "{d}: {score} vs {}",
            want[d]
        );
    }

    // eval reports each stage's recall and SPLADE's pruning; MaxScore = exhaustive.
    let ev: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--mode",
        "bm25+splade",
        "--stage-recall",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    let stages: Vec<&str> = ev["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["bm25", "splade"]);
    for st in ev["stages"].as_array().unwrap() {
        let r = st["candidates_recall"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r), "{st}");
    }
    assert_eq!(
        ev["sparse"]["identical_rankings"],
        ev["sparse"]["num_queries"]
    );
    assert!(ev["component_bytes"]["bm25"].as_u64().unwrap() > 0);
    assert!(ev["component_bytes"]["splade"].as_u64().unwrap() > 0);

    // rebuild adds text components from the texts the index keeps: same rankings.
    let rebuilt = dir.path().join("r");
    ok(&[
        "rebuild",
        s(&idx),
        "--out",
        s(&rebuilt),
        "--components",
        "splade,bm25",
        "--splade-model",
        s(&splade_model),
        "--json",
    ]);
    let again_splade = results(&ok(&[
        "search",
        s(&rebuilt),
        &query,
        "--mode",
        "splade",
        "-k",
        "50",
        "--json",
    ]));
    assert_eq!(again_splade, splade);
    let again = results(&ok(&[
        "search",
        s(&rebuilt),
        &query,
        "--mode",
        "bm25",
        "-k",
        "50",
        "--json",
    ]));
    assert_eq!(again, bm25);
    // An index without texts cannot.
    let bare = dir.path().join("bare");
    ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&bare),
        "--model",
        s(&fixture("tiny-bert")),
        "--no-store-text",
        "--quiet",
    ]);
    let err = fails(&[
        "rebuild",
        s(&bare),
        "--out",
        s(&dir.path().join("r2")),
        "--components",
        "bm25",
    ]);
    assert!(err.contains("needs the documents' text"), "{err}");
}

/// Every file under `dir` with its bytes (the lock file left out), to compare states.
fn dir_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "writer.lock" {
                let name = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_writer_is_refused_and_the_index_survives() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let other = dir.path().join("other");
    build_tiny_index(&other);
    // Another process holds the writer lock (util-linux flock(1) takes the same flock(2)
    // lock `tessera` does), as a concurrent `tessera index` would.
    let lock = idx.join("writer.lock");
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let held = || {
        !Command::new("flock")
            .args(["-n", "-o"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    };
    for _ in 0..500 {
        if held() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(held(), "the holder never took the lock");
    let before = dir_state(&idx);
    let err = fails(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--quiet",
    ]);
    assert!(
        err.contains("another writer is working on this index"),
        "{err}"
    );
    let err = fails(&["rebuild", s(&other), "--out", s(&idx), "--quiet"]);
    assert!(
        err.contains("another writer is working on this index"),
        "{err}"
    );
    assert_eq!(
        dir_state(&idx),
        before,
        "a refused writer changed the index"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The lock went with its holder: writing works again, and the index answers.
    build_tiny_index(&idx);
    ok(&["search", s(&idx), "malaria", "--json"]);
}

#[test]
fn a_damaged_index_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    std::fs::write(idx.join("manifest.json"), b"{\"format_version\": 2, \"gen").unwrap();
    let before = dir_state(&idx);
    let (corpus, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    let args = [
        "index",
        s(&corpus),
        "--out",
        s(&idx),
        "--model",
        s(&model),
        "--quiet",
    ];
    let err = fails(&args);
    assert!(
        err.contains("--force") && err.contains("manifest.json"),
        "{err}"
    );
    assert_eq!(
        dir_state(&idx),
        before,
        "the refused build changed the directory"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
    ok(&["search", s(&idx), "malaria", "--json"]);
    assert!(!dir_state(&idx).iter().any(|(n, _)| n.starts_with("s1.")));
}

#[test]
fn a_failed_index_run_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bad.jsonl");
    std::fs::write(
        &corpus,
        "{\"_id\": \"a\", \"text\": \"fine\"}\n{\"_id\": \"b\", \"text\": 5}\n",
    )
    .unwrap();
    let model = fixture("tiny-bert");
    let fresh = dir.path().join("fresh");
    let err = fails(&[
        "index",
        s(&corpus),
        "--out",
        s(&fresh),
        "--model",
        s(&model),
        "--quiet",
    ]);
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    assert!(!fresh.exists(), "the failed run left {fresh:?} behind");
    // Into an existing index: exactly its committed files remain.
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    let before = dir_state(&idx);
    fails(&[
        "index",
        s(&corpus),
        "--out",
        s(&idx),
        "--model",
        s(&model),
        "--quiet",
    ]);
    assert_eq!(dir_state(&idx), before);
}

#[test]
fn a_corpus_starting_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bom.jsonl");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        std::fs::read(fixture("tiny-beir/corpus.jsonl"))
            .unwrap()
            .as_slice(),
    );
    std::fs::write(&corpus, bytes).unwrap();
    let idx = dir.path().join("idx");
    let out = ok(&[
        "index",
        s(&corpus),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--quiet",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["num_docs"], 16);
    // The first document keeps its own id.
    let (id, text) = &corpus_texts()[0];
    let out = ok(&["search", s(&idx), text, "-k", "1", "--json"]);
    assert_eq!(result_ids(&out), std::slice::from_ref(id));
}

#[test]
fn a_blank_query_is_refused_as_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    build_tiny_index(&idx);
    for q in ["", "   ", "\t\n"] {
        let err = fails(&["search", s(&idx), q]);
        assert!(err.contains("query text is blank"), "{q:?}: {err}");
    }
}

#[test]
fn an_io_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = fails(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&file.join("idx")),
        "--model",
        s(&fixture("tiny-bert")),
        "--quiet",
    ]);
    assert_eq!(err.matches("(os error").count(), 1, "{err}");
}

/// Pooled indexes explain each stored vector by the tokens it pooled: whole-word through
/// the word ids, hierarchical by repeating the clustering. The similarities still sum to
/// the search score, every vector names at least one token, and `--explain` adds an
/// explanation to every result.
#[test]
fn pooled_indexes_explain_their_vectors_by_the_tokens_they_pooled() {
    let dir = tempfile::tempdir().unwrap();
    // Words the tiny vocabulary splits into pieces ("vitamins" = vitamin ##s), so
    // whole-word pooling has something to pool.
    let data = dir.path().join("corpus.jsonl");
    let docs = [
        "Vitamins and deficiencies in elderly adults raise mortality.",
        "Malarial mosquitoes and bed nets in children.",
        "Antibiotics resistance in wastewaters of hospitals.",
        "Sleeplessness and obesity risks in adults.",
        "Exercising lowers blood pressures.",
        "Smokers have higher cancers risks.",
    ];
    let lines: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"_id": format!("d{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let model = fixture("tiny-bert");
    for (name, args, pooling) in [
        ("ww", vec!["--pooling", "whole-word"], "whole-word"),
        ("h2", vec!["--pool-factor", "2"], "hierarchical:2"),
    ] {
        let idx = dir.path().join(name);
        let mut cmd = vec![
            "index",
            s(&data),
            "--out",
            s(&idx),
            "--model",
            s(&model),
            "--quiet",
        ];
        cmd.extend(args.iter().copied());
        ok(&cmd);
        let out: serde_json::Value = serde_json::from_str(&ok(&[
            "search",
            s(&idx),
            "vitamins deficiencies and mortality in the elderly",
            "-k",
            "6",
            "--explain",
            "--json",
        ]))
        .unwrap();
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.len(), 6);
        let mut merged = 0;
        for r in results {
            let e = &r["explanation"];
            assert_eq!(e["pooling"], pooling);
            let sum: f64 = e["query_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["similarity"].as_f64().unwrap())
                .sum();
            let score = r["score"].as_f64().unwrap();
            assert!(
                (sum - score).abs() < 1e-4,
                "{name} {}: {sum} vs {score}",
                r["id"]
            );
            for v in e["document_vectors"].as_array().unwrap() {
                let n = v["tokens"].as_array().unwrap().len();
                assert!(n >= 1);
                merged += usize::from(n > 1);
            }
        }
        assert!(merged > 0, "{name}: some vector pools several tokens");
    }
    let msg = fails(&[
        "search",
        s(&dir.path().join("ww")),
        "malaria",
        "--explain-id",
        "nope",
    ]);
    assert!(msg.contains("no document \"nope\""), "{msg}");
}

/// `eval --report`: every plot is in the file as inline SVG, nothing is fetched, and each
/// number the tables show equals `--json`'s at full precision (the main evaluation and,
/// with --sweep, every row).
#[test]
fn the_eval_report_has_every_plot_and_the_json_numbers() {
    use scraper::{Html, Selector};
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&idx),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid,bm25",
        "--num-centroids",
        "8",
        "--quiet",
    ]);
    let values = |doc: &Html, kind: &str| -> Vec<(String, f64)> {
        let sel = Selector::parse(&format!("td[data-kind=\"{kind}\"]")).unwrap();
        doc.select(&sel)
            .map(|td| {
                let v = td.value();
                (
                    v.attr("data-key").unwrap().to_string(),
                    v.attr("data-value").unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    let svg_in = |doc: &Html, id: &str| {
        let sel = Selector::parse(&format!("figure#{id} svg")).unwrap();
        let svg = doc
            .select(&sel)
            .next()
            .unwrap_or_else(|| panic!("no plot {id}"));
        assert!(
            svg.html().contains("<rect") || svg.html().contains("<circle"),
            "{id} draws nothing"
        );
    };

    let report = dir.path().join("r.html");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--mode",
        "bm25+plaid",
        "--stage-recall",
        "--json",
        "--report",
        s(&report),
        "--compare",
        "exhaustive",
    ]))
    .unwrap();
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: no script, stylesheet, image or font from anywhere (the SVG's
    // xmlns is a name, not a fetch).
    for banned in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(!html.contains(banned), "the report contains {banned}");
    }
    let doc = Html::parse_document(&html);
    for id in ["latency-histogram", "ndcg-scatter"] {
        svg_in(&doc, id);
    }
    let metrics = values(&doc, "metric");
    assert_eq!(metrics.len(), json["metrics"].as_object().unwrap().len());
    for (name, v) in &metrics {
        assert_eq!(*v, json["metrics"][name].as_f64().unwrap(), "{name}");
    }
    assert_eq!(values(&doc, "compare-metric").len(), metrics.len());
    for (key, v) in values(&doc, "latency") {
        let (what, stat) = key.split_once('.').unwrap();
        let field = if what == "search" {
            "latency_ms"
        } else {
            "query_encode_ms"
        };
        assert_eq!(v, json[field][stat].as_f64().unwrap(), "{key}");
    }
    let stages = values(&doc, "stage-top-k");
    assert_eq!(stages.len(), 2);
    for (stage, v) in stages {
        let j = json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == stage.as_str())
            .unwrap();
        assert_eq!(v, j["top_k_recall"].as_f64().unwrap());
    }

    let report = dir.path().join("sweep.html");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--sweep",
        "--sweep-grid",
        "ncells=1,2;ndocs=4,16",
        "--json",
        "--report",
        s(&report),
    ]))
    .unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(&report).unwrap());
    svg_in(&doc, "sweep-curve");
    svg_in(&doc, "latency-histogram");
    let rows = json["rows"].as_array().unwrap();
    let shares = values(&doc, "sweep-share");
    assert_eq!(shares.len(), rows.len());
    for (i, v) in shares {
        let r = &rows[i.parse::<usize>().unwrap()];
        assert_eq!(v, r["recall_vs_exhaustive"].as_f64().unwrap());
    }
    for (i, v) in values(&doc, "sweep-p50") {
        assert_eq!(
            v,
            rows[i.parse::<usize>().unwrap()]["latency_ms"]["p50"]
                .as_f64()
                .unwrap()
        );
    }

    let msg = fails(&[
        "eval",
        s(&fixture("tiny-beir")),
        "--index",
        s(&idx),
        "--metrics",
        "recall@10",
        "--report",
        s(&report),
        "--compare",
        "bm25",
    ]);
    assert!(msg.contains("add ndcg@10 to --metrics"), "{msg}");
}

/// `--store int8|none`: indexes rebuilt from an f16 one search in every mode, explain
/// (saying they approximate), are smaller, and `eval --reference-run` measures them
/// against exhaustive search on the f16 index (which scores 1 against its own run).
#[test]
fn compact_stores_search_explain_and_compare_with_a_reference_run() {
    let dir = tempfile::tempdir().unwrap();
    let f16 = dir.path().join("f16");
    ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&f16),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid",
        "--num-centroids",
        "8",
        "--quiet",
    ]);
    let reference = dir.path().join("exhaustive.trec");
    let data = fixture("tiny-beir");
    let eval = |idx: &Path, mode: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "eval",
            s(&data),
            "--index",
            s(idx),
            "--mode",
            mode,
            "--json",
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let exact = eval(&f16, "exhaustive", &["--run-file", s(&reference)]);
    let own = eval(&f16, "exhaustive", &["--reference-run", s(&reference)]);
    assert_eq!(own["vs_reference"]["share_at_k"], 1.0, "{own}");
    assert_eq!(own["vs_reference"]["share_at_10"], 1.0);
    assert_eq!(own["store"], "f16");
    let exact_search: serde_json::Value =
        serde_json::from_str(&ok(&["search", s(&f16), "vitamin d", "--json"])).unwrap();
    assert!(exact_search.get("approximate").is_none(), "{exact_search}");

    let mut sizes = vec![exact["index_bytes"].as_u64().unwrap()];
    for kind in ["int8", "none"] {
        let idx = dir.path().join(kind);
        ok(&[
            "rebuild",
            s(&f16),
            "--out",
            s(&idx),
            "--components",
            "store,plaid",
            "--num-centroids",
            "8",
            "--store",
            kind,
        ]);
        let info: serde_json::Value =
            serde_json::from_str(&ok(&["info", s(&idx), "--json"])).unwrap();
        assert_eq!(info["store"], kind, "{info}");
        for mode in ["exhaustive", "plaid"] {
            let r = eval(&idx, mode, &["--reference-run", s(&reference)]);
            let share = r["vs_reference"]["share_at_k"].as_f64().unwrap();
            assert!(share > 0.5 && share <= 1.0, "{kind} {mode}: share {share}");
            let ndcg = r["metrics"]["ndcg@10"].as_f64().unwrap();
            assert!(ndcg > 0.0, "{kind} {mode}");
            assert_eq!(r["store"], kind);
            if mode == "exhaustive" {
                sizes.push(r["index_bytes"].as_u64().unwrap());
            }
        }
        let out: serde_json::Value = serde_json::from_str(&ok(&[
            "search",
            s(&idx),
            "vitamin d and mortality",
            "-k",
            "3",
            "--explain",
            "--json",
        ]))
        .unwrap();
        assert_eq!(
            out["approximate"], true,
            "{kind}: search says its scores approximate"
        );
        for r in out["results"].as_array().unwrap() {
            let e = &r["explanation"];
            assert_eq!(e["approximate"], true, "{kind}");
            let sum: f64 = e["query_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["similarity"].as_f64().unwrap())
                .sum();
            let score = r["score"].as_f64().unwrap();
            assert!((sum - score).abs() < 1e-3, "{kind}: {sum} vs {score}");
        }
    }
    assert!(
        sizes[0] > sizes[1] && sizes[1] > sizes[2],
        "f16 > int8 > none bytes: {sizes:?}"
    );
    let msg = fails(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&dir.path().join("bad")),
        "--model",
        s(&fixture("tiny-bert")),
        "--store",
        "none",
        "--quiet",
    ]);
    assert!(msg.contains("plaid"), "{msg}");
}

/// Write `[n, dim]` f16 rows as a `.npy` file.
fn write_f16_npy(path: &Path, rows: &[half::f16], dim: usize) {
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<half::f16>::new()
        .default_dtype()
        .shape(&[(rows.len() / dim) as u64, dim as u64])
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(rows.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Write `rows` (f16) and the other files of a `--vectors` directory.
fn write_vectors_dir(dir: &Path, dim: usize, docs: &[(String, Vec<half::f16>, String)]) {
    use npyz::WriterBuilder;
    std::fs::create_dir_all(dir).unwrap();
    let rows: Vec<half::f16> = docs.iter().flat_map(|d| d.1.iter().copied()).collect();
    write_f16_npy(&dir.join("vectors.npy"), &rows, dim);
    let mut offsets = vec![0i64];
    for d in docs {
        offsets.push(offsets.last().unwrap() + (d.1.len() / dim) as i64);
    }
    let mut w = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[offsets.len() as u64])
        .writer(std::fs::File::create(dir.join("offsets.npy")).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(offsets).unwrap();
    w.finish().unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.0.as_str()).collect();
    std::fs::write(dir.join("ids.txt"), ids.join("\n") + "\n").unwrap();
    let texts: Vec<String> = docs
        .iter()
        .map(|d| serde_json::json!({"id": d.0, "text": d.2}).to_string())
        .collect();
    std::fs::write(dir.join("texts.jsonl"), texts.join("\n") + "\n").unwrap();
}

/// `tessera index --vectors DIR`: the vectors of an index exported to .npy files and
/// indexed again rank and score every query exactly as the original (exhaustive and
/// PLAID), text queries encoded by the --model named; bad files are errors naming them.
#[test]
fn pre_encoded_vectors_index_like_the_corpus_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("orig");
    ok(&[
        "index",
        s(&fixture("tiny-beir")),
        "--out",
        s(&original),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid,bm25",
        "--num-centroids",
        "8",
        "--quiet",
    ]);
    let index = tessera_index::Index::open(&original).unwrap();
    let dim = index.dim();
    let docs: Vec<(String, Vec<half::f16>, String)> = index
        .live_docs()
        .map(|a| {
            let rows = match index.vectors(a) {
                tessera_index::store::DocRows::F16(m) => m.as_slice().to_vec(),
                _ => unreachable!("an f16 index"),
            };
            (
                index.doc_id(a).to_string(),
                rows,
                index.text(a).unwrap().to_string(),
            )
        })
        .collect();
    drop(index);
    let vdir = dir.path().join("vectors");
    write_vectors_dir(&vdir, dim, &docs);
    let rebuilt = dir.path().join("from-vectors");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "index",
        "--vectors",
        s(&vdir),
        "--out",
        s(&rebuilt),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,plaid,bm25",
        "--num-centroids",
        "8",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(report["num_docs"], docs.len());
    for q in ["vitamin d and mortality", "coffee", "malaria in children"] {
        for mode in ["exhaustive", "plaid", "bm25"] {
            let run = |idx: &Path| {
                results(&ok(&[
                    "search",
                    s(idx),
                    q,
                    "--mode",
                    mode,
                    "-k",
                    "8",
                    "--json",
                ]))
            };
            assert_eq!(run(&original), run(&rebuilt), "{q:?} {mode}");
        }
    }

    // Half the documents indexed, the other half added (then upserted) from vectors:
    // exhaustive search equals the original's.
    let (first, second) = docs.split_at(docs.len() / 2);
    let (vfirst, vsecond) = (dir.path().join("v1"), dir.path().join("v2"));
    write_vectors_dir(&vfirst, dim, first);
    write_vectors_dir(&vsecond, dim, second);
    let grown = dir.path().join("grown");
    ok(&[
        "index",
        "--vectors",
        s(&vfirst),
        "--out",
        s(&grown),
        "--model",
        s(&fixture("tiny-bert")),
        "--components",
        "store,bm25",
        "--quiet",
    ]);
    let added: serde_json::Value =
        serde_json::from_str(&ok(&["add", s(&grown), "--vectors", s(&vsecond), "--json"])).unwrap();
    assert_eq!(added["added"], second.len());
    let again: serde_json::Value = serde_json::from_str(&ok(&[
        "add",
        s(&grown),
        "--vectors",
        s(&vsecond),
        "--upsert",
        "--json",
    ]))
    .unwrap();
    assert_eq!(again["replaced"], second.len());
    let msg = fails(&["add", s(&grown), "--vectors", s(&vsecond)]);
    assert!(
        msg.contains(&second[0].0),
        "an id the index has, without --upsert: {msg}"
    );
    for q in ["vitamin d and mortality", "coffee"] {
        for mode in ["exhaustive", "bm25"] {
            let run = |idx: &Path| {
                results(&ok(&[
                    "search",
                    s(idx),
                    q,
                    "--mode",
                    mode,
                    "-k",
                    "8",
                    "--json",
                ]))
            };
            assert_eq!(run(&original), run(&grown), "{q:?} {mode}");
        }
    }

    // --query-vectors: a document's own vectors as the query, against brute-force MaxSim
    // over the exported f16 rows.
    let q: Vec<half::f16> = docs[3].1.clone();
    let qpath = dir.path().join("q.npy");
    write_f16_npy(&qpath, &q, dim);
    let f = |v: &[half::f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    let qf = f(&q);
    let mut want: Vec<(String, f64)> = docs
        .iter()
        .map(|(id, rows, _)| {
            let d = f(rows);
            let score: f32 = qf
                .chunks_exact(dim)
                .map(|qr| {
                    d.chunks_exact(dim)
                        .map(|dr| qr.iter().zip(dr).map(|(a, b)| a * b).sum::<f32>())
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .sum();
            (id.clone(), f64::from(score))
        })
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let all = want.clone();
    want.truncate(8);
    for idx in [&original, &rebuilt] {
        let got = results(&ok(&[
            "search",
            s(idx),
            "--query-vectors",
            s(&qpath),
            "-k",
            "8",
            "--json",
        ]));
        assert_eq!(got.len(), 8);
        // Position by position the same scores (a near-tie may swap two ids), and each
        // returned id scored as brute force scores it.
        for (g, w) in got.iter().zip(&want) {
            assert!((g.1 - w.1).abs() < 1e-3, "{} vs {}", g.1, w.1);
            let own = all.iter().find(|x| x.0 == g.0).unwrap().1;
            assert!((g.1 - own).abs() < 1e-3, "{}: {} vs {own}", g.0, g.1);
        }
    }
    let msg = fails(&[
        "search",
        s(&original),
        "--query-vectors",
        s(&vdir.join("offsets.npy")),
    ]);
    assert!(
        msg.contains("offsets.npy") && msg.contains("shape"),
        "{msg}"
    );

    // Errors name the file.
    let broken = |name: &str, edit: &dyn Fn(&Path)| -> String {
        let d = dir.path().join(format!("bad-{name}"));
        write_vectors_dir(&d, dim, &docs);
        edit(&d);
        fails(&[
            "index",
            "--vectors",
            s(&d),
            "--out",
            s(&dir.path().join(format!("out-{name}"))),
            "--model",
            s(&fixture("tiny-bert")),
            "--quiet",
        ])
    };
    let msg = broken("dim", &|d| {
        let short: Vec<_> = docs
            .iter()
            .map(|x| {
                (
                    x.0.clone(),
                    x.1[..x.1.len() / dim * (dim - 1)].to_vec(),
                    x.2.clone(),
                )
            })
            .collect();
        write_vectors_dir(d, dim - 1, &short);
    });
    assert!(
        msg.contains("vectors.npy") && msg.contains("model's dimension"),
        "{msg}"
    );
    let msg = broken("ids", &|d| {
        std::fs::write(d.join("ids.txt"), "only-one\n").unwrap()
    });
    assert!(msg.contains("ids.txt") && msg.contains("1 ids"), "{msg}");
    let msg = broken("nan", &|d| {
        let mut bad = docs.clone();
        bad[2].1[3] = half::f16::NAN;
        write_vectors_dir(d, dim, &bad);
    });
    assert!(msg.contains("vectors.npy") && msg.contains("NaN"), "{msg}");
    let msg = broken("offsets", &|d| {
        use npyz::WriterBuilder;
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[3])
            .writer(std::fs::File::create(d.join("offsets.npy")).unwrap())
            .begin_nd()
            .unwrap();
        w.extend([0i64, 5, 7]).unwrap();
        w.finish().unwrap();
    });
    assert!(
        msg.contains("offsets.npy") && msg.contains("from 0 to"),
        "{msg}"
    );
    let msg = fails(&["index", "--out", s(&dir.path().join("x")), "--quiet"]);
    assert!(msg.contains("--vectors") || msg.contains("CORPUS"), "{msg}");
}

/// Rows of a `[n, dim]` f16 `.npy` as f32, and its dimension.
fn read_f16_npy(path: &Path) -> (Vec<f32>, usize) {
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let dim = npy.shape()[1] as usize;
    let v: Vec<half::f16> = npy.into_vec().unwrap();
    (v.into_iter().map(|x| x.to_f32()).collect(), dim)
}

fn read_i64_npy(path: &Path) -> Vec<i64> {
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    npy.into_vec().unwrap()
}

/// `tessera-bench gen` writes the same collection for the same seed; indexed without a
/// model (`index --vectors` with no --model), it is searched by query vectors exactly as
/// brute-force MaxSim over the generated rows ranks it, text queries are refused naming
/// the index, `eval --query-vectors` judges the queries with the generated qrels (and
/// without DATASET reports no metric), and `--memory-budget` caps the k-means sample.
#[test]
fn synthetic_vectors_index_and_evaluate_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |out: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
            .args(["gen", "--out", s(out), "--dim", "16", "--vectors", "3000"])
            .args(["--queries", "6", "--query-len", "8", "--words", "300"])
            .args([
                "--topics",
                "20",
                "--topic-words",
                "40",
                "--doc-len",
                "10..=40",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    gen(&a);
    gen(&b);
    for f in [
        "corpus/vectors.npy",
        "corpus/offsets.npy",
        "corpus/ids.txt",
        "queries/vectors.npy",
        "qrels/test.tsv",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let idx = dir.path().join("idx");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "index",
        "--vectors",
        s(&a.join("corpus")),
        "--out",
        s(&idx),
        "--components",
        "store,plaid",
        "--num-centroids",
        "32",
        "--memory-budget",
        "4K",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(report["num_vectors"], 3000);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(idx.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["model"]["name"], "none");
    // Half of 4 KiB for 16-d f32 rows: 32 vectors (5% of them held out).
    let sample = manifest["codec"]["build"]["kmeans_sample"]
        .as_u64()
        .unwrap();
    assert!(sample <= 32 && sample > 0, "k-means sample {sample}");
    assert_eq!(manifest["codec"]["build"]["sample_capped"], true);

    // Brute-force MaxSim over the generated rows, for each query.
    let (docs, dim) = read_f16_npy(&a.join("corpus/vectors.npy"));
    let offsets = read_i64_npy(&a.join("corpus/offsets.npy"));
    let ids: Vec<String> = std::fs::read_to_string(a.join("corpus/ids.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (queries, _) = read_f16_npy(&a.join("queries/vectors.npy"));
    let qoffsets = read_i64_npy(&a.join("queries/offsets.npy"));
    for q in 0..qoffsets.len() - 1 {
        let rows = &queries[qoffsets[q] as usize * dim..qoffsets[q + 1] as usize * dim];
        let mut want: Vec<(String, f32)> = (0..ids.len())
            .map(|d| {
                let doc = &docs[offsets[d] as usize * dim..offsets[d + 1] as usize * dim];
                let score = rows
                    .chunks_exact(dim)
                    .map(|qr| {
                        doc.chunks_exact(dim)
                            .map(|dr| qr.iter().zip(dr).map(|(x, y)| x * y).sum::<f32>())
                            .fold(f32::NEG_INFINITY, f32::max)
                    })
                    .sum();
                (ids[d].clone(), score)
            })
            .collect();
        want.sort_by(|x, y| y.1.total_cmp(&x.1));
        let qpath = dir.path().join(format!("q{q}.npy"));
        let half_rows: Vec<half::f16> = rows.iter().map(|&x| half::f16::from_f32(x)).collect();
        write_f16_npy(&qpath, &half_rows, dim);
        let got = results(&ok(&[
            "search",
            s(&idx),
            "--query-vectors",
            s(&qpath),
            "-k",
            "5",
            "--json",
        ]));
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.1 - f64::from(w.1)).abs() < 1e-3,
                "query {q}: {} vs {}",
                g.1,
                w.1
            );
        }
        assert_eq!(got[0].0, want[0].0, "query {q}");
    }
    let msg = fails(&["search", s(&idx), "some text"]);
    assert!(
        msg.contains("without a model") && msg.contains(s(&idx)),
        "{msg}"
    );

    // eval with the generated qrels: exhaustive against itself is recall 1; each query's
    // target document is its one judged document.
    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        s(&a),
        "--index",
        s(&idx),
        "--query-vectors",
        s(&a.join("queries")),
        "--mode",
        "plaid",
        "--compare-exhaustive",
        "--threads",
        "1",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(eval["num_queries"], 6);
    let ndcg = eval["metrics"]["ndcg@10"].as_f64().unwrap();
    assert!(ndcg > 0.0 && ndcg <= 1.0, "{ndcg}");
    let recall = eval["vs_exhaustive"]["recall_at_k"].as_f64().unwrap();
    assert!(recall > 0.0 && recall <= 1.0, "{recall}");
    let unjudged: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--index",
        s(&idx),
        "--query-vectors",
        s(&a.join("queries")),
        "--compare-exhaustive",
        "--json",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(unjudged["num_queries"], 6);
    assert_eq!(
        unjudged["metrics"],
        serde_json::json!({}),
        "no qrels, no metrics"
    );
    assert_eq!(unjudged["vs_exhaustive"]["recall_at_k"], 1.0);
}

/// MUVERA's FDEs live in memory while the HNSW is built: when the default (no final
/// projection, 80 KiB per document) would take more than half of `--memory-budget`, the
/// largest power-of-two `--fde-d-final` that fits is chosen and said; an explicit one is
/// kept.
#[test]
fn muvera_fdes_follow_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    let docs = std::fs::read_to_string(data.join("corpus.jsonl"))
        .unwrap()
        .lines()
        .count();
    let build = |name: &str, extra: &[&str]| {
        let idx = dir.path().join(name);
        let mut args = vec![
            "index",
            s(&data),
            "--out",
            s(&idx),
            "--model",
            s(&model),
            "--components",
            "store,muvera",
            "--memory-budget",
            "1M",
            "--quiet",
        ];
        args.extend(extra);
        let out = tessera(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(idx.join("manifest.json")).unwrap())
                .unwrap();
        (
            idx,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            manifest,
        )
    };
    // Paper settings: 20 x 32 x 32 x 4 bytes = 80 KiB per document; half of 1 MiB holds
    // 512 KiB, so the final dimension is the power of two below 512 KiB / (4 x docs).
    let fit = (512 * 1024 / (4 * docs)) as u64;
    let want = 1u64 << (63 - fit.leading_zeros());
    assert!(
        docs * 80 * 1024 > 512 * 1024,
        "the fixture must exceed the budget"
    );
    let (idx, stderr, manifest) = build("auto", &[]);
    assert!(
        stderr.contains(&format!("--fde-d-final {want} chosen")),
        "{stderr}"
    );
    let text = manifest.to_string();
    assert!(text.contains(&format!("\"d_final\":{want}")), "{text}");
    let hits = ok(&[
        "search",
        s(&idx),
        "sleep and obesity risk",
        "--mode",
        "muvera",
        "--json",
    ]);
    assert!(!result_ids(&hits).is_empty());
    // An explicit final dimension is kept, and nothing is said.
    let (_, stderr, manifest) = build("explicit", &["--fde-d-final", "1024"]);
    assert!(!stderr.contains("chosen"), "{stderr}");
    assert!(manifest.to_string().contains("\"d_final\":1024"));
}

/// With MUVERA, `add` stops merging at segments whose FDEs fit in half the memory
/// budget (their HNSW is built in memory): 1,024-dim FDEs are 4 KiB a document, so a
/// 24K budget caps merged segments at 3 documents; without it, ten one-document adds
/// merge into one segment of ten.
#[test]
fn merges_of_muvera_segments_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = (fixture("tiny-beir"), fixture("tiny-bert"));
    let lines: Vec<String> = std::fs::read_to_string(data.join("corpus.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, format!("{}\n", lines[0])).unwrap();
    let segments = |budget: Option<&str>| -> Vec<u64> {
        let idx = dir.path().join(format!("idx-{}", budget.unwrap_or("none")));
        ok(&[
            "index",
            s(&first),
            "--out",
            s(&idx),
            "--model",
            s(&model),
            "--id-field",
            "_id",
            "--components",
            "store,muvera",
            "--fde-d-final",
            "1024",
            "--quiet",
        ]);
        for (i, line) in lines[1..11].iter().enumerate() {
            let one = dir.path().join(format!("add{i}.jsonl"));
            std::fs::write(&one, format!("{line}\n")).unwrap();
            let mut args = vec![
                "add",
                s(&idx),
                s(&one),
                "--id-field",
                "_id",
                "--model",
                s(&model),
            ];
            if let Some(b) = budget {
                args.extend(["--memory-budget", b]);
            }
            ok(&args);
        }
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(idx.join("manifest.json")).unwrap())
                .unwrap();
        let docs: Vec<u64> = manifest["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|seg| seg["num_docs"].as_u64().unwrap())
            .collect();
        // Every document is still found.
        let hits: serde_json::Value = serde_json::from_str(&ok(&[
            "search",
            s(&idx),
            "malaria",
            "--mode",
            "muvera",
            "--json",
            "-k",
            "20",
        ]))
        .unwrap();
        assert_eq!(hits["results"].as_array().unwrap().len(), 11, "{hits}");
        docs
    };
    let capped = segments(Some("24K"));
    assert_eq!(capped.iter().sum::<u64>(), 11);
    assert!(capped.iter().all(|&d| d <= 3), "{capped:?}");
    assert!(
        capped.iter().any(|&d| d >= 2),
        "merging still happens below the cap: {capped:?}"
    );
    let free = segments(None);
    assert_eq!(free.iter().sum::<u64>(), 11);
    assert!(free.iter().any(|&d| d >= 10), "{free:?}");
}
