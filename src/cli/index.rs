use tessera_index::{Component, IndexConfig, SparseConfig};

use crate::cli::{CorpusArgs, IndexArgs, MuveraBuildArgs, PlaidBuildArgs, PoolingArgs, SpladeArgs};
use crate::corpus::{CorpusFormat, OnMalformed};
use crate::encoder::{ColbertEncoder, DeviceSpec, SpladeEncoder};
use crate::pipeline::{self, BuildReport, IndexJob};
use crate::search::SpladeRecord;
use crate::{Error, Result};
use std::path::Path;

/// Validate `--components` into the writer's config; `splade` is the loaded SPLADE
/// encoder when the components include it (see [`splade_encoder`]); `docs`, when known,
/// sizes MUVERA's default FDE to the memory budget.
#[allow(clippy::too_many_arguments)]
pub(super) fn index_config(
    components: &[Component],
    out: &Path,
    plaid: &PlaidBuildArgs,
    muvera: &MuveraBuildArgs,
    splade: Option<&SpladeEncoder>,
    store_text: bool,
    fields: &[tessera_index::FieldDef],
    docs: Option<usize>,
) -> Result<IndexConfig> {
    if components.contains(&Component::Fields) {
        return Err(Error::Usage(
            "fields are not chosen with --components: declare them with --field NAME:TYPE".into(),
        ));
    }
    let fields = tessera_index::FieldSchema(fields.to_vec());
    fields.validate().map_err(Error::Usage)?;
    let has = |c: Component| components.contains(&c);
    if plaid.store == tessera_index::StoreKind::None && !has(Component::Plaid) {
        return Err(Error::Usage(
            "--store none keeps no vectors, so every score comes from PLAID's codes: \
             add plaid to --components"
                .into(),
        ));
    }
    if has(Component::Bm25) && !store_text {
        return Err(Error::IndexMetadata {
            index: out.to_path_buf(),
            reason: "bm25 keeps the documents' text (merging segments re-indexes it): \
                     --no-store-text cannot be combined with bm25"
                .into(),
        });
    }
    Ok(IndexConfig {
        plaid: has(Component::Plaid).then(|| plaid.config()),
        muvera: has(Component::Muvera).then(|| {
            let budget = plaid
                .memory_budget
                .unwrap_or_else(crate::cli::default_memory_budget);
            muvera.config_for(docs, budget)
        }),
        splade: splade.map(|s| SparseConfig {
            vocab_size: s.settings().vocab_size,
            model: SpladeRecord::of(s).to_value(),
        }),
        bm25: has(Component::Bm25),
        store_text,
        fields,
        store: plaid.store,
    })
}

/// Load the SPLADE model if `components` include splade.
pub(super) fn splade_encoder(
    components: &[Component],
    args: &SpladeArgs,
    device: DeviceSpec,
) -> Result<Option<SpladeEncoder>> {
    if !components.contains(&Component::Splade) {
        return Ok(None);
    }
    Ok(Some(SpladeEncoder::load(
        &args.model_dir(),
        &args.options(),
        device,
    )?))
}

pub(super) fn run(args: IndexArgs, progress: bool) -> Result<()> {
    let splade = splade_encoder(&args.components, &args.splade, args.model.device)?;
    // How many documents MUVERA's in-memory FDEs will be built for (its default final
    // dimension follows the memory budget): the corpus's lines, or the ids file's.
    let docs = if args.components.contains(&tessera_index::Component::Muvera) {
        let file = match (&args.vectors, &args.corpus) {
            (Some(dir), _) => Some(dir.join("ids.txt")),
            (None, Some(c)) => crate::corpus::resolve_corpus_path(c).ok(),
            _ => None,
        };
        file.and_then(|f| crate::corpus::count_lines(&f).ok())
            .map(|n| args.corpus_args.limit.map_or(n, |l| n.min(l)))
    } else {
        None
    };
    let config = index_config(
        &args.components,
        &args.out,
        &args.plaid,
        &args.muvera,
        splade.as_ref(),
        !args.corpus_args.no_store_text,
        &args.corpus_args.fields,
        docs,
    )?;
    // Pre-encoded vectors need a model only when one is named (it encodes text queries).
    let encoder = match (&args.vectors, &args.model.model) {
        (Some(_), None) => None,
        _ => Some(ColbertEncoder::load(
            &args.model.model_dir(),
            &args.model.load_options(),
            args.model.device,
        )?),
    };
    let (_, report) = match (&args.vectors, &args.corpus) {
        (Some(dir), _) => {
            pipeline::build_from_vectors(encoder.as_ref(), dir, &args.out, config, args.force)?
        }
        (None, corpus) => {
            let encoder = encoder.as_ref().expect("loaded for a corpus");
            let corpus = corpus
                .as_ref()
                .expect("clap requires a corpus without --vectors");
            let job = index_job(
                corpus,
                &args.out,
                &args.corpus_args,
                &args.pooling,
                config,
                progress,
            );
            let job = IndexJob {
                force: args.force,
                ..job
            };
            pipeline::build_index(encoder, splade.as_ref(), &job, report_skip)?
        }
    };
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
            fields: components.fields.clone(),
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
        force: false,
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
        "indexed {} documents ({} vectors{}) into {} in {:.1} s{}\n  {}{:.1} MB on disk, {:.1} bytes/vector{}{}{}",
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
            format!(" ({:.1} s of it building components at commit)", r.components_seconds)
        } else {
            String::new()
        },
        match r.encode_seconds > 0.0 {
            true => format!(
                "encoding {:.1} docs/s, {:.0} tokens/s\n  ",
                r.encode_docs_per_s, r.encode_tokens_per_s
            ),
            false => String::new(),
        },
        r.index_bytes.unwrap_or(0) as f64 / 1e6,
        r.bytes_per_vector.unwrap_or(0.0),
        match &r.splade {
            Some(s) => format!(
                "\n  SPLADE {:.1} docs/s, {:.1} terms/doc{}",
                s.encode_docs_per_s,
                s.mean_terms_per_doc,
                if s.shared_tokenization { " (tokenised once with ColBERT)" } else { "" }
            ),
            None => String::new(),
        },
        if r.skipped_lines > 0 {
            format!("\n  {} malformed lines skipped", r.skipped_lines)
        } else {
            String::new()
        },
        match r.finish_seconds.as_ref().and_then(|v| v.as_object()) {
            Some(parts) if !parts.is_empty() => format!(
                "\n  at commit: {}",
                parts
                    .iter()
                    .map(|(k, v)| format!("{k} {:.1} s", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(" · ")
            ),
            _ => String::new(),
        }
    );
}
