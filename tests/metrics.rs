//! Our metrics against pytrec_eval (trec_eval 9.x) on a committed fixture with ties,
//! graded relevance, unjudged and unretrieved queries and self-hits. Regenerate the
//! fixture with scripts/metrics_reference.py.

use std::path::PathBuf;

use tessera::eval::beir::read_qrels;
use tessera::eval::run::{read_trec, write_trec};
use tessera::eval::{drop_self_hits, evaluate, Metric};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics")
}

fn all_metrics() -> Vec<Metric> {
    let mut v = Vec::new();
    for k in [1, 3, 5, 10, 100, 1000] {
        v.extend([
            Metric::Ndcg(k),
            Metric::Recall(k),
            Metric::Mrr(k),
            Metric::Map(k),
        ]);
    }
    v
}

#[test]
fn metrics_equal_pytrec_eval_per_query_and_mean() {
    let (qrels, _) = read_qrels(&fixtures().join("qrels.tsv")).unwrap();
    let mut run = read_trec(&fixtures().join("run.trec")).unwrap();
    drop_self_hits(&mut run);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();

    let ours = evaluate(&run, &qrels, &all_metrics());
    assert_eq!(
        ours.num_queries as u64,
        expected["num_queries"].as_u64().unwrap()
    );
    let want_queries = expected["per_query"].as_object().unwrap();
    assert_eq!(ours.per_query.len(), want_queries.len());
    assert!(
        !ours.per_query.contains_key("q_unjudged"),
        "unjudged queries are skipped"
    );
    assert!(
        !ours.per_query.contains_key("q3"),
        "judged but unretrieved queries are skipped"
    );
    let mut checked = 0;
    for (qid, want) in want_queries {
        let got = &ours.per_query[qid];
        for (name, w) in want.as_object().unwrap() {
            let w = w.as_f64().unwrap();
            assert!(
                (got[name] - w).abs() < 1e-9,
                "{qid} {name}: ours {} pytrec_eval {w}",
                got[name]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, want_queries.len() * 24);
    for (name, w) in expected["mean"].as_object().unwrap() {
        let w = w.as_f64().unwrap();
        assert!(
            (ours.mean[name] - w).abs() < 1e-9,
            "mean {name}: ours {} pytrec_eval {w}",
            ours.mean[name]
        );
    }
}

#[test]
fn ties_are_broken_by_docid_descending_whatever_the_input_order() {
    let (qrels, _) = read_qrels(&fixtures().join("qrels.tsv")).unwrap();
    let mut run = read_trec(&fixtures().join("run.trec")).unwrap();
    let forward = evaluate(&run, &qrels, &all_metrics()).mean;
    for ranking in run.values_mut() {
        ranking.reverse();
    }
    let reversed = evaluate(&run, &qrels, &all_metrics()).mean;
    assert_eq!(forward, reversed);
}

#[test]
fn run_file_round_trips_in_trec_order() {
    let run = read_trec(&fixtures().join("run.trec")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.trec");
    write_trec(&path, &run, "t").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // q4: d054 (3.0) first, then the 2.0 ties by docid descending.
    let q4: Vec<&str> = text.lines().filter(|l| l.starts_with("q4 ")).collect();
    assert_eq!(q4[0], "q4 Q0 d054 1 3.000000 t");
    assert_eq!(q4[1], "q4 Q0 d053 2 2.000000 t");
    assert_eq!(q4[4], "q4 Q0 d050 5 2.000000 t");
    let back = read_trec(&path).unwrap();
    let (qrels, _) = read_qrels(&fixtures().join("qrels.tsv")).unwrap();
    assert_eq!(
        evaluate(&back, &qrels, &all_metrics()).mean,
        evaluate(&run, &qrels, &all_metrics()).mean
    );
}

#[test]
fn metric_names_parse_and_reject_garbage() {
    assert_eq!("ndcg@10".parse::<Metric>().unwrap(), Metric::Ndcg(10));
    assert_eq!("MAP@100".parse::<Metric>().unwrap(), Metric::Map(100));
    for bad in ["ndcg", "ndcg@", "ndcg@0", "p@10", "recall@x"] {
        assert!(bad.parse::<Metric>().is_err(), "{bad} should not parse");
    }
}
