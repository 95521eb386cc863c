//! The live index on SciFact: how it compares with an index built from scratch, what
//! writes cost, and how search and size change with the number of segments.
//!
//! Run (release; SOURCE is a SciFact index built with the real models and every
//! component, e.g. `tessera index datasets/scifact --out /tmp/sf-live-src --components
//! store,plaid,muvera,splade,bm25`):
//!
//! ```text
//! cargo bench --bench live -- --source /tmp/sf-live-src [--parts equivalence,throughput,segments,drift]
//! ```
//!
//! Documents are copied from SOURCE (their f16 vectors, texts and SPLADE vectors) so
//! nothing is encoded twice, except where a figure is about encoding (throughput "with
//! encoding", and the upserted documents, whose text changes). All latencies are one
//! search thread, search only (queries encoded beforehand), against a baseline measured
//! in the same run. Without `--source` (as under `cargo test --all-targets`) a small
//! synthetic collection runs every part once as a smoke check, and nothing is printed as
//! a figure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera::eval::{evaluate, BeirDataset, Metric, Run};
use tessera::info::IndexReport;
use tessera::search::{EncodedQuery, Searcher};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    DocAddress, DocExtras, Index, IndexConfig, IndexWriter, MergePolicy, Mode, ModelInfo,
    MuveraConfig, PlaidConfig, Query, SearchParams, SparseConfig, SparseVector,
};

/// A document as copied from the source index.
#[derive(Clone)]
struct Doc {
    id: String,
    vectors: Vec<f16>,
    text: Option<String>,
    sparse: Option<SparseVector>,
}

fn extras(d: &Doc) -> DocExtras<'_> {
    DocExtras {
        text: d.text.as_deref(),
        sparse: d.sparse.as_ref(),
        fields: None,
    }
}

/// Every live document of `index`, in order.
fn documents(index: &Index) -> Vec<Doc> {
    let mut out = Vec::with_capacity(index.num_docs());
    for s in 0..index.num_segments() {
        let seg = index.segment(s);
        let sparse = seg
            .splade()
            .map(|p| p.document_vectors(0..seg.num_docs() as u32));
        for d in 0..seg.num_docs() as u32 {
            let a = DocAddress {
                segment: s as u32,
                doc: d,
            };
            if !index.is_live(a) {
                continue;
            }
            out.push(Doc {
                id: index.doc_id(a).to_string(),
                vectors: match index.vectors(a) {
                    tessera_index::store::DocRows::F16(m) => m.as_slice().to_vec(),
                    _ => panic!("the live bench reads an f16 index"),
                },
                text: index.text(a).map(str::to_string),
                sparse: sparse.as_ref().map(|v| v[d as usize].clone()),
            });
        }
    }
    out
}

fn add_all(w: &mut IndexWriter, docs: &[Doc]) {
    for d in docs {
        w.add_f16_with(&d.id, &d.vectors, extras(d)).unwrap();
    }
}

/// The queries as every stage reads them.
struct Queries {
    ids: Vec<String>,
    encoded: Vec<EncodedQuery>,
}

fn percentile(ms: &mut [f64], p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1]
}

/// Every query through `mode` on one thread: the run, p50 and p95 in ms.
fn run(index: &Index, q: &Queries, mode: &str, k: usize) -> (Run, f64, f64) {
    let m: Mode = mode.parse().unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut out = Run::new();
    let mut ms = Vec::new();
    for (id, e) in q.ids.iter().zip(&q.encoded) {
        let t = Instant::now();
        let hits = pool.install(|| {
            index
                .search(&e.as_query(), k, &m, &SearchParams::default())
                .unwrap()
        });
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        out.insert(
            id.clone(),
            hits.iter()
                .map(|h| (index.doc_id(h.addr).to_string(), f64::from(h.score)))
                .collect(),
        );
    }
    let p50 = percentile(&mut ms, 50.0);
    let p95 = percentile(&mut ms, 95.0);
    (out, p50, p95)
}

fn share(run: &Run, reference: &Run, k: usize) -> f64 {
    tessera::eval::recall_against(run, reference, k)
}

fn ndcg10(run: &Run, dataset: &BeirDataset) -> f64 {
    let m: Metric = "ndcg@10".parse().unwrap();
    evaluate(run, &dataset.qrels, &[m]).mean["ndcg@10"]
}

struct Setup {
    dataset: Option<BeirDataset>,
    searcher: Option<Searcher>,
    docs: Vec<Doc>,
    model: ModelInfo,
    settings: IndexConfig,
    queries: Queries,
    work: PathBuf,
    real: bool,
}

