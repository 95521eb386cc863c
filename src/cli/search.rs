use std::time::Instant;

use crate::cli::SearchArgs;
use crate::search::Searcher;
use crate::Result;

pub(super) fn run(args: SearchArgs) -> Result<()> {
    // The HTTP API refuses a blank query too (`empty_query`); both say the same.
    if args.query.trim().is_empty() && args.query_vectors.is_none() {
        return Err(crate::Error::Usage("query text is blank".into()));
    }
    if args.query_vectors.is_some() && (args.explain || args.explain_id.is_some()) {
        return Err(crate::Error::Usage(
            "--explain re-encodes the query text; it cannot explain --query-vectors".into(),
        ));
    }
    let searcher = Searcher::open(&args.index, args.model.as_deref(), args.device)?;
    if let Some(id) = &args.explain_id {
        let e = searcher.explain(&args.query, id)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&e).expect("serialises"));
        } else {
            print_explanation(&e);
        }
        return Ok(());
    }
    let t = Instant::now();
    let params = args.params.params(args.k as usize)?;
    let filter = args.params.filter(&searcher)?;
    searcher.index().check_mode(&args.mode)?;
    let (hits, plan) = match &args.query_vectors {
        Some(path) => {
            let dim = searcher.index().dim();
            let rows = crate::pipeline::vectors::read_matrix(path, dim)?;
            let view = tessera_index::store::MultiVectorRef::new(&rows, dim);
            tessera_index::search::check_query_vectors(view)
                .map_err(|e| crate::Error::Usage(format!("{}: {e}", path.display())))?;
            let query = tessera_index::Query {
                vectors: Some(view),
                sparse: None,
                text: (!args.query.trim().is_empty()).then_some(args.query.as_str()),
                filter: filter.as_ref(),
            };
            searcher.search_planned(&query, args.k as usize, &args.mode, &params)?
        }
        None => {
            let encoded = searcher.encode_query(&args.query)?;
            searcher.search_planned(
                &encoded.filtered(filter.as_ref()),
                args.k as usize,
                &args.mode,
                &params,
            )?
        }
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let index = searcher.index();
    let fields = |h: &crate::search::SearchHit| -> Result<Option<serde_json::Value>> {
        if !args.include_fields {
            return Ok(None);
        }
        Ok(Some(serde_json::Value::Object(index.fields(h.addr)?)))
    };
    if args.json {
        let mut results = Vec::with_capacity(hits.len());
        for (i, h) in hits.iter().enumerate() {
            let mut r = serde_json::json!({"rank": i + 1, "id": h.id, "score": h.score});
            if let Some(text) = index.text(h.addr) {
                r["text"] = text.into();
            }
            if let Some(f) = fields(h)? {
                r["fields"] = f;
            }
            if args.explain {
                r["explanation"] = serde_json::to_value(searcher.explain(&args.query, &h.id)?)
                    .expect("serialises");
            }
            results.push(r);
        }
        let mut out = serde_json::json!({
            "query": args.query,
            "mode": args.mode.to_string(),
            "k": args.k,
            "latency_ms": ms,
            "results": results,
        });
        if plan.filtered {
            out["plan"] = serde_json::to_value(&plan).expect("serialises");
        }
        if index.scores_are_approximate(&args.mode) {
            out["approximate"] = true.into();
        }
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
            if let Some(f) = fields(h)? {
                println!("{:>17}{f}", "");
            }
            if args.explain {
                print_explanation(&searcher.explain(&args.query, &h.id)?);
            }
        }
        if plan.filtered {
            eprintln!(
                "filter: {} of {} documents allowed ({:.2} ms){}",
                plan.allowed_docs,
                plan.live_docs,
                plan.filter_ms,
                if plan.exact {
                    format!("; ran {} (exact over the allowed documents)", plan.mode)
                } else {
                    String::new()
                }
            );
        }
        if index.scores_are_approximate(&args.mode) {
            eprintln!(
                "scores are approximate: the index keeps its vectors as {} (--store), not f16",
                index.store_kind().as_str()
            );
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

/// One line per query token: its text, the document tokens its best vector stands for,
/// the similarity; then the sum against the exact score.
fn print_explanation(e: &crate::search::Explanation) {
    for q in &e.query_tokens {
        let v = &e.document_vectors[q.matched_vector];
        let matched: Vec<String> = v
            .tokens
            .iter()
            .map(|t| match (&t.text, t.chars) {
                (Some(text), Some(c)) => format!("{text:?}@{}..{}", c.start, c.end),
                _ => t.token.clone(),
            })
            .collect();
        println!(
            "{:>17}{:<16} -> {:<40} {:>7.4}",
            "",
            q.token,
            matched.join(" "),
            q.similarity
        );
    }
    println!(
        "{:>17}sum {:.4} = MaxSim {:.4} ({}; pooling {})",
        "", e.sum_of_similarities, e.score, e.id, e.pooling
    );
}
