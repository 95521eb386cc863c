//! The command line: every flag is defined here once, then validated into the typed
//! configs the library takes. One file per command.

mod eval;
mod index;
mod search;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tessera_index::Mode;

use crate::encoder::{DeviceSpec, LoadOptions};

/// Default model directory, as `scripts/fetch-models.sh` lays it out.
pub const DEFAULT_MODEL: &str = "models/all-MiniLM-L6-v2";

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Multi-vector (late-interaction) retrieval: index a corpus, search it, evaluate on BEIR",
    long_about = "Tessera encodes every document into one vector per token (ColBERT-style), stores \
                  them memory-mapped as f16, and ranks with exact MaxSim.\n\n\
                  Quick start:\n  scripts/fetch-models.sh\n  \
                  tessera index datasets/scifact --out scifact.idx\n  \
                  tessera search scifact.idx \"vitamin D and mortality\" -k 5\n  \
                  tessera eval datasets/scifact --index scifact.idx"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode a corpus and write an index directory.
    Index(IndexArgs),
    /// Search an index with a text query.
    Search(SearchArgs),
    /// Evaluate on a BEIR dataset (builds and caches an index unless --index is given).
    Eval(EvalArgs),
}

/// Model and encoding flags shared by the commands that encode documents.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model directory (Hugging Face layout: config.json, model.safetensors, tokenizer.json;
    /// ColBERT `artifact.metadata` / PyLate `1_Dense/` extras are read when present).
    /// [default: models/all-MiniLM-L6-v2, as scripts/fetch-models.sh lays it out]
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda, cuda:N, or auto (CUDA if built with it and present).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Documents per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// Maximum query length in tokens (default: the checkpoint's, else 32).
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..=8192))]
    pub query_max_len: Option<u32>,
    /// Maximum document length in tokens (default: the checkpoint's, else 256).
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..=8192))]
    pub doc_max_len: Option<u32>,
    /// Drop punctuation tokens from documents (default: the checkpoint's, else false).
    #[arg(long, value_name = "BOOL")]
    pub skip_punctuation: Option<bool>,
}

impl ModelArgs {
    /// The model directory, defaulted.
    pub fn model_dir(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL))
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            query_max_len: self.query_max_len.map(|v| v as usize),
            doc_max_len: self.doc_max_len.map(|v| v as usize),
            skip_punctuation: self.skip_punctuation,
            query_augmentation: None,
            batch_size: Some(self.batch_size as usize),
        }
    }
}

/// Reading the corpus.
#[derive(Debug, Clone, Args)]
pub struct CorpusArgs {
    /// JSON field holding the document id.
    #[arg(long, default_value = "_id")]
    pub id_field: String,
    /// JSON fields joined (with a space) into the document text, in order.
    #[arg(long, value_delimiter = ',', default_value = "title,text")]
    pub text_fields: Vec<String>,
    /// Skip malformed lines (each is reported with its line number) instead of failing.
    #[arg(long)]
    pub skip_malformed: bool,
    /// Index only the first N documents.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// A JSONL corpus, or a BEIR dataset directory (its corpus.jsonl is used).
    pub corpus: PathBuf,
    /// Index directory to write (created; an index already there stays readable until
    /// the new one commits, then is replaced).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Structures to build, comma-separated. `store` (the f16 token vectors) is always built.
    #[arg(long, value_delimiter = ',', default_value = "store")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the build report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Index directory.
    pub index: PathBuf,
    /// The query text.
    pub query: String,
    /// Number of results.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub k: u32,
    /// First stages: exhaustive | plaid | muvera | splade | bm25, joined with `+` (union
    /// re-ranked by exact MaxSim) or prefixed with `rrf:` (reciprocal-rank fusion).
    #[arg(long, default_value = "exhaustive")]
    pub mode: Mode,
    /// Model directory (default: the one recorded in the index; its weights must match).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    pub dataset: PathBuf,
    /// Qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Evaluate this index; without it, one is built (or reused) in the cache directory.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Search mode (see `tessera search --help`).
    #[arg(long, default_value = "exhaustive")]
    pub mode: Mode,
    /// Metrics to report, comma-separated (ndcg@K, recall@K, mrr@K, map@K).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ndcg@10,recall@100,mrr@10,map@100"
    )]
    pub metrics: Vec<crate::eval::Metric>,
    /// Search threads (default: all cores). Use 1 for single-thread latency.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the run in TREC format (qid Q0 docid rank score tag).
    #[arg(long, value_name = "PATH")]
    pub run_file: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where indexes built by eval are kept (default: $XDG_CACHE_HOME/tessera or ~/.cache/tessera).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Rebuild the cached index even if one exists.
    #[arg(long)]
    pub rebuild: bool,
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> crate::Result<()> {
    let progress = !cli.quiet;
    match cli.command {
        Command::Index(args) => index::run(args, progress),
        Command::Search(args) => search::run(args),
        Command::Eval(args) => eval::run(args, progress),
    }
}
