//! The command line: every flag is defined here once, then validated into the typed
//! configs the library takes. One file per command.

mod eval;
mod index;
mod rebuild;
mod search;
mod serve;
pub(crate) mod write;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_index::muvera::{FdeConfig, GraphConfig};
use tessera_index::{Component, Mode, MuveraConfig, PlaidConfig, SearchParams};

use crate::encoder::{DTypeSpec, DeviceSpec, LoadOptions, SpladeOptions};
use crate::search::{ParamOverrides, RescoreChoice, SparseScorerChoice};

/// Default model directory, as `scripts/fetch-models.sh` lays it out.
pub const DEFAULT_MODEL: &str = "models/all-MiniLM-L6-v2";
/// Default SPLADE model directory (`--components splade`).
pub const DEFAULT_SPLADE_MODEL: &str = "models/splade-tiny";

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

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode a corpus and write an index directory.
    Index(IndexArgs),
    /// Search an index with a text query.
    Search(SearchArgs),
    /// Evaluate on a BEIR dataset (builds and caches an index unless --index is given).
    Eval(EvalArgs),
    /// Write a new index from an existing index's stored vectors, without re-encoding:
    /// add or re-build PLAID (other --nbits, centroids) or MUVERA, pool the vectors
    /// further, or add splade/bm25 from the texts the index keeps.
    Rebuild(RebuildArgs),
    /// Serve indexes over HTTP (JSON search API; see GET /openapi.json).
    Serve(ServeArgs),
    /// Add documents to an index (encoding only them; the index's model, pooling and
    /// components are reused), or with --upsert replace those with the same ids. One
    /// commit; segments may then merge.
    Add(AddArgs),
    /// Delete documents by id (tombstones, one commit). Unknown ids are reported.
    Delete(DeleteArgs),
    /// Rewrite every segment into one without the deleted documents; with --retrain,
    /// also train a new PLAID codec on all vectors and re-encode them.
    Compact(CompactArgs),
    /// Show an index: segments, live and deleted documents, sizes, the PLAID codec's age
    /// and drift.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The index to add to (it must exist: `tessera index` creates one).
    pub index: PathBuf,
    /// A JSONL corpus, or a BEIR dataset directory (its corpus.jsonl is used).
    #[arg(required_unless_present = "vectors")]
    pub corpus: Option<PathBuf>,
    /// Add pre-encoded vectors instead of a corpus (the files of `tessera index
    /// --vectors`); taken as they are (no pooling). An index with splade needs a corpus.
    #[arg(long, value_name = "DIR", conflicts_with = "corpus")]
    pub vectors: Option<PathBuf>,
    /// Replace the live document of each id the index already has (without it, such an
    /// id is an error naming it, and nothing is added).
    #[arg(long)]
    pub upsert: bool,
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
    /// Model directory (default: the one recorded in the index; its weights must match).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Where the encoder runs: cpu, cuda, cuda:N, or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Documents per forward pass [default: 16 on the CPU, 32 on CUDA].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: Option<u32>,
    /// Memory a merge may use for what grows with the segment, e.g. 4G: with MUVERA,
    /// no merge makes a segment whose FDEs (held in memory while its HNSW is built)
    /// exceed half of it; larger segments stay apart. [default: a quarter of the
    /// machine's memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "ids_file"]))]
