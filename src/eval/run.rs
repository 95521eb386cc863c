//! TREC run files: `qid Q0 docid rank score tag`, one line per retrieved document.

use std::io::Write;
use std::path::Path;

use super::metrics::{trec_order, Run};
use super::EvalError;

/// Write `run` in TREC format, each ranking in trec_eval order with ranks from 1.
pub fn write_trec(path: &Path, run: &Run, tag: &str) -> Result<(), EvalError> {
    let io = |e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for (qid, ranking) in run {
        let mut ranking = ranking.clone();
        trec_order(&mut ranking);
        for (rank, (doc, score)) in ranking.iter().enumerate() {
            writeln!(out, "{qid} Q0 {doc} {} {score:.6} {tag}", rank + 1).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// Read a TREC run (ranks are ignored, as trec_eval ignores them).
pub fn read_trec(path: &Path) -> Result<Run, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut run = Run::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = |reason: String| EvalError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if f.len() != 6 {
            return Err(bad(format!("expected 6 fields, found {}", f.len())));
        }
        let score: f64 = f[4]
            .parse()
            .map_err(|_| bad(format!("score {:?} is not a number", f[4])))?;
        run.entry(f[0].to_string())
            .or_default()
            .push((f[2].to_string(), score));
    }
    Ok(run)
}
