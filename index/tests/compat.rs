//! Indexes written by earlier format versions still open and answer as they did.
//!
//! `fixtures/format1/` was written by `tessera index` at format version 1 (before the
//! live index: one generation, no manifest checksum), `fixtures/format2/` at format 2
//! (the same with a checksummed manifest), both from `tests/fixtures/tiny-beir` with the
//! tiny random model and every component; `fixtures/format<N>-expected.json` holds what
//! that version answered, per mode, for queries made of stored document vectors (so no
//! model is needed here). Never regenerate these files: they are the old version's words.

use std::path::{Path, PathBuf};

use tessera_index::store::MultiVectorRef;
use tessera_index::{Index, Mode, Query, SearchParams, SparseVector};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A copy, so nothing a reader might write touches the committed fixture.
fn copy_of(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(name), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * b.abs().max(1.0)
}

/// The same scores position by position, and the same documents within each run of
/// equal scores: formats 1 and 2 broke score ties by storage position, the live index
/// breaks them by external id (so results do not depend on segment layout). In the run
/// of ties that reaches the cut-off, which of the tied documents made it may differ.
fn same_ranking(got: &[(String, f32)], want: &[(String, f32)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    let mut i = 0;
    while i < want.len() {
        let mut j = i + 1;
        while j < want.len() && close(want[j].1, want[i].1) {
            j += 1;
        }
        for p in i..j {
            assert!(
                close(got[p].1, want[p].1),
                "{what}: score {} vs {}",
                got[p].1,
                want[p].1
            );
        }
        if j < want.len() {
            let mut g: Vec<&str> = got[i..j].iter().map(|(id, _)| id.as_str()).collect();
            let mut w: Vec<&str> = want[i..j].iter().map(|(id, _)| id.as_str()).collect();
            g.sort_unstable();
            w.sort_unstable();
            assert_eq!(g, w, "{what}: {got:?} vs {want:?}");
        }
        i = j;
    }
}

#[test]
fn a_format_1_index_opens_and_answers_as_format_1_did() {
    answers_as_recorded("format1");
}

#[test]
fn a_format_2_index_opens_and_answers_as_format_2_did() {
    answers_as_recorded("format2");
}

fn answers_as_recorded(name: &str) {
    let dir = copy_of(name);
    let index = Index::open(dir.path()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{name}-expected.json"))).unwrap(),
    )
    .unwrap();
    let dim = index.manifest().dim;
    let mut checked = 0;
    for case in expected["cases"].as_array().unwrap() {
        let doc = case["doc"].as_u64().unwrap() as usize;
        let ntok = case["query_tokens"].as_u64().unwrap() as usize;
        let k = case["k"].as_u64().unwrap() as usize;
        let q: Vec<f32> = index.segment(0).store().doc(doc).as_slice()[..ntok * dim]
            .iter()
            .map(|x| x.to_f32())
            .collect();
        let q = q.as_slice();
        let pairs: Vec<(u32, f32)> = serde_json::from_value(case["sparse"].clone()).unwrap();
        let sparse = SparseVector::from_pairs(pairs);
        let text = case["text"].as_str().unwrap();
        let query = Query {
            filter: None,
            vectors: Some(MultiVectorRef::new(q, dim)),
            sparse: Some(&sparse),
            text: Some(text),
        };
        for (mode, want) in case["results"].as_object().unwrap() {
            let m: Mode = mode.parse().unwrap();
            let got: Vec<(String, f32)> = index
                .search(&query, k, &m, &SearchParams::default())
                .unwrap()
                .into_iter()
                .map(|h| (index.doc_id(h.addr).to_string(), h.score))
                .collect();
            let want: Vec<(String, f32)> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["id"].as_str().unwrap().to_string(),
                        h["score"].as_f64().unwrap() as f32,
                    )
                })
                .collect();
            same_ranking(&got, &want, &format!("doc {doc}, mode {mode}"));
            checked += 1;
        }
    }
    assert_eq!(checked, 21, "3 queries x 7 modes");
}