pub struct DeleteArgs {
    pub index: PathBuf,
    /// Ids to delete, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<String>,
    /// A file of ids to delete, one per line (blank lines ignored).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    pub index: PathBuf,
    /// Train a new PLAID codec on all live vectors and re-encode them (when documents
    /// added since the first build fit its centroids worse: see `tessera info`'s drift).
    #[arg(long)]
    pub retrain: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    pub index: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Endpoints: GET / (the search page), POST /indexes/{name}/search, \
POST /indexes/{name}/search/batch, POST /indexes/{name}/explain, POST /indexes/{name}/documents, \
POST /indexes/{name}/documents/delete, GET /indexes, GET /indexes/{name}, \
GET /indexes/{name}/documents/{id}, GET /healthz, GET /readyz, GET /metrics, GET /openapi.json.\n\
The server listens at once and opens the indexes in the background, logging each step: until an \
index is open its requests get 503 index_loading (with Retry-After), GET /indexes shows its \
progress, and GET /readyz answers 503 until every index is open. If an index fails to load, the \
server reports it and exits with status 1. Example:\n  curl -s localhost:8080/indexes/scifact/search -H 'content-type: application/json' \
-d '{\"query\": \"vitamin D and mortality\", \"k\": 5, \"mode\": \"plaid\"}'"
)]
pub struct ServeArgs {
    /// Index directories, each served under its directory name, or NAME=DIR.
    #[arg(required = true, value_name = "INDEX")]
    pub indexes: Vec<String>,
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where query encoders run: cpu, cuda, cuda:N, or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Largest k a request may ask for.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_k: u32,
    /// Most queries in one batch request.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch: u32,
    /// Largest request body in bytes (a 32-token 128-d pre-encoded query is ~50 KB of JSON).
    #[arg(long, default_value_t = 2 << 20)]
    pub max_body_bytes: usize,
    /// Longest query text in bytes.
    #[arg(long, default_value_t = 4096)]
    pub max_query_bytes: usize,
    /// Most pre-encoded query vectors (rows) in one query.
    #[arg(long, default_value_t = 512)]
    pub max_query_vectors: usize,
    /// Searches running at once; more wait their turn [default: the number of cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrent_searches: Option<u32>,
    /// Largest ndocs, candidates, ef_search and sparse_candidates a request may ask for.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_candidates: u32,
    /// Largest PLAID ncells a request may ask for.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ncells: u32,
    /// Largest response body in bytes; a larger one is refused (response_too_large).
    #[arg(long, default_value_t = 16 << 20)]
    pub max_response_bytes: usize,
    /// Seconds a request may take; past it the client gets 503 deadline_exceeded and the
    /// search stops. Fractions allowed.
    #[arg(long, default_value_t = 30.0, value_name = "SECS", value_parser = parse_seconds)]
    pub request_timeout: f64,
    /// Seconds a client has to send a request's line and headers (counted from its first
    /// byte, or from connecting); a slower connection is closed.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_seconds)]
    pub header_timeout: f64,
    /// Seconds a kept-alive connection may wait idle for its next request.
    #[arg(long, default_value_t = 60.0, value_name = "SECS", value_parser = parse_seconds)]
    pub idle_timeout: f64,
    /// Connections served at once; more wait to be accepted until one closes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Show the server's file-system paths (index directory, model and corpus paths) in
    /// GET /indexes/{name}; hidden by default.
    #[arg(long)]
    pub expose_paths: bool,
    /// Refuse writes (403 read_only) and take no writer lock: `tessera add`/`delete` may
    /// then change the indexes, and the server picks up their commits.
    #[arg(long)]
    pub read_only: bool,
    /// With --read-only: how often to look for commits made by other processes.
    #[arg(long, default_value_t = 1.0, value_name = "SECS", value_parser = parse_seconds)]
    pub reload_interval: f64,
    /// Writes arriving within this many milliseconds of the first of a group are
    /// committed together (one segment, not one per request).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub group_commit_ms: u64,
    /// Most documents (or ids) in one write request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_write_docs: u32,
}

/// A positive number of seconds, fractions allowed (at most a day).
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: expected seconds, a number above 0 and at most 86400"
        )),
    }
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The index whose vectors, ids and model record are reused.
    pub source: PathBuf,
    /// The new index directory (must differ from the source).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Components of the new index (store is always built).
    #[arg(long, value_delimiter = ',', default_value = "store", value_parser = parse_component)]
    pub components: Vec<Component>,
    /// Hierarchical pooling of the stored vectors (whole-word pooling needs the text:
    /// use `tessera index`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pool_factor: u32,
    #[command(flatten)]
    pub plaid: PlaidBuildArgs,
    #[command(flatten)]
    pub muvera: MuveraBuildArgs,
    /// splade and bm25 are built from the texts the source index keeps.
    #[command(flatten)]
    pub splade: SpladeArgs,
    /// Where the SPLADE model runs.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print the build report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replace an index in --out that cannot be read (damaged, or written by a newer
    /// Tessera); without it such a directory is refused and left untouched.
    #[arg(long)]
    pub force: bool,
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
    /// Floating-point type of the model: auto (f32 on the CPU, f16 on CUDA), f32, f16, bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: DTypeSpec,
    /// Documents per forward pass [default: 16 on the CPU, 32 on CUDA].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: Option<u32>,
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
            batch_size: self.batch_size.map(|b| b as usize),
            dtype: self.dtype,
        }
    }
}

