//! `tessera-index`: the model-agnostic half of Tessera. It takes token vectors, stores
//! them compactly on disk, and scores queries against them with exact MaxSim. It never
//! links a model runtime or an async runtime.
//!
//! Main types:
//! - [`IndexWriter`] streams documents' vectors into a new index generation and commits
//!   it with an atomic manifest rename;
//! - [`Index`] opens a committed index through memory maps;
//! - [`store::TokenStore`] hands out borrowed f16 rows per document;
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
//! assert_eq!(index.store().doc_id(hits[0].doc as usize), "a");
//! assert!((hits[0].score - 2.0).abs() < 1e-3);
//! ```

pub mod codec;
pub mod error;
pub mod lexical;
pub mod maxsim;
pub mod muvera;
pub mod plaid;
pub mod pooling;
pub mod search;
pub mod segment;
pub mod sparse;
pub mod store;

use std::path::{Path, PathBuf};

pub use error::{IndexError, Result};
pub use maxsim::Hit;
pub use muvera::{MuveraConfig, MuveraParams};
pub use plaid::{PlaidConfig, PlaidParams, Rescore};
pub use search::{Fusion, Mode, Query, SearchParams, SparseScorer, Stage};
pub use segment::{Manifest, ModelInfo};
pub use sparse::{SparseConfig, SparseVector};

use lexical::{Bm25Builder, Bm25Index};
use plaid::PlaidIndex;
use segment::{Components, FORMAT_VERSION};
use sparse::{SparseBuilder, SparseIndex};
use store::{MultiVectorRef, StoreWriter, TokenStore};

/// How to open an index.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Recompute every file's CRC-32C at open (one pass over the files; about 0.1 s per GB).
    pub verify_checksums: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: true,
        }
    }
}

/// A committed, read-only index.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    store: TokenStore,
    plaid: Option<PlaidIndex>,
    muvera: Option<muvera::MuveraIndex>,
    splade: Option<SparseIndex>,
    bm25: Option<Bm25Index>,
}

impl Index {
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, OpenOptions::default())
    }

    pub fn open_with(dir: &Path, options: OpenOptions) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let store = TokenStore::open(
            dir,
            &manifest.components.store,
            manifest.dim,
            manifest.num_docs,
            manifest.num_vectors,
            options.verify_checksums,
        )?;
        let (c, m, verify) = (&manifest.components, &manifest, options.verify_checksums);
        let plaid = c
            .plaid
            .as_ref()
            .map(|f| PlaidIndex::open(dir, f, m.dim, m.num_docs, m.num_vectors, verify))
            .transpose()?;
        let muvera = c
            .muvera
            .as_ref()
            .map(|f| muvera::MuveraIndex::open(dir, f, m.dim, m.num_docs, verify))
            .transpose()?;
        let splade = c
            .splade
            .as_ref()
            .map(|f| SparseIndex::open(dir, f, m.num_docs, verify))
            .transpose()?;
        let bm25 = c
            .bm25
            .as_ref()
            .map(|f| Bm25Index::open(dir, f, m.num_docs, verify))
            .transpose()?;
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            store,
            plaid,
            muvera,
            splade,
            bm25,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The PLAID component, if the index was built with it.
    pub fn plaid(&self) -> Option<&PlaidIndex> {
        self.plaid.as_ref()
    }

    /// The MUVERA component, if the index was built with it.
    pub fn muvera(&self) -> Option<&muvera::MuveraIndex> {
        self.muvera.as_ref()
    }

    /// The SPLADE component, if the index was built with it.
    pub fn splade(&self) -> Option<&SparseIndex> {
        self.splade.as_ref()
    }

    /// The BM25 component, if the index was built with it.
    pub fn bm25(&self) -> Option<&Bm25Index> {
        self.bm25.as_ref()
    }

    /// Exact MaxSim against every document; the best `k`.
    pub fn search_exhaustive(&self, query: MultiVectorRef<'_, f32>, k: usize) -> Vec<Hit> {
        maxsim::search_exhaustive(&self.store, query, k)
    }
}

