//! IR metrics with trec_eval / pytrec_eval semantics (see DESIGN.md):
//! - a ranking is ordered by score descending, ties by document id descending
//!   (byte-wise), whatever order the run lists them in;
//! - a document is relevant when its judgement is > 0; nDCG gains are the judgements;
//! - only queries that have judgements *and* appear in the run are evaluated; the mean
//!   is over those.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// `qid -> docid -> relevance`.
pub type Qrels = HashMap<String, HashMap<String, i32>>;
/// `qid -> [(docid, score)]`, in any order.
pub type Run = BTreeMap<String, Vec<(String, f64)>>;

/// A metric at a cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Ndcg(usize),
    Recall(usize),
    Mrr(usize),
    Map(usize),
}

impl Metric {
    pub fn cutoff(self) -> usize {
        match self {
            Metric::Ndcg(k) | Metric::Recall(k) | Metric::Mrr(k) | Metric::Map(k) => k,
        }
    }

    /// The default report: nDCG@10, Recall@100, MRR@10, MAP@100.
    pub fn defaults() -> Vec<Metric> {
        vec![
            Metric::Ndcg(10),
            Metric::Recall(100),
            Metric::Mrr(10),
            Metric::Map(100),
        ]
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Ndcg(k) => write!(f, "ndcg@{k}"),
            Metric::Recall(k) => write!(f, "recall@{k}"),
            Metric::Mrr(k) => write!(f, "mrr@{k}"),
            Metric::Map(k) => write!(f, "map@{k}"),
        }
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("unknown metric {s:?}: expected ndcg@K, recall@K, mrr@K or map@K");
        let (name, k) = s.split_once('@').ok_or_else(err)?;
        let k: usize = k.parse().map_err(|_| err())?;
        if k == 0 {
            return Err(format!("metric {s:?}: cutoff must be positive"));
        }
        match name.to_ascii_lowercase().as_str() {
            "ndcg" => Ok(Metric::Ndcg(k)),
            "recall" => Ok(Metric::Recall(k)),
            "mrr" => Ok(Metric::Mrr(k)),
            "map" => Ok(Metric::Map(k)),
            _ => Err(err()),
        }
    }
}

/// Sort a ranking the way trec_eval reads it: score descending, then document id
/// descending. Input order does not matter.
pub fn trec_order(ranking: &mut [(String, f64)]) {
    ranking.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| b.0.as_bytes().cmp(a.0.as_bytes()))
    });
}

/// Per-query and mean values.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub num_queries: usize,
    pub mean: BTreeMap<String, f64>,
    #[serde(skip)]
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Evaluate `run` against `qrels`.
pub fn evaluate(run: &Run, qrels: &Qrels, metrics: &[Metric]) -> Evaluation {
    let mut per_query = BTreeMap::new();
    for (qid, ranking) in run {
        let Some(judged) = qrels.get(qid) else {
            continue;
        };
        let mut ranking = ranking.clone();
        trec_order(&mut ranking);
        let values = metrics
            .iter()
            .map(|m| (m.to_string(), metric_value(*m, &ranking, judged)))
            .collect();
        per_query.insert(qid.clone(), values);
    }
    let mut mean = BTreeMap::new();
    // No judged query (pre-encoded queries without qrels): no metric, rather than zeros.
    for m in metrics.iter().filter(|_| !per_query.is_empty()) {
        let name = m.to_string();
        let sum: f64 = per_query
            .values()
            .map(|v: &BTreeMap<String, f64>| v[&name])
            .sum();
        mean.insert(
            name,
            if per_query.is_empty() {
                0.0
            } else {
                sum / per_query.len() as f64
            },
        );
    }
    Evaluation {
        num_queries: per_query.len(),
        mean,
        per_query,
    }
}

fn relevance(judged: &HashMap<String, i32>, doc: &str) -> i32 {
    judged.get(doc).copied().unwrap_or(0)
}

fn metric_value(m: Metric, ranking: &[(String, f64)], judged: &HashMap<String, i32>) -> f64 {
    let k = m.cutoff();
    let top = &ranking[..ranking.len().min(k)];
    let num_rel = judged.values().filter(|&&r| r > 0).count();
    match m {
        Metric::Ndcg(_) => {
            let dcg: f64 = top
                .iter()
                .enumerate()
                .map(|(i, (d, _))| gain(relevance(judged, d)) / (i as f64 + 2.0).log2())
                .sum();
            let mut ideal: Vec<i32> = judged.values().copied().filter(|&r| r > 0).collect();
            ideal.sort_unstable_by(|a, b| b.cmp(a));
            let idcg: f64 = ideal
                .iter()
                .take(k)
                .enumerate()
                .map(|(i, &r)| gain(r) / (i as f64 + 2.0).log2())
                .sum();
            if idcg > 0.0 {
                dcg / idcg
            } else {
                0.0
            }
        }
        Metric::Recall(_) => {
            if num_rel == 0 {
                return 0.0;
            }
            let hits = top.iter().filter(|(d, _)| relevance(judged, d) > 0).count();
            hits as f64 / num_rel as f64
        }
        Metric::Mrr(_) => top
            .iter()
            .position(|(d, _)| relevance(judged, d) > 0)
            .map_or(0.0, |i| 1.0 / (i as f64 + 1.0)),
        Metric::Map(_) => {
            if num_rel == 0 {
                return 0.0;
            }
            let mut hits = 0;
            let mut sum = 0.0;
            for (i, (d, _)) in top.iter().enumerate() {
                if relevance(judged, d) > 0 {
                    hits += 1;
                    sum += hits as f64 / (i as f64 + 1.0);
                }
            }
            sum / num_rel as f64
        }
    }
}

/// trec_eval's nDCG gain is the judgement itself; negative judgements count as 0.
fn gain(rel: i32) -> f64 {
    rel.max(0) as f64
}
