//! Indexing: documents -> length-sorted batches -> encoder -> index writer -> commit.
//! Shows a progress bar (rate, ETA) on a terminal; reports throughput at the end.

pub mod vectors;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tessera_index::pooling::{pool_by_groups, pool_hierarchical};
use tessera_index::store::MultiVector;
use tessera_index::{
    DocExtras, IndexConfig, IndexError, IndexWriter, Manifest, ModelInfo, WriteOptions,
};

use crate::corpus::{self, CorpusError, CorpusFormat, JsonlReader, OnMalformed, Skipped};
use crate::encoder::{ColbertEncoder, EncoderError, Role, SpladeEncoder};
use crate::search::ModelRecord;

/// Documents read, tokenised and encoded together (sorted by length inside the window).
const WINDOW_DOCS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{path}: corpus holds no valid documents")]
    Empty { path: PathBuf },
    /// A document the index refused (an id it already has, vectors of the wrong size).
    #[error("{path}:{line}: {source}")]
    Document {
        path: PathBuf,
        line: usize,
        #[source]
        source: IndexError,
    },
}

/// Everything `tessera index` needs besides the encoder.
#[derive(Debug, Clone)]
pub struct IndexJob {
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub format: CorpusFormat,
    pub on_malformed: OnMalformed,
    /// Index only the first N documents.
    pub limit: Option<usize>,
    pub progress: bool,
    /// Pooling of document vectors before storing.
    pub pooling: Option<Pooling>,
    /// Optional components (PLAID) built at commit.
    pub components: IndexConfig,
    /// Replace an unreadable index in `out` instead of refusing.
    pub force: bool,
}

/// Token pooling (see `tessera_index::pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Pooling {
    /// Ward clustering to `max(1, n / factor)` vectors; the first ([CLS]) kept as is.
    Hierarchical { factor: usize },
    /// Mean of each whole word's sub-word vectors.
    WholeWord,
}

/// What a build did. Everything but the sizes is also stored in the manifest's
/// `config.build` (sizes are known only after the commit, and the manifest has them).
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub corpus: PathBuf,
    pub num_docs: usize,
    pub num_vectors: usize,
    pub skipped_lines: usize,
    /// Vectors the encoder produced, before pooling.
    pub vectors_before_pooling: usize,
    pub encode_seconds: f64,
    /// Seconds spent building optional components (PLAID) at commit.
    pub components_seconds: f64,
    pub build_seconds: f64,
    pub encode_docs_per_s: f64,
    /// Tokens fed to the model per second (special tokens included, padding not).
    pub encode_tokens_per_s: f64,
    /// SPLADE encoding, when the index has the splade component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub splade: Option<SpladeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_vector: Option<f64>,
    /// Seconds per part of the commit (store, plaid_train, plaid_encode, plaid_ivf,
    /// muvera, splade, bm25), from the new segment's build record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_seconds: Option<serde_json::Value>,
}

/// What SPLADE encoding did during a build.
#[derive(Debug, Clone, Serialize)]
pub struct SpladeReport {
    pub encode_seconds: f64,
    pub encode_docs_per_s: f64,
    /// Mean non-zero terms per document (before quantisation).
    pub mean_terms_per_doc: f64,
    /// The ColBERT tokenisation was re-used (both models share one tokenizer).
    pub shared_tokenization: bool,
}

/// Build an index of `job.corpus` in `job.out`; with `splade`, also encode every
/// document's SPLADE vector (the index config must ask for the component). Skipped lines
/// go to `on_skip` as they are found, so none is dropped silently.
pub fn build_index(
    encoder: &ColbertEncoder,
    splade: Option<&SpladeEncoder>,
    job: &IndexJob,
    on_skip: impl FnMut(&Path, &Skipped),
) -> Result<(Manifest, BuildReport), PipelineError> {
    let started = Instant::now();
    let model = model_info(encoder, job.pooling);
    let options = WriteOptions { force: job.force };
    let mut writer =
        IndexWriter::create_with_options(&job.out, model, job.components.clone(), options)?;
    let source = Source {
        corpus: &job.corpus,
        format: &job.format,
        on_malformed: job.on_malformed,
        limit: job.limit,
        progress: job.progress,
        pooling: job.pooling,
    };
    let fed = feed(encoder, splade, &source, &mut writer, Write::Add, on_skip)?;
    if fed.docs == 0 {
        return Err(PipelineError::Empty { path: fed.path });
    }
    let encoded_at = Instant::now();
    let mut report = fed.report(started);
    let manifest = writer.commit(serde_json::json!({
        "build": &report,
        "pooling": job.pooling,
        "components": {
            "plaid": job.components.plaid,
            "muvera": job.components.muvera,
            "splade": job.components.splade.is_some(),
            "bm25": job.components.bm25,
        },
    }))?;
    finish_report(&mut report, &manifest, encoded_at, started);
    Ok((manifest, report))
}