/// Which optional components [`IndexWriter::commit`] builds beside the store.
#[derive(Debug, Clone, Default)]
pub struct IndexConfig {
    pub plaid: Option<PlaidConfig>,
    pub muvera: Option<MuveraConfig>,
    /// SPLADE impact postings: every document must come with its sparse vector.
    pub splade: Option<SparseConfig>,
    /// BM25 with tantivy: every document must come with its text.
    pub bm25: bool,
    /// Keep every document's text beside its vectors (search results can show it);
    /// every document must come with its text.
    pub store_text: bool,
}

/// What a document brings besides its token vectors, for the components that need it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocExtras<'a> {
    /// Text for BM25 (title and body as one string).
    pub text: Option<&'a str>,
    /// SPLADE term weights.
    pub sparse: Option<&'a SparseVector>,
}

/// Builds a new generation of an index in `dir`. Nothing becomes visible to readers until
/// [`IndexWriter::commit`]; an interrupted write leaves the previous commit readable.
pub struct IndexWriter {
    dir: PathBuf,
    generation: u64,
    model: ModelInfo,
    store: StoreWriter,
    config: IndexConfig,
    splade: Option<SparseBuilder>,
    bm25: Option<Bm25Builder>,
    texts: Option<store::TextsWriter>,
}

impl IndexWriter {
    /// Start writing into `dir` (created if missing). If `dir` holds a committed index,
    /// it stays readable until this writer commits; then its files are removed.
    pub fn create(dir: &Path, model: ModelInfo) -> Result<Self> {
        Self::create_with(dir, model, IndexConfig::default())
    }

