//! `tessera add`, `delete`, `compact`, `info`: changing a live index, and looking at it.

use std::time::Instant;

use serde::Serialize;
use tessera_index::{IndexWriter, Manifest};

use crate::cli::index::report_skip;
use crate::cli::{AddArgs, CompactArgs, DeleteArgs, InfoArgs};
use crate::corpus::{CorpusFormat, OnMalformed};
use crate::info::IndexReport;
use crate::pipeline::{self, Source, Write};
use crate::search::{load_encoder, load_splade_encoder, ModelRecord};
use crate::{Error, Result};

/// What a write command did.
#[derive(Debug, Serialize)]
struct WriteReport {
    index: std::path::PathBuf,
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_lines: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_found: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encode_docs_per_s: Option<f64>,
    seconds: f64,
    /// The index after the write (segments, counts, codec).
    after: IndexReport,
}

fn print(report: &WriteReport, json: bool, summary: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serialises")
        );
    } else {
        eprintln!("{summary}");
        eprint!("{}", report.after.to_text());
    }
}

/// With MUVERA, merges stop at segments whose FDEs fit in half of `budget` (default: a
/// quarter of the machine's memory): their HNSW is built in memory.
pub(crate) fn cap_merges(writer: &mut IndexWriter, budget: Option<u64>) {
    if let Some(per_doc) = writer.fde_bytes_per_doc() {
        let budget = budget.unwrap_or_else(crate::cli::default_memory_budget);
        writer.set_merge_policy(tessera_index::MergePolicy::for_fde_budget(per_doc, budget));
    }
}

pub(super) fn add(args: AddArgs, progress: bool) -> Result<()> {
    let started = Instant::now();
    let mut writer = IndexWriter::open(&args.index)?;
    cap_merges(&mut writer, args.memory_budget);
    if let Some(dir) = &args.vectors {
        let source = crate::pipeline::vectors::VectorsDir::open(dir, Some(writer.dim()))?;
        // Any error drops the writer: nothing added.
        let (_, replaced) = source.feed(&mut writer, args.upsert)?;
        let docs = source.ids.len();
        let manifest = writer.commit(serde_json::json!({
            "by": "tessera add --vectors",
            "vectors": dir,
            "documents": docs,
            "upsert": args.upsert,
        }))?;
        let report = WriteReport {
            index: args.index.clone(),
            generation: manifest.generation,
            added: Some(docs - replaced),
            replaced: Some(replaced),
            skipped_lines: None,
            deleted: None,
            not_found: None,
            encode_docs_per_s: None,
            seconds: started.elapsed().as_secs_f64(),
            after: IndexReport::of(&manifest),
        };
        let summary = format!(
            "added {docs} pre-encoded documents ({replaced} replacing live ones) to {} in {:.1} s: generation {}",
            args.index.display(),
            report.seconds,
            manifest.generation
        );
        print(&report, args.json, summary);
        return Ok(());
    }
    let corpus = args
        .corpus
        .clone()
        .expect("clap requires a corpus without --vectors");
    let snapshot = writer
        .snapshot()
        .expect("an opened writer has a snapshot")
        .clone();
    let encoder = load_encoder(
        &snapshot,
        args.model.as_deref(),
        args.device,
        args.batch_size.map(|b| b as usize),
    )?;
    let splade = load_splade_encoder(&snapshot, args.device)?;
    let record = ModelRecord::read(snapshot.manifest(), snapshot.dir())?;
    drop(snapshot);
    let c = &args.corpus_args;
    if c.no_store_text && writer.settings().store_text {
        return Err(Error::Usage(
            "this index keeps documents' texts: --no-store-text cannot apply to documents added to it".into(),
        ));
    }
    let schema = writer.settings().fields.clone();
    if !c.fields.is_empty() && c.fields != schema.0 {
        return Err(Error::Usage(format!(
            "this index declares the fields {}; --field cannot change them on add (leave it out: add reads the index's fields)",
            schema.describe()
        )));
    }
    let format = CorpusFormat {
        id_field: c.id_field.clone(),
        text_fields: c.text_fields.clone(),
        fields: schema,
    };
    let source = Source {
        corpus: &corpus,
        format: &format,
        on_malformed: if c.skip_malformed {
            OnMalformed::Skip
        } else {
            OnMalformed::Fail
        },
        limit: c.limit,
        progress,
        pooling: record.pooling,
    };
    let write = if args.upsert {
        Write::Upsert
    } else {
        Write::Add
    };
    // Any error (a malformed line, an id the index has) drops the writer: nothing added.
    let fed = pipeline::feed(
        &encoder,
        splade.as_ref(),
        &source,
        &mut writer,
        write,
        report_skip,
    )?;
    let manifest = writer.commit(serde_json::json!({
        "by": "tessera add",
        "corpus": fed.path,
        "documents": fed.docs,
        "upsert": args.upsert,
    }))?;
    let report = WriteReport {
        index: args.index.clone(),
        generation: manifest.generation,
        added: Some(fed.docs - fed.replaced),
        replaced: Some(fed.replaced),
        skipped_lines: Some(fed.skipped_lines),
        deleted: None,
        not_found: None,
        encode_docs_per_s: Some(fed.docs as f64 / fed.encode_seconds.max(1e-9)),
        seconds: started.elapsed().as_secs_f64(),
        after: IndexReport::of(&manifest),
    };
    let summary = format!(
        "added {} documents ({} replacing live ones) to {} in {:.1} s: generation {}",
        fed.docs,
        fed.replaced,
        args.index.display(),
        report.seconds,
        manifest.generation
    );
    print(&report, args.json, summary);
    Ok(())
}

