//! A search past its deadline stops with `DeadlineExceeded`, in every mode; without a
//! deadline the same searches succeed.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::muvera::{FdeConfig, GraphConfig};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    Deadline, DocExtras, Index, IndexConfig, IndexError, IndexWriter, Mode, ModelInfo,
    MuveraConfig, PlaidConfig, Query, SearchParams, SparseConfig, SparseVector,
};

fn unit_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}

fn build(dir: &std::path::Path, docs: usize, tokens: usize, dim: usize, all: bool) -> Index {
    let model = ModelInfo {
        name: "toy".into(),
        dim,
        weights_sha256: "-".into(),
        encoder: Default::default(),
    };
    let config = IndexConfig {
        store: Default::default(),
        fields: Default::default(),
        plaid: Some(PlaidConfig {
            num_centroids: Some(32),
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
            vocab_size: 100,
            model: serde_json::Value::Null,
        }),
        bm25: true,
        store_text: false,
    };
    let config = if all { config } else { IndexConfig::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut w = IndexWriter::create_with(dir, model, config).unwrap();
    for i in 0..docs {
        let sparse = SparseVector::from_pairs(vec![(i as u32 % 100, 1.0)]);
        let text = format!("word{} common", i % 7);
        let extras = DocExtras {
            fields: None,
            text: all.then_some(text.as_str()),
            sparse: all.then_some(&sparse),
        };
        w.add_with(&format!("d{i}"), &unit_rows(&mut rng, tokens, dim), extras)
            .unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

#[test]
fn an_expired_deadline_stops_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), 200, 5, 16, true);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let q = unit_rows(&mut rng, 4, 16);
    let sparse = SparseVector::from_pairs(vec![(3, 1.0), (50, 0.5)]);
    let query = Query {
        filter: None,
        vectors: Some(MultiVectorRef::new(&q, 16)),
        sparse: Some(&sparse),
        text: Some("word3 common"),
    };
    let expired = SearchParams {
        deadline: Deadline::at(Instant::now()),
        ..SearchParams::default()
    };
    for mode in [
        "exhaustive",
        "plaid",
        "muvera",
        "splade",
        "bm25",
        "plaid+muvera",
        "bm25+splade",
        "rrf:plaid+bm25",
    ] {
        let m: Mode = mode.parse().unwrap();
        let err = index.search(&query, 10, &m, &expired).err();
        assert!(
            matches!(err, Some(IndexError::DeadlineExceeded)),
            "{mode}: {err:?}"
        );
        let hits = index.search(&query, 10, &m, &SearchParams::default());
        assert!(!hits.unwrap().is_empty(), "{mode}");
    }
}

#[test]
fn a_deadline_reached_mid_scan_stops_the_scan() {
    // Exhaustive MaxSim over 4,000 documents of 40 vectors (about 200 MFLOP) cannot finish
    // within 1 ms; the scan looks at the clock every 16 documents and gives up.
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), 4000, 40, 64, false);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let q = unit_rows(&mut rng, 32, 64);
    let q = MultiVectorRef::new(&q, 64);
    let deadline = Deadline::after(Duration::from_millis(1));
    let got =
        tessera_index::maxsim::search_exhaustive_until(index.segment(0).store(), q, 10, deadline);
    assert!(matches!(got, Err(IndexError::DeadlineExceeded)), "{got:?}");
    let full = tessera_index::maxsim::search_exhaustive_until(
        index.segment(0).store(),
        q,
        10,
        Deadline::NONE,
    );
    let full: Vec<(u32, f32)> = full.unwrap().iter().map(|h| (h.doc, h.score)).collect();
    let whole: Vec<(u32, f32)> = index
        .search_exhaustive(q, 10)
        .iter()
        .map(|h| (h.addr.doc, h.score))
        .collect();
    assert_eq!(full, whole);
}
