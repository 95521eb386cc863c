use std::time::Instant;

use crate::cli::SearchArgs;
use crate::search::Searcher;
use crate::Result;

pub(super) fn run(args: SearchArgs) -> Result<()> {
    let searcher = Searcher::open(&args.index, args.model.as_deref(), args.device)?;
    let t = Instant::now();
    let params = args.params.params(args.k as usize);
    let hits = searcher.search(&args.query, args.k as usize, &args.mode, &params)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let results: Vec<_> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| serde_json::json!({"rank": i + 1, "id": h.id, "score": h.score}))
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
            println!("{:>4}  {:>9.4}  {}", i + 1, h.score, h.id);
        }
        eprintln!(
            "{} results in {ms:.1} ms (query encoding included)",
            hits.len()
        );
    }
    Ok(())
}