fn create(dir: &Path, s: &Setup, policy: MergePolicy) -> IndexWriter {
    let _ = std::fs::remove_dir_all(dir);
    let mut w = IndexWriter::create_with(dir, s.model.clone(), s.settings.clone()).unwrap();
    w.set_merge_policy(policy);
    w
}

/// Live index (10 batches, 10% deleted, 5% upserted with changed text) against one built
/// from scratch from the final collection.
fn equivalence(s: &Setup) {
    let docs = &s.docs;
    let n = docs.len();
    let inc_dir = s.work.join("inc");
    let mut w = create(&inc_dir, s, MergePolicy::default());
    let t = Instant::now();
    for b in 0..10 {
        add_all(&mut w, &docs[b * n / 10..(b + 1) * n / 10]);
        w.commit(serde_json::Value::Null).unwrap();
    }
    let deleted: Vec<&str> = docs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3)
        .map(|(_, d)| d.id.as_str())
        .collect();
    assert_eq!(w.delete(&deleted).deleted, deleted.len());
    w.commit(serde_json::Value::Null).unwrap();
    // Upserts: the text changes, so they are encoded (with the index's models).
    let upsert_idx: Vec<usize> = (0..n).filter(|i| i % 20 == 7).collect();
    let changed: Vec<String> = upsert_idx
        .iter()
        .map(|&i| format!("Revised: {}", docs[i].text.clone().unwrap_or_default()))
        .collect();
    let encoded: Vec<Doc> = match &s.searcher {
        Some(searcher) => {
            let texts: Vec<&str> = changed.iter().map(String::as_str).collect();
            let record = tessera::search::ModelRecord::read(
                searcher.index().manifest(),
                searcher.index().dir(),
            )
            .unwrap();
            let enc = tessera::pipeline::encode_texts(
                searcher.encoder().unwrap(),
                searcher.splade(),
                record.pooling,
                &texts,
            )
            .unwrap();
            upsert_idx
                .iter()
                .zip(enc)
                .zip(&changed)
                .map(|((&i, (v, sp)), text)| Doc {
                    id: docs[i].id.clone(),
                    vectors: v.iter().map(|&x| f16::from_f32(x)).collect(),
                    text: Some(text.clone()),
                    sparse: sp,
                })
                .collect()
        }
        // Synthetic: another document's vectors stand for the changed text.
        None => upsert_idx
            .iter()
            .zip(&changed)
            .map(|(&i, text)| Doc {
                id: docs[i].id.clone(),
                text: Some(text.clone()),
                ..docs[(i + 1) % n].clone()
            })
            .collect(),
    };
    for d in &encoded {
        w.upsert_f16_with(&d.id, &d.vectors, extras(d)).unwrap();
    }
    let m = w.commit(serde_json::Value::Null).unwrap();
    let inc_seconds = t.elapsed().as_secs_f64();
    let report = IndexReport::of(&m);
    drop(w);
    // From scratch: the final collection in its original order.
    let by_id: BTreeMap<&str, &Doc> = encoded.iter().map(|d| (d.id.as_str(), d)).collect();
    let final_docs: Vec<Doc> = docs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 3)
        .map(|(_, d)| (*by_id.get(d.id.as_str()).unwrap_or(&d)).clone())
        .collect();
    let scratch_dir = s.work.join("scratch");
    let t = Instant::now();
    let mut w = create(&scratch_dir, s, MergePolicy::default());
    add_all(&mut w, &final_docs);
    w.commit(serde_json::Value::Null).unwrap();
    let scratch_seconds = t.elapsed().as_secs_f64();
    drop(w);
    let inc = Index::open(&inc_dir).unwrap();
    let scratch = Index::open(&scratch_dir).unwrap();
    let k = 100;
    let (inc_ex, _, _) = run(&inc, &s.queries, "exhaustive", k);
    let (scr_ex, _, _) = run(&scratch, &s.queries, "exhaustive", k);
    let mut identical = 0;
    for (q, want) in &scr_ex {
        let got = &inc_ex[q];
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|((a, x), (b, y))| a == b && x == y);
        identical += usize::from(same);
    }
    assert_eq!(identical, scr_ex.len(), "exhaustive rankings differ");
    if !s.real {
        return;
    }
    let dataset = s.dataset.as_ref().unwrap();
    println!(
        "equivalence: live index built in {inc_seconds:.1} s (10 batches, {} deleted, {} upserted): {} segments, {} tombstones; from scratch {scratch_seconds:.1} s",
        deleted.len(),
        encoded.len(),
        report.segments.len(),
        report.deleted_docs
    );
    println!(
        "  exhaustive: {identical} of {} queries rank and score identically; nDCG@10 {:.4} / {:.4}",
        scr_ex.len(),
        ndcg10(&inc_ex, dataset),
        ndcg10(&scr_ex, dataset)
    );
    println!("  | mode | nDCG@10 live | nDCG@10 from scratch | share of from-scratch exhaustive top-100, live | same, from scratch |");
    for mode in ["plaid", "muvera", "splade", "bm25", "bm25+splade"] {
        let (a, _, _) = run(&inc, &s.queries, mode, k);
        let (b, _, _) = run(&scratch, &s.queries, mode, k);
        println!(
            "  | {mode} | {:.4} | {:.4} | {:.4} | {:.4} |",
            ndcg10(&a, dataset),
            ndcg10(&b, dataset),
            share(&a, &scr_ex, k),
            share(&b, &scr_ex, k)
        );
    }
}

