//! The live index against independent references: random sequences of add, upsert,
//! delete, commit, compact and reopen against a brute-force model of the collection (a
//! map id -> vectors); snapshots that stay consistent while a writer commits and merges;
//! files collected only once no reader uses them; a format-1 index taking writes; the
//! MUVERA graph reopened many times without leaking its memory map.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::maxsim::maxsim_scalar;
use tessera_index::muvera::{FdeConfig, GraphConfig};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    DocExtras, Index, IndexConfig, IndexError, IndexWriter, MergePolicy, Mode, ModelInfo,
    MuveraConfig, MuveraParams, PlaidConfig, PlaidParams, Query, SearchParams, SparseConfig,
    SparseVector,
};

const DIM: usize = 8;
const VOCAB: u32 = 40;

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: DIM,
        weights_sha256: "-".into(),
        encoder: serde_json::Value::Null,
    }
}

fn config() -> IndexConfig {
    IndexConfig {
        store: Default::default(),
        fields: Default::default(),
        plaid: Some(PlaidConfig {
            num_centroids: Some(16),
            ..PlaidConfig::default()
        }),
        muvera: Some(MuveraConfig {
            fde: FdeConfig {
                k_sim: 2,
                d_proj: 4,
                r_reps: 2,
                ..FdeConfig::default()
            },
            graph: GraphConfig::default(),
        }),
        splade: Some(SparseConfig {
            vocab_size: VOCAB as usize,
            model: serde_json::Value::Null,
        }),
        bm25: true,
        store_text: true,
    }
}

/// A document as the brute-force model keeps it.
#[derive(Debug, Clone)]
struct Doc {
    vectors: Vec<f32>,
    text: String,
    sparse: SparseVector,
}

fn random_doc(rng: &mut ChaCha8Rng) -> Doc {
    let n = rng.gen_range(1..6);
    let mut vectors = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        // Rounded to f16 now, so the model's scores are what the store will hold.
        vectors.extend(row.iter().map(|x| half::f16::from_f32(x / norm).to_f32()));
    }
    let words: Vec<String> = (0..rng.gen_range(1..5))
        .map(|_| format!("w{}", rng.gen_range(0..12)))
        .collect();
    let terms: Vec<(u32, f32)> = (0..rng.gen_range(1..4))
        .map(|_| (rng.gen_range(0..VOCAB), rng.gen_range(0.1f32..3.0)))
        .collect();
    Doc {
        vectors,
        text: words.join(" "),
        sparse: SparseVector::from_pairs(terms),
    }
}

fn extras(d: &Doc) -> DocExtras<'_> {
    DocExtras {
        fields: None,
        text: Some(&d.text),
        sparse: Some(&d.sparse),
    }
}

