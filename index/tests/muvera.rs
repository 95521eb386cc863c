//! MUVERA against its definition and against exhaustive search, on seeded data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::muvera::{FdeConfig, FdeEncoder, GraphConfig, MipsGraph, MuveraConfig};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    Index, IndexConfig, IndexError, IndexWriter, Mode, ModelInfo, MuveraParams, Query, SearchParams,
};

fn unit_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// With no projection (`d_proj = dim`), no final sketch and exactly one document vector
/// per partition, `FDE(q) · FDE(d)` is exactly `Σ_i ⟨q_i, d_{part(q_i)}⟩`.
#[test]
fn fde_dot_equals_partition_matched_sum() {
    let dim = 12;
    for seed in 0..20u64 {
        let config = FdeConfig {
            k_sim: 2,
            d_proj: dim,
            r_reps: 1,
            d_final: None,
            fill_empty: true,
            seed,
        };
        let enc = FdeEncoder::new(dim, config);
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        // Draw vectors until each of the 4 partitions has exactly one.
        let mut per_part: Vec<Option<Vec<f32>>> = vec![None; 4];
        while per_part.iter().any(Option::is_none) {
            let v = unit_rows(&mut rng, 1, dim);
            let p = enc.partition_codes(&v)[0] as usize;
            if per_part[p].is_none() {
                per_part[p] = Some(v);
            }
        }
        let doc: Vec<f32> = per_part.iter().flatten().flatten().copied().collect();
        let query = unit_rows(&mut rng, 7, dim);
        let q_codes = enc.partition_codes(&query);
        let want: f32 = query
            .chunks_exact(dim)
            .zip(&q_codes)
            .map(|(q, &p)| dot(q, per_part[p as usize].as_ref().unwrap()))
            .sum();
        let got = dot(&enc.encode_query(&query), &enc.encode_document(&doc));
        assert!(
            (got - want).abs() < 1e-4,
            "seed {seed}: FDE dot {got}, definition {want}"
        );
    }
}

#[test]
fn query_fde_is_a_sum_and_a_lone_vector_fills_every_partition() {
    let dim = 16;
    let enc = FdeEncoder::new(
        dim,
        FdeConfig {
            r_reps: 3,
            d_proj: 8,
            ..FdeConfig::default()
        },
    );
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (a, b) = (unit_rows(&mut rng, 3, dim), unit_rows(&mut rng, 4, dim));
    let both: Vec<f32> = a.iter().chain(&b).copied().collect();
    let sum: Vec<f32> = enc
        .encode_query(&a)
        .iter()
        .zip(enc.encode_query(&b))
        .map(|(x, y)| x + y)
        .collect();
    for (x, y) in enc.encode_query(&both).iter().zip(&sum) {
        assert!((x - y).abs() < 1e-5);
    }
    // One vector: every partition of every repetition holds its projection.
    let lone = unit_rows(&mut rng, 1, dim);
    let fde = enc.encode_document(&lone);
    let (parts, pd) = (32, 8);
    for r in 0..3 {
        let first = &fde[r * parts * pd..r * parts * pd + pd];
        assert!(first.iter().any(|v| *v != 0.0));
        for p in 1..parts {
            assert_eq!(&fde[(r * parts + p) * pd..(r * parts + p + 1) * pd], first);
        }
    }
}

#[test]
fn encodings_are_seeded_and_sketch_has_its_dimension() {
    let dim = 24;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let v = unit_rows(&mut rng, 5, dim);
    let a = FdeEncoder::new(dim, FdeConfig::default());
    let b = FdeEncoder::new(dim, FdeConfig::default());
    let c = FdeEncoder::new(
        dim,
        FdeConfig {
            seed: 7,
            ..FdeConfig::default()
        },
    );
    assert_eq!(a.encode_document(&v), b.encode_document(&v));
    assert_ne!(a.encode_document(&v), c.encode_document(&v));
    assert_eq!(a.output_dim(), 20 * 32 * 32);
    let s = FdeEncoder::new(
        dim,
        FdeConfig {
            d_final: Some(1000),
            ..FdeConfig::default()
        },
    );
    assert_eq!(s.encode_query(&v).len(), 1000);
}