/// How documents and queries become SPLADE vectors (`--components splade`).
#[derive(Debug, Clone, Args)]
pub struct SpladeArgs {
    /// SPLADE checkpoint: a BERT masked-language model (config.json, model.safetensors,
    /// tokenizer.json). [default: models/splade-tiny, as scripts/fetch-models.sh lays it out]
    #[arg(long, value_name = "DIR")]
    pub splade_model: Option<PathBuf>,
    /// Drop document and query terms whose weight is at or below this.
    #[arg(long, default_value_t = 0.0)]
    pub splade_threshold: f32,
    /// Keep at most N terms per document, the heaviest [default: all above the threshold].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub splade_max_terms: Option<u32>,
    /// SPLADE document length in tokens, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(3..=8192))]
    pub splade_doc_max_len: u32,
    /// SPLADE query length in tokens.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(3..=8192))]
    pub splade_query_max_len: u32,
    /// Documents per SPLADE forward pass (its logits are batch x length x vocabulary floats).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub splade_batch_size: u32,
}

impl SpladeArgs {
    pub fn model_dir(&self) -> PathBuf {
        self.splade_model
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPLADE_MODEL))
    }

    pub fn options(&self) -> SpladeOptions {
        SpladeOptions {
            doc_max_len: Some(self.splade_doc_max_len as usize),
            query_max_len: Some(self.splade_query_max_len as usize),
            threshold: Some(self.splade_threshold),
            doc_max_terms: self.splade_max_terms.map(|m| m as usize),
            batch_size: Some(self.splade_batch_size as usize),
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
    /// Do not keep documents' text in the index (results then carry ids only).
    #[arg(long)]
    pub no_store_text: bool,
    /// A metadata field to read from each document, for filters (`--filter`):
    /// NAME:TYPE with TYPE keyword, int, float, bool or date (RFC 3339). Read from the
    /// record's top-level key NAME or its `metadata` object (BEIR); a value may be a
    /// list. Repeat for more fields. `add` reads the fields the index declares.
    #[arg(long = "field", value_name = "NAME:TYPE", value_parser = tessera_index::FieldDef::parse)]
    pub fields: Vec<tessera_index::FieldDef>,
}

/// Token pooling applied to document vectors before they are stored.
#[derive(Debug, Clone, Args)]
pub struct PoolingArgs {
    /// Keep about 1/F of each document's vectors (1 = no pooling). With
    /// `--pooling hierarchical`, the [CLS] vector is kept as is.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pool_factor: u32,
    /// How vectors are pooled: Ward clustering (needs --pool-factor > 1) or averaging the
    /// sub-word vectors of each whole word.
    #[arg(long, value_enum, default_value = "hierarchical")]
    pub pooling: PoolingMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingMethod {
    Hierarchical,
    WholeWord,
}

impl PoolingArgs {
    pub fn pooling(&self) -> Option<crate::pipeline::Pooling> {
        match (self.pooling, self.pool_factor) {
            (PoolingMethod::WholeWord, _) => Some(crate::pipeline::Pooling::WholeWord),
            (PoolingMethod::Hierarchical, 1) => None,
            (PoolingMethod::Hierarchical, f) => {
                Some(crate::pipeline::Pooling::Hierarchical { factor: f as usize })
            }
        }
    }
}

/// How the PLAID component is built (`--components plaid`).
#[derive(Debug, Clone, Args)]
pub struct PlaidBuildArgs {
    /// How the token vectors are kept for scoring: f16 (exact MaxSim, 2 bytes per value),
    /// int8 (1 byte per value and a scale per vector; approximate), or none (no vectors:
    /// every score from PLAID's codes and residuals, approximate; needs plaid). Only f16
    /// gives exact MaxSim and exact explanations.
    #[arg(long, default_value = "f16", value_name = "KIND")]
    pub store: tessera_index::StoreKind,
    /// Precision of the PLAID centroid table on disk: f32, f16 (half the size; trained
    /// in f32 and rounded once), int8 (a quarter, one scale per centroid), or auto
    /// (int8 with --store none, f16 with --store int8, f32 otherwise).
    #[arg(long, default_value = "auto", value_parser = ["auto", "f32", "f16", "int8"])]
    pub centroids: String,
    /// Bits per residual dimension.
    #[arg(long, default_value_t = 2, value_parser = parse_nbits)]
    pub nbits: u32,
    /// Number of k-means centroids [default: 2^floor(log2(16 sqrt(vectors)))].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub num_centroids: Option<u64>,
    /// k-means trains on this many sampled vectors per centroid.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub kmeans_sample_per_centroid: u32,
    /// k-means iterations.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub kmeans_iterations: u32,
    /// Seed for sampling and k-means (builds are reproducible).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Coarse cells (of ~sqrt(centroids)) searched to assign a vector to its centroid, in
    /// k-means and in encoding, when there are at least 2,048 centroids; 0 = compare
    /// every vector with every centroid (exact, slower) [default: 8; 32 with --store
    /// none, which ranks by the codes alone: on SciFact 0.925 of the exhaustive top-100
    /// against 0.916 at 8, for a build 2.4x as long].
    #[arg(long)]
    pub assign_probe: Option<u32>,
    /// Memory the build may use for what grows with the collection, e.g. 4G, 512M
    /// (k-means trains on a sample cut to half of it). The store, codes and IVF stream to
    /// disk whatever it is. [default: a quarter of the machine's memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
}

/// `4G`, `512M`, `64K`, `1.5GiB` or bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 4G or 512M"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        u => return Err(format!("{s:?}: unknown unit {u:?} (use K, M, G or T)")),
    };
    let bytes = n * mult;
    if bytes.is_nan() || bytes < 1.0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(bytes as u64)
}

