use std::time::Instant;

use crate::cli::SearchArgs;
use crate::search::Searcher;
use crate::Result;

pub(super) fn run(args: SearchArgs) -> Result<()> {
    // The HTTP API refuses a blank query too (`empty_query`); both say the same.
    if args.query.trim().is_empty() {
        return Err(crate::Error::Usage("query text is blank".into()));
    }
    let searcher = Searcher::open(&args.index, args.model.as_deref(), args.device)?;
    let t = Instant::now();
    let params = args.params.params(args.k as usize)?;
    let hits = searcher.search(&args.query, args.k as usize, &args.mode, &params)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let index = searcher.index();
    if args.json {
        let results: Vec<_> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| match index.text(h.addr) {
                Some(text) => {
                    serde_json::json!({"rank": i + 1, "id": h.id, "score": h.score, "text": text})
                }
                None => serde_json::json!({"rank": i + 1, "id": h.id, "score": h.score}),
            })
            .collect();
        let out = serde_json::json!({
            "query": args.query,
            "mode": args.mode.to_string(),
            "k": args.k,
            "latency_ms": ms,
            "results": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialises")
        );
    } else {
        println!("{:>4}  {:>9}  id", "rank", "score");
        for (i, h) in hits.iter().enumerate() {
            match index.text(h.addr) {
                Some(text) => println!(
                    "{:>4}  {:>9.4}  {}  {}",
                    i + 1,
                    h.score,
                    h.id,
                    snippet(text, 80)
                ),
                None => println!("{:>4}  {:>9.4}  {}", i + 1, h.score, h.id),
            }
        }
        eprintln!(
            "{} results in {ms:.1} ms (query encoding included)",
            hits.len()
        );
    }
    Ok(())
}

/// The first `max` characters of `text` on one line, with an ellipsis when cut.
fn snippet(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}