/// The manifest's model entry for documents encoded by `encoder` (and pooled so).
fn model_info(encoder: &ColbertEncoder, pooling: Option<Pooling>) -> ModelInfo {
    ModelInfo {
        name: encoder.name().to_string(),
        dim: encoder.settings().dim,
        weights_sha256: encoder.weights_sha256().to_string(),
        encoder: ModelRecord::of(encoder, pooling).to_value(),
    }
}

/// Timings and sizes, once the commit that began at `committing` has finished the files.
fn finish_report(
    report: &mut BuildReport,
    manifest: &Manifest,
    committing: Instant,
    started: Instant,
) {
    report.components_seconds = committing.elapsed().as_secs_f64();
    report.build_seconds = started.elapsed().as_secs_f64();
    report.index_bytes = Some(manifest.index_bytes());
    report.finish_seconds = manifest
        .segments
        .iter()
        .max_by_key(|m| m.id)
        .and_then(|m| m.build.get("finish_seconds").cloned());
    report.bytes_per_vector =
        Some(manifest.index_bytes() as f64 / manifest.num_vectors.max(1) as f64);
}

/// Build an index from pre-encoded vectors (`tessera index --vectors DIR`, see
/// [`vectors`]); `encoder` names the model queries are encoded with (its dimension must
/// be the vectors'), `None` for an index without a model, searched with query vectors.
/// No pooling, no SPLADE (it needs the texts encoded).
pub fn build_from_vectors(
    encoder: Option<&ColbertEncoder>,
    dir: &Path,
    out: &Path,
    components: tessera_index::IndexConfig,
    force: bool,
) -> crate::Result<(Manifest, BuildReport)> {
    let started = Instant::now();
    let source = vectors::VectorsDir::open(dir, encoder.map(|e| e.settings().dim))?;
    // Without texts.jsonl there is nothing to keep (feed refuses bm25 or splade then).
    let mut components = components;
    components.store_text &= source.texts.is_some();
    let model = match encoder {
        Some(e) => model_info(e, None),
        None => ModelInfo::pre_encoded(source.dim),
    };
    let mut writer =
        IndexWriter::create_with_options(out, model, components, WriteOptions { force })?;
    let (vectors, _) = source.feed(&mut writer, false)?;
    let fed_at = Instant::now();
    let mut report = BuildReport {
        corpus: dir.to_path_buf(),
        num_docs: source.ids.len(),
        num_vectors: vectors,
        skipped_lines: 0,
        vectors_before_pooling: vectors,
        encode_seconds: 0.0,
        components_seconds: 0.0,
        build_seconds: 0.0,
        encode_docs_per_s: 0.0,
        encode_tokens_per_s: 0.0,
        splade: None,
        index_bytes: None,
        bytes_per_vector: None,
        finish_seconds: None,
    };
    let manifest = writer.commit(serde_json::json!({
        "build": &report,
        "pre_encoded": dir.display().to_string(),
    }))?;
    finish_report(&mut report, &manifest, fed_at, started);
    Ok((manifest, report))
}

/// Where documents come from and how they become vectors.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub corpus: &'a Path,
    pub format: &'a CorpusFormat,
    pub on_malformed: OnMalformed,
    pub limit: Option<usize>,
    pub progress: bool,
    pub pooling: Option<Pooling>,
}

/// How documents go into the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// New documents: an id the index already has is an error naming it.
    Add,
    /// Replace the document with the same id, or add it.
    Upsert,
}

/// What [`feed`] did.
#[derive(Debug, Clone)]
pub struct Fed {
    pub path: PathBuf,
    pub docs: usize,
    pub vectors: usize,
    pub vectors_before_pooling: usize,
    pub skipped_lines: usize,
    pub encode_seconds: f64,
    pub tokens_encoded: usize,
    pub splade: Option<SpladeReport>,
    /// With [`Write::Upsert`]: documents that replaced a live one with the same id.
    pub replaced: usize,
}