/// `bytes` as GiB, MiB or KiB with one decimal.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1_048_575 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.1} GiB", b / 1_073_741_824.0),
    }
}

/// A quarter of the machine's memory (MemTotal in /proc/meminfo), 4 GiB where that
/// cannot be read.
pub fn default_memory_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024 / 4)
        })
        .unwrap_or(4 << 30)
}

fn parse_nbits(s: &str) -> Result<u32, String> {
    match s {
        "1" | "2" | "4" => Ok(s.parse().expect("digit")),
        _ => Err(format!("{s:?}: nbits must be 1, 2 or 4")),
    }
}

impl PlaidBuildArgs {
    pub fn config(&self) -> PlaidConfig {
        PlaidConfig {
            nbits: self.nbits,
            num_centroids: self.num_centroids.map(|k| k as usize),
            sample_per_centroid: self.kmeans_sample_per_centroid as usize,
            kmeans_iterations: self.kmeans_iterations as usize,
            seed: self.seed,
            assign_probe: self.assign_probe.map_or(
                match self.store {
                    tessera_index::StoreKind::None => tessera_index::plaid::COMPACT_ASSIGN_PROBE,
                    _ => tessera_index::plaid::DEFAULT_ASSIGN_PROBE,
                },
                |p| p as usize,
            ),
            f16_centroids: match self.centroids.as_str() {
                "f16" => true,
                "f32" | "int8" => false,
                _ => self.store == tessera_index::StoreKind::Int8,
            },
            int8_centroids: match self.centroids.as_str() {
                "int8" => true,
                "auto" => self.store == tessera_index::StoreKind::None,
                _ => false,
            },
            max_sample_bytes: Some(self.memory_budget.unwrap_or_else(default_memory_budget) / 2),
        }
    }
}

