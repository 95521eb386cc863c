//! PLAID and the residual codec against exact references on seeded synthetic data:
//! maximal settings equal exhaustive search exactly, assignment equals brute force,
//! reconstruction error shrinks with nbits, damaged files are typed errors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::codec::{kmeans, nearest_ip, KMeansConfig, ResidualDecoder, ResidualQuantizer};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    Index, IndexConfig, IndexError, IndexWriter, Mode, ModelInfo, PlaidConfig, PlaidParams, Query,
    Rescore, SearchParams,
};

const DIM: usize = 32;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.into_iter().map(|x| x / n).collect()
}

/// Documents made of noisy copies of a few of 40 topic directions, like real token
/// vectors that cluster by meaning.
struct Corpus {
    topics: Vec<Vec<f32>>,
    docs: Vec<Vec<f32>>,
}

fn corpus(seed: u64, n_docs: usize) -> Corpus {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let topics: Vec<Vec<f32>> = (0..40)
        .map(|_| unit((0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect()))
        .collect();
    let docs = (0..n_docs)
        .map(|_| {
            let n = rng.gen_range(3..30);
            let mine: Vec<usize> = (0..3).map(|_| rng.gen_range(0..topics.len())).collect();
            let mut v = Vec::with_capacity(n * DIM);
            for _ in 0..n {
                let t = &topics[mine[rng.gen_range(0..3)]];
                v.extend(unit(
                    t.iter().map(|x| x + rng.gen_range(-0.35..0.35)).collect(),
                ));
            }
            v
        })
        .collect();
    Corpus { topics, docs }
}

fn query(c: &Corpus, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut q = Vec::new();
    for _ in 0..rng.gen_range(1..12) {
        let t = &c.topics[rng.gen_range(0..c.topics.len())];
        q.extend(unit(
            t.iter().map(|x| x + rng.gen_range(-0.4..0.4)).collect(),
        ));
    }
    q
}

fn build(dir: &std::path::Path, c: &Corpus, nbits: u32) -> Index {
    let model = ModelInfo {
        name: "synthetic".into(),
        dim: DIM,
        weights_sha256: "-".into(),
        encoder: Default::default(),
    };
    let config = IndexConfig {
        plaid: Some(PlaidConfig {
            nbits,
            num_centroids: Some(64),
            ..PlaidConfig::default()
        }),
        ..Default::default()
    };
    let mut w = IndexWriter::create_with(dir, model, config).unwrap();
    for (i, d) in c.docs.iter().enumerate() {
        w.add(&format!("d{i}"), d).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

#[test]
fn maximal_settings_equal_exhaustive_exactly() {
    let c = corpus(1, 400);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 2);
    let codec = index.codec().expect("built with plaid");
    let params = SearchParams {
        plaid: Some(PlaidParams::exhaustive(codec.num_centroids(), 400)),
        ..Default::default()
    };
    let mode: Mode = "plaid".parse().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..20 {
        let q = query(&c, &mut rng);
        let q = MultiVectorRef::new(&q, DIM);
        let exact = index.search_exhaustive(q, 100);
        let got = index
            .search(&Query::vectors(q), 100, &mode, &params)
            .unwrap();
        assert_eq!(
            got, exact,
            "PLAID with every cell and no pruning must be exhaustive search"
        );
    }
}

/// Refinement with an infinite margin is exact MaxSim, so keeping only its best 100 for
/// the last stage still gives exhaustive search's answer; a finite margin on the
/// default pipeline loses at most a little of it.
#[test]
fn refinement_keeps_the_exhaustive_answer() {
    let c = corpus(1, 400);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 2);
    let codec = index.codec().expect("built with plaid");
    let mode: Mode = "plaid".parse().unwrap();
    let mut exact_refined = PlaidParams::exhaustive(codec.num_centroids(), 400);
    exact_refined.refine_margin = Some(f32::INFINITY);
    exact_refined.exact_docs = 100;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut kept, mut total) = (0, 0);
    for rescore in [Rescore::Exact, Rescore::Decompressed] {
        for _ in 0..10 {
            let q = query(&c, &mut rng);
            let q = MultiVectorRef::new(&q, DIM);
            let search = |p: PlaidParams| {
                let params = SearchParams {
                    plaid: Some(PlaidParams { rescore, ..p }),
                    ..Default::default()
                };
                index
                    .search(&Query::vectors(q), 100, &mode, &params)
                    .unwrap()
            };
            let unrefined = search(PlaidParams {
                refine_margin: None,
                ..exact_refined
            });
            // Decompressed rows are refined with f32 products but rescored by the int8
            // definition (`maxsim::int8`), two approximations that may order the 100th
            // and 101st documents differently: there the refined best 200 go on.
            let refined = match rescore {
                Rescore::Exact => exact_refined,
                Rescore::Decompressed => PlaidParams {
                    exact_docs: 200,
                    ..exact_refined
                },
            };
            assert_eq!(search(refined), unrefined, "{rescore:?}");
            if rescore == Rescore::Exact {
                assert_eq!(unrefined, index.search_exhaustive(q, 100));
                let plain = search(PlaidParams::for_k(100));
                let mut d = PlaidParams::for_k(100);
                d.refine_margin = Some(f32::INFINITY);
                d.exact_docs = 120;
                assert_eq!(search(d), plain, "an infinite margin changes nothing");
                d.refine_margin = Some(0.2);
                let got = search(d);
                total += plain.len();
                kept += got.iter().filter(|h| plain.contains(h)).count();
            }
        }
    }
    // Uniform random data is harder than real token vectors (README: SciFact).
    assert!(
        kept as f64 >= 0.85 * total as f64,
        "refined PLAID kept {kept} of {total} of unrefined PLAID's results"
    );
}