impl Fed {
    fn report(&self, started: Instant) -> BuildReport {
        BuildReport {
            corpus: self.path.clone(),
            num_docs: self.docs,
            num_vectors: self.vectors,
            skipped_lines: self.skipped_lines,
            vectors_before_pooling: self.vectors_before_pooling,
            encode_seconds: self.encode_seconds,
            components_seconds: 0.0,
            build_seconds: started.elapsed().as_secs_f64(),
            encode_docs_per_s: self.docs as f64 / self.encode_seconds.max(1e-9),
            encode_tokens_per_s: self.tokens_encoded as f64 / self.encode_seconds.max(1e-9),
            splade: self.splade.clone(),
            index_bytes: None,
            bytes_per_vector: None,
            finish_seconds: None,
        }
    }
}

/// Pool one document's vectors as the index does.
pub fn pool(
    pooling: Option<Pooling>,
    vectors: &MultiVector,
    tokenized: &crate::encoder::TokenizedText,
) -> Option<Vec<f32>> {
    match pooling {
        None => None,
        Some(Pooling::Hierarchical { factor }) => Some(pool_hierarchical(
            vectors.as_slice(),
            vectors.dim(),
            factor,
            1,
        )),
        Some(Pooling::WholeWord) => Some(pool_by_groups(
            vectors.as_slice(),
            vectors.dim(),
            &tokenized.kept_word_ids(),
        )),
    }
}