/// How the MUVERA component is built (`--components muvera`); paper defaults.
#[derive(Debug, Clone, Args)]
pub struct MuveraBuildArgs {
    /// SimHash bits per repetition: 2^k_sim partitions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=12))]
    pub fde_k_sim: u32,
    /// Dimensions each vector is projected to inside a partition (= model dim: no projection).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub fde_d_proj: u32,
    /// Repetitions concatenated.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub fde_reps: u32,
    /// Final Count-Sketch dimension. The HNSW build holds every document's FDE in
    /// memory (reps x 2^k_sim x d_proj x 4 bytes: 80 KiB each at the defaults, 80 GB per
    /// million documents) [default: none, or the largest power of two whose FDEs fit in
    /// half of --memory-budget]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub fde_d_final: Option<u32>,
    /// Seed of the hyperplanes and projections (recorded; queries use the same).
    #[arg(long, default_value_t = 42)]
    pub fde_seed: u64,
    /// HNSW neighbours per node.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=256))]
    pub hnsw_max_connections: u32,
    /// HNSW construction breadth.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub hnsw_ef_construction: u32,
}

impl MuveraBuildArgs {
    /// Bytes of one document's FDE at these settings without a final projection
    /// (`reps x 2^k_sim x d_proj` f32s: 80 KiB at the paper's 20 x 32 x 32).
    pub fn full_fde_bytes(&self) -> u64 {
        4 * u64::from(self.fde_reps) * (1u64 << self.fde_k_sim) * u64::from(self.fde_d_proj)
    }

    /// The config for an index of about `docs` documents under `budget` bytes: the HNSW
    /// holds every document's FDE in memory while it is built, so when `--fde-d-final`
    /// is not given and the FDEs would take more than half the budget, the largest
    /// power-of-two final dimension whose FDEs fit is chosen (at least 64), and said on
    /// stderr.
    pub fn config_for(&self, docs: Option<usize>, budget: u64) -> MuveraConfig {
        let mut config = self.config();
        if let (None, Some(n)) = (self.fde_d_final, docs.filter(|&n| n > 0)) {
            let (full, cap) = (self.full_fde_bytes(), budget / 2);
            if full.saturating_mul(n as u64) > cap {
                let fit = (cap / (4 * n as u64)).max(64);
                let d = 1u64 << (63 - fit.leading_zeros());
                eprintln!(
                    "MUVERA: {n} documents x {} KiB of FDE ({} in all) exceed half the \
                     memory budget ({}): --fde-d-final {d} chosen ({} KiB per document); \
                     pass --fde-d-final or --memory-budget to choose",
                    full / 1024,
                    human_bytes(full * n as u64),
                    human_bytes(cap),
                    4 * d / 1024
                );
                config.fde.d_final = Some(d as usize);
            }
        }
        config
    }

    pub fn config(&self) -> MuveraConfig {
        MuveraConfig {
            fde: FdeConfig {
                k_sim: self.fde_k_sim,
                d_proj: self.fde_d_proj as usize,
                r_reps: self.fde_reps as usize,
                d_final: self.fde_d_final.map(|d| d as usize),
                fill_empty: true,
                seed: self.fde_seed,
            },
            graph: GraphConfig {
                max_connections: self.hnsw_max_connections as usize,
                ef_construction: self.hnsw_ef_construction as usize,
            },
        }
    }
}

