use tessera_index::IndexConfig;

use crate::cli::{CorpusArgs, IndexArgs, MuveraBuildArgs, PlaidBuildArgs, PoolingArgs};
use crate::corpus::{CorpusFormat, OnMalformed};
use crate::encoder::ColbertEncoder;
use crate::pipeline::{self, BuildReport, IndexJob};
use crate::{Error, Result};
use std::path::Path;

/// Components `tessera index --components` accepts today.
const BUILDABLE: &[&str] = &["store", "plaid", "muvera"];

/// Validate `--components` into the writer's config.
pub(super) fn index_config(
    components: &[String],
    out: &Path,
    plaid: &PlaidBuildArgs,
    muvera: &MuveraBuildArgs,
) -> Result<IndexConfig> {
    for c in components {
        if !BUILDABLE.contains(&c.as_str()) {
            return Err(Error::IndexMetadata {
                index: out.to_path_buf(),
                reason: format!(
                    "component {c:?} cannot be built by this version (buildable: {})",
                    BUILDABLE.join(",")
                ),
            });
        }
    }
    Ok(IndexConfig {
        plaid: components
            .iter()
            .any(|c| c == "plaid")
            .then(|| plaid.config()),
        muvera: components
            .iter()
            .any(|c| c == "muvera")
            .then(|| muvera.config()),
    })
}

pub(super) fn run(args: IndexArgs, progress: bool) -> Result<()> {
    let config = index_config(&args.components, &args.out, &args.plaid, &args.muvera)?;
    let encoder = ColbertEncoder::load(
        &args.model.model_dir(),
        &args.model.load_options(),
        args.model.device,
    )?;
    let job = index_job(
        &args.corpus,
        &args.out,
        &args.corpus_args,
        &args.pooling,
        config,
        progress,
    );
    let (_, report) = pipeline::build_index(&encoder, &job, report_skip)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print_report(&report, &args.out);
    }
    Ok(())
}

pub(super) fn index_job(
    corpus: &Path,
    out: &Path,
    c: &CorpusArgs,
    pooling: &PoolingArgs,
    components: IndexConfig,
    progress: bool,
) -> IndexJob {
    IndexJob {
        corpus: corpus.to_path_buf(),
        out: out.to_path_buf(),
        format: CorpusFormat {
            id_field: c.id_field.clone(),
            text_fields: c.text_fields.clone(),
        },
        on_malformed: if c.skip_malformed {
            OnMalformed::Skip
        } else {
            OnMalformed::Fail
        },
        limit: c.limit,
        progress,
        pooling: pooling.pooling(),
        components,
    }
}

pub(super) fn report_skip(path: &std::path::Path, s: &crate::corpus::Skipped) {
    eprintln!(
        "warning: {}:{}: skipped: {}",
        path.display(),
        s.line,
        s.reason
    );
}

pub(super) fn print_report(r: &BuildReport, out: &std::path::Path) {
    eprintln!(
        "indexed {} documents ({} vectors{}) into {} in {:.1} s{}\n  encoding {:.1} docs/s, {:.0} tokens/s\n  {:.1} MB on disk, {:.1} bytes/vector{}",
        r.num_docs,
        r.num_vectors,
        if r.vectors_before_pooling != r.num_vectors {
            format!(", pooled from {}", r.vectors_before_pooling)
        } else {
            String::new()
        },
        out.display(),
        r.build_seconds,
        if r.components_seconds >= 0.05 {
            format!(" ({:.1} s of it building PLAID/MUVERA)", r.components_seconds)
        } else {
            String::new()
        },
        r.encode_docs_per_s,
        r.encode_tokens_per_s,
        r.index_bytes.unwrap_or(0) as f64 / 1e6,
        r.bytes_per_vector.unwrap_or(0.0),
        if r.skipped_lines > 0 {
            format!("\n  {} malformed lines skipped", r.skipped_lines)
        } else {
            String::new()
        }
    );
}