/// The defaults find most of the exhaustive top 10 on clustered data, and probing a few
/// cells without pruning finds nearly all of it.
#[test]
fn wider_settings_reach_exhaustive_recall() {
    let c = corpus(3, 600);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 2);
    let mode: Mode = "plaid".parse().unwrap();
    let recall = |params: PlaidParams| {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut found, mut total) = (0, 0);
        for _ in 0..30 {
            let q = query(&c, &mut rng);
            let q = MultiVectorRef::new(&q, DIM);
            let exact: Vec<u32> = index
                .search_exhaustive(q, 10)
                .iter()
                .map(|h| h.addr.doc)
                .collect();
            let p = SearchParams {
                plaid: Some(params),
                ..Default::default()
            };
            let got: Vec<u32> = index
                .search(&Query::vectors(q), 10, &mode, &p)
                .unwrap()
                .iter()
                .map(|h| h.addr.doc)
                .collect();
            found += exact.iter().filter(|d| got.contains(d)).count();
            total += exact.len();
        }
        found as f64 / total as f64
    };
    let defaults = PlaidParams::for_k(10);
    let r1 = recall(defaults);
    let wide = recall(PlaidParams {
        ncells: 8,
        centroid_score_threshold: f32::NEG_INFINITY,
        ndocs: 2400,
        ..defaults
    });
    assert!(
        wide >= 0.99,
        "8 cells, no pruning, every candidate rescored: recall {wide}"
    );
    assert!(r1 > 0.5, "defaults find most of the top 10: {r1}");
}