/// First-stage search knobs (defaults depend on k, as in DESIGN.md). They become the
/// search layer's [`ParamOverrides`], the same shape as the HTTP API's `params`.
#[derive(Debug, Clone, Default, Args)]
pub struct SearchParamArgs {
    /// PLAID: centroids probed per query token [default: 1 for k<=10, 4 for k<=100, else 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub ncells: Option<u32>,
    /// PLAID: centroid pruning threshold [default: 0.5 / 0.45 / 0.4 by k].
    #[arg(long, allow_negative_numbers = true)]
    pub centroid_score_threshold: Option<f32>,
    /// PLAID: documents kept after pruned centroid interaction; ndocs/4 reach exact MaxSim
    /// [default: 256 / 1536 / max(4k, 4096) by k].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub ndocs: Option<u32>,
    /// PLAID: score survivors on the stored f16 vectors (exact) or on decompressed residuals.
    #[arg(long, value_enum)]
    pub rescore: Option<RescoreArg>,
    /// PLAID: refine the ndocs/4 survivors by token-pruned MaxSim: a query token's dot
    /// products are computed only with document tokens whose centroid score is within
    /// this margin of its best (a lower bound of MaxSim, exact with a large margin);
    /// a negative value turns refinement off. [default: by k, see the README]
    #[arg(long, allow_negative_numbers = true, value_name = "MARGIN")]
    pub refine_margin: Option<f32>,
    /// PLAID: with refinement, how many of the best refined documents get full MaxSim
    /// [default: by k].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub exact_docs: Option<u32>,
    /// MUVERA: documents taken from the HNSW and re-ranked by exact MaxSim
    /// [default: max(10k, 1000)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub candidates: Option<u32>,
    /// MUVERA: HNSW search breadth [default: the number of candidates].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub ef_search: Option<u32>,
    /// splade and bm25: documents each hands to exact MaxSim re-ranking in a `+` mode
    /// [default: max(k, 100)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub sparse_candidates: Option<u32>,
    /// splade: exhaustive (every posting into a dense accumulator, the faster on every
    /// collection measured) or maxscore (dynamic pruning: fewer postings touched). Both
    /// are exact and rank identically.
    /// [default: exhaustive]
    #[arg(long, value_enum)]
    pub sparse_scorer: Option<SparseScorerArg>,
    /// bm25: score with this k1 (Anserini's BEIR baselines use 0.9) instead of tantivy's
    /// fixed scorer (k1 1.2, b 0.75); the other parameter keeps tantivy's value unless given.
    #[arg(long)]
    pub bm25_k1: Option<f32>,
    /// bm25: score with this b (Anserini: 0.4); see --bm25-k1.
    #[arg(long)]
    pub bm25_b: Option<f32>,
    /// With --filter: run plaid and muvera as exact MaxSim over the allowed documents
    /// when they are at most this share of the collection (0 never, 1 always).
    /// [default: 0.1, measured: README "Filtered search"]
    #[arg(long, value_name = "SHARE")]
    pub filter_exact_below: Option<f32>,
    /// Only documents this filter admits: Qdrant's filter JSON, inline or @FILE, e.g.
    /// '{"must": [{"key": "tenant", "match": {"value": "acme"}}, {"key": "year",
    /// "range": {"gte": 2019}}]}'. Conditions: match (value/any/except), range
    /// (gt/gte/lt/lte; dates as RFC 3339), is_empty, has_id, nested must/should/must_not.
    #[arg(long, value_name = "JSON|@FILE")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SparseScorerArg {
    Exhaustive,
    Maxscore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RescoreArg {
    Exact,
    Decompressed,
}

impl SearchParamArgs {
    /// The flags as the search layer's overrides.
    pub fn overrides(&self) -> ParamOverrides {
        ParamOverrides {
            ncells: self.ncells,
            centroid_score_threshold: self.centroid_score_threshold,
            ndocs: self.ndocs,
            refine_margin: self.refine_margin,
            exact_docs: self.exact_docs,
            rescore: self.rescore.map(|r| match r {
                RescoreArg::Exact => RescoreChoice::Exact,
                RescoreArg::Decompressed => RescoreChoice::Decompressed,
            }),
            candidates: self.candidates,
            ef_search: self.ef_search,
            sparse_candidates: self.sparse_candidates,
            sparse_scorer: self.sparse_scorer.map(|s| match s {
                SparseScorerArg::Exhaustive => SparseScorerChoice::Exhaustive,
                SparseScorerArg::Maxscore => SparseScorerChoice::Maxscore,
            }),
            bm25_k1: self.bm25_k1,
            bm25_b: self.bm25_b,
            filter_exact_below: self.filter_exact_below,
        }
    }

    /// `--filter` parsed against the index's fields (a file's contents with `@FILE`).
    pub fn filter(
        &self,
        searcher: &crate::search::Searcher,
    ) -> crate::Result<Option<tessera_index::Filter>> {
        let Some(arg) = &self.filter else {
            return Ok(None);
        };
        let text = match arg.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).map_err(|e| crate::Error::Io {
                what: format!("--filter {path}"),
                source: e,
            })?,
            None => arg.clone(),
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| crate::Error::Filter(format!("filter: not valid JSON: {e}")))?;
        searcher.parse_filter(&value, "filter").map(Some)
    }

    /// Validated, as the library's parameters for a top-`k` search.
    pub fn params(&self, k: usize) -> crate::Result<SearchParams> {
        let o = self.overrides();
        o.validate().map_err(crate::Error::Usage)?;
        Ok(o.params(k))
    }
}

