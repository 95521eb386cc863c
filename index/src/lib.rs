//! `tessera-index`: the model-agnostic half of Tessera. It takes token vectors, stores
//! them compactly on disk, and scores queries against them with exact MaxSim. It never
//! links a model runtime or an async runtime.
//!
//! An index is a directory of write-once segments listed by one manifest (committed by
//! an atomic rename); documents have stable external ids, and deletes are tombstones.
//!
//! Main types:
//! - [`IndexWriter`] adds, upserts and deletes documents in batches; each commit
//!   publishes a new segment and its tombstones atomically, then merges segments;
//! - [`Index`] is a snapshot of one commit, opened through memory maps; it searches
//!   every segment ([`Index::search`]) and finds documents by id ([`Index::lookup`]);
//!   [`Index::reload`] picks up the newest commit;
//! - [`Component`] lists what an index can hold; [`Mode`] says which first stages run;
//! - [`maxsim::MaxSim`] scores with a runtime-dispatched SIMD kernel
//!   ([`maxsim::maxsim_scalar`] is its reference).
//!
//! ```
//! use tessera_index::{Index, IndexWriter, ModelInfo, store::MultiVectorRef};
//! let dir = tempfile::tempdir().unwrap();
//! let model = ModelInfo { name: "toy".into(), dim: 2, weights_sha256: "-".into(), encoder: Default::default() };
//! let mut w = IndexWriter::create(dir.path(), model).unwrap();
//! w.add("a", &[1.0, 0.0, 0.0, 1.0]).unwrap(); // two token vectors
//! w.add("b", &[0.6, 0.8]).unwrap();
//! w.commit(serde_json::json!({})).unwrap();
//!
//! let index = Index::open(dir.path()).unwrap();
//! let query = [1.0f32, 0.0, 0.0, 1.0];
//! let hits = index.search_exhaustive(MultiVectorRef::new(&query, 2), 1);
//! assert_eq!(index.doc_id(hits[0].addr), "a");
//! assert!((hits[0].score - 2.0).abs() < 1e-3);
//!
//! // Later (the same writer, or `IndexWriter::open` once it is gone): delete one
//! // document, add another, in one commit.
//! w.delete(&["a"]);
//! w.add("c", &[0.0, 1.0]).unwrap();
//! w.commit(serde_json::Value::Null).unwrap();
//! let index = index.reload().unwrap();
//! assert_eq!(index.lookup("a"), None);
//! assert_eq!(index.num_docs(), 2);
//! ```

pub mod activation;
pub mod allow;
pub mod codec;
pub mod component;
pub mod deadline;
pub mod error;
pub mod fields;
pub mod filter;
pub mod lexical;
pub mod maxsim;
pub mod muvera;
pub mod plaid;
pub mod pooling;
pub mod reader;
pub mod search;
pub mod segment;
pub mod sparse;
pub mod store;
pub mod writer;

pub use allow::Allow;
pub use component::Component;
pub use deadline::Deadline;
pub use error::{IndexError, Result};
pub use fields::{FieldDef, FieldKind, FieldSchema, FieldValues};
pub use filter::{Filter, FilterError};
pub use maxsim::Hit;
pub use muvera::{MuveraConfig, MuveraParams};
pub use plaid::{PlaidConfig, PlaidParams, Rescore, ScoreTable};
pub use reader::{DocAddress, Index, OpenOptions, OpenProgress, ScoredDoc, SegmentReader};
pub use search::{
    Fusion, Mode, Plan, Query, Scope, SearchParams, SparseScorer, Stage, FILTER_EXACT_BELOW,
};
pub use segment::StoreKind;
pub use segment::{Manifest, ModelInfo};
pub use sparse::{SparseConfig, SparseVector};
pub use writer::{DeleteReport, IndexWriter, MergePolicy, WriteOptions};

use serde::{Deserialize, Serialize};

/// What every segment of an index holds beside the store, and how it is built. Given at
/// creation, recorded in the manifest (`settings`), reused by every later write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    #[serde(default)]
    pub plaid: Option<PlaidConfig>,
    #[serde(default)]
    pub muvera: Option<MuveraConfig>,
    /// SPLADE impact postings: every document must come with its sparse vector.
    #[serde(default)]
    pub splade: Option<SparseConfig>,
    /// BM25 with tantivy: every document must come with its text.
    #[serde(default)]
    pub bm25: bool,
    /// Keep every document's text beside its vectors (search results can show it);
    /// every document must come with its text. Always on with `bm25` (merging BM25
    /// segments re-indexes their text).
    #[serde(default)]
    pub store_text: bool,
    /// Typed metadata fields documents may carry (for filters); none by default.
    #[serde(default, skip_serializing_if = "FieldSchema::is_empty")]
    pub fields: FieldSchema,
    /// How segments keep the token vectors: f16 (exact MaxSim, the default), int8, or
    /// none (scores from PLAID's codes; needs plaid). Old manifests read f16.
    #[serde(default, skip_serializing_if = "StoreKind::is_f16")]
    pub store: StoreKind,
}

/// What a document brings besides its token vectors, for the components that need it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocExtras<'a> {
    /// Text for BM25 (title and body as one string).
    pub text: Option<&'a str>,
    /// SPLADE term weights.
    pub sparse: Option<&'a SparseVector>,
    /// Metadata field values (checked against the index's schema when added).
    pub fields: Option<&'a FieldValues>,
}