/// Read, tokenise and encode the documents of `source` into `writer` (nothing is
/// committed). A producer thread reads and tokenises the next windows while this one
/// encodes (on a GPU the model would otherwise wait for the tokenizer).
pub fn feed(
    encoder: &ColbertEncoder,
    splade: Option<&SpladeEncoder>,
    source: &Source<'_>,
    writer: &mut IndexWriter,
    write: Write,
    mut on_skip: impl FnMut(&Path, &Skipped),
) -> Result<Fed, PipelineError> {
    let path = corpus::resolve_corpus_path(source.corpus)?;
    let total_lines = corpus::count_lines(&path)?;
    let total = source.limit.map_or(total_lines, |l| l.min(total_lines));
    let bar = progress_bar(source.progress, total as u64);
    let reader = JsonlReader::open(&path, source.format.clone(), source.on_malformed)?;
    // Documents are tokenised once when both models split text the same way.
    let shared_tokenization =
        splade.is_some_and(|s| s.tokenizer_fingerprint() == encoder.tokenizer_fingerprint());
    let limit = source.limit.unwrap_or(usize::MAX);
    let mut fed = Fed {
        path: path.clone(),
        docs: 0,
        vectors: 0,
        vectors_before_pooling: 0,
        skipped_lines: 0,
        encode_seconds: 0.0,
        tokens_encoded: 0,
        splade: None,
        replaced: 0,
    };
    let (mut splade_seconds, mut splade_terms) = (0.0, 0usize);
    std::thread::scope(|scope| -> Result<(), PipelineError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Window, PipelineError>>(2);
        scope.spawn(move || {
            produce_windows(reader, encoder, splade, shared_tokenization, limit, &tx);
        });
        for window in rx {
            let window = window?;
            for s in &window.skipped {
                on_skip(&path, s);
                fed.skipped_lines += 1;
            }
            if window.docs.is_empty() {
                continue;
            }
            let t = Instant::now();
            let encoded = encoder.encode_tokenized(&window.tokenized)?;
            fed.encode_seconds += t.elapsed().as_secs_f64();
            fed.tokens_encoded += window.tokenized.iter().map(|t| t.ids.len()).sum::<usize>();
            let sparse = match (splade, &window.splade_items) {
                (Some(s), Some(items)) => {
                    let t = Instant::now();
                    let v = s.encode_tokenized(items, Role::Document)?;
                    splade_seconds += t.elapsed().as_secs_f64();
                    splade_terms += v.iter().map(|x| x.len()).sum::<usize>();
                    Some(v)
                }
                _ => None,
            };
            for (i, ((doc, mv), tok)) in window
                .docs
                .iter()
                .zip(&encoded.vectors)
                .zip(&window.tokenized)
                .enumerate()
            {
                fed.vectors_before_pooling += mv.len();
                let pooled = pool(source.pooling, mv, tok);
                let extras = DocExtras {
                    text: Some(&doc.text),
                    sparse: sparse.as_ref().map(|v| &v[i]),
                    fields: Some(&doc.fields),
                };
                let vectors = pooled.as_deref().unwrap_or(mv.as_slice());
                if write == Write::Upsert && writer.contains(&doc.id) {
                    fed.replaced += 1;
                }
                match write {
                    Write::Add => writer.add_with(&doc.id, vectors, extras),
                    Write::Upsert => writer.upsert_with(&doc.id, vectors, extras),
                }
                .map_err(|e| PipelineError::Document {
                    path: path.clone(),
                    line: doc.line,
                    source: e,
                })?;
                fed.docs += 1;
                fed.vectors += vectors.len() / mv.dim();
            }
            bar.inc(window.docs.len() as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    fed.splade = splade.map(|_| SpladeReport {
        encode_seconds: splade_seconds,
        encode_docs_per_s: fed.docs as f64 / splade_seconds.max(1e-9),
        mean_terms_per_doc: splade_terms as f64 / fed.docs.max(1) as f64,
        shared_tokenization,
    });
    Ok(fed)
}

/// One document's vectors (row-major) and, when the index has splade, its sparse vector.
pub type EncodedDoc = (Vec<f32>, Option<tessera_index::SparseVector>);

/// Encode documents' texts as the index does (ColBERT's document role, the index's
/// pooling, SPLADE when the index has it): each text's vectors (row-major) and sparse
/// vector, in input order.
pub fn encode_texts(
    encoder: &ColbertEncoder,
    splade: Option<&SpladeEncoder>,
    pooling: Option<Pooling>,
    texts: &[&str],
) -> Result<Vec<EncodedDoc>, PipelineError> {
    let tokenized = encoder.tokenize(texts, Role::Document)?;
    let encoded = encoder.encode_tokenized(&tokenized)?;
    let sparse = match splade {
        Some(s) => Some(s.encode(texts, Role::Document)?),
        None => None,
    };
    let mut sparse = sparse.map(|v| v.into_iter());
    Ok(encoded
        .vectors
        .iter()
        .zip(&tokenized)
        .map(|(mv, tok)| {
            let vectors = pool(pooling, mv, tok).unwrap_or_else(|| mv.as_slice().to_vec());
            (vectors, sparse.as_mut().and_then(|s| s.next()))
        })
        .collect())
}

/// Documents read and tokenised, ready for the models.
struct Window {
    docs: Vec<crate::corpus::Document>,
    tokenized: Vec<crate::encoder::TokenizedText>,
    /// SPLADE's framing of the same documents, when the index has splade.
    splade_items: Option<Vec<crate::encoder::TokenizedText>>,
    /// Malformed lines met while reading this window.
    skipped: Vec<Skipped>,
}

/// Read windows of documents (at most `limit` in all), tokenise them, send them on;
/// stops at the end of the corpus, on the first error (sent on), or when the receiver
/// is gone.
fn produce_windows(
    mut reader: JsonlReader,
    encoder: &ColbertEncoder,
    splade: Option<&SpladeEncoder>,
    shared_tokenization: bool,
    limit: usize,
    tx: &std::sync::mpsc::SyncSender<Result<Window, PipelineError>>,
) {
    let mut sent = 0usize;
    loop {
        let mut docs = Vec::with_capacity(WINDOW_DOCS);
        let mut failed = None;
        while docs.len() < WINDOW_DOCS && sent + docs.len() < limit {
            match reader.next() {
                Some(Ok(doc)) => docs.push(doc),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        let skipped = reader.drain_skipped();
        let done = docs.is_empty() || failed.is_some();
        let window = (|| -> Result<Window, PipelineError> {
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            let tokenized = encoder.tokenize(&texts, Role::Document)?;
            let splade_items = match splade {
                Some(s) if shared_tokenization => Some(
                    tokenized
                        .iter()
                        .map(|t| s.reframe(t, Role::Document))
                        .collect(),
                ),
                Some(s) => Some(s.tokenize(&texts, Role::Document)?),
                None => None,
            };
            Ok(Window {
                tokenized,
                splade_items,
                skipped,
                docs,
            })
        })();
        sent += window.as_ref().map_or(0, |w| w.docs.len());
        let window_failed = window.is_err();
        if tx.send(window).is_err() || window_failed {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e.into()));
            return;
        }
        if done {
            return;
        }
    }
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "encoding {bar:40.cyan/blue} {pos}/{len} docs  {per_sec}  elapsed {elapsed}  ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}
