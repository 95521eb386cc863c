use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tessera_index::{Component, Index, PlaidParams};

use crate::cli::index::{index_config, index_job, print_report, report_skip, splade_encoder};
use crate::cli::EvalArgs;
use crate::encoder::ColbertEncoder;
use crate::eval::{self, BeirDataset, EvalOptions};
use crate::pipeline;
use crate::search::Searcher;
use crate::Result;

pub(super) fn run(args: EvalArgs, progress: bool) -> Result<()> {
    let (dataset, searcher) = match (&args.query_vectors, &args.index, &args.dataset) {
        (Some(qdir), Some(dir), judged) => {
            let searcher = Searcher::open(dir, args.model.model.as_deref(), args.model.device)?;
            let queries = pipeline::vectors::VectorsDir::open(qdir, Some(searcher.index().dim()))?;
            let rows = queries.read_all()?;
            let judged = judged.as_deref().map(|d| (d, args.split.as_str()));
            (
                BeirDataset::from_query_vectors(&queries, rows, judged)?,
                searcher,
            )
        }
        (_, index, dataset) => {
            let dataset = BeirDataset::load(
                dataset
                    .as_deref()
                    .expect("clap requires DATASET without --query-vectors"),
                &args.split,
            )?;
            let searcher = match index {
                // Without --model, the model recorded in the index is used.
                Some(dir) => Searcher::open(dir, args.model.model.as_deref(), args.model.device)?,
                None => cached_index(&args, &dataset, progress)?,
            };
            (dataset, searcher)
        }
    };
    let k = args.metrics.iter().map(|m| m.cutoff()).max().unwrap_or(100);
    let filter = match (args.params.filter(&searcher)?, args.filter_selectivity) {
        (Some(_), Some(_)) => {
            return Err(crate::Error::Usage(
                "--filter and --filter-selectivity cannot be combined".into(),
            ))
        }
        (Some(f), None) => Some(f),
        (None, Some(share)) => Some(random_filter(searcher.index(), share)?),
        (None, None) => None,
    };
    let options = EvalOptions {
        filter,
        mode: args.mode.clone(),
        params: args.params.params(k)?,
        compare_exhaustive: args.compare_exhaustive,
        stage_recall: args.stage_recall,
        metrics: args.metrics.clone(),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        progress,
        reference: match &args.reference_run {
            Some(path) => Some(eval::run::read_trec(path)?),
            None => None,
        },
    };
    if args.compare.is_some() && !args.metrics.iter().any(|m| m.to_string() == "ndcg@10") {
        return Err(crate::Error::Usage(
            "--compare plots per-query nDCG@10: add ndcg@10 to --metrics".into(),
        ));
    }
    if args.sweep {
        return sweep(&args, &dataset, &searcher, &options, k);
    }
    if args.muvera_curve {
        return muvera_curve(&args, &dataset, &searcher, &options, k);
    }
    let (mut report, run) = eval::run_eval(&dataset, &searcher, &options)?;
    if let (Some(path), Some(reference)) = (&args.reference_run, &options.reference) {
        report.vs_reference = Some(eval::VsReference {
            file: path.clone(),
            share_at_k: eval::share_of_reference(&run, reference, k),
            k,
            share_at_10: eval::share_of_reference(&run, reference, k.min(10)),
        });
    }
    if let Some(path) = &args.run_file {
        eval::run::write_trec(path, &run, &format!("tessera-{}", report.mode))?;
    }
    if let Some(path) = &args.report {
        write_report(path, &args, &dataset, &searcher, &options, &report, None)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// `--filter-selectivity`: a filter admitting a seeded random `share` of the live
/// documents (`has_id` over ids drawn uniformly), so filtered search can be measured on
/// any index, one without fields too.
fn random_filter(index: &Index, share: f64) -> Result<tessera_index::Filter> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    if !(share > 0.0 && share <= 1.0) {
        return Err(crate::Error::Usage(format!(
            "--filter-selectivity must be in (0, 1], got {share}"
        )));
    }
    let mut ids: Vec<&str> = index.live_docs().map(|a| index.doc_id(a)).collect();
    ids.sort_unstable();
    let take = ((ids.len() as f64 * share).round() as usize).max(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    ids.shuffle(&mut rng);
    ids.truncate(take);
    let value = serde_json::json!({"must": [{"has_id": ids}]});
    tessera_index::Filter::parse(&value, &index.manifest().settings.fields, "filter")
        .map_err(|e| crate::Error::Filter(e.to_string()))
}

/// The PLAID latency/recall curve: a grid around the defaults for k, each setting run
/// on the same encoded queries and compared with exhaustive search in this process.
fn sweep(
    args: &EvalArgs,
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
    k: usize,
) -> Result<()> {
    let grid = match &args.sweep_grid {
        Some(spec) => sweep_grid(spec, k)?,
        None => sweep_grid(DEFAULT_SWEEP, k)?,
    };
    let (rows, exhaustive) = eval::run_sweep(dataset, searcher, options, &grid)?;
    if let Some(path) = &args.report {
        // The report's metrics and histogram come from the main mode, run beside the sweep.
        let (report, _) = eval::run_eval(dataset, searcher, options)?;
        write_report(
            path,
            args,
            dataset,
            searcher,
            options,
            &report,
            Some((&rows, exhaustive)),
        )?;
    }
    if args.json {
        let out = serde_json::json!({
            "dataset": dataset.name, "split": dataset.split, "k": k, "threads": options.threads,
            "exhaustive_latency_ms": exhaustive, "rows": rows,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialises")
        );
        return Ok(());
    }
    println!(
        "PLAID sweep on {} ({} queries, k={k}, {} thread(s)); exhaustive p50 {:.2} ms, p95 {:.2} ms",
        dataset.name,
        dataset.queries.len(),
        options.threads,
        exhaustive.p50,
        exhaustive.p95
    );
    println!(
        "{:>6} {:>9} {:>6} {:>6} {:>6} {:>9} {:>10} {:>8} {:>10} {:>9} {:>9} {:>8}",
        "ncells",
        "threshold",
        "ndocs",
        "margin",
        "exact",
        "top10 ex",
        "R@k vs ex",
        "nDCG@10",
        "Recall@100",
        "p50 ms",
        "p95 ms",
        "speedup"
    );
    let with_reference = rows.iter().any(|r| r.share_vs_reference.is_some());
    for r in rows {
        let reference = match (r.share_at_10_vs_reference, r.share_vs_reference) {
            (Some(a), Some(b)) => format!(" · vs reference top10 {a:.4}, top-k {b:.4}"),
            _ => String::new(),
        };
        let rescore = match r.params.rescore {
            tessera_index::Rescore::Exact => "",
            tessera_index::Rescore::Decompressed => " (decompressed)",
        };
        let rescore = match r.params.table {
            tessera_index::ScoreTable::Auto => rescore.to_string(),
            tessera_index::ScoreTable::F32 => format!("{rescore} (f32 table)"),
            tessera_index::ScoreTable::Int8 => format!("{rescore} (int8 table)"),
        };
        let (margin, exact) = match r.params.refine_margin {
            Some(m) => (format!("{m}"), format!("{}", r.params.exact_docs.max(k))),
            None => (
                "off".to_string(),
                format!("{}", (r.params.ndocs / 4).max(k)),
            ),
        };
        println!(
            "{:>6} {:>9.2} {:>6} {:>6} {:>6} {:>9.4} {:>10.4} {:>8.4} {:>10.4} {:>9.2} {:>9.2} {:>7.1}x{rescore}",
            r.params.ncells,
            r.params.centroid_score_threshold,
            r.params.ndocs,
            margin,
            exact,
            r.recall_at_10_vs_exhaustive,
            r.recall_vs_exhaustive,
            r.metrics.get("ndcg@10").copied().unwrap_or(f64::NAN),
            r.metrics.get("recall@100").copied().unwrap_or(f64::NAN),
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.speedup_p50
        );
        if with_reference {
            println!("{:>6}{reference}", "");
        }
    }
    Ok(())
}

/// `--report`: the HTML file, with `--compare`'s mode evaluated in the same run.
fn write_report(
    path: &Path,
    args: &EvalArgs,
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
    report: &eval::EvalReport,
    sweep: Option<(&[eval::SweepRow], eval::Latency)>,
) -> Result<()> {
    let compare = match &args.compare {
        Some(mode) => {
            let other = EvalOptions {
                mode: mode.clone(),
                ..options.clone()
            };
            Some(eval::run_eval(dataset, searcher, &other)?.0)
        }
        None => None,
    };
    let extras = eval::report::ReportExtras {
        sweep,
        compare: compare.as_ref(),
    };
    eval::report::write_html(path, report, &extras)?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// The grid `--sweep` runs without `--sweep-grid`: 27 settings around the defaults.
const DEFAULT_SWEEP: &str = "ncells=1,2,4;threshold=0.5,0.45,0.4;ndocs=256,1024,4096;margin=off";

/// `key=v1,v2;key=...` (keys ncells, threshold, ndocs, margin, exact_docs, rescore, table; margin `off`
/// means no refinement) as the cartesian product of PLAID settings; a key left out keeps
/// the default for k.
fn sweep_grid(spec: &str, k: usize) -> Result<Vec<PlaidParams>> {
    let bad = |msg: String| crate::Error::Usage(format!("--sweep-grid {spec:?}: {msg}"));
    let mut grid = vec![PlaidParams::for_k(k)];
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, values) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=v1,v2,...")))?;
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        let mut next = Vec::new();
        for p in &grid {
            for v in &values {
                let num = |what: &str| -> Result<f64> {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad(format!("{key} value {v:?} is not {what}")))
                };
                let mut p = *p;
                match key.trim() {
                    "ncells" => p.ncells = num("a number")?.max(1.0) as usize,
                    "threshold" => p.centroid_score_threshold = num("a number")? as f32,
                    "ndocs" => p.ndocs = num("a number")?.max(1.0) as usize,
                    "exact_docs" => p.exact_docs = num("a number")?.max(1.0) as usize,
                    "rescore" if *v == "exact" => p.rescore = tessera_index::Rescore::Exact,
                    "rescore" if *v == "decompressed" => {
                        p.rescore = tessera_index::Rescore::Decompressed
                    }
                    "rescore" => return Err(bad(format!("rescore {v:?} is not exact or decompressed"))),
                    "table" => {
                        p.table = match *v {
                            "auto" => tessera_index::ScoreTable::Auto,
                            "f32" => tessera_index::ScoreTable::F32,
                            "int8" => tessera_index::ScoreTable::Int8,
                            _ => return Err(bad(format!("table {v:?} is not auto, f32 or int8"))),
                        }
                    }
                    "margin" if *v == "off" => p.refine_margin = None,
                    "margin" => p.refine_margin = Some(num("a number or off")? as f32),
                    other => {
                        return Err(bad(format!(
                            "unknown key {other:?}: expected ncells, threshold, ndocs, margin, exact_docs, rescore or table"
                        )))
                    }
                }
                next.push(p);
            }
        }
        grid = next;
    }
    Ok(grid)
}

/// MUVERA's recall-vs-candidates curve beside the single-vector baseline.
fn muvera_curve(
    args: &EvalArgs,
    dataset: &BeirDataset,
    searcher: &Searcher,
    options: &EvalOptions,
    k: usize,
) -> Result<()> {
    let counts = [100, 200, 500, 1000, 2000];
    let (rows, exhaustive, baseline_seconds, correlation) =
        eval::run_muvera_curve(dataset, searcher, options, &counts)?;
    if args.json {
        let out = serde_json::json!({
            "dataset": dataset.name, "split": dataset.split, "k": k, "threads": options.threads,
            "exhaustive_latency_ms": exhaustive, "single_vector_build_seconds": baseline_seconds,
            "fde_maxsim_correlation": correlation, "rows": rows,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialises")
        );
        return Ok(());
    }
    println!(
        "MUVERA curve on {} ({} queries, k={k}, {} thread(s)); exhaustive p50 {:.2} ms, p95 {:.2} ms",
        dataset.name,
        dataset.queries.len(),
        options.threads,
        exhaustive.p50,
        exhaustive.p95
    );
    println!(
        "FDE dot vs exact MaxSim over {} random (query, document) pairs: Pearson {:.4}; mean per-query Pearson {:.4}",
        correlation.pairs, correlation.pearson, correlation.mean_per_query_pearson
    );
    println!(
        "{:>14} {:>10} {:>10} {:>8} {:>10} {:>9} {:>9} {:>8}",
        "method", "candidates", "R@k vs ex", "nDCG@10", "Recall@100", "p50 ms", "p95 ms", "speedup"
    );
    for r in rows {
        println!(
            "{:>14} {:>10} {:>10.4} {:>8.4} {:>10.4} {:>9.2} {:>9.2} {:>7.1}x",
            r.method,
            r.candidates,
            r.recall_vs_exhaustive,
            r.metrics.get("ndcg@10").copied().unwrap_or(f64::NAN),
            r.metrics.get("recall@100").copied().unwrap_or(f64::NAN),
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.speedup_p50
        );
    }
    Ok(())
}

/// Build the dataset's index in the cache directory, or reuse one built from the same
/// corpus file with the same model and settings.
fn cached_index(args: &EvalArgs, dataset: &BeirDataset, progress: bool) -> Result<Searcher> {
    let encoder = ColbertEncoder::load(
        &args.model.model_dir(),
        &args.model.load_options(),
        args.model.device,
    )?;
    let components = components(args);
    let splade = splade_encoder(&components, &args.splade, args.model.device)?;
    let dir = cache_root(args.cache_dir.as_deref()).join(format!(
        "{}-{}",
        dataset.name,
        cache_key(args, dataset, &encoder)
    ));
    if !args.rebuild {
        if let Ok(index) = Index::open(&dir) {
            let have = index.components();
            if components.iter().all(|c| have.contains(c)) {
                eprintln!("using cached index {}", dir.display());
                return Searcher::with_encoders(index, encoder, splade);
            }
            eprintln!(
                "cached index {} lacks some of {}; rebuilding",
                dir.display(),
                Component::list(&components)
            );
        }
    }
    eprintln!("building index {} (cached for later runs)", dir.display());
    let job = index_job(
        &dataset.corpus,
        &dir,
        &args.corpus_args,
        &args.pooling,
        index_config(
            &components,
            &dir,
            &args.plaid,
            &args.muvera,
            splade.as_ref(),
            !args.corpus_args.no_store_text,
            &args.corpus_args.fields,
            crate::corpus::count_lines(&dataset.corpus).ok(),
        )?,
        progress,
    );
    let (_, report) = pipeline::build_index(&encoder, splade.as_ref(), &job, report_skip)?;
    print_report(&report, &dir);
    Searcher::with_encoders(Index::open(&dir)?, encoder, splade)
}

/// `--components` plus whatever `--mode` (or `--sweep`) needs.
fn components(args: &EvalArgs) -> Vec<Component> {
    let mut c = args.components.clone();
    c.extend(args.mode.stages.iter().map(|s| s.component()));
    if args.sweep {
        c.push(Component::Plaid);
    }
    if args.muvera_curve {
        c.push(Component::Muvera);
    }
    c.sort();
    c.dedup();
    c
}

fn cache_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("tessera");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("tessera"),
        None => PathBuf::from(".tessera-cache"),
    }
}

/// Identifies corpus (path, size, mtime), model weights, encoder and corpus settings.
fn cache_key(args: &EvalArgs, dataset: &BeirDataset, encoder: &ColbertEncoder) -> String {
    let mut h = Sha256::new();
    let corpus = dataset
        .corpus
        .canonicalize()
        .unwrap_or_else(|_| dataset.corpus.clone());
    h.update(corpus.to_string_lossy().as_bytes());
    if let Ok(meta) = std::fs::metadata(&corpus) {
        h.update(meta.len().to_le_bytes());
        if let Ok(m) = meta.modified() {
            h.update(format!("{m:?}").as_bytes());
        }
    }
    h.update(encoder.weights_sha256().as_bytes());
    if components(args).contains(&Component::Splade) {
        h.update(format!("{:?}", args.splade).as_bytes());
    }
    h.update(serde_json::to_vec(encoder.settings()).expect("settings serialise"));
    let c = &args.corpus_args;
    h.update(
        format!(
            "{}|{:?}|{}|{:?}|{}",
            c.id_field, c.text_fields, c.skip_malformed, c.limit, c.no_store_text
        )
        .as_bytes(),
    );
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
