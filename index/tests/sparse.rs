//! SPLADE impact postings against references: MaxScore equals exhaustive sparse scoring
//! equals a brute-force re-implementation of the documented integer arithmetic; pruning
//! really skips postings; damaged files and incomplete queries are typed errors.

use std::cmp::Reverse;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::sparse::QUERY_WEIGHT_MAX;
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    Allow, DocExtras, Index, IndexConfig, IndexError, IndexWriter, Mode, ModelInfo, Query,
    SearchParams, SparseConfig, SparseVector,
};

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: 2,
        weights_sha256: "-".into(),
        encoder: serde_json::Value::Null,
    }
}

fn build(dir: &std::path::Path, vocab: usize, docs: &[SparseVector]) -> Index {
    let config = IndexConfig {
        splade: Some(SparseConfig {
            vocab_size: vocab,
            model: serde_json::Value::Null,
        }),
        ..IndexConfig::default()
    };
    let mut w = IndexWriter::create_with(dir, model(), config).unwrap();
    for (i, d) in docs.iter().enumerate() {
        let extras = DocExtras {
            sparse: Some(d),
            ..DocExtras::default()
        };
        w.add_with(&format!("d{i}"), &[1.0, 0.0], extras).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

/// Brute force, written from the format's documentation: impacts `round(w / (max/255))`,
/// query weights `round(w / (qmax/65535))`, integer dot products, best score first and
/// ties to the lower document.
fn brute_force(docs: &[SparseVector], query: &SparseVector, k: usize) -> Vec<u32> {
    let dmax = docs
        .iter()
        .flat_map(|d| d.weights().iter().copied())
        .fold(0.0f32, f32::max);
    let qmax = query.weights().iter().copied().fold(0.0f32, f32::max);
    let dscale = dmax / 255.0;
    let qscale = f64::from(qmax) / f64::from(QUERY_WEIGHT_MAX);
    let mut scored: Vec<(Reverse<u64>, u32)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let s: u64 = d
                .iter()
                .filter_map(|(t, w)| {
                    let qw = query.iter().find(|&(qt, _)| qt == t)?.1;
                    let impact = (w / dscale).round().min(255.0) as u64;
                    Some(impact * (f64::from(qw) / qscale).round() as u64)
                })
                .sum();
            (Reverse(s), i as u32)
        })
        .filter(|(s, _)| s.0 > 0)
        .collect();
    scored.sort();
    scored.into_iter().take(k).map(|(_, d)| d).collect()
}