#[test]
fn mips_graph_finds_the_inner_product_best() {
    let dim = 20;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Vectors of different norms: inner product and cosine rank differently.
    let mut data = unit_rows(&mut rng, 500, dim);
    for (i, row) in data.chunks_exact_mut(dim).enumerate() {
        let s = 0.5 + (i % 7) as f32 * 0.3;
        row.iter_mut().for_each(|x| *x *= s);
    }
    let graph = MipsGraph::build(&data, dim, GraphConfig::default()).unwrap();
    let (mut hit, mut total) = (0, 0);
    for _ in 0..20 {
        let q = unit_rows(&mut rng, 1, dim);
        let mut brute: Vec<(usize, f32)> = data
            .chunks_exact(dim)
            .map(|r| dot(r, &q))
            .enumerate()
            .collect();
        brute.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = graph.search(&q, 10, 100);
        hit += brute[..10]
            .iter()
            .filter(|(i, _)| got.contains(&(*i as u32)))
            .count();
        total += 10;
    }
    assert!(
        hit as f64 / total as f64 >= 0.95,
        "HNSW MIPS recall@10 {}",
        hit as f64 / total as f64
    );
}

fn build(dir: &std::path::Path, docs: &[Vec<f32>], dim: usize) -> Index {
    let model = ModelInfo {
        name: "synthetic".into(),
        dim,
        weights_sha256: "-".into(),
        encoder: Default::default(),
    };
    let config = IndexConfig {
        muvera: Some(MuveraConfig {
            fde: FdeConfig {
                k_sim: 3,
                d_proj: 8,
                r_reps: 4,
                ..FdeConfig::default()
            },
            graph: GraphConfig::default(),
        }),
        ..IndexConfig::default()
    };
    let mut w = IndexWriter::create_with(dir, model, config).unwrap();
    for (i, d) in docs.iter().enumerate() {
        w.add(&format!("d{i}"), d).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

#[test]
fn every_candidate_rescored_equals_exhaustive_and_the_index_reopens() {
    let dim = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let docs: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let n = rng.gen_range(1..12);
            unit_rows(&mut rng, n, dim)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &docs, dim);
    use tessera_index::Component;
    assert_eq!(index.components(), [Component::Store, Component::Muvera]);
    let mode: Mode = "muvera".parse().unwrap();
    let all = SearchParams {
        muvera: Some(MuveraParams {
            candidates: 200,
            ef_search: 400,
        }),
        ..SearchParams::default()
    };
    for _ in 0..5 {
        let q = unit_rows(&mut rng, 4, dim);
        let q = MultiVectorRef::new(&q, dim);
        assert_eq!(
            index.search(&Query::vectors(q), 20, &mode, &all).unwrap(),
            index.search_exhaustive(q, 20)
        );
    }
    // Few candidates: at most that many results, all of them exact scores of real hits
    // (this fails if the muvera stage silently fell back to exhaustive search).
    let few = SearchParams {
        muvera: Some(MuveraParams {
            candidates: 3,
            ef_search: 50,
        }),
        ..SearchParams::default()
    };
    let q = unit_rows(&mut rng, 4, dim);
    let q = MultiVectorRef::new(&q, dim);
    let hits = index.search(&Query::vectors(q), 20, &mode, &few).unwrap();
    assert_eq!(hits.len(), 3);
    let exact = index.search_exhaustive(q, 200);
    for h in &hits {
        let e = exact.iter().find(|x| x.addr == h.addr).unwrap();
        assert!((e.score - h.score).abs() < 1e-6);
    }
    drop(index);
    let again = Index::open(dir.path()).unwrap();
    let q = unit_rows(&mut rng, 4, dim);
    let hits = again
        .search(
            &Query::vectors(MultiVectorRef::new(&q, dim)),
            5,
            &mode,
            &SearchParams::default(),
        )
        .unwrap();
    assert_eq!(hits.len(), 5);
}

#[test]
fn damaged_graph_file_is_a_typed_error() {
    let dim = 8;
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let docs: Vec<Vec<f32>> = (0..50).map(|_| unit_rows(&mut rng, 3, dim)).collect();
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &docs, dim);
    let path = dir.path().join("s1.muvera.hnsw.graph");
    let mut b = std::fs::read(&path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&path, b).unwrap();
    match Index::open(dir.path()) {
        Err(IndexError::ChecksumMismatch { path, .. }) => {
            assert!(path.ends_with("s1.muvera.hnsw.graph"))
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("corruption unnoticed"),
    }
}