/// Exact MaxSim over the model's live documents, best first, ties by id.
fn brute_force(model: &BTreeMap<String, Doc>, q: &[f32], k: usize) -> Vec<(String, f32)> {
    let mut all: Vec<(String, f32)> = model
        .iter()
        .map(|(id, d)| {
            let doc: Vec<half::f16> = d.vectors.iter().map(|&x| half::f16::from_f32(x)).collect();
            let s = maxsim_scalar(MultiVectorRef::new(q, DIM), MultiVectorRef::new(&doc, DIM));
            (id.clone(), s)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Upsert(u8),
    Delete(u8),
    Commit,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(Op::Add),
        2 => any::<u8>().prop_map(Op::Upsert),
        3 => any::<u8>().prop_map(Op::Delete),
        3 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// Every mode on `index` against the model: only live ids, and exhaustive equal to brute
/// force (ranking and scores).
fn check(
    index: &Index,
    model: &BTreeMap<String, Doc>,
    rng: &mut ChaCha8Rng,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(index.num_docs(), model.len());
    for (id, _) in model.iter().take(5) {
        let a = index.lookup(id);
        prop_assert!(a.is_some(), "live id {} not found", id);
        prop_assert_eq!(index.doc_id(a.unwrap()), id.as_str());
    }
    let q = random_doc(rng);
    let k = 8;
    let query = Query {
        filter: None,
        vectors: Some(MultiVectorRef::new(&q.vectors, DIM)),
        sparse: Some(&q.sparse),
        text: Some(&q.text),
    };
    let got: Vec<(String, f32)> = index
        .search(&query, k, &Mode::default(), &SearchParams::default())
        .unwrap()
        .iter()
        .map(|h| (index.doc_id(h.addr).to_string(), h.score))
        .collect();
    let want = brute_force(model, &q.vectors, k);
    prop_assert_eq!(got.len(), want.len());
    for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
        prop_assert_eq!(
            gi,
            wi,
            "exhaustive ranking differs: {:?} vs {:?}",
            got,
            want
        );
        prop_assert!(
            (gs - ws).abs() <= 1e-4 * ws.abs().max(1.0),
            "score {} vs {}",
            gs,
            ws
        );
    }
    // Every first stage, at settings that make the graph and PLAID return everything.
    let n = model.len().max(1);
    let params = SearchParams {
        plaid: Some(PlaidParams::exhaustive(
            index.codec().map_or(1, |c| c.num_centroids()),
            n,
        )),
        muvera: Some(MuveraParams {
            candidates: n,
            ef_search: n,
        }),
        sparse_candidates: Some(n),
        ..SearchParams::default()
    };
    for mode in [
        "plaid",
        "muvera",
        "splade",
        "bm25",
        "bm25+splade+plaid",
        "rrf:muvera+bm25",
    ] {
        let m: Mode = mode.parse().unwrap();
        for h in index.search(&query, k, &m, &params).unwrap() {
            let id = index.doc_id(h.addr);
            prop_assert!(
                model.contains_key(id),
                "{} returned {}, which is not live",
                mode,
                id
            );
            prop_assert!(h.score.is_finite());
        }
    }
    // PLAID with every cell and MUVERA with every candidate rank exactly as exhaustive.
    for mode in ["plaid", "muvera"] {
        let m: Mode = mode.parse().unwrap();
        let got: Vec<String> = index
            .search(&query, k, &m, &params)
            .unwrap()
            .iter()
            .map(|h| index.doc_id(h.addr).to_string())
            .collect();
        let want: Vec<String> = want.iter().map(|(id, _)| id.clone()).collect();
        prop_assert_eq!(got, want, "{}", mode);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_writes_match_a_brute_force_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut model: BTreeMap<String, Doc> = BTreeMap::new();
        let mut pending: BTreeMap<String, Option<Doc>> = BTreeMap::new();
        // The first batch creates the index.
        let mut w = IndexWriter::create_with(dir.path(), self::model(), config()).unwrap();
        w.set_merge_policy(MergePolicy { merge_factor: 3, max_deleted_ratio: 0.3, ..MergePolicy::default() });
        for i in 0..6 {
            let d = random_doc(&mut rng);
            w.add_with(&format!("d{i}"), &d.vectors, extras(&d)).unwrap();
            model.insert(format!("d{i}"), d);
        }
        w.commit(serde_json::Value::Null).unwrap();
        let mut next = 6;
        for op in ops {
            // The model of what is committed plus this batch.
            let mut visible = model.clone();
            for (id, d) in &pending {
                match d {
                    Some(d) => { visible.insert(id.clone(), d.clone()); }
                    None => { visible.remove(id); }
                }
            }
            let pick = |x: u8| visible.keys().nth(x as usize % visible.len().max(1)).cloned();
            match op {
                Op::Add(x) => {
                    // Sometimes an id that exists: refused, nothing changes.
                    if x % 5 == 0 {
                        if let Some(id) = pick(x) {
                            let d = random_doc(&mut rng);
                            let err = w.add_with(&id, &d.vectors, extras(&d)).unwrap_err();
                            let exists = matches!(err, IndexError::DocumentExists { .. });
                            prop_assert!(exists, "{}", err);
                            continue;
                        }
                    }
                    let id = format!("d{next}");
                    next += 1;
                    let d = random_doc(&mut rng);
                    w.add_with(&id, &d.vectors, extras(&d)).unwrap();
                    pending.insert(id, Some(d));
                }
                Op::Upsert(x) => {
                    // Nothing visible: upsert a new id (counted, so no later add reuses it).
                    let id = pick(x).unwrap_or_else(|| {
                        next += 1;
                        format!("d{}", next - 1)
                    });
                    let d = random_doc(&mut rng);
                    w.upsert_with(&id, &d.vectors, extras(&d)).unwrap();
                    pending.insert(id, Some(d));
                }
                Op::Delete(x) => {
                    let id = pick(x).unwrap_or_else(|| "none".into());
                    let report = w.delete(&[id.as_str(), "never-added"]);
                    prop_assert_eq!(report.not_found.len(), if visible.contains_key(&id) { 1 } else { 2 });
                    prop_assert_eq!(report.deleted, usize::from(visible.contains_key(&id)));
                    pending.insert(id, None);
                }
                Op::Commit => {
                    w.commit(serde_json::Value::Null).unwrap();
                    model = visible;
                    pending.clear();
                    check(w.snapshot().unwrap(), &model, &mut rng)?;
                }
                Op::Compact => {
                    w.commit(serde_json::Value::Null).unwrap();
                    model = visible;
                    pending.clear();
                    if !model.is_empty() {
                        let m = w.compact(x_bool(&mut rng)).unwrap();
                        prop_assert!(m.segments.len() <= 1);
                        prop_assert_eq!(m.deleted_docs(), 0);
                    }
                    check(w.snapshot().unwrap(), &model, &mut rng)?;
                }
                Op::Reopen => {
                    // An uncommitted batch is lost with its writer; the index as committed.
                    drop(w);
                    pending.clear();
                    w = IndexWriter::open(dir.path()).unwrap();
                    w.set_merge_policy(MergePolicy { merge_factor: 3, max_deleted_ratio: 0.3, ..MergePolicy::default() });
                    let index = Index::open(dir.path()).unwrap();
                    check(&index, &model, &mut rng)?;
                }
            }
        }
        w.commit(serde_json::Value::Null).unwrap();
        for (id, d) in pending {
            match d {
                Some(d) => { model.insert(id, d); }
                None => { model.remove(&id); }
            }
        }
        drop(w);
        let index = Index::open(dir.path()).unwrap();
        check(&index, &model, &mut rng)?;
        // Segments stay few: the log policy merges every 3 of a tier.
        prop_assert!(index.num_segments() <= 2 * 8, "{} segments", index.num_segments());
    }
}

fn x_bool(rng: &mut ChaCha8Rng) -> bool {
    rng.gen_bool(0.5)
}

fn build(dir: &Path, ids: std::ops::Range<usize>, seed: u64) -> IndexWriter {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = IndexWriter::create_with(dir, model(), config()).unwrap();
    for i in ids {
        let d = random_doc(&mut rng);
        w.add_with(&format!("d{i}"), &d.vectors, extras(&d))
            .unwrap();
    }
    w.commit(serde_json::Value::Null).unwrap();
    w
}

fn answers(index: &Index, q: &[f32]) -> Vec<(String, f32)> {
    index
        .search_exhaustive(MultiVectorRef::new(q, DIM), 50)
        .iter()
        .map(|h| (index.doc_id(h.addr).to_string(), h.score))
        .collect()
}

#[test]
fn an_open_snapshot_is_unchanged_by_later_commits_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = build(dir.path(), 0..30, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let q = random_doc(&mut rng).vectors;
    let before = Index::open(dir.path()).unwrap();
    let want = answers(&before, &q);
    let files_before: Vec<String> = before
        .manifest()
        .file_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Delete, add, compact: every file the snapshot maps is replaced.
    w.delete(&["d1", "d2", "d3"]);
    for i in 30..40 {
        let d = random_doc(&mut rng);
        w.add_with(&format!("d{i}"), &d.vectors, extras(&d))
            .unwrap();
    }
    w.commit(serde_json::Value::Null).unwrap();
    w.compact(false).unwrap();
    // The old snapshot answers as before, its files still there (it holds them).
    assert_eq!(answers(&before, &q), want);
    for f in &files_before {
        assert!(
            dir.path().join(f).exists(),
            "{f} collected while a reader used it"
        );
    }
    // Reload sees the newest commit.
    let after = before.reload().unwrap();
    assert_eq!(after.num_docs(), 37);
    assert_eq!(after.lookup("d1"), None);
    assert!(after.lookup("d35").is_some());
    assert!(answers(&after, &q)
        .iter()
        .all(|(id, _)| id != "d1" && id != "d2"));
    // Once no reader uses them, the next collection removes the replaced files.
    drop(before);
    drop(after);
    w.delete(&["d4"]);
    w.commit(serde_json::Value::Null).unwrap();
    let live: Vec<String> = Index::open(dir.path())
        .unwrap()
        .manifest()
        .file_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in &files_before {
        if !live.contains(f) {
            assert!(!dir.path().join(f).exists(), "{f} never collected");
        }
    }
}

#[test]
fn a_reload_without_commits_is_the_same_snapshot_and_shares_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = build(dir.path(), 0..20, 3);
    let a = Index::open(dir.path()).unwrap();
    let b = a.reload().unwrap();
    assert_eq!(a.generation(), b.generation());
    w.delete(&["d7"]);
    w.commit(serde_json::Value::Null).unwrap();
    let c = a.reload().unwrap();
    assert_eq!(c.generation(), a.generation() + 1);
    // The segment's files are opened once: the new snapshot shares them.
    assert!(std::ptr::eq(a.segment(0), c.segment(0)));
    assert!(c.deleted(0).contains(7) || c.lookup("d7").is_none());
}

#[test]
fn a_format_1_index_takes_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    for e in walk(&fixture) {
        let rel = e.strip_prefix(&fixture).unwrap();
        let to = tmp.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&e, &to).unwrap();
    }
    let old = Index::open(tmp.path()).unwrap();
    assert_eq!(old.manifest().format_version, 1);
    let dim = old.dim();
    let doc0: Vec<f32> = old.vectors_f32(old.lookup("doc1").unwrap()).into_vec();
    drop(old);
    let mut w = IndexWriter::open(tmp.path()).unwrap();
    w.delete(&["doc2"]);
    // A new document: doc1's vectors under a new id, with text and a sparse vector.
    let sparse = SparseVector::from_pairs(vec![(1000, 1.0)]);
    w.add_with(
        "copy-of-doc1",
        &doc0,
        DocExtras {
            fields: None,
            text: Some("malaria nets"),
            sparse: Some(&sparse),
        },
    )
    .unwrap();
    let m = w.commit(serde_json::Value::Null).unwrap();
    assert_eq!(m.format_version, tessera_index::segment::FORMAT_VERSION);
    assert_eq!(m.segments.len(), 2);
    drop(w);
    let index = Index::open(tmp.path()).unwrap();
    assert_eq!(index.num_docs(), 16);
    assert!(index.lookup("doc2").is_none());
    let q = &doc0[..4 * dim];
    let top: Vec<String> = index
        .search_exhaustive(MultiVectorRef::new(q, dim), 2)
        .iter()
        .map(|h| index.doc_id(h.addr).to_string())
        .collect();
    // Identical vectors, identical scores: ties by id.
    assert_eq!(top, ["copy-of-doc1", "doc1"]);
    for mode in ["plaid", "muvera", "bm25", "splade"] {
        let m: Mode = mode.parse().unwrap();
        let query = Query {
            filter: None,
            vectors: Some(MultiVectorRef::new(q, dim)),
            sparse: Some(&sparse),
            text: Some("malaria"),
        };
        let hits = index
            .search(&query, 16, &m, &SearchParams::default())
            .unwrap();
        assert!(
            hits.iter().all(|h| index.doc_id(h.addr) != "doc2"),
            "{mode}"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Memory maps of this process whose file name contains `needle`.
fn mappings_of(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn reopening_a_muvera_index_does_not_leak_its_memory_map() {
    let dir = tempfile::tempdir().unwrap();
    drop(build(dir.path(), 0..40, 5));
    let data = Index::open(dir.path()).unwrap().manifest().segments[0]
        .muvera
        .as_ref()
        .unwrap()
        .data
        .name
        .clone();
    let path = dir
        .path()
        .canonicalize()
        .unwrap()
        .join(&data)
        .display()
        .to_string();
    let base = mappings_of(&path);
    for _ in 0..50 {
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(mappings_of(&path), base + 1, "one map while open");
        drop(index);
    }
    assert_eq!(mappings_of(&path), base, "maps left after 50 opens");
}