fn random_vector(rng: &mut ChaCha8Rng, vocab: u32, max_terms: usize, skew: bool) -> SparseVector {
    let n = rng.gen_range(0..=max_terms);
    SparseVector::from_pairs(
        (0..n)
            .map(|_| {
                // Zipf-like term choice when skewed: low ids are common, like stop words.
                let t = if skew {
                    (rng.gen_range(0.0f64..1.0).powi(3) * f64::from(vocab)) as u32
                } else {
                    rng.gen_range(0..vocab)
                };
                (t.min(vocab - 1), rng.gen_range(0.01f32..3.0))
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    #[test]
    fn maxscore_equals_exhaustive_and_brute_force(
        seed in any::<u64>(),
        n_docs in 1usize..250,
        vocab in 2u32..80,
        k in 1usize..40,
        skew in any::<bool>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let docs: Vec<SparseVector> =
            (0..n_docs).map(|_| random_vector(&mut rng, vocab, 25, skew)).collect();
        let dir = tempfile::tempdir().unwrap();
        let index = build(dir.path(), vocab as usize, &docs);
        let splade = index.segment(0).splade().unwrap();
        for _ in 0..8 {
            let q = random_vector(&mut rng, vocab + 3, 12, skew); // some ids beyond the vocabulary
            let (fast, stats) = splade.search(&q, k, &Allow::all());
            let (slow, slow_stats) = splade.search_exhaustive(&q, k, &Allow::all());
            prop_assert_eq!(&fast, &slow);
            prop_assert!(stats.touched <= stats.postings.max(1) * 2);
            prop_assert_eq!(stats.postings, slow_stats.postings);
            let want = brute_force(&docs, &q, k);
            let got: Vec<u32> = fast.iter().map(|h| h.doc).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn maxscore_skips_most_postings_of_common_terms() {
    // 3,000 documents; term 0 is in every document with a small weight, term 1 in a few
    // with a large one. A query for both needs term 0 only to break ties among term-1
    // documents: MaxScore probes it instead of walking it.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let docs: Vec<SparseVector> = (0..3000)
        .map(|i| {
            let mut pairs = vec![(0u32, rng.gen_range(0.01f32..0.2))];
            if i % 97 == 0 {
                pairs.push((1, rng.gen_range(2.0f32..3.0)));
            }
            SparseVector::from_pairs(pairs)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), 4, &docs);
    let q = SparseVector::from_pairs(vec![(0, 1.0), (1, 1.0)]);
    let (fast, stats) = index
        .segment(0)
        .splade()
        .unwrap()
        .search(&q, 10, &Allow::all());
    let (slow, _) = index
        .segment(0)
        .splade()
        .unwrap()
        .search_exhaustive(&q, 10, &Allow::all());
    assert_eq!(fast, slow);
    assert_eq!(stats.postings, 3000 + 31);
    assert!(
        stats.touched * 4 < stats.postings,
        "touched {} of {} postings",
        stats.touched,
        stats.postings
    );
}

#[test]
fn splade_mode_runs_through_index_search() {
    let docs = vec![
        SparseVector::from_pairs(vec![(1, 1.0), (2, 0.5)]),
        SparseVector::from_pairs(vec![(2, 2.0)]),
        SparseVector::from_pairs(vec![(3, 1.0)]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), 5, &docs);
    let q = SparseVector::from_pairs(vec![(2, 1.0)]);
    let query = Query {
        sparse: Some(&q),
        ..Query::default()
    };
    let mode: Mode = "splade".parse().unwrap();
    let hits = index
        .search(&query, 5, &mode, &SearchParams::default())
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.addr.doc).collect::<Vec<_>>(),
        vec![1, 0]
    );
    // Scores approximate the float dot product (both sides quantised).
    assert!(
        (hits[0].score - q.dot(&docs[1])).abs() < 0.02,
        "{}",
        hits[0].score
    );

    // Token vectors alone cannot run splade; a `+` mode needs vectors for re-ranking.
    let v = [1.0f32, 0.0];
    let vectors_only = Query::vectors(MultiVectorRef::new(&v, 2));
    let err = index
        .search(&vectors_only, 5, &mode, &SearchParams::default())
        .unwrap_err();
    assert!(matches!(err, IndexError::QueryLacks { .. }), "{err}");
    let plus: Mode = "splade+exhaustive".parse().unwrap();
    let err = index
        .search(&query, 5, &plus, &SearchParams::default())
        .unwrap_err();
    assert!(err.to_string().contains("token vectors"), "{err}");
    // With both, the union is re-ranked by MaxSim (every document has the same vector).
    let both = Query {
        filter: None,
        vectors: Some(MultiVectorRef::new(&v, 2)),
        sparse: Some(&q),
        text: None,
    };
    assert!("splade+splade".parse::<Mode>().is_err());
    let hits = index
        .search(&both, 5, &plus, &SearchParams::default())
        .unwrap();
    // splade+exhaustive: every document re-ranked; all share one vector, so all tie at 1.
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| (h.score - 1.0).abs() < 1e-3));
}

#[test]
fn writer_refuses_documents_without_what_components_need() {
    let dir = tempfile::tempdir().unwrap();
    let config = IndexConfig {
        splade: Some(SparseConfig {
            vocab_size: 4,
            model: serde_json::Value::Null,
        }),
        ..IndexConfig::default()
    };
    let mut w = IndexWriter::create_with(dir.path(), model(), config).unwrap();
    let err = w.add("a", &[1.0, 0.0]).unwrap_err();
    assert!(err.to_string().contains("sparse vector"), "{err}");
    let big = SparseVector::from_pairs(vec![(9, 1.0)]);
    let extras = DocExtras {
        sparse: Some(&big),
        ..DocExtras::default()
    };
    let err = w.add_with("a", &[1.0, 0.0], extras).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    // Nothing was half-added: the store is still empty.
    assert_eq!(w.num_docs(), 0);
}

#[test]
fn damaged_postings_are_typed_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let docs: Vec<SparseVector> = (0..50)
        .map(|_| random_vector(&mut rng, 30, 10, false))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    drop(build(dir.path(), 30, &docs));
    let path = dir.path().join("s1.sparse");
    let original = std::fs::read(&path).unwrap();
    // A flipped byte in the document ids: the checksum catches it.
    let mut bytes = original.clone();
    let at = bytes.len() - 32 - 200;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = Index::open(dir.path()).err().expect("damage detected");
    assert!(matches!(err, IndexError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("s1.sparse"), "{err}");
    // Without checksum verification, structural validation still refuses it (or the
    // flip happened to leave a valid file, which then must search without panicking).
    match Index::open_with(
        dir.path(),
        tessera_index::OpenOptions {
            verify_checksums: false,
        },
    ) {
        Err(e) => assert!(matches!(e, IndexError::Corrupt { .. }), "{e}"),
        Ok(index) => {
            let q = SparseVector::from_pairs(vec![(1, 1.0), (2, 1.0)]);
            let _ = index
                .segment(0)
                .splade()
                .unwrap()
                .search(&q, 5, &Allow::all());
        }
    }
    // Truncation.
    std::fs::write(&path, &original[..original.len() - 7]).unwrap();
    let err = Index::open(dir.path()).err().expect("truncation detected");
    assert!(err.to_string().contains("s1.sparse"), "{err}");
}

/// The postings inverted in passes over the spill file (every pass limit, one posting
/// per pass included) equal an inversion written from the format's documentation; the
/// documents read back a block at a time equal the dequantised impacts; the spill files
/// are gone after the build.
#[test]
fn postings_inverted_in_passes_equal_a_direct_inversion() {
    use tessera_index::segment::SparseFiles;
    use tessera_index::sparse::{SparseBuilder, SparseIndex, SPARSE_PASS_POSTINGS};
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let vocab = 53u32;
    let docs: Vec<SparseVector> = (0..300)
        .map(|_| random_vector(&mut rng, vocab, 12, true))
        .collect();
    let max = docs
        .iter()
        .flat_map(|d| d.weights().iter().copied())
        .fold(0.0f32, f32::max);
    let scale = max / 255.0;
    // want[t] = (document, impact) for every weight that quantises above zero.
    let mut want: Vec<Vec<(u32, u8)>> = vec![Vec::new(); vocab as usize];
    for (d, v) in docs.iter().enumerate() {
        for (t, w) in v.iter() {
            let q = (w / scale).round().min(255.0) as u8;
            if q > 0 {
                want[t as usize].push((d as u32, q));
            }
        }
    }
    let total: usize = want.iter().map(Vec::len).sum();
    for limit in [1u64, 7, 100, total as u64 / 2, SPARSE_PASS_POSTINGS] {
        let dir = tempfile::tempdir().unwrap();
        let config = SparseConfig {
            vocab_size: vocab as usize,
            model: serde_json::Value::Null,
        };
        let mut b = SparseBuilder::create(dir.path(), "s1", config)
            .unwrap()
            .with_pass_postings(limit);
        for v in &docs {
            b.add(v).unwrap();
        }
        let files: SparseFiles = b.finish(dir.path(), "s1").unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["s1.sparse".to_string()], "limit {limit}");
        assert_eq!(files.num_postings, total);
        let passes = files.build["passes"].as_u64().unwrap();
        if limit == 1 {
            assert!(
                passes >= 40,
                "one posting per pass still groups a term's list: {passes}"
            );
        }
        if limit == SPARSE_PASS_POSTINGS {
            assert_eq!(passes, 1);
        }
        let index = SparseIndex::open(dir.path(), &files, docs.len(), true).unwrap();
        for (t, want_list) in want.iter().enumerate() {
            let (d, i) = index.list(t);
            let got: Vec<(u32, u8)> = d.iter().copied().zip(i.iter().copied()).collect();
            assert_eq!(&got, want_list, "term {t}, limit {limit}");
        }
        // Read back by blocks of every size, skipping documents as a merge skips deletes.
        for block in [1usize, 5, 64, total] {
            let mut cursor = index.document_cursor(docs.len(), block);
            for d in (0..docs.len()).filter(|d| d % 7 != 3) {
                let expect = SparseVector::from_pairs(
                    (0..vocab as usize)
                        .flat_map(|t| {
                            want[t]
                                .iter()
                                .filter(|p| p.0 == d as u32)
                                .map(move |p| (t as u32, f32::from(p.1) * files.scale))
                        })
                        .collect(),
                );
                assert_eq!(cursor.get(d), &expect, "document {d}, block {block}");
            }
        }
    }
}
