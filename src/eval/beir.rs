//! BEIR dataset layout: `corpus.jsonl`, `queries.jsonl` (`_id`, `text`), `qrels/<split>.tsv`
//! (`query-id \t corpus-id \t score`, one header line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::metrics::Qrels;
use super::EvalError;

/// A BEIR dataset's queries and judgements for one split.
#[derive(Debug, Clone)]
pub struct BeirDataset {
    pub dir: PathBuf,
    pub name: String,
    pub split: String,
    pub corpus: PathBuf,
    /// Queries that have judgements in this split, in qrels order of first appearance.
    pub queries: Vec<(String, String)>,
    pub qrels: Qrels,
    /// Pre-encoded query vectors (`eval --query-vectors`), one `[n, dim]` row-major
    /// matrix per query of `queries`: searched as they are, nothing encoded.
    pub query_vectors: Option<Vec<Vec<f32>>>,
}

impl BeirDataset {
    pub fn load(dir: &Path, split: &str) -> Result<Self, EvalError> {
        let corpus = dir.join("corpus.jsonl");
        if !corpus.is_file() {
            return Err(EvalError::Dataset {
                path: corpus,
                reason:
                    "missing (a BEIR dataset directory holds corpus.jsonl, queries.jsonl, qrels/)"
                        .into(),
            });
        }
        let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
        let (qrels, order) = read_qrels(&qrels_path)?;
        let texts = read_queries(&dir.join("queries.jsonl"))?;
        let mut queries = Vec::with_capacity(order.len());
        for qid in order {
            match texts.get(&qid) {
                Some(t) => queries.push((qid, t.clone())),
                None => {
                    return Err(EvalError::Dataset {
                        path: qrels_path,
                        reason: format!("query {qid:?} is judged but missing from queries.jsonl"),
                    })
                }
            }
        }
        let name = dataset_name(dir);
        Ok(BeirDataset {
            dir: dir.to_path_buf(),
            name,
            split: split.to_string(),
            corpus,
            queries,
            qrels,
            query_vectors: None,
        })
    }

    /// The queries of a pre-encoded vectors directory (`vectors.npy`, `offsets.npy`,
    /// `ids.txt`, optionally `texts.jsonl`), judged by `qrels` when given (queries
    /// without judgements are then left out), by nothing otherwise (only comparisons
    /// with exhaustive search and latency are measured).
    pub fn from_query_vectors(
        queries: &crate::pipeline::vectors::VectorsDir,
        rows: Vec<Vec<f32>>,
        qrels: Option<(&Path, &str)>,
    ) -> Result<Self, EvalError> {
        let (qrels, name, split, dir) = match qrels {
            Some((dir, split)) => {
                let (q, _) = read_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?;
                (
                    Some(q),
                    dataset_name(dir),
                    split.to_string(),
                    dir.to_path_buf(),
                )
            }
            None => (
                None,
                "query-vectors".to_string(),
                "-".to_string(),
                PathBuf::new(),
            ),
        };
        let mut kept = Vec::new();
        let mut vectors = Vec::new();
        for (id, rows) in queries.ids.iter().zip(rows) {
            if qrels.as_ref().is_some_and(|q| !q.contains_key(id)) {
                continue;
            }
            let text = queries
                .texts
                .as_ref()
                .and_then(|t| t.get(id).cloned())
                .unwrap_or_default();
            kept.push((id.clone(), text));
            vectors.push(rows);
        }
        Ok(BeirDataset {
            corpus: dir.join("corpus.jsonl"),
            dir,
            name,
            split,
            queries: kept,
            qrels: qrels.unwrap_or_default(),
            query_vectors: Some(vectors),
        })
    }
}

/// A dataset's name: its directory's (canonical) last component.
fn dataset_name(dir: &Path) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Qrels and the query ids in order of first appearance.
pub fn read_qrels(path: &Path) -> Result<(Qrels, Vec<String>), EvalError> {
    let text = read(path)?;
    let mut qrels: Qrels = HashMap::new();
    let mut order = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if line.trim().is_empty() {
            continue;
        }
        if i == 0
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("query-id"))
        {
            continue;
        }
        let bad = |reason: String| EvalError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        // BEIR: qid, docid, score. TREC qrels: qid, 0, docid, score.
        let (qid, did, score) = match fields.as_slice() {
            [q, d, s] => (*q, *d, *s),
            [q, _, d, s] => (*q, *d, *s),
            _ => {
                return Err(bad(format!(
                    "expected 3 tab-separated fields, found {}",
                    fields.len()
                )))
            }
        };
        let score: i32 = score
            .parse()
            .map_err(|_| bad(format!("relevance {score:?} is not an integer")))?;
        if !qrels.contains_key(qid) {
            order.push(qid.to_string());
        }
        qrels
            .entry(qid.to_string())
            .or_default()
            .insert(did.to_string(), score);
    }
    Ok((qrels, order))
}

fn read_queries(path: &Path) -> Result<HashMap<String, String>, EvalError> {
    let text = read(path)?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| EvalError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let id = match v.get("_id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(bad("missing string field \"_id\"".into())),
        };
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing string field \"text\"".into()))?;
        out.insert(id, text.to_string());
    }
    Ok(out)
}