#[test]
fn union_and_rrf_modes_run_on_plaid() {
    let c = corpus(5, 200);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let q = query(&c, &mut rng);
    let q = MultiVectorRef::new(&q, DIM);
    let exact = index.search_exhaustive(q, 10);
    // A union that includes exhaustive is exhaustive.
    let union = index
        .search(
            &Query::vectors(q),
            10,
            &"plaid+exhaustive".parse().unwrap(),
            &SearchParams::default(),
        )
        .unwrap();
    assert_eq!(union, exact);
    let rrf = index
        .search(
            &Query::vectors(q),
            10,
            &"rrf:plaid+exhaustive".parse().unwrap(),
            &SearchParams::default(),
        )
        .unwrap();
    assert_eq!(rrf.len(), 10);
    assert!(rrf.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn assignment_equals_brute_force() {
    let c = corpus(7, 50);
    let points: Vec<f32> = c.docs.concat();
    let mut centroids = kmeans(
        &points,
        DIM,
        KMeansConfig {
            probe: 0,
            k: 37,
            iterations: 4,
            seed: 9,
        },
    );
    tessera_index::codec::linalg::normalize_rows(&mut centroids, DIM);
    let fast = nearest_ip(&points, &centroids, DIM);
    for (p, &got) in points.chunks_exact(DIM).zip(&fast) {
        let scores: Vec<f32> = centroids
            .chunks_exact(DIM)
            .map(|c| c.iter().zip(p).map(|(a, b)| a * b).sum())
            .collect();
        let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(
            scores[got as usize] >= best - 1e-5,
            "gemm assignment {got} not the brute-force best"
        );
    }
}

/// k-means' objective: each point's squared distance to its nearest centroid, summed.
fn kmeans_objective(sample: &[f32], centroids: &[f32], dim: usize) -> f64 {
    use tessera_index::codec::nearest_l2;
    let a = nearest_l2(sample, centroids, dim);
    sample
        .chunks_exact(dim)
        .zip(&a)
        .map(|(p, &i)| {
            p.iter()
                .zip(&centroids[i as usize * dim..(i as usize + 1) * dim])
                .map(|(x, y)| f64::from((x - y) * (x - y)))
                .sum::<f64>()
        })
        .sum()
}

/// Centroids crowded near the origin (k-means centroids of noisy points have small
/// norms) do not collapse into one coarse cell: every cell's reach stays near the
/// balanced `probe * k / sqrt(k)`, where without the split one cell held most of them
/// and the assignment became exhaustive; k-means through it stays near exact k-means.
#[test]
fn crowded_centroids_keep_the_two_level_reach_bounded() {
    use tessera_index::codec::{Metric, TwoLevel, TWO_LEVEL_MIN_K};
    let dim = 32;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let k = TWO_LEVEL_MIN_K * 2;
    let mut centroids = Vec::with_capacity(k * dim);
    for i in 0..k {
        let norm = if i % 4 == 0 { 1.0 } else { 0.02 };
        let v = unit((0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect());
        centroids.extend(v.into_iter().map(|x| x * norm));
    }
    let probe = 8;
    let balanced = probe * k / (k as f64).sqrt().round() as usize;
    for metric in [Metric::L2, Metric::InnerProduct] {
        let two = TwoLevel::new(&centroids, dim, probe, metric, 3);
        let reach: Vec<usize> = two.reach_sizes().collect();
        let mean = reach.iter().sum::<usize>() as f64 / reach.len() as f64;
        let max = *reach.iter().max().unwrap();
        eprintln!(
            "{metric:?}: {} cells, reach mean {mean:.0}, max {max}, balanced {balanced}",
            reach.len()
        );
        assert!(
            mean < 2.0 * balanced as f64,
            "{metric:?}: mean reach {mean} of {k}"
        );
        assert!(
            max < k / 2,
            "{metric:?}: a cell reaches {max} of {k} centroids"
        );
    }
    // k-means on noise-dominated points (as `tessera-bench gen` makes them), whose
    // centroids crowd as above: through the two-level assignment its objective stays
    // within 5% of exact assignment's.
    let topics: Vec<Vec<f32>> = (0..64)
        .map(|_| unit((0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()))
        .collect();
    let sample: Vec<f32> = (0..k * 8)
        .flat_map(|_| {
            let t = &topics[rng.gen_range(0..topics.len())];
            unit(
                (0..dim)
                    .map(|d| t[d] + rng.gen_range(-1.5f32..1.5))
                    .collect(),
            )
        })
        .collect();
    let objective = |c: &[f32]| kmeans_objective(&sample, c, dim);
    let run = |probe| {
        kmeans(
            &sample,
            dim,
            KMeansConfig {
                k,
                iterations: 6,
                seed: 4,
                probe,
            },
        )
    };
    let (exact, two) = (objective(&run(0)), objective(&run(probe)));
    eprintln!("k-means objective: two-level {two:.1}, exact {exact:.1}");
    assert!(
        two <= exact * 1.05,
        "k-means objective: two-level {two}, exact {exact}"
    );
}

/// The two-level assignment (`codec::TwoLevel`) finds brute force's nearest centroid
/// for nearly every point, by inner product and by Euclidean distance, and k-means run
/// through it reaches nearly the same objective as with exact assignment.
#[test]
fn two_level_assignment_agrees_with_brute_force() {
    use tessera_index::codec::{nearest_l2, Metric, TwoLevel, TWO_LEVEL_MIN_K};
    let dim = 32;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let k = TWO_LEVEL_MIN_K;
    // Centroids around 64 topics (token embeddings cluster by topic); points: a centroid
    // plus noise, as token vectors lie around their centroids.
    let topics: Vec<Vec<f32>> = (0..64)
        .map(|_| unit((0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()))
        .collect();
    let mut centroids = Vec::with_capacity(k * dim);
    for _ in 0..k {
        let t = &topics[rng.gen_range(0..topics.len())];
        centroids.extend(unit(
            (0..dim)
                .map(|d| t[d] + rng.gen_range(-0.3f32..0.3))
                .collect(),
        ));
    }
    let mut points = Vec::new();
    for _ in 0..20_000 {
        let c = rng.gen_range(0..k);
        points.extend(unit(
            (0..dim)
                .map(|d| centroids[c * dim + d] + rng.gen_range(-0.1f32..0.1))
                .collect(),
        ));
    }
    for metric in [Metric::InnerProduct, Metric::L2] {
        let two = TwoLevel::new(&centroids, dim, 8, metric, 5).assign(&centroids, &points);
        let exact = match metric {
            Metric::InnerProduct => nearest_ip(&points, &centroids, dim),
            Metric::L2 => nearest_l2(&points, &centroids, dim),
        };
        let agree =
            two.iter().zip(&exact).filter(|(a, b)| a == b).count() as f64 / exact.len() as f64;
        // Where it differs, its choice is a near one, and never better than brute force's.
        let score = |p: usize, c: u32| -> f32 {
            (0..dim)
                .map(|d| points[p * dim + d] * centroids[c as usize * dim + d])
                .sum()
        };
        let loss: f32 = (0..exact.len())
            .map(|p| score(p, exact[p]) - score(p, two[p]))
            .sum::<f32>()
            / exact.len() as f32;
        eprintln!("{metric:?}: agreement {agree:.4}, mean inner-product loss {loss:.5}");
        assert!(agree >= 0.9, "{metric:?}: two-level agrees on {agree}");
        if metric == Metric::InnerProduct {
            assert!((0..exact.len()).all(|p| score(p, two[p]) <= score(p, exact[p]) + 1e-5));
            assert!(loss < 0.02, "mean loss {loss}");
        }
    }
    // k-means through the two-level assignment: objective within 2% of exact assignment's.
    let sample = &points[..4096 * 4 * dim];
    let objective = |c: &[f32]| kmeans_objective(sample, c, dim);
    let run = |probe| {
        kmeans(
            sample,
            dim,
            KMeansConfig {
                k,
                iterations: 4,
                seed: 3,
                probe,
            },
        )
    };
    let (exact, two) = (objective(&run(0)), objective(&run(8)));
    assert!(
        two <= exact * 1.02,
        "k-means objective: two-level {two}, exact {exact}"
    );
}

#[test]
fn kmeans_is_reproducible_with_a_seed() {
    let c = corpus(8, 80);
    let points: Vec<f32> = c.docs.concat();
    let cfg = KMeansConfig {
        probe: 0,
        k: 16,
        iterations: 5,
        seed: 42,
    };
    assert_eq!(kmeans(&points, DIM, cfg), kmeans(&points, DIM, cfg));
}

#[test]
fn reconstruction_error_shrinks_as_nbits_grows() {
    let c = corpus(10, 300);
    let points: Vec<f32> = c.docs.concat();
    let mut centroids = kmeans(
        &points,
        DIM,
        KMeansConfig {
            probe: 0,
            k: 32,
            iterations: 5,
            seed: 1,
        },
    );
    tessera_index::codec::linalg::normalize_rows(&mut centroids, DIM);
    let codes = nearest_ip(&points, &centroids, DIM);
    let residuals: Vec<f32> = points
        .chunks_exact(DIM)
        .zip(&codes)
        .flat_map(|(p, &c)| {
            p.iter()
                .zip(&centroids[c as usize * DIM..])
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut errors = Vec::new();
    for nbits in [1, 2, 4] {
        let q = ResidualQuantizer::fit(DIM, nbits, residuals.clone());
        let dec = ResidualDecoder::new(&q);
        let mut packed = vec![0u8; q.packed_len()];
        let mut out = vec![0.0f32; DIM];
        let mut err = 0.0f64;
        for ((p, &c), r) in points
            .chunks_exact(DIM)
            .zip(&codes)
            .zip(residuals.chunks_exact(DIM))
        {
            q.pack(r, &mut packed);
            dec.decode(
                &centroids[c as usize * DIM..(c as usize + 1) * DIM],
                &packed,
                &mut out,
            );
            err += p
                .iter()
                .zip(&out)
                .map(|(a, b)| f64::from((a - b).powi(2)))
                .sum::<f64>();
        }
        errors.push(err / (points.len() / DIM) as f64);
    }
    assert!(
        errors[0] > errors[1] && errors[1] > errors[2],
        "mean squared error by nbits 1,2,4: {errors:?}"
    );
}

#[test]
fn decompressed_rescoring_tracks_exact_scores() {
    let c = corpus(11, 150);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 4);
    let codec = index.codec().unwrap();
    let mut p = PlaidParams::exhaustive(codec.num_centroids(), 150);
    p.rescore = Rescore::Decompressed;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let q = query(&c, &mut rng);
    let q = MultiVectorRef::new(&q, DIM);
    let exact = index.search_exhaustive(q, 150);
    let approx = index
        .search(
            &Query::vectors(q),
            150,
            &"plaid".parse().unwrap(),
            &SearchParams {
                plaid: Some(p),
                ..Default::default()
            },
        )
        .unwrap();
    // Per query token, the decompressed score stays close to the exact one.
    let nq = q.len() as f32;
    let errors: Vec<f32> = approx
        .iter()
        .map(|h| (h.score - exact.iter().find(|x| x.addr == h.addr).unwrap().score).abs() / nq)
        .collect();
    let mean = errors.iter().sum::<f32>() / errors.len() as f32;
    let max = errors.iter().copied().fold(0.0, f32::max);
    assert_eq!(approx.len(), 150);
    assert!(
        mean < 0.03 && max < 0.1,
        "per-token score error: mean {mean}, max {max}"
    );
}

#[test]
fn ivf_lists_every_document_under_each_of_its_codes() {
    let c = corpus(13, 120);
    let dir = tempfile::tempdir().unwrap();
    let index = build(dir.path(), &c, 1);
    let plaid = index.segment(0).plaid().unwrap();
    let store = index.segment(0).store();
    for d in 0..store.num_docs() {
        let start = store.doc_offset(d);
        for &code in &plaid.codes()[start..start + store.doc_len(d)] {
            assert!(plaid
                .ivf_list(code as usize)
                .binary_search(&(d as u32))
                .is_ok());
        }
    }
    let total: usize = (0..index.codec().unwrap().num_centroids())
        .map(|c| plaid.ivf_list(c).len())
        .sum();
    let distinct: usize = (0..store.num_docs())
        .map(|d| {
            let start = store.doc_offset(d);
            let mut v = plaid.codes()[start..start + store.doc_len(d)].to_vec();
            v.sort_unstable();
            v.dedup();
            v.len()
        })
        .sum();
    assert_eq!(
        total, distinct,
        "no document listed twice under one centroid"
    );
}

#[test]
fn damaged_plaid_files_are_typed_errors() {
    let c = corpus(14, 60);
    for (file, flip_at) in [
        ("codes", 0usize),
        ("residuals", 3),
        ("ivf", 9),
        ("centroids", 5),
    ] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &c, 2);
        // Segment 1's files; the codec (id 2, trained after the segment) holds the centroids.
        let owner = if file == "centroids" { "c2" } else { "s1" };
        let name = format!("{owner}.plaid.{file}");
        let path = dir.path().join(&name);
        let mut b = std::fs::read(&path).unwrap();
        b[flip_at] ^= 0x10;
        std::fs::write(&path, b).unwrap();
        match Index::open(dir.path()) {
            Err(IndexError::ChecksumMismatch { path: p, .. }) => {
                assert!(p.ends_with(&name))
            }
            Err(other) => panic!("{file}: unexpected error {other}"),
            Ok(_) => panic!("{file}: corruption unnoticed"),
        }
    }
    // Without checksum verification, structural checks still catch an impossible code.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &c, 2);
    let path = dir.path().join("s1.plaid.codes");
    let mut b = std::fs::read(&path).unwrap();
    b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, b).unwrap();
    let err = Index::open_with(
        dir.path(),
        tessera_index::OpenOptions {
            verify_checksums: false,
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("centroid id"), "{err}");
}