/// The ids of `--ids` and `--ids-file`.
fn ids_of(args: &DeleteArgs) -> Result<Vec<String>> {
    let mut ids: Vec<String> = args.ids.iter().filter(|i| !i.is_empty()).cloned().collect();
    if let Some(path) = &args.ids_file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
        ids.extend(
            text.lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    if ids.is_empty() {
        return Err(Error::Usage("no ids to delete".into()));
    }
    Ok(ids)
}

pub(super) fn delete(args: DeleteArgs) -> Result<()> {
    let started = Instant::now();
    let ids = ids_of(&args)?;
    let mut writer = IndexWriter::open(&args.index)?;
    cap_merges(&mut writer, None);
    let deleted = writer.delete(&ids);
    let manifest = writer.commit(serde_json::json!({"by": "tessera delete", "ids": ids.len()}))?;
    let report = WriteReport {
        index: args.index.clone(),
        generation: manifest.generation,
        added: None,
        replaced: None,
        skipped_lines: None,
        deleted: Some(deleted.deleted),
        not_found: Some(deleted.not_found.clone()),
        encode_docs_per_s: None,
        seconds: started.elapsed().as_secs_f64(),
        after: IndexReport::of(&manifest),
    };
    let missing = match deleted.not_found.len() {
        0 => String::new(),
        n => format!(
            "; {n} not found: {}{}",
            deleted
                .not_found
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if n > 10 { ", ..." } else { "" }
        ),
    };
    let summary = format!(
        "deleted {} documents from {} in {:.2} s{missing}",
        deleted.deleted,
        args.index.display(),
        report.seconds
    );
    print(&report, args.json, summary);
    Ok(())
}

pub(super) fn compact(args: CompactArgs) -> Result<()> {
    let started = Instant::now();
    let mut writer = IndexWriter::open(&args.index)?;
    let before = IndexReport::of(writer.committed().expect("an opened writer has a commit"));
    let manifest: Manifest = writer.compact(args.retrain)?;
    let after = IndexReport::of(&manifest);
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "index": args.index,
                "retrain": args.retrain,
                "seconds": seconds,
                "before": before,
                "after": after,
            }))
            .expect("report serialises")
        );
    } else {
        eprintln!(
            "compacted {} in {seconds:.1} s: {} segments and {} deleted documents before, {} segment(s) after{}",
            args.index.display(),
            before.segments.len(),
            before.deleted_docs,
            after.segments.len(),
            if args.retrain { ", codec retrained" } else { "" }
        );
        eprint!("{}", after.to_text());
    }
    Ok(())
}

pub(super) fn info(args: InfoArgs) -> Result<()> {
    let manifest = Manifest::read(&args.index)?;
    let report = IndexReport::of(&manifest);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