/// `--components`: names separated by commas.
fn parse_component(s: &str) -> Result<Component, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// A JSONL corpus, or a BEIR dataset directory (its corpus.jsonl is used).
    #[arg(required_unless_present = "vectors")]
    pub corpus: Option<PathBuf>,
    /// Index pre-encoded vectors instead of a corpus: DIR/vectors.npy (f16 or f32,
    /// [n_tokens, dim]), DIR/offsets.npy (int64, [n_docs + 1], from 0), DIR/ids.txt (one
    /// id per line) and optionally DIR/texts.jsonl ({"id", "text"}; needed for bm25).
    /// With --model, that model encodes text queries (its dimension must match);
    /// without it the index has no model and is searched with query vectors
    /// (`search --query-vectors`, HTTP `vectors`, `eval --query-vectors`).
    #[arg(long, value_name = "DIR", conflicts_with = "corpus")]
    pub vectors: Option<PathBuf>,
    /// Index directory to write (created; an index already there stays readable until
    /// the new one commits, then is replaced).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Structures to build, comma-separated: store (the f16 token vectors, always built),
    /// plaid (centroids, residual codes, IVF), muvera (FDEs in an HNSW), splade (impact
    /// postings from the SPLADE model), bm25 (tantivy over the document text).
    #[arg(long, value_delimiter = ',', default_value = "store", value_parser = parse_component)]
    pub components: Vec<Component>,
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub pooling: PoolingArgs,
    #[command(flatten)]
    pub plaid: PlaidBuildArgs,
    #[command(flatten)]
    pub muvera: MuveraBuildArgs,
    #[command(flatten)]
    pub splade: SpladeArgs,
    /// Print the build report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Replace an index in --out that cannot be read (damaged, or written by a newer
    /// Tessera); without it such a directory is refused and left untouched.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Index directory.
    pub index: PathBuf,
    /// The query text (optional with --query-vectors; bm25 and splade still need it).
    #[arg(required_unless_present = "query_vectors", default_value = "")]
    pub query: String,
    /// Pre-encoded query vectors: a [n_tokens, dim] f16 or f32 .npy file (encoded
    /// elsewhere, as for `index --vectors`); used instead of encoding the text.
    #[arg(long, value_name = "FILE")]
    pub query_vectors: Option<PathBuf>,
    /// Number of results.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub k: u32,
    /// First stages: exhaustive | plaid | muvera | splade | bm25, joined with `+` (union
    /// re-ranked by exact MaxSim) or prefixed with `rrf:` (reciprocal-rank fusion).
    #[arg(long, default_value = "exhaustive")]
    pub mode: Mode,
    #[command(flatten)]
    pub params: SearchParamArgs,
    /// Model directory (default: the one recorded in the index; its weights must match).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Show each result's metadata fields.
    #[arg(long)]
    pub include_fields: bool,
    /// Explain each result's score token by token: every query token, the document
    /// token(s) its best-matching stored vector stands for, and the similarity (these sum
    /// to the exact MaxSim score). Needs the documents' texts. With a non-exhaustive mode
    /// the results are that mode's, the explanation always exact.
    #[arg(long)]
    pub explain: bool,
    /// Explain this document's score for the query, whether or not it ranks in the top k.
    #[arg(long, value_name = "ID")]
    pub explain_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv). With
    /// --query-vectors only its qrels are read, and it may be left out.
    #[arg(required_unless_present = "query_vectors")]
    pub dataset: Option<PathBuf>,
    /// Pre-encoded queries instead of the dataset's: a directory laid out as `tessera
    /// index --vectors` takes it (vectors.npy, offsets.npy, ids.txt, optionally
    /// texts.jsonl). Needs --index. Without DATASET nothing judges the results: use
    /// --compare-exhaustive (or --sweep) to measure recall against exhaustive MaxSim.
    #[arg(long, value_name = "DIR", requires = "index")]
    pub query_vectors: Option<PathBuf>,
    /// Qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Evaluate this index; without it, one is built (or reused) in the cache directory.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Search mode (see `tessera search --help`).
    #[arg(long, default_value = "exhaustive")]
    pub mode: Mode,
    #[command(flatten)]
    pub params: SearchParamArgs,
    /// Also run exhaustive MaxSim on every query in the same run: report the mode's
    /// recall against the exhaustive top-k and the latency ratio.
    #[arg(long)]
    pub compare_exhaustive: bool,
    /// Benchmark helper: filter to a seeded random SHARE of the documents (0 < SHARE
    /// <= 1; a has_id filter, so any index works), as --filter would. The comparisons
    /// (--compare-exhaustive) are then against filtered exhaustive search.
    #[arg(long, value_name = "SHARE")]
    pub filter_selectivity: Option<f64>,
    /// For every first stage of the mode, its candidates' recall of the exhaustive
    /// MaxSim top-k (what each stage contributes to a `+` mode).
    #[arg(long)]
    pub stage_recall: bool,
    /// With --mode plaid: evaluate a grid of PLAID settings in one run (the latency/recall
    /// curve), each against exhaustive search.
    #[arg(long)]
    pub sweep: bool,
    /// With --sweep: the grid, as `key=v1,v2;key=...` over ncells, threshold, ndocs,
    /// margin (refinement margin, `off` for none), exact_docs, table (auto, f32, int8: the
    /// centroid score table) and rescore (exact,
    /// decompressed); keys left out keep the defaults for k. E.g. 'ncells=2,4;ndocs=1024;margin=off,0.1,0.2;exact_docs=20,50'.
    /// [default: ncells=1,2,4;threshold=0.5,0.45,0.4;ndocs=256,1024,4096;margin=off]
    #[arg(long, value_name = "SPEC", requires = "sweep")]
    pub sweep_grid: Option<String>,
    /// With an index that has MUVERA: Recall@k against exhaustive and nDCG@10 for
    /// 100..2000 candidates, MUVERA beside the single-vector (mean-pooled) baseline.
    #[arg(long)]
    pub muvera_curve: bool,
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
    /// Compare the run with this TREC run (for example `--mode exhaustive --run-file` on
    /// the f16 index): the share of each query's top-k (and top-10) it holds. For indexes
    /// whose own exhaustive search is approximate (`--store int8|none`).
    #[arg(long, value_name = "FILE")]
    pub reference_run: Option<PathBuf>,
    /// Write the run in TREC format (qid Q0 docid rank score tag).
    #[arg(long, value_name = "PATH")]
    pub run_file: Option<PathBuf>,
    /// Also write a self-contained HTML report (inline SVG plots, no scripts): metrics,
    /// latency histogram, per-stage recall when measured, the sweep curve with --sweep,
    /// and with --compare a per-query nDCG@10 scatter.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Evaluate this second mode in the same run; the report plots each query's nDCG@10
    /// in both (needs ndcg@10 among --metrics).
    #[arg(long, value_name = "MODE", requires = "report")]
    pub compare: Option<Mode>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where indexes built by eval are kept (default: $XDG_CACHE_HOME/tessera or ~/.cache/tessera).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Rebuild the cached index even if one exists.
    #[arg(long)]
    pub rebuild: bool,
    /// Components of the index eval builds (those --mode needs are added).
    #[arg(long, value_delimiter = ',', default_value = "store", value_parser = parse_component)]
    pub components: Vec<Component>,
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub pooling: PoolingArgs,
    #[command(flatten)]
    pub plaid: PlaidBuildArgs,
    #[command(flatten)]
    pub muvera: MuveraBuildArgs,
    #[command(flatten)]
    pub splade: SpladeArgs,
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> crate::Result<()> {
    let progress = !cli.quiet;
    match cli.command {
        Command::Index(args) => index::run(args, progress),
        Command::Search(args) => search::run(args),
        Command::Eval(args) => eval::run(args, progress),
        Command::Rebuild(args) => rebuild::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Add(args) => write::add(args, progress),
        Command::Delete(args) => write::delete(args),
        Command::Compact(args) => write::compact(args),
        Command::Info(args) => write::info(args),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 2g "), Ok(2 << 30));
        for bad in ["", "G", "-1G", "0", "4X", "1..5G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
