use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tessera_index::Index;

use crate::cli::index::{index_job, print_report, report_skip};
use crate::cli::EvalArgs;
use crate::encoder::ColbertEncoder;
use crate::eval::{self, BeirDataset, EvalOptions};
use crate::pipeline;
use crate::search::Searcher;
use crate::Result;

pub(super) fn run(args: EvalArgs, progress: bool) -> Result<()> {
    let dataset = BeirDataset::load(&args.dataset, &args.split)?;
    let searcher = match &args.index {
        Some(dir) => {
            // Without --model, the model recorded in the index is used.
            Searcher::open(dir, args.model.model.as_deref(), args.model.device)?
        }
        None => cached_index(&args, &dataset, progress)?,
    };
    let options = EvalOptions {
        mode: args.mode.clone(),
        metrics: args.metrics.clone(),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        progress,
    };
    let (report, run) = eval::run_eval(&dataset, &searcher, &options)?;
    if let Some(path) = &args.run_file {
        eval::run::write_trec(path, &run, &format!("tessera-{}", report.mode))?;
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

/// Build the dataset's index in the cache directory, or reuse one built from the same
/// corpus file with the same model and settings.
fn cached_index(args: &EvalArgs, dataset: &BeirDataset, progress: bool) -> Result<Searcher> {
    let encoder = ColbertEncoder::load(
        &args.model.model_dir(),
        &args.model.load_options(),
        args.model.device,
    )?;
    let dir = cache_root(args.cache_dir.as_deref()).join(format!(
        "{}-{}",
        dataset.name,
        cache_key(args, dataset, &encoder)
    ));
    if !args.rebuild {
        if let Ok(index) = Index::open(&dir) {
            eprintln!("using cached index {}", dir.display());
            return Searcher::with_encoder(index, encoder);
        }
    }
    eprintln!("building index {} (cached for later runs)", dir.display());
    let job = index_job(&dataset.corpus, &dir, &args.corpus_args, progress);
    let (_, report) = pipeline::build_index(&encoder, &job, report_skip)?;
    print_report(&report, &dir);
    Searcher::with_encoder(Index::open(&dir)?, encoder)
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
    h.update(serde_json::to_vec(encoder.settings()).expect("settings serialise"));
    let c = &args.corpus_args;
    h.update(
        format!(
            "{}|{:?}|{}|{:?}",
            c.id_field, c.text_fields, c.skip_malformed, c.limit
        )
        .as_bytes(),
    );
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
