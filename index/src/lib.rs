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
pub mod deadline;
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

pub use deadline::Deadline;
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

/// How [`IndexWriter`] treats what is already in its directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Replace an index whose manifest cannot be read (damaged, or written by a newer
    /// Tessera). Without it such a directory is refused and left as it is.
    pub force: bool,
}

/// Builds a new generation of an index in `dir`. Nothing becomes visible to readers until
/// [`IndexWriter::commit`]; an interrupted write leaves the previous commit readable.
///
/// One writer per directory: the writer holds `writer.lock` (an OS lock, released
/// however the process ends) from creation to commit or drop. It removes only files it
/// wrote itself (when dropped without committing), files the previous manifest listed and
/// the new one does not (after committing), and, under the lock, files of the directory's
/// naming scheme that no committed manifest lists (left by a killed writer).
pub struct IndexWriter {
    dir: PathBuf,
    generation: u64,
    model: ModelInfo,
    store: StoreWriter,
    config: IndexConfig,
    splade: Option<SparseBuilder>,
    bm25: Option<Bm25Builder>,
    texts: Option<store::TextsWriter>,
    /// The manifest this commit replaces (its unlisted files are removed after commit).
    previous: Option<Manifest>,
    /// Replacing an unreadable index: after commit, every generation file but ours goes.
    forced: bool,
    /// The lock, and the clean-up of this generation's files if no commit happens.
    guard: WriteGuard,
}

/// Holds the directory lock; dropped before a commit, it removes the files of the
/// generation being written (and the directory, if the writer created it), so a failed
/// run leaves the directory as it found it.
struct WriteGuard {
    dir: PathBuf,
    generation: u64,
    created_dir: bool,
    committed: bool,
    lock: Option<segment::DirLock>,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        remove_generation_files(&self.dir, |g| g == self.generation);
        if self.created_dir {
            drop(self.lock.take());
            let _ = std::fs::remove_file(self.dir.join(segment::LOCK_NAME));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl IndexWriter {
    /// Start writing into `dir` (created if missing). If `dir` holds a committed index,
    /// it stays readable until this writer commits; then its files are removed.
    pub fn create(dir: &Path, model: ModelInfo) -> Result<Self> {
        Self::create_with(dir, model, IndexConfig::default())
    }

    /// Like [`IndexWriter::create`], also building the components `config` asks for.
    pub fn create_with(dir: &Path, model: ModelInfo, config: IndexConfig) -> Result<Self> {
        Self::create_with_options(dir, model, config, WriteOptions::default())
    }

    /// Like [`IndexWriter::create_with`]; `options.force` replaces an unreadable index.
    pub fn create_with_options(
        dir: &Path,
        model: ModelInfo,
        config: IndexConfig,
        options: WriteOptions,
    ) -> Result<Self> {
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let lock = match segment::DirLock::acquire(dir) {
            Ok(l) => l,
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(e);
            }
        };
        let previous = match Manifest::read(dir) {
            Ok(m) => Some(m),
            Err(IndexError::NotAnIndex { .. }) => None,
            Err(e) if options.force => {
                let _ = e;
                None
            }
            Err(e) => {
                return Err(IndexError::ExistingIndexUnreadable {
                    dir: dir.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let forced = previous.is_none() && options.force;
        let generation = match &previous {
            Some(m) => m.generation + 1,
            // After a manifest that could not be read, stay clear of its file names.
            None => highest_generation_file(dir).map_or(1, |g| g + 1),
        };
        if let Some(m) = &previous {
            remove_orphans(dir, m);
        }
        let guard = WriteGuard {
            dir: dir.to_path_buf(),
            generation,
            created_dir,
            committed: false,
            lock: Some(lock),
        };
        let store = StoreWriter::create(dir, generation, model.dim)?;
        let bm25 = match config.bm25 {
            true => Some(Bm25Builder::create(dir, generation)?),
            false => None,
        };
        let texts = match config.store_text {
            true => Some(store::TextsWriter::create(dir, generation)?),
            false => None,
        };
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            generation,
            model,
            store,
            splade: config.splade.clone().map(SparseBuilder::new),
            config,
            bm25,
            texts,
            previous,
            forced,
            guard,
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
    pub fn commit(mut self, config: serde_json::Value) -> Result<Manifest> {
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
            manifest_crc32c: None,
        };
        manifest.commit(&self.dir)?;
        self.guard.committed = true;
        remove_replaced_files(&self.dir, self.previous.as_ref(), &manifest, self.forced);
        Ok(manifest)
    }
}

/// The generation number of a file or directory named `g<N>.<rest>`.
fn generation_of(name: &str) -> Option<u64> {
    let (g, _) = name.strip_prefix('g')?.split_once('.')?;
    g.parse().ok()
}

/// Top-level entries (a listed `g3.bm25/meta.json` keeps the directory `g3.bm25`).
fn listed_entries(m: &Manifest) -> std::collections::HashSet<String> {
    let mut keep: std::collections::HashSet<String> = m
        .file_names()
        .into_iter()
        .filter_map(|n| n.split('/').next())
        .map(str::to_string)
        .collect();
    if let Some(b) = &m.components.bm25 {
        keep.insert(b.dir.clone());
    }
    keep
}

fn remove_entry(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

/// Remove every `g<N>.*` entry of `dir` whose generation satisfies `pick`.
fn remove_generation_files(dir: &Path, pick: impl Fn(u64) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().and_then(generation_of).is_some_and(&pick) {
            remove_entry(&entry.path());
        }
    }
}

/// The highest generation any `g<N>.*` entry of `dir` carries.
fn highest_generation_file(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(generation_of))
        .max()
}

/// Under the lock, before writing: `g<N>.*` entries the committed manifest does not list
/// were left by a writer that died (killed before its commit, or after it but before its
/// clean-up): no live writer can own them.
fn remove_orphans(dir: &Path, committed: &Manifest) {
    let keep = listed_entries(committed);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if generation_of(name).is_some() && !keep.contains(name) {
            remove_entry(&entry.path());
        }
    }
}

/// After a commit: the files the replaced manifest listed and the new one does not; when
/// an unreadable index was replaced on purpose, every other generation's files.
fn remove_replaced_files(dir: &Path, previous: Option<&Manifest>, new: &Manifest, forced: bool) {
    let keep = listed_entries(new);
    if forced {
        remove_generation_files(dir, |g| g != new.generation);
        return;
    }
    if let Some(prev) = previous {
        for name in listed_entries(prev) {
            if !keep.contains(&name) {
                remove_entry(&dir.join(name));
            }
        }
    }
}