    /// Like [`IndexWriter::create`], also building the components `config` asks for.
    pub fn create_with(dir: &Path, model: ModelInfo, config: IndexConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let previous = match Manifest::read(dir) {
            Ok(m) => Some(m),
            Err(IndexError::NotAnIndex { .. }) => None,
            // A damaged previous manifest must not block a rebuild; it is replaced.
            Err(_) => None,
        };
        let generation = previous.as_ref().map_or(1, |m| m.generation + 1);
        let store = StoreWriter::create(dir, generation, model.dim)?;
        let splade = config.splade.clone().map(SparseBuilder::new);
        let bm25 = if config.bm25 {
            Some(Bm25Builder::create(dir, generation)?)
        } else {
            None
        };
        let texts = if config.store_text {
            Some(store::TextsWriter::create(dir, generation)?)
        } else {
            None
        };
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            generation,
            model,
            store,
            config,
            splade,
            bm25,
            texts,
        })
    }

    pub fn dim(&self) -> usize {
        self.model.dim
    }

    pub fn num_docs(&self) -> usize {
        self.store.num_docs()
    }

    pub fn num_vectors(&self) -> usize {
        self.store.num_vectors() as usize
    }

    /// Add a document's token vectors (row-major, `n * dim` values, n ≥ 1). Only for
    /// indexes without `splade` or `bm25`, which need [`IndexWriter::add_with`].
    pub fn add(&mut self, id: &str, vectors: &[f32]) -> Result<()> {
        self.add_with(id, vectors, DocExtras::default())
    }

    /// Add a document with the text and sparse vector the configured components need.
    pub fn add_with(&mut self, id: &str, vectors: &[f32], extras: DocExtras<'_>) -> Result<()> {
        self.check_extras(id, &extras)?;
        self.store.add(id, vectors)?;
        self.add_extras(extras)
    }

    /// Add a document whose vectors are already f16 (e.g. copied from another index).
    pub fn add_f16(&mut self, id: &str, vectors: &[half::f16]) -> Result<()> {
        self.add_f16_with(id, vectors, DocExtras::default())
    }

    /// [`IndexWriter::add_with`] for f16 vectors.
    pub fn add_f16_with(
        &mut self,
        id: &str,
        vectors: &[half::f16],
        extras: DocExtras<'_>,
    ) -> Result<()> {
        self.check_extras(id, &extras)?;
        self.store.add_f16(id, vectors)?;
        self.add_extras(extras)
    }

    /// Refuse a document before anything is written, so components never disagree
    /// about which documents exist.
    fn check_extras(&self, id: &str, extras: &DocExtras<'_>) -> Result<()> {
        if self.splade.is_some() && extras.sparse.is_none() {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: the index builds splade but no sparse vector was given"
            )));
        }
        if (self.bm25.is_some() || self.texts.is_some()) && extras.text.is_none() {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: the index keeps texts or builds bm25 but no text was given"
            )));
        }
        if let (Some(b), Some(v)) = (&self.splade, extras.sparse) {
            b.check(v)?;
        }
        Ok(())
    }

    fn add_extras(&mut self, extras: DocExtras<'_>) -> Result<()> {
        if let (Some(b), Some(v)) = (&mut self.splade, extras.sparse) {
            b.add(v)?;
        }
        if let (Some(b), Some(t)) = (&mut self.bm25, extras.text) {
            b.add(t)?;
        }
        if let (Some(w), Some(t)) = (&mut self.texts, extras.text) {
            w.add(t)?;
        }
        Ok(())
    }

    /// Finish every file, then publish them with an atomic manifest rename; finally
    /// delete files of older generations (best effort: leftovers are harmless).
    pub fn commit(self, config: serde_json::Value) -> Result<Manifest> {
        let num_docs = self.store.num_docs();
        let num_vectors = self.store.num_vectors() as usize;
        let dim = self.store.dim();
        let mut store = self.store.finish()?;
        store.texts = match self.texts {
            Some(w) => Some(w.finish()?),
            None => None,
        };
        let needs_reader = self.config.plaid.is_some() || self.config.muvera.is_some();
        let reader = if needs_reader {
            Some(TokenStore::open(
                &self.dir,
                &store,
                dim,
                num_docs,
                num_vectors,
                false,
            )?)
        } else {
            None
        };
        let plaid = match (&self.config.plaid, &reader) {
            (Some(cfg), Some(r)) => Some(plaid::build_plaid(&self.dir, self.generation, r, cfg)?),
            _ => None,
        };
        let muvera_files = match (&self.config.muvera, &reader) {
            (Some(cfg), Some(r)) => Some(muvera::build_muvera(&self.dir, self.generation, r, cfg)?),
            _ => None,
        };
        let splade = match self.splade {
            Some(b) => Some(b.finish(&self.dir, self.generation)?),
            None => None,
        };
        let bm25 = match self.bm25 {
            Some(b) => Some(b.finish(&self.dir)?),
            None => None,
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            generation: self.generation,
            created_by: format!("tessera-index {}", env!("CARGO_PKG_VERSION")),
            model: self.model,
            num_docs,
            num_vectors,
            dim,
            config,
            components: Components {
                store,
                plaid,
                muvera: muvera_files,
                splade,
                bm25,
            },
        };
        manifest.commit(&self.dir)?;
        remove_stale_files(&self.dir, &manifest);
        Ok(manifest)
    }
}

/// Remove generation files and directories (`g<N>.*`) the new manifest does not list.
fn remove_stale_files(dir: &Path, current: &Manifest) {
    // A listed `g3.bm25/meta.json` keeps the directory `g3.bm25`.
    let keep: std::collections::HashSet<&str> = current
        .file_names()
        .into_iter()
        .filter_map(|n| n.split('/').next())
        .collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_generation_file = name.starts_with('g')
            && name[1..]
                .split('.')
                .next()
                .is_some_and(|n| n.parse::<u64>().is_ok());
        if is_generation_file && !keep.contains(name) {
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(entry.path())
            } else {
                std::fs::remove_file(entry.path())
            };
        }
    }
}
