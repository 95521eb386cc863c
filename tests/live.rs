//! The live index end to end through the command line, against an index built from
//! scratch: half of SciFact (every other document) added in 10 batches, 10% of the documents deleted, 5% upserted with
//! changed text; then every SciFact test query under exhaustive search ranks and scores
//! exactly as on an index built from scratch from the final collection, and the other
//! modes' nDCG@10 stays within 0.005 of it. With the tiny random models (the real ones
//! would take most of CI's time to encode SciFact twice), one document per forward pass
//! so both indexes hold bit-identical vectors. Also: `tessera add`'s errors and `info`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    String::from_utf8(out.stderr).unwrap()
}

/// The flags that make both indexes: tiny models, every component, one document per
/// forward pass (batching changes padding, and with it the last bits of the vectors).
fn build_flags() -> Vec<String> {
    let fixture = |p: &str| repo().join("tests/fixtures").join(p).display().to_string();
    [
        "--model",
        &fixture("tiny-bert"),
        "--splade-model",
        &fixture("tiny-splade"),
        "--components",
        "store,plaid,muvera,splade,bm25",
        "--num-centroids",
        "1024",
        "--fde-reps",
        "4",
        "--fde-k-sim",
        "3",
        "--fde-d-proj",
        "8",
        "--batch-size",
        "1",
        "--splade-batch-size",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// `tessera eval --json` of `mode` on `index`, and its run (query -> [(doc, score text)]).
fn eval(
    index: &Path,
    mode: &str,
    dir: &Path,
) -> (serde_json::Value, BTreeMap<String, Vec<(String, String)>>) {
    let run = dir.join(format!(
        "{}-{}.trec",
        index.file_name().unwrap().to_str().unwrap(),
        mode.replace('+', "_")
    ));
    let out = ok(&[
        "eval",
        s(&repo().join("datasets/scifact")),
        "--index",
        s(index),
        "--mode",
        mode,
        "--json",
        "--quiet",
        "--run-file",
        s(&run),
    ]);
    let mut by_query: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&run).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        by_query
            .entry(f[0].to_string())
            .or_default()
            .push((f[2].to_string(), f[4].to_string()));
    }
    (serde_json::from_str(&out).unwrap(), by_query)
}

/// Mean share of `reference`'s top-100 found in `run`'s top-100.
fn share(
    run: &BTreeMap<String, Vec<(String, String)>>,
    reference: &BTreeMap<String, Vec<(String, String)>>,
) -> f64 {
    let mut sum = 0.0;
    for (q, want) in reference {
        let want: Vec<&str> = want.iter().take(100).map(|(d, _)| d.as_str()).collect();
        let got = run.get(q).map_or(0, |r| {
            r.iter()
                .take(100)
                .filter(|(d, _)| want.contains(&d.as_str()))
                .count()
        });
        sum += got as f64 / want.len().max(1) as f64;
    }
    sum / reference.len().max(1) as f64
}

