//! BM25 through tantivy against the BM25 formula computed here from the analyzed text
//! (k1 1.2, b 0.75, Lucene's idf), plus analysis (stemming, stop words), mode plumbing,
//! reopening, damaged files and stale-generation cleanup.

use std::collections::HashMap;

use tessera_index::lexical::Bm25Statistics;
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    Allow, DocExtras, Index, IndexConfig, IndexError, IndexWriter, Mode, ModelInfo, Query,
    SearchParams,
};

const DOCS: &[&str] = &[
    "Vitamin D deficiency is associated with higher mortality in older adults",
    "Running shoes reduce injuries among runners who run daily",
    "The mortality of patients with sepsis remains high",
    "Deficiency of iron causes anaemia; iron supplements treat the deficiency",
    "A study of vitamin C and the common cold",
    "Statins lower cholesterol",
];

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: 2,
        weights_sha256: "-".into(),
        encoder: serde_json::Value::Null,
    }
}

fn build(dir: &std::path::Path, docs: &[&str]) -> Index {
    let config = IndexConfig {
        bm25: true,
        ..IndexConfig::default()
    };
    let mut w = IndexWriter::create_with(dir, model(), config).unwrap();
    for (i, text) in docs.iter().enumerate() {
        let extras = DocExtras {
            text: Some(text),
            ..DocExtras::default()
        };
        w.add_with(&format!("d{i}"), &[1.0, 0.0], extras).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

/// Okapi BM25 as tantivy defines it: idf = ln(1 + (N - n + 0.5) / (n + 0.5)),
/// tf part (k1 + 1) tf / (tf + k1 (1 - b + b |d| / avgdl)), summed over query terms
/// (a repeated query term counts again). Lengths here are short enough that tantivy's
/// one-byte length encoding is exact.
fn reference_bm25(
    analyzed: &[Vec<String>],
    query: &[String],
    k1: f64,
    b: f64,
) -> Vec<(usize, f32)> {
    let n = analyzed.len() as f64;
    let avgdl = analyzed.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for doc in analyzed {
        let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *df.entry(t).or_default() += 1.0;
        }
    }
    let mut out = Vec::new();
    for (i, doc) in analyzed.iter().enumerate() {
        let mut score = 0.0;
        let mut matched = false;
        for t in query {
            let tf = doc.iter().filter(|x| *x == t).count() as f64;
            if tf == 0.0 {
                continue;
            }
            matched = true;
            let dfi = df[t.as_str()];
            let idf = (1.0 + (n - dfi + 0.5) / (dfi + 0.5)).ln();
            score += idf * (k1 + 1.0) * tf / (tf + k1 * (1.0 - b + b * doc.len() as f64 / avgdl));
        }
        if matched {
            out.push((i, score as f32));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn text_query(text: &str) -> Query<'_> {
    Query {
        text: Some(text),
        ..Query::default()
    }
}

fn bm25_mode() -> Mode {
    "bm25".parse().unwrap()
}

#[test]
fn bm25_scores_match_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), DOCS);
    let bm25 = index.segment(0).bm25().unwrap();
    let stats = Bm25Statistics::new(&[bm25]);
    let all = Allow::all();
    let analyzed: Vec<Vec<String>> = DOCS.iter().map(|d| bm25.analyze(d)).collect();
    for query in [
        "vitamin deficiency mortality",
        "iron deficiency",
        "run",
        "the common cold of vitamin",
        "cholesterol statin",
    ] {
        let hits = bm25.search(query, 10, &stats, &all).unwrap();
        let want = reference_bm25(&analyzed, &bm25.analyze(query), 1.2, 0.75);
        assert_eq!(hits.len(), want.len(), "{query}");
        for (h, (doc, score)) in hits.iter().zip(&want) {
            assert_eq!(h.doc as usize, *doc, "{query}");
            assert!(
                (h.score - score).abs() < 1e-4 * score.max(1.0),
                "{query}: {} vs {score}",
                h.score
            );
        }
    }
}

#[test]
fn analysis_stems_and_drops_english_stop_words() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), DOCS);
    let bm25 = index.segment(0).bm25().unwrap();
    let stats = Bm25Statistics::new(&[bm25]);
    let all = Allow::all();
    assert_eq!(bm25.analyze("The Runners running"), vec!["runner", "run"]);
    // "run" finds "Running … runners who run": stems meet.
    let hits = bm25.search("run", 3, &stats, &all).unwrap();
    assert_eq!(hits[0].doc, 1);
    // Only stop words: nothing to match, no error.
    assert!(bm25
        .search("the of and", 5, &stats, &all)
        .unwrap()
        .is_empty());
    // Query syntax characters are just text.
    assert!(bm25
        .search("vitamin:(\"d\" AND -cold)^2 [x TO y]", 5, &stats, &all)
        .is_ok());
}

