//! Compact stores (`StoreKind::Int8`, `StoreKind::None`) against independent references:
//! int8 MaxSim equals, bit for bit, the int8 definition computed here (query and
//! document rows quantised here from the input, integer dot products) and stays within
//! int8's error of exact MaxSim; a store
//! without vectors scores exactly as PLAID's decompressed rescoring on an f16 index built
//! from the same vectors (same codec, same codes); merges and reopening keep every score.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::store::{DocRows, MultiVectorRef};
use tessera_index::{
    Index, IndexConfig, IndexError, IndexWriter, ModelInfo, PlaidConfig, PlaidParams, Query,
    Rescore, SearchParams, StoreKind,
};

const DIM: usize = 32;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.into_iter().map(|x| x / n).collect()
}

/// Clustered documents (noisy copies of a few topic directions) and queries.
fn corpus(seed: u64, n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let topics: Vec<Vec<f32>> = (0..24)
        .map(|_| unit((0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect()))
        .collect();
    let sample = |len: usize, noise: f32, rng: &mut ChaCha8Rng| {
        let mut v = Vec::with_capacity(len * DIM);
        for _ in 0..len {
            let t = &topics[rng.gen_range(0..topics.len())];
            v.extend(unit(
                t.iter().map(|x| x + rng.gen_range(-noise..noise)).collect(),
            ));
        }
        v
    };
    let docs = (0..n)
        .map(|_| {
            let len = rng.gen_range(2..24);
            sample(len, 0.35, &mut rng)
        })
        .collect();
    let queries = (0..12)
        .map(|_| {
            let len = rng.gen_range(1..10);
            sample(len, 0.4, &mut rng)
        })
        .collect();
    (docs, queries)
}

fn config(store: StoreKind) -> IndexConfig {
    IndexConfig {
        plaid: Some(PlaidConfig {
            nbits: 2,
            num_centroids: Some(32),
            ..PlaidConfig::default()
        }),
        store,
        ..Default::default()
    }
}

fn model() -> ModelInfo {
    ModelInfo {
        name: "synthetic".into(),
        dim: DIM,
        weights_sha256: "-".into(),
        encoder: Default::default(),
    }
}

fn build(dir: &std::path::Path, docs: &[Vec<f32>], store: StoreKind) -> Index {
    let mut w = IndexWriter::create_with(dir, model(), config(store)).unwrap();
    for (i, d) in docs.iter().enumerate() {
        w.add(&format!("d{i}"), d).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

/// What the int8 store should hold for `v`: symmetric per-vector quantisation, then back
/// to f32 (through f16 first, as the writer stores the encoder's output as f16 before
/// quantising it).
fn int8_reference(v: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    for row in v.chunks_exact(DIM) {
        let row: Vec<f32> = row
            .iter()
            .map(|&x| half::f16::from_f32(x).to_f32())
            .collect();
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = max / 127.0;
        out.extend(
            row.iter()
                .map(|&x| (x / s).round().clamp(-127.0, 127.0) * s),
        );
    }
    out
}

/// Per-row symmetric int8 quantisation (max |x| / 127, round after a division).
fn quantise(v: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let (mut out, mut scales) = (Vec::new(), Vec::new());
    for row in v.chunks_exact(DIM) {
        let s = row.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        scales.push(s);
        out.extend(row.iter().map(|&x| {
            if s == 0.0 {
                0
            } else {
                (x / s).round().clamp(-127.0, 127.0) as i8
            }
        }));
    }
    (out, scales)
}

/// The int8 store's score (`maxsim::int8`): `Σ_i sq_i · max_j (sd_j · ⟨q8_i, d8_j⟩)`,
/// the document quantised from its f16 rounding as the writer does.
fn int8_maxsim_reference(q: &[f32], d: &[f32]) -> f32 {
    let d16: Vec<f32> = d.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
    let ((q8, qs), (d8, ds)) = (quantise(q), quantise(&d16));
    let mut total = 0.0f32;
    for (i, qr) in q8.chunks_exact(DIM).enumerate() {
        let mut best = f32::NEG_INFINITY;
        for (j, dr) in d8.chunks_exact(DIM).enumerate() {
            let dot: i64 = qr
                .iter()
                .zip(dr)
                .map(|(&a, &b)| i64::from(a) * i64::from(b))
                .sum();
            best = best.max(dot as f32 * ds[j]);
        }
        total += qs[i] * best;
    }
    total
}

fn maxsim_scalar(q: &[f32], d: &[f32]) -> f32 {
    q.chunks_exact(DIM)
        .map(|qr| {
            d.chunks_exact(DIM)
                .map(|dr| qr.iter().zip(dr).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum()
}

#[test]
fn an_int8_store_scores_by_the_int8_definition_and_costs_a_byte_per_value() {
    let (docs, queries) = corpus(1, 300);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &docs, StoreKind::Int8);
    let seg = &index.manifest().segments[0];
    assert_eq!(seg.store.kind, StoreKind::Int8);
    let file = seg.store.vectors.as_ref().expect("an int8 file");
    assert!(file.name.ends_with(".vectors.i8"), "{}", file.name);
    let n = seg.num_vectors;
    assert_eq!(file.bytes as usize, (n * DIM).div_ceil(4) * 4 + 4 * n + 32);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|f| f.ends_with(".f16")), "{names:?}");

    let reference: Vec<Vec<f32>> = docs.iter().map(|d| int8_reference(d)).collect();
    for q in &queries {
        let got = index.search_exhaustive(MultiVectorRef::new(q, DIM), docs.len());
        assert_eq!(got.len(), docs.len());
        for h in &got {
            let d: usize = index.doc_id(h.addr)[1..].parse().unwrap();
            let want = int8_maxsim_reference(q, &docs[d]);
            assert_eq!(
                h.score.to_bits(),
                want.to_bits(),
                "doc {d}: int8 MaxSim {} vs reference {want}",
                h.score
            );
            // And close to MaxSim over the dequantised rows (f32 query).
            let dequantised = maxsim_scalar(q, &reference[d]);
            assert!((h.score - dequantised).abs() < 0.005 * (q.len() / DIM) as f32);
            // Within int8's error of the exact score.
            let exact = maxsim_scalar(q, &docs[d]);
            assert!((h.score - exact).abs() < 0.01 * (q.len() / DIM) as f32);
        }
    }
    let a = index.lookup("d7").unwrap();
    assert!(matches!(index.vectors(a), DocRows::Int8 { .. }));
    let v = index.vectors_f32(a);
    for (x, y) in v.as_slice().iter().zip(&reference[7]) {
        assert!((x - y).abs() < 1e-6);
    }
}

#[test]
fn a_store_without_vectors_scores_like_decompressed_rescoring_of_the_same_codes() {
    let (docs, queries) = corpus(2, 300);
    let (full_dir, none_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let full = build(full_dir.path(), &docs, StoreKind::F16);
    let none = build(none_dir.path(), &docs, StoreKind::None);
    let seg = &none.manifest().segments[0];
    assert_eq!(seg.store.kind, StoreKind::None);
    assert!(seg.store.vectors.is_none());
    assert_eq!(
        full.codec().unwrap().centroids(),
        none.codec().unwrap().centroids(),
        "the same vectors train the same codec"
    );
    let plaid = "plaid".parse().unwrap();
    let exhaustive = "exhaustive".parse().unwrap();
    let codec = full.codec().unwrap();
    for q in &queries {
        let q = MultiVectorRef::new(q, DIM);
        // Default PLAID: the same candidates, rescored from the same codes.
        let decompressed = SearchParams {
            plaid: Some(PlaidParams {
                rescore: Rescore::Decompressed,
                ..PlaidParams::for_k(10)
            }),
            ..Default::default()
        };
        let want = full
            .search(&Query::vectors(q), 10, &plaid, &decompressed)
            .unwrap();
        let got = none
            .search(&Query::vectors(q), 10, &plaid, &SearchParams::default())
            .unwrap();
        assert_eq!(got, want);
        // Exhaustive on no vectors: every document, decoded; the reference is PLAID on
        // the f16 index with every cell, no pruning, decompressed rescoring.
        let mut all = PlaidParams::exhaustive(codec.num_centroids(), docs.len());
        all.rescore = Rescore::Decompressed;
        let want = full
            .search(
                &Query::vectors(q),
                50,
                &plaid,
                &SearchParams {
                    plaid: Some(all),
                    ..Default::default()
                },
            )
            .unwrap();
        let got = none
            .search(
                &Query::vectors(q),
                50,
                &exhaustive,
                &SearchParams::default(),
            )
            .unwrap();
        assert_eq!(got, want);
    }
    // Explanations and rebuilds read decoded vectors.
    let a = none.lookup("d3").unwrap();
    assert!(matches!(none.vectors(a), DocRows::Missing { .. }));
    assert_eq!(none.vectors_f32(a).len(), docs[3].len() / DIM);
}

#[test]
fn merges_and_reopening_keep_every_score_of_compact_stores() {
    let (docs, queries) = corpus(3, 240);
    for kind in [StoreKind::Int8, StoreKind::None] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = IndexWriter::create_with(dir.path(), model(), config(kind)).unwrap();
        for (i, d) in docs.iter().enumerate() {
            w.add(&format!("d{i}"), d).unwrap();
            if i % 80 == 79 {
                w.commit(serde_json::json!({})).unwrap();
            }
        }
        w.delete(&["d5"]);
        w.commit(serde_json::json!({})).unwrap();
        let before = Index::open(dir.path()).unwrap();
        assert!(before.num_segments() > 1, "{kind:?}");
        let scores = |index: &Index| -> Vec<Vec<(String, f32)>> {
            queries
                .iter()
                .map(|q| {
                    index
                        .search_exhaustive(MultiVectorRef::new(q, DIM), 40)
                        .iter()
                        .map(|h| (index.doc_id(h.addr).to_string(), h.score))
                        .collect()
                })
                .collect()
        };
        let want = scores(&before);
        drop(before);
        w.compact(false).unwrap();
        drop(w);
        let after = Index::open(dir.path()).unwrap();
        assert_eq!(after.num_segments(), 1);
        assert_eq!(after.manifest().segments[0].store.kind, kind);
        let got = scores(&after);
        for (g, w) in got.iter().zip(&want) {
            let ids = |v: &Vec<(String, f32)>| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(ids(g), ids(w), "{kind:?}");
            for (a, b) in g.iter().zip(w) {
                assert!((a.1 - b.1).abs() < 1e-5, "{kind:?}: {} vs {}", a.1, b.1);
            }
        }
        assert!(after.lookup("d5").is_none());
    }
}

#[test]
fn a_store_without_vectors_needs_plaid() {
    let dir = tempfile::tempdir().unwrap();
    let config = IndexConfig {
        store: StoreKind::None,
        ..Default::default()
    };
    match IndexWriter::create_with(dir.path(), model(), config) {
        Err(IndexError::InvalidArgument(m)) => assert!(m.contains("plaid"), "{m}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a store without vectors and without plaid was accepted"),
    }
}

#[test]
fn a_truncated_int8_file_is_a_typed_error() {
    let (docs, _) = corpus(4, 40);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &docs, StoreKind::Int8);
    let name = index.manifest().segments[0]
        .store
        .vectors
        .as_ref()
        .unwrap()
        .name
        .clone();
    drop(index);
    let path = dir.path().join(&name);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    match Index::open(dir.path()) {
        Err(e) => assert!(e.to_string().contains(&name), "{e}"),
        Ok(_) => panic!("a truncated int8 file opened"),
    }
}

#[test]
fn f16_centroids_halve_the_table_and_are_what_encoding_used() {
    let (docs, queries) = corpus(5, 200);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let f32_index = build(a.path(), &docs, StoreKind::None);
    let mut cfg = config(StoreKind::None);
    cfg.plaid.as_mut().unwrap().f16_centroids = true;
    let mut w = IndexWriter::create_with(b.path(), model(), cfg).unwrap();
    for (i, d) in docs.iter().enumerate() {
        w.add(&format!("d{i}"), d).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    drop(w);
    let f16_index = Index::open(b.path()).unwrap();
    let (c32, c16) = (
        f32_index.manifest().codec.as_ref().unwrap(),
        f16_index.manifest().codec.as_ref().unwrap(),
    );
    assert!(c16.f16_centroids && !c32.f16_centroids);
    assert_eq!(c16.centroids.bytes - 32, (c32.centroids.bytes - 32) / 2);
    // The widened table is the f32 one rounded to f16.
    for (x, y) in f16_index
        .codec()
        .unwrap()
        .centroids()
        .iter()
        .zip(f32_index.codec().unwrap().centroids())
    {
        assert_eq!(*x, half::f16::from_f32(*y).to_f32());
    }
    // Decoded scores stay close to the f32 codec's.
    for q in &queries {
        let q = MultiVectorRef::new(q, DIM);
        let (x, y) = (
            f32_index.search_exhaustive(q, 20),
            f16_index.search_exhaustive(q, 20),
        );
        let nq = (q.len()) as f32;
        assert!((x[0].score - y[0].score).abs() / nq < 0.01);
    }
}

#[test]
fn int8_centroids_quarter_the_table_are_what_encoding_used_and_corruption_is_named() {
    let (docs, queries) = corpus(5, 200);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let f32_index = build(a.path(), &docs, StoreKind::None);
    let mut cfg = config(StoreKind::None);
    cfg.plaid.as_mut().unwrap().int8_centroids = true;
    let mut w = IndexWriter::create_with(b.path(), model(), cfg).unwrap();
    for (i, d) in docs.iter().enumerate() {
        w.add(&format!("d{i}"), d).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    drop(w);
    let i8_index = Index::open(b.path()).unwrap();
    let (c32, c8) = (
        f32_index.manifest().codec.as_ref().unwrap(),
        i8_index.manifest().codec.as_ref().unwrap(),
    );
    assert!(c8.int8_centroids && !c8.f16_centroids && !c32.int8_centroids);
    let centroid_file = c8.centroids.name.clone();
    let k = c8.num_centroids as u64;
    assert_eq!(
        c8.centroids.bytes - 32,
        (c32.centroids.bytes - 32) / 4 + 4 * k
    );
    // The widened table is the f32 one quantised per row (max |x| / 127, round).
    let (wide, exact) = (
        i8_index.codec().unwrap().centroids(),
        f32_index.codec().unwrap().centroids(),
    );
    for (x, y) in wide.chunks_exact(DIM).zip(exact.chunks_exact(DIM)) {
        let s = y.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (a, b) in x.iter().zip(y) {
            assert_eq!(*a, ((b / s).round().clamp(-127.0, 127.0)) * s);
        }
    }
    for q in &queries {
        let q = MultiVectorRef::new(q, DIM);
        let (x, y) = (
            f32_index.search_exhaustive(q, 20),
            i8_index.search_exhaustive(q, 20),
        );
        let nq = (q.len()) as f32;
        assert!((x[0].score - y[0].score).abs() / nq < 0.02);
    }
    // A centroid file cut short is named at open.
    drop(i8_index);
    let path = b.path().join(&centroid_file);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    match Index::open(b.path()) {
        Err(e) => assert!(e.to_string().contains(&centroid_file), "{e}"),
        Ok(_) => panic!("a truncated centroid file opened"),
    }
}