#[test]
fn scifact_written_live_answers_as_an_index_built_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // Every other SciFact document (2,592): the equivalence does not depend on the
    // collection's size, and the whole corpus made this test 8 of CI's 20 minutes.
    let corpus: Vec<String> = std::fs::read_to_string(repo().join("datasets/scifact/corpus.jsonl"))
        .unwrap()
        .lines()
        .step_by(2)
        .map(str::to_string)
        .collect();
    let n = corpus.len();
    let ids: Vec<String> = corpus
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let flags = build_flags();
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();

    // 10 batches: the first creates the index, nine `tessera add`s follow.
    let inc = work.join("inc");
    for b in 0..10 {
        let part: Vec<String> = corpus[b * n / 10..(b + 1) * n / 10].to_vec();
        let file = work.join(format!("batch{b}.jsonl"));
        write_lines(&file, &part);
        if b == 0 {
            let mut args = vec!["index", s(&file), "--out", s(&inc)];
            args.extend(&flag_refs);
            ok(&args);
        } else {
            ok(&["add", s(&inc), s(&file), "--batch-size", "1", "--quiet"]);
        }
    }
    // 10% deleted, 5% upserted with changed text (each document in at most one set).
    let deleted: Vec<&String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3)
        .map(|(_, id)| id)
        .collect();
    let ids_file = work.join("deleted.txt");
    write_lines(
        &ids_file,
        &deleted.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let out = ok(&["delete", s(&inc), "--ids-file", s(&ids_file), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], deleted.len());
    let mut final_corpus = Vec::new();
    let mut upserts = Vec::new();
    for (i, line) in corpus.iter().enumerate() {
        if i % 10 == 3 {
            continue;
        }
        if i % 20 == 7 {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let title = v["title"].as_str().unwrap_or("").to_string();
            v["title"] = format!("Revised: {title}").into();
            let changed = serde_json::to_string(&v).unwrap();
            upserts.push(changed.clone());
            final_corpus.push(changed);
        } else {
            final_corpus.push(line.clone());
        }
    }
    let upsert_file = work.join("upserts.jsonl");
    write_lines(&upsert_file, &upserts);
    let out = ok(&[
        "add",
        s(&inc),
        s(&upsert_file),
        "--upsert",
        "--batch-size",
        "1",
        "--json",
        "--quiet",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["replaced"], upserts.len(), "{report}");
    assert_eq!(report["added"], 0, "{report}");
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", s(&inc), "--json"])).unwrap();
    assert_eq!(info["live_docs"], final_corpus.len());
    eprintln!(
        "live index: {} segments, {} deleted documents awaiting a merge",
        info["segments"].as_array().unwrap().len(),
        info["deleted_docs"]
    );

    // The same final collection, built from scratch.
    let final_file = work.join("final.jsonl");
    write_lines(&final_file, &final_corpus);
    let scratch = work.join("scratch");
    let mut args = vec!["index", s(&final_file), "--out", s(&scratch)];
    args.extend(&flag_refs);
    ok(&args);

    let (inc_ex, inc_run) = eval(&inc, "exhaustive", work);
    let (scr_ex, scr_run) = eval(&scratch, "exhaustive", work);
    assert_eq!(inc_ex["num_queries"], 300);
    // Exactly the same rankings and scores for every query.
    assert_eq!(inc_run.len(), scr_run.len());
    for (q, want) in &scr_run {
        assert_eq!(inc_run.get(q), Some(want), "query {q}");
    }
    assert_eq!(inc_ex["metrics"], scr_ex["metrics"]);
    for mode in ["plaid", "muvera", "splade", "bm25", "bm25+splade"] {
        let (a, a_run) = eval(&inc, mode, work);
        let (b, _) = eval(&scratch, mode, work);
        let (x, y) = (
            a["metrics"]["ndcg@10"].as_f64().unwrap(),
            b["metrics"]["ndcg@10"].as_f64().unwrap(),
        );
        eprintln!(
            "{mode}: nDCG@10 live {x:.4} vs from scratch {y:.4}; share of the from-scratch exhaustive top-100 {:.4}",
            share(&a_run, &scr_run)
        );
        assert!(
            (x - y).abs() <= 0.005,
            "{mode}: nDCG@10 {x} live vs {y} from scratch"
        );
    }
}

#[test]
fn add_refuses_existing_ids_and_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let fixture = repo().join("tests/fixtures");
    ok(&[
        "index",
        s(&fixture.join("tiny-beir")),
        "--out",
        s(&idx),
        "--model",
        s(&fixture.join("tiny-bert")),
        "--quiet",
    ]);
    let before = ok(&["info", s(&idx), "--json"]);
    let file = tmp.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"_id\": \"fresh\", \"text\": \"new text\"}\n{\"_id\": \"doc3\", \"text\": \"clash\"}\n",
    )
    .unwrap();
    let err = fails(&["add", s(&idx), s(&file), "--quiet"]);
    assert!(
        err.contains("more.jsonl:2:")
            && err.contains("\"doc3\" is already in the index")
            && err.contains("upsert"),
        "{err}"
    );
    // All or nothing: "fresh" (line 1) was not added either.
    assert_eq!(ok(&["info", s(&idx), "--json"]), before);
    let out = ok(&["add", s(&idx), s(&file), "--upsert", "--json", "--quiet"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["added"].as_u64(), report["replaced"].as_u64()),
        (Some(1), Some(1))
    );
    let out = ok(&["search", s(&idx), "clash", "-k", "1", "--json"]);
    assert!(out.contains("\"doc3\""), "{out}");
    // A delete of unknown ids reports them; an add to a directory without an index fails.
    let out = ok(&["delete", s(&idx), "--ids", "fresh,nope", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], 1);
    assert_eq!(report["not_found"], serde_json::json!(["nope"]));
    let err = fails(&["add", s(&tmp.path().join("nowhere")), s(&file)]);
    assert!(err.contains("no index here"), "{err}");
    assert!(
        !tmp.path().join("nowhere").exists(),
        "a failed add created a directory"
    );
    let info = ok(&["info", s(&idx)]);
    assert!(info.contains("16 live documents"), "{info}");
}
