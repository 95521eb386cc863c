//! SPLADE search: MaxScore (term at a time) against exhaustive sparse scoring, on
//! synthetic SPLADE-like collections of growing size.
//!
//! What: documents draw most of their terms from two of 500 topics (200 terms each) and
//! the rest from a Zipf background over a 30,522-term vocabulary, ~250 terms each (SciFact
//! with SPLADE-tiny averages 248); queries draw ~50 terms (SciFact: 52), mostly from one
//! topic. Weights are uniform in (0, 2.5], the range of `log(1 + relu(logit))`. The
//! baseline in the same process is exhaustive term-at-a-time scoring over the same
//! postings; both return identical rankings (checked here on every query).
//!
//! Run: `cargo bench --bench sparse` (prints mean latency, ratio, share of postings touched).

mod common;
use common::seconds_per_call;

use std::hint::black_box;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::{
    DocExtras, Index, IndexConfig, IndexWriter, ModelInfo, SparseConfig, SparseVector,
};

const VOCAB: u32 = 30_522;
const TOPICS: usize = 500;
const TOPIC_TERMS: usize = 200;

struct Generator {
    rng: ChaCha8Rng,
    topics: Vec<Vec<u32>>,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let topics = (0..TOPICS)
            .map(|_| (0..TOPIC_TERMS).map(|_| rng.gen_range(0..VOCAB)).collect())
            .collect();
        Generator { rng, topics }
    }

    fn background(&mut self) -> u32 {
        // Zipf-like: low term ids are common.
        ((self.rng.gen_range(0.0f64..1.0).powi(4)) * f64::from(VOCAB)) as u32 % VOCAB
    }

    fn vector(&mut self, topics: &[usize], n: usize, on_topic: f64) -> SparseVector {
        let pairs = (0..n)
            .map(|_| {
                let t = if self.rng.gen_bool(on_topic) {
                    let topic = &self.topics[topics[self.rng.gen_range(0..topics.len())]];
                    topic[self.rng.gen_range(0..topic.len())]
                } else {
                    self.background()
                };
                (t, self.rng.gen_range(0.01f32..2.5))
            })
            .collect();
        SparseVector::from_pairs(pairs)
    }
}

fn build(dir: &std::path::Path, n_docs: usize, g: &mut Generator) -> Index {
    let model = ModelInfo {
        name: "synthetic".into(),
        dim: 1,
        weights_sha256: "-".into(),
        encoder: serde_json::Value::Null,
    };
    let config = IndexConfig {
        splade: Some(SparseConfig {
            vocab_size: VOCAB as usize,
            model: serde_json::Value::Null,
        }),
        ..IndexConfig::default()
    };
    let mut w = IndexWriter::create_with(dir, model, config).unwrap();
    for i in 0..n_docs {
        let topics = [g.rng.gen_range(0..TOPICS), g.rng.gen_range(0..TOPICS)];
        let v = g.vector(&topics, 300, 0.6);
        let extras = DocExtras {
            sparse: Some(&v),
            ..DocExtras::default()
        };
        w.add_with(&i.to_string(), &[1.0], extras).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    Index::open(dir).unwrap()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if bench {
        &[5_000, 50_000, 200_000]
    } else {
        &[2_000]
    };
    println!(
        "{:>8} {:>4} {:>12} {:>12} {:>8} {:>9} {:>9}",
        "docs", "k", "MaxScore us", "exhaust. us", "ratio", "touched", "postings"
    );
    for &n in sizes {
        let mut g = Generator::new(n as u64);
        let dir = tempfile::tempdir().unwrap();
        let index = build(dir.path(), n, &mut g);
        let splade = index.segment(0).splade().unwrap();
        let all = tessera_index::Allow::all();
        let queries: Vec<SparseVector> = (0..50)
            .map(|_| {
                let topic = [g.rng.gen_range(0..TOPICS)];
                g.vector(&topic, 60, 0.7)
            })
            .collect();
        for k in [10, 100] {
            let (mut touched, mut postings) = (0, 0);
            for q in &queries {
                let (fast, stats) = splade.search(q, k, &all);
                let (slow, _) = splade.search_exhaustive(q, k, &all);
                assert_eq!(fast, slow, "MaxScore must equal exhaustive scoring");
                touched += stats.touched;
                postings += stats.postings;
            }
            let iters = if bench { 5 } else { 1 };
            let fast = seconds_per_call(iters, || {
                for q in &queries {
                    black_box(splade.search(q, k, &all));
                }
            }) / queries.len() as f64;
            let slow = seconds_per_call(iters, || {
                for q in &queries {
                    black_box(splade.search_exhaustive(q, k, &all));
                }
            }) / queries.len() as f64;
            println!(
                "{:>8} {:>4} {:>12.1} {:>12.1} {:>7.2}x {:>8.1}% {:>9}",
                n,
                k,
                fast * 1e6,
                slow * 1e6,
                slow / fast,
                100.0 * touched as f64 / postings as f64,
                postings / queries.len()
            );
        }
    }
    if !bench {
        println!("bench smoke check: MaxScore equals exhaustive on every query");
    }
}