#[test]
fn bm25_modes_through_index_search() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), DOCS);
    let mode: Mode = "bm25".parse().unwrap();
    let q = Query {
        text: Some("iron deficiency"),
        ..Query::default()
    };
    let hits = index
        .search(&q, 2, &mode, &SearchParams::default())
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.addr.doc).collect::<Vec<_>>(),
        vec![3, 0]
    );
    let v = [1.0f32, 0.0];
    let err = index
        .search(
            &Query::vectors(MultiVectorRef::new(&v, 2)),
            2,
            &mode,
            &SearchParams::default(),
        )
        .unwrap_err();
    assert!(matches!(err, IndexError::QueryLacks { .. }), "{err}");
    let missing: Mode = "splade".parse().unwrap();
    let err = index
        .search(&q, 2, &missing, &SearchParams::default())
        .unwrap_err();
    assert!(err.to_string().contains("splade"), "{err}");
}

#[test]
fn reopening_and_rebuilding_keep_the_bm25_files_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let first = build(dir.path(), DOCS);
    let _ = first
        .search(
            &text_query("vitamin"),
            3,
            &bm25_mode(),
            &SearchParams::default(),
        )
        .unwrap();
    drop(first);
    // Opening and searching must not rewrite tantivy's files (the manifest's CRCs hold).
    let again = Index::open(dir.path()).unwrap();
    let hits = again.search(
        &text_query("vitamin"),
        3,
        &bm25_mode(),
        &SearchParams::default(),
    );
    assert_eq!(hits.unwrap().len(), 2);
    drop(again);
    // A second generation replaces the first; the old tantivy directory is removed.
    let second = build(dir.path(), &DOCS[..3]);
    assert_eq!(second.manifest().generation, 2);
    assert!(!dir.path().join("s1.bm25").exists());
    assert!(dir.path().join("s2.bm25").is_dir());
    let hits = second.search(
        &text_query("mortality"),
        5,
        &bm25_mode(),
        &SearchParams::default(),
    );
    assert_eq!(hits.unwrap().len(), 2);
}

#[test]
fn damaged_tantivy_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), DOCS);
    let files = index.manifest().segments[0].bm25.clone().unwrap().files;
    drop(index);
    let victim = files.iter().find(|f| f.name.ends_with(".idx")).unwrap();
    let path = dir.path().join(&victim.name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = Index::open(dir.path()).err().expect("damage detected");
    assert!(matches!(err, IndexError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains(".idx"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = Index::open(dir.path())
        .err()
        .expect("missing file detected");
    assert!(err.to_string().contains(".idx"), "{err}");
}

#[test]
fn bm25_with_chosen_parameters_matches_the_formula_and_tantivy() {
    use tessera_index::lexical::Bm25Params;
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), DOCS);
    let bm25 = index.segment(0).bm25().unwrap();
    let stats = Bm25Statistics::new(&[bm25]);
    let all = Allow::all();
    let analyzed: Vec<Vec<String>> = DOCS.iter().map(|d| bm25.analyze(d)).collect();
    for query in [
        "vitamin deficiency mortality",
        "iron deficiency",
        "run",
        "the common cold of vitamin",
    ] {
        // At tantivy's own parameters, our scorer reproduces tantivy's.
        let ours = bm25
            .search_with(query, 10, Bm25Params::TANTIVY, &stats, &all)
            .unwrap();
        let tantivy = bm25.search(query, 10, &stats, &all).unwrap();
        assert_eq!(ours.len(), tantivy.len(), "{query}");
        for (a, b) in ours.iter().zip(&tantivy) {
            assert_eq!(a.doc, b.doc, "{query}");
            assert!(
                (a.score - b.score).abs() < 1e-4 * b.score.max(1.0),
                "{query}"
            );
        }
        // At Anserini's, it follows the formula.
        let hits = bm25
            .search_with(query, 10, Bm25Params::ANSERINI, &stats, &all)
            .unwrap();
        let want = reference_bm25(&analyzed, &bm25.analyze(query), 0.9, 0.4);
        assert_eq!(hits.len(), want.len(), "{query}");
        for (h, (doc, score)) in hits.iter().zip(&want) {
            assert_eq!(h.doc as usize, *doc, "{query}");
            assert!((h.score - score).abs() < 1e-4 * score.max(1.0), "{query}");
        }
    }
}