/// Documents/s with encoding, vectors/s pre-encoded, for batches of 1, 100, 1,000;
/// delete latency; compact time.
fn throughput(s: &Setup) {
    let docs = &s.docs;
    let n = docs.len();
    let held = (n / 2).min(2600);
    let (base, extra) = docs.split_at(n - held);
    let dir = s.work.join("tp");
    let mut w = create(&dir, s, MergePolicy::default());
    add_all(&mut w, base);
    w.commit(serde_json::Value::Null).unwrap();
    let mut next = 0;
    // Pre-encoded: copied f16 vectors.
    let scale = if s.real { 1 } else { 10 };
    for (batch, reps) in [(1usize, 10usize), (100 / scale, 3), (1000 / scale, 1)] {
        let mut seconds = 0.0;
        let mut vectors = 0;
        for _ in 0..reps {
            let part = &extra[next..next + batch];
            next += batch;
            vectors += part
                .iter()
                .map(|d| d.vectors.len() / s.model.dim)
                .sum::<usize>();
            let t = Instant::now();
            add_all(&mut w, part);
            w.commit(serde_json::Value::Null).unwrap();
            seconds += t.elapsed().as_secs_f64();
        }
        if s.real {
            println!(
                "add pre-encoded, batches of {batch}: {:.0} vectors/s, {:.1} docs/s ({reps} commits, merges included)",
                vectors as f64 / seconds,
                (batch * reps) as f64 / seconds
            );
        }
    }
    // With encoding: the documents' texts through the index's models.
    if let Some(searcher) = &s.searcher {
        let record =
            tessera::search::ModelRecord::read(searcher.index().manifest(), searcher.index().dir())
                .unwrap();
        for (batch, reps) in [(1usize, 5usize), (100, 1), (1000, 1)] {
            let mut seconds = 0.0;
            for _ in 0..reps {
                let part = &extra[next..next + batch];
                next += batch;
                let texts: Vec<&str> = part
                    .iter()
                    .map(|d| d.text.as_deref().unwrap_or(""))
                    .collect();
                let t = Instant::now();
                let enc = tessera::pipeline::encode_texts(
                    searcher.encoder().unwrap(),
                    searcher.splade(),
                    record.pooling,
                    &texts,
                )
                .unwrap();
                for (d, (v, sp)) in part.iter().zip(enc) {
                    let x = DocExtras {
                        text: d.text.as_deref(),
                        sparse: sp.as_ref(),
                        fields: None,
                    };
                    w.add_with(&d.id, &v, x).unwrap();
                }
                w.commit(serde_json::Value::Null).unwrap();
                seconds += t.elapsed().as_secs_f64();
            }
            println!(
                "add with encoding, batches of {batch}: {:.2} docs/s ({reps} commits, encoding and merges included)",
                (batch * reps) as f64 / seconds
            );
        }
    }
    drop(w);
    // Deletes on a one-segment copy of the collection, then compact with 10% deleted.
    let dir = s.work.join("del");
    let mut w = create(&dir, s, MergePolicy::never());
    add_all(&mut w, docs);
    w.commit(serde_json::Value::Null).unwrap();
    for count in [1usize, 1000.min(n / 5)] {
        let ids: Vec<&str> = docs
            .iter()
            .skip(count)
            .step_by(4)
            .take(count)
            .map(|d| d.id.as_str())
            .collect();
        let t = Instant::now();
        assert_eq!(w.delete(&ids).deleted, ids.len());
        w.commit(serde_json::Value::Null).unwrap();
        if s.real {
            println!(
                "delete {count} ids: {:.1} ms (one commit)",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    drop(w);
    let mut w = create(&dir, s, MergePolicy::never());
    add_all(&mut w, docs);
    w.commit(serde_json::Value::Null).unwrap();
    let before = IndexReport::of(w.committed().unwrap());
    let tenth: Vec<&str> = docs.iter().step_by(10).map(|d| d.id.as_str()).collect();
    w.delete(&tenth);
    let m = w.commit(serde_json::Value::Null).unwrap();
    let with_deletes = IndexReport::of(&m);
    let t = Instant::now();
    let m = w.compact(false).unwrap();
    let compact_s = t.elapsed().as_secs_f64();
    let after = IndexReport::of(&m);
    if s.real {
        println!(
            "compact with {} of {} documents deleted: {compact_s:.1} s; bytes/vector {:.1} (one segment, no deletes) -> {:.1} (10% deleted) -> {:.1} (compacted)",
            with_deletes.deleted_docs,
            before.live_docs,
            before.bytes_per_vector,
            with_deletes.bytes as f64 / with_deletes.vectors as f64,
            after.bytes_per_vector
        );
    }
}

/// Search latency (plaid, exhaustive) with 1, 4 and 16 segments and after compacting the
/// 16, against the one-segment index; bytes per vector of each.
fn segments(s: &Setup) {
    let docs = &s.docs;
    let n = docs.len();
    let mut rows = Vec::new();
    let mut reference: Option<Run> = None;
    for parts in [1usize, 4, 16, 0] {
        let dir = s.work.join(format!("seg{parts}"));
        let index = if parts == 0 {
            // The 16-segment index, compacted.
            let mut w = IndexWriter::open(&s.work.join("seg16")).unwrap();
            w.compact(false).unwrap();
            drop(w);
            Index::open(&s.work.join("seg16")).unwrap()
        } else {
            let mut w = create(&dir, s, MergePolicy::never());
            for p in 0..parts {
                add_all(&mut w, &docs[p * n / parts..(p + 1) * n / parts]);
                w.commit(serde_json::Value::Null).unwrap();
            }
            drop(w);
            Index::open(&dir).unwrap()
        };
        assert_eq!(index.num_segments(), parts.max(1));
        let report = IndexReport::of(index.manifest());
        let (ex, ex50, ex95) = run(&index, &s.queries, "exhaustive", 100);
        let (pl, pl50, pl95) = run(&index, &s.queries, "plaid", 100);
        let reference = reference.get_or_insert_with(|| ex.clone());
        rows.push((
            if parts == 0 {
                "16 compacted".to_string()
            } else {
                parts.to_string()
            },
            ex50,
            ex95,
            pl50,
            pl95,
            share(&pl, reference, 100),
            share(&ex, reference, 100),
            report.bytes_per_vector,
        ));
    }
    if s.real {
        println!("| segments | exhaustive p50 / p95 ms | plaid p50 / p95 ms | plaid share of exhaustive top-100 | exhaustive identical | bytes/vector |");
        let (b_ex, b_pl) = (rows[0].1, rows[0].3);
        for r in &rows {
            println!(
                "| {} | {:.1} / {:.1} ({:.2}x) | {:.1} / {:.1} ({:.2}x) | {:.4} | {:.4} | {:.1} |",
                r.0,
                r.1,
                r.2,
                r.1 / b_ex,
                r.3,
                r.4,
                r.3 / b_pl,
                r.5,
                r.6,
                r.7
            );
        }
    }
}

/// A codec trained on the first half, then the second half added: drift, and PLAID's
/// share of the exhaustive top-100 against the same index retrained.
fn drift(s: &Setup) {
    let docs = &s.docs;
    let n = docs.len();
    let dir = s.work.join("drift");
    let mut w = create(&dir, s, MergePolicy::never());
    add_all(&mut w, &docs[..n / 2]);
    let first = IndexReport::of(&w.commit(serde_json::Value::Null).unwrap());
    add_all(&mut w, &docs[n / 2..]);
    let m = w.commit(serde_json::Value::Null).unwrap();
    let added = IndexReport::of(&m);
    let second_half_norm = m.segments[1]
        .plaid
        .as_ref()
        .and_then(|p| p.mean_residual_norm);
    let index = w.snapshot().unwrap().clone();
    let (ex, _, _) = run(&index, &s.queries, "exhaustive", 100);
    let (old, o50, _) = run(&index, &s.queries, "plaid", 100);
    drop(index);
    let m = w.compact(true).unwrap();
    let retrained = IndexReport::of(&m);
    let index = w.snapshot().unwrap().clone();
    let (new, n50, _) = run(&index, &s.queries, "plaid", 100);
    if s.real {
        let c = |r: &IndexReport| r.codec.clone().unwrap();
        println!(
            "drift: codec trained on the first half ({} vectors, residual norm {:.4}); second half's residual norm {:.4} ({:.3}x); index drift {:.3}",
            c(&first).trained_on_vectors,
            c(&first).trained_residual_norm.unwrap_or(0.0),
            second_half_norm.unwrap_or(0.0),
            second_half_norm.unwrap_or(0.0) / c(&first).trained_residual_norm.unwrap_or(1.0),
            c(&added).drift.unwrap_or(0.0)
        );
        println!(
            "  PLAID share of the exhaustive top-100: {:.4} (p50 {o50:.1} ms) with the half-trained codec ({} centroids), {:.4} (p50 {n50:.1} ms) after compact --retrain ({} centroids, drift {:.3})",
            share(&old, &ex, 100),
            c(&added).num_centroids,
            share(&new, &ex, 100),
            c(&retrained).num_centroids,
            c(&retrained).drift.unwrap_or(0.0)
        );
    }
}

/// A small synthetic collection for the smoke run (no model).
fn synthetic(work: &Path) -> Setup {
    let dim = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let unit = |rng: &mut ChaCha8Rng| {
        let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let docs: Vec<Doc> = (0..300)
        .map(|i| {
            let n = rng.gen_range(2..8);
            let v: Vec<f16> = (0..n)
                .flat_map(|_| unit(&mut rng))
                .map(f16::from_f32)
                .collect();
            Doc {
                id: format!("d{i}"),
                vectors: v,
                text: Some(format!("word{} word{}", i % 7, i % 11)),
                sparse: Some(SparseVector::from_pairs(vec![(i as u32 % 50, 1.0)])),
            }
        })
        .collect();
    let encoded = (0..5)
        .map(|i| EncodedQuery {
            text: format!("word{i}"),
            vectors: tessera_index::store::MultiVector::new(
                (0..3).flat_map(|_| unit(&mut rng)).collect(),
                dim,
            ),
            sparse: Some(SparseVector::from_pairs(vec![(i, 1.0)])),
            truncated: false,
        })
        .collect();
    Setup {
        dataset: None,
        searcher: None,
        docs,
        model: ModelInfo {
            name: "synthetic".into(),
            dim,
            weights_sha256: "-".into(),
            encoder: serde_json::Value::Null,
        },
        settings: IndexConfig {
            store: Default::default(),
            plaid: Some(PlaidConfig {
                num_centroids: Some(32),
                ..PlaidConfig::default()
            }),
            muvera: Some(MuveraConfig::default()),
            splade: Some(SparseConfig {
                vocab_size: 50,
                model: serde_json::Value::Null,
            }),
            bm25: true,
            store_text: true,
            fields: Default::default(),
        },
        queries: Queries {
            ids: (0..5).map(|i| format!("q{i}")).collect(),
            encoded,
        },
        work: work.to_path_buf(),
        real: false,
    }
}

fn real(source: &Path, dataset: &Path, work: &Path) -> Setup {
    let searcher = Searcher::open(source, None, tessera::encoder::DeviceSpec::Cpu).unwrap();
    let dataset = BeirDataset::load(dataset, "test").unwrap();
    let index = searcher.index().clone();
    let docs = documents(&index);
    let mut ids = Vec::new();
    let mut encoded = Vec::new();
    for (qid, text) in &dataset.queries {
        ids.push(qid.clone());
        encoded.push(searcher.encode_query(text).unwrap());
    }
    let m = index.manifest();
    Setup {
        model: m.model.clone(),
        settings: m.settings.clone(),
        docs,
        queries: Queries { ids, encoded },
        dataset: Some(dataset),
        searcher: Some(searcher),
        work: work.to_path_buf(),
        real: true,
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let work = arg("--work")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work).unwrap();
    let setup = match arg("--source") {
        Some(src) => {
            let dataset = arg("--dataset").unwrap_or_else(|| "datasets/scifact".into());
            real(Path::new(&src), Path::new(&dataset), &work)
        }
        None => synthetic(&work),
    };
    let parts = arg("--parts").unwrap_or_else(|| "equivalence,throughput,segments,drift".into());
    let _ = Query::default();
    let _ = MultiVectorRef::new(&[0.0f32], 1);
    for part in parts.split(',') {
        let t = Instant::now();
        match part {
            "equivalence" => equivalence(&setup),
            "throughput" => throughput(&setup),
            "segments" => segments(&setup),
            "drift" => drift(&setup),
            other => panic!("unknown part {other}"),
        }
        if setup.real {
            println!("({part}: {:.0} s)\n", t.elapsed().as_secs_f64());
        }
    }
}
