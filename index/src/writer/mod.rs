//! Writing an index: [`IndexWriter`] adds, upserts and deletes documents in batches; each
//! [`IndexWriter::commit`] is one atomic manifest rename that publishes a new segment
//! (the batch's documents) and the batch's tombstones together, then lets the merge
//! policy merge segments (each merge its own commit). Nothing a reader can see changes
//! before a commit, and a committed index stays readable whatever happens to a later one.
//!
//! One writer per directory: it holds `writer.lock` (an OS lock, released however the
//! process ends) from creation to drop. It deletes only files of the index's naming
//! scheme that no committed manifest lists (`gc.rs`): its own after a failed batch, the
//! replaced ones after a commit, a dead writer's at start.

mod gc;
mod merge;
mod segment;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::f16;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

pub use merge::MergePolicy;

use segment::{deletes_name, write_deletes, CopiedCodes, PlaidSource, SegmentBuilder, Vectors};

use crate::component::Component;
use crate::error::{IndexError, Result};
use crate::plaid::PlaidCodec;
use crate::reader::{DocAddress, Index, OpenOptions};
use crate::segment::{DirLock, Manifest, ModelInfo, SegmentMeta, FORMAT_VERSION};
use crate::{DocExtras, IndexConfig};

/// How [`IndexWriter`] treats what is already in its directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Replace an index whose manifest cannot be read (damaged, or written by a newer
    /// Tessera). Without it such a directory is refused and left as it is.
    pub force: bool,
}

/// What [`IndexWriter::delete`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReport {
    pub deleted: usize,
    /// Ids no live document has (reported, not an error).
    pub not_found: Vec<String>,
}

/// Writes into one index directory; see the module documentation.
pub struct IndexWriter {
    dir: PathBuf,
    model: ModelInfo,
    settings: IndexConfig,
    /// The last committed manifest (`None`: nothing committed here yet).
    committed: Option<Manifest>,
    /// The committed index, opened, for id lookups and merges.
    snapshot: Option<Index>,
    /// The next commit drops every committed segment (`create`: a new index).
    replace: bool,
    /// An unreadable index is being replaced on purpose: the next commit's generation
    /// is above every file present.
    first_generation: u64,
    next_id: u64,
    pending: Option<SegmentBuilder>,
    /// Tombstones of committed documents, by segment position in `snapshot`.
    pending_deletes: BTreeMap<u32, RoaringBitmap>,
    policy: MergePolicy,
    created_dir: bool,
    /// Before anything is committed, a drop removes the entries numbered from here on
    /// (the ones this writer made); `None`: touch nothing.
    cleanup_floor: Option<u64>,
    lock: Option<DirLock>,
}

/// What `create` found in the directory.
fn read_existing(dir: &Path, force: bool) -> Result<Option<Manifest>> {
    match Manifest::read(dir) {
        Ok(m) => Ok(Some(m)),
        Err(IndexError::NotAnIndex { .. }) => Ok(None),
        Err(_) if force => Ok(None),
        Err(e) => Err(IndexError::ExistingIndexUnreadable {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// The highest number any `g<N>.*`, `s<N>.*` or `c<N>.*` entry of `dir` carries.
fn highest_entry_number(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    crate::segment::is_index_entry(&name)
                        .then(|| name[1..].split('.').next()?.parse::<u64>().ok())
                        .flatten()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn lock_dir(dir: &Path) -> Result<(PathBuf, bool, DirLock)> {
    let created_dir = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let canonical = dir.canonicalize().map_err(|e| IndexError::io(dir, e))?;
    match DirLock::acquire(&canonical) {
        Ok(lock) => Ok((canonical, created_dir, lock)),
        Err(e) => {
            if created_dir {
                let _ = std::fs::remove_dir(&canonical);
            }
            Err(e)
        }
    }
}

impl IndexWriter {
    /// Start a new index in `dir` (created if missing). If `dir` holds a committed
    /// index, it stays readable until this writer's first commit replaces it.
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
        if model.dim == 0 {
            return Err(IndexError::InvalidArgument("dim must be positive".into()));
        }
        config
            .fields
            .validate()
            .map_err(IndexError::InvalidArgument)?;
        if config.store == crate::StoreKind::None && config.plaid.is_none() {
            return Err(IndexError::InvalidArgument(
                "a store without vectors (--store none) scores from PLAID's codes: \
                 the index needs the plaid component"
                    .into(),
            ));
        }
        let mut config = config;
        // Merging BM25 segments re-indexes their documents' text.
        config.store_text |= config.bm25;
        let (dir, created_dir, lock) = lock_dir(dir)?;
        let mut w = IndexWriter {
            dir,
            model,
            settings: config,
            committed: None,
            snapshot: None,
            replace: true,
            first_generation: 1,
            next_id: 1,
            pending: None,
            pending_deletes: BTreeMap::new(),
            policy: MergePolicy::default(),
            created_dir,
            cleanup_floor: None,
            lock: Some(lock),
        };
        match read_existing(&w.dir, options.force) {
            Ok(previous) => {
                if previous.is_none() {
                    // Stay clear of the names an unreadable index's files carry.
                    let top = highest_entry_number(&w.dir);
                    w.first_generation = top + 1;
                    w.next_id = top + 1;
                    w.cleanup_floor = Some(top + 1);
                }
                if let Some(m) = &previous {
                    gc::collect(&w.dir, Some(m));
                    w.next_id = m.next_id;
                    w.first_generation = m.generation + 1;
                }
                w.committed = previous;
                Ok(w)
            }
            Err(e) => {
                w.created_dir = false;
                Err(e)
            }
        }
    }

    /// Open the index in `dir` to change it: add, upsert, delete, compact. Model and
    /// settings are the index's own.
    pub fn open(dir: &Path) -> Result<Self> {
        let (dir, created_dir, lock) = lock_dir(dir)?;
        let mut w = IndexWriter {
            dir,
            model: ModelInfo {
                name: String::new(),
                dim: 1,
                weights_sha256: String::new(),
                encoder: serde_json::Value::Null,
            },
            settings: IndexConfig::default(),
            committed: None,
            snapshot: None,
            replace: false,
            first_generation: 1,
            next_id: 1,
            pending: None,
            pending_deletes: BTreeMap::new(),
            policy: MergePolicy::default(),
            created_dir,
            cleanup_floor: None,
            lock: Some(lock),
        };
        let manifest = match Manifest::read(&w.dir) {
            Ok(m) => m,
            Err(e) => {
                // Nothing of ours to clean; leave whatever is there as it is.
                w.created_dir = created_dir && matches!(e, IndexError::NotAnIndex { .. });
                return Err(e);
            }
        };
        gc::collect(&w.dir, Some(&manifest));
        w.snapshot = Some(Index::open_with(
            &w.dir,
            OpenOptions {
                verify_checksums: false,
            },
        )?);
        w.model = manifest.model.clone();
        w.settings = manifest.settings.clone();
        w.next_id = manifest.next_id;
        w.first_generation = manifest.generation + 1;
        w.committed = Some(manifest);
        Ok(w)
    }

    /// Use `policy` for the merges after each commit.
    pub fn set_merge_policy(&mut self, policy: MergePolicy) {
        self.policy = policy;
    }

    /// Bytes of one document's MUVERA FDE (f32, the encoder's output dimension) where
    /// the index builds MUVERA: what a segment's HNSW holds per document while it is
    /// built (see [`MergePolicy::for_fde_budget`]).
    pub fn fde_bytes_per_doc(&self) -> Option<u64> {
        let muvera = self.settings.muvera.as_ref()?;
        let dim = crate::muvera::FdeEncoder::new(self.model.dim, muvera.fde).output_dim();
        Some(4 * dim as u64)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dim(&self) -> usize {
        self.model.dim
    }

    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    pub fn settings(&self) -> &IndexConfig {
        &self.settings
    }

    /// The last committed manifest, if any.
    pub fn committed(&self) -> Option<&Manifest> {
        self.committed.as_ref()
    }

    /// The committed index as this writer sees it (none before the first commit of a
    /// new index).
    pub fn snapshot(&self) -> Option<&Index> {
        self.snapshot.as_ref()
    }

    /// Documents added since the last commit (tombstoned ones included).
    pub fn num_docs(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.num_docs())
    }

    /// Vectors added since the last commit.
    pub fn num_vectors(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.num_vectors())
    }

    fn builder(&mut self) -> Result<&mut SegmentBuilder> {
        if self.pending.is_none() {
            let id = self.next_id;
            self.next_id += 1;
            self.pending = Some(SegmentBuilder::create(
                &self.dir,
                id,
                &self.settings,
                self.model.dim,
                None,
            )?);
        }
        Ok(self.pending.as_mut().expect("just created"))
    }

    /// The committed live document with this id, unless this batch deleted it.
    fn committed_live(&self, id: &str) -> Option<DocAddress> {
        if self.replace {
            return None;
        }
        let a = self.snapshot.as_ref()?.lookup(id)?;
        let gone = self
            .pending_deletes
            .get(&a.segment)
            .is_some_and(|d| d.contains(a.doc));
        (!gone).then_some(a)
    }

    fn put(
        &mut self,
        id: &str,
        vectors: Vectors<'_>,
        extras: DocExtras<'_>,
        upsert: bool,
    ) -> Result<()> {
        let committed = self.committed_live(id);
        let pending = self.pending.as_ref().and_then(|p| p.find(id));
        if !upsert && (committed.is_some() || pending.is_some()) {
            return Err(IndexError::DocumentExists { id: id.to_string() });
        }
        let builder = self.builder()?;
        builder.check(id, vectors, &extras)?;
        if let Some(doc) = pending {
            builder.delete(doc);
        }
        builder.add(id, vectors, extras, None)?;
        if let Some(a) = committed {
            self.pending_deletes
                .entry(a.segment)
                .or_default()
                .insert(a.doc);
        }
        Ok(())
    }

    /// Add a document's token vectors (row-major, `n * dim` values, n ≥ 1). Only for
    /// indexes without `splade`, `bm25` or kept texts, which need [`IndexWriter::add_with`].
    pub fn add(&mut self, id: &str, vectors: &[f32]) -> Result<()> {
        self.add_with(id, vectors, DocExtras::default())
    }

    /// Add a document with the text and sparse vector the configured components need.
    /// An id a live document already has is [`IndexError::DocumentExists`].
    pub fn add_with(&mut self, id: &str, vectors: &[f32], extras: DocExtras<'_>) -> Result<()> {
        self.put(id, Vectors::F32(vectors), extras, false)
    }

    /// Add a document whose vectors are already f16 (e.g. copied from another index).
    pub fn add_f16(&mut self, id: &str, vectors: &[f16]) -> Result<()> {
        self.add_f16_with(id, vectors, DocExtras::default())
    }

    /// [`IndexWriter::add_with`] for f16 vectors.
    pub fn add_f16_with(&mut self, id: &str, vectors: &[f16], extras: DocExtras<'_>) -> Result<()> {
        self.put(id, Vectors::F16(vectors), extras, false)
    }

    /// Add a document, replacing the live one with the same id if there is one (the old
    /// one is tombstoned in the same commit that adds the new one).
    pub fn upsert_with(&mut self, id: &str, vectors: &[f32], extras: DocExtras<'_>) -> Result<()> {
        self.put(id, Vectors::F32(vectors), extras, true)
    }

    /// [`IndexWriter::upsert_with`] for f16 vectors.
    pub fn upsert_f16_with(
        &mut self,
        id: &str,
        vectors: &[f16],
        extras: DocExtras<'_>,
    ) -> Result<()> {
        self.put(id, Vectors::F16(vectors), extras, true)
    }

    /// Tombstone the live documents with these ids (committed or added in this batch).
    /// Unknown ids are reported, not an error.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> DeleteReport {
        let mut report = DeleteReport::default();
        for id in ids {
            let id = id.as_ref();
            if let Some(doc) = self.pending.as_ref().and_then(|p| p.find(id)) {
                self.pending.as_mut().expect("found in it").delete(doc);
                report.deleted += 1;
            } else if let Some(a) = self.committed_live(id) {
                self.pending_deletes
                    .entry(a.segment)
                    .or_default()
                    .insert(a.doc);
                report.deleted += 1;
            } else {
                report.not_found.push(id.to_string());
            }
        }
        report
    }

    /// Whether a live document (committed and not deleted in this batch, or added in
    /// it) has this id.
    pub fn contains(&self, id: &str) -> bool {
        self.committed_live(id).is_some()
            || self.pending.as_ref().and_then(|p| p.find(id)).is_some()
    }

    /// Whether the batch holds anything to commit.
    pub fn has_changes(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.num_docs() > 0)
            || self.pending_deletes.values().any(|d| !d.is_empty())
            || (self.replace && self.committed.is_some())
    }

    /// Publish the batch with one atomic manifest rename (`config` is recorded as the
    /// index's build configuration when this writer creates the index, and as
    /// `last_write` otherwise); then merge segments as the policy says, each merge its
    /// own commit. Returns the last manifest committed.
    pub fn commit(&mut self, config: serde_json::Value) -> Result<Manifest> {
        let manifest = self.commit_batch(config)?;
        self.merge_per_policy().map(|m| m.unwrap_or(manifest))
    }

    /// Commit the batch without merging afterwards.
    pub fn commit_batch(&mut self, config: serde_json::Value) -> Result<Manifest> {
        if !self.has_changes() && self.committed.is_some() && !self.replace {
            return Ok(self.committed.clone().expect("checked"));
        }
        let generation = self.next_generation();
        let mut segments: Vec<SegmentMeta> = match (&self.committed, self.replace) {
            (Some(m), false) => m.segments.clone(),
            _ => Vec::new(),
        };
        // The batch's tombstones of committed documents, one new file per segment.
        if !self.replace {
            let snapshot = self.snapshot.as_ref().expect("append mode has a snapshot");
            for (&pos, new) in &self.pending_deletes {
                if new.is_empty() {
                    continue;
                }
                let mut all = snapshot.deleted(pos as usize).clone();
                all |= new;
                let id = snapshot.segment(pos as usize).id();
                let file = write_deletes(&self.dir, &deletes_name(id, generation), &all)?;
                let meta = segments
                    .iter_mut()
                    .find(|s| s.id == id)
                    .expect("snapshot segment is committed");
                meta.deletes = Some(file);
            }
        }
        let mut codec = match (&self.committed, self.replace) {
            (Some(m), false) => m.codec.clone(),
            _ => None,
        };
        if let Some(builder) = self.pending.take() {
            if builder.num_docs() > 0 {
                let (meta, trained) = self.finish_segment(
                    builder,
                    codec.as_ref(),
                    generation,
                    serde_json::json!({"kind": "batch"}),
                )?;
                if let Some(t) = trained {
                    codec = Some(t);
                }
                segments.push(meta);
            }
        }
        segments.retain(|s| s.live_docs() > 0);
        let mut cfg = match (&self.committed, self.replace) {
            (Some(m), false) => m.config.clone(),
            _ => config.clone(),
        };
        if !self.replace && !config.is_null() {
            if let Some(obj) = cfg.as_object_mut() {
                obj.insert("last_write".into(), config);
            }
        }
        let manifest = self.manifest_for(generation, segments, codec, cfg);
        self.publish(manifest)
    }

    fn next_generation(&self) -> u64 {
        match &self.committed {
            Some(m) => m.generation.max(self.first_generation - 1) + 1,
            None => self.first_generation,
        }
    }

    /// Finish `builder` with the index's codec, training one if the index has plaid and
    /// no codec yet.
    fn finish_segment(
        &mut self,
        builder: SegmentBuilder,
        codec_files: Option<&crate::segment::CodecFiles>,
        generation: u64,
        build: serde_json::Value,
    ) -> Result<(SegmentMeta, Option<crate::segment::CodecFiles>)> {
        let opened;
        let source = match (&self.settings.plaid, codec_files) {
            (None, _) => PlaidSource::None,
            (Some(_), Some(files)) => {
                opened = self.open_codec(files)?;
                PlaidSource::Encode(opened.as_ref())
            }
            (Some(_), None) => {
                let id = self.next_id;
                self.next_id += 1;
                PlaidSource::Train(id)
            }
        };
        builder.finish(source, generation, build)
    }

    /// The codec of `files`, from the snapshot when it is the same one.
    fn open_codec(&self, files: &crate::segment::CodecFiles) -> Result<Arc<PlaidCodec>> {
        if let Some(c) = self.snapshot.as_ref().and_then(|s| s.codec()) {
            if c.id() == files.id {
                return Ok(Arc::new(PlaidCodec::open(
                    &self.dir,
                    files,
                    self.model.dim,
                    false,
                )?));
            }
        }
        Ok(Arc::new(PlaidCodec::open(
            &self.dir,
            files,
            self.model.dim,
            false,
        )?))
    }

    fn manifest_for(
        &self,
        generation: u64,
        segments: Vec<SegmentMeta>,
        codec: Option<crate::segment::CodecFiles>,
        config: serde_json::Value,
    ) -> Manifest {
        let mut components = vec![Component::Store];
        if self.settings.plaid.is_some() {
            components.push(Component::Plaid);
        }
        if self.settings.muvera.is_some() {
            components.push(Component::Muvera);
        }
        if self.settings.splade.is_some() {
            components.push(Component::Splade);
        }
        if self.settings.bm25 {
            components.push(Component::Bm25);
        }
        if !self.settings.fields.is_empty() {
            components.push(Component::Fields);
        }
        // A codec no segment uses any more (an empty index) is kept: later segments reuse it.
        Manifest {
            format_version: FORMAT_VERSION,
            generation,
            created_by: format!("tessera-index {}", env!("CARGO_PKG_VERSION")),
            model: self.model.clone(),
            dim: self.model.dim,
            num_docs: segments.iter().map(SegmentMeta::live_docs).sum(),
            num_vectors: segments.iter().map(|s| s.num_vectors).sum(),
            config,
            components,
            settings: self.settings.clone(),
            codec,
            next_id: self.next_id,
            segments,
            manifest_crc32c: None,
        }
    }

    /// Commit `manifest`, open the new snapshot, collect what it no longer lists.
    fn publish(&mut self, manifest: Manifest) -> Result<Manifest> {
        manifest.commit(&self.dir)?;
        self.cleanup_floor = None;
        self.pending = None;
        self.pending_deletes.clear();
        self.replace = false;
        self.created_dir = false;
        self.committed = Some(manifest.clone());
        // The old snapshot goes first, so its files can be collected.
        let previous = self.snapshot.take();
        self.snapshot = Some(match previous {
            Some(p) => p.reload()?,
            None => Index::open_with(
                &self.dir,
                OpenOptions {
                    verify_checksums: false,
                },
            )?,
        });
        gc::collect(&self.dir, Some(&manifest));
        Ok(manifest)
    }

    /// Merge segments until the policy is satisfied; the last manifest, if any merged.
    pub fn merge_per_policy(&mut self) -> Result<Option<Manifest>> {
        let mut last = None;
        loop {
            let Some(m) = &self.committed else {
                return Ok(last);
            };
            let plan = self.policy.plan(&m.segments);
            if plan.is_empty() {
                return Ok(last);
            }
            last = Some(self.merge(&plan, false)?);
        }
    }

    /// Rewrite every segment into one, without tombstoned documents; with `retrain`, a
    /// new PLAID codec is trained on all live vectors and every vector re-encoded.
    pub fn compact(&mut self, retrain: bool) -> Result<Manifest> {
        if self.has_changes() {
            return Err(IndexError::InvalidArgument(
                "commit the pending changes before compacting".into(),
            ));
        }
        let m = self
            .committed
            .clone()
            .ok_or_else(|| IndexError::InvalidArgument("nothing committed to compact".into()))?;
        let all: Vec<usize> = (0..m.segments.len()).collect();
        let clean = m.segments.len() <= 1 && m.deleted_docs() == 0;
        if all.is_empty() || (clean && !retrain) {
            return Ok(m);
        }
        self.merge(&all, retrain)
    }

    /// Merge the committed segments at positions `which` into one (one commit). Without
    /// `retrain` the documents keep their PLAID codes (one codec per index); with it a new
    /// codec is trained on the merged vectors and replaces the old one.
    fn merge(&mut self, which: &[usize], retrain: bool) -> Result<Manifest> {
        let committed = self.committed.clone().expect("merging needs a commit");
        let snapshot = self.snapshot.clone().expect("merging needs a snapshot");
        let generation = self.next_generation();
        let keep_codec = if retrain {
            None
        } else {
            committed.codec.clone()
        };
        let codec = keep_codec
            .as_ref()
            .map(|f| self.open_codec(f))
            .transpose()?;
        let id = self.next_id;
        self.next_id += 1;
        let mut builder = SegmentBuilder::create(
            &self.dir,
            id,
            &self.settings,
            self.model.dim,
            codec.as_deref(),
        )?;
        let merged_ids: Vec<u64> = which.iter().map(|&i| committed.segments[i].id).collect();
        let mut sources = Vec::new();
        for &i in which {
            let meta = &committed.segments[i];
            let pos = (0..snapshot.num_segments())
                .find(|&p| snapshot.segment(p).id() == meta.id)
                .expect("the snapshot lists every committed segment");
            sources.push(serde_json::json!({"segment": meta.id, "docs": meta.num_docs, "live": meta.live_docs()}));
            copy_live_docs(&snapshot, pos, &mut builder, codec.is_some())?;
        }
        let build = serde_json::json!({
            "kind": if retrain { "compact --retrain" } else { "merge" },
            "sources": sources,
        });
        let mut new_codec = keep_codec.clone();
        let merged = if builder.live_docs() > 0 {
            let (meta, trained) =
                self.finish_segment(builder, keep_codec.as_ref(), generation, build)?;
            if trained.is_some() {
                new_codec = trained;
            }
            Some(meta)
        } else {
            drop(builder);
            // Nothing left to train on: an empty index keeps its codec for later segments.
            new_codec = committed.codec.clone();
            None
        };
        // The merged segment takes the place of the first one it replaces.
        let mut segments: Vec<SegmentMeta> = Vec::new();
        let mut merged = merged;
        for s in &committed.segments {
            if merged_ids.contains(&s.id) {
                segments.extend(merged.take());
            } else {
                segments.push(s.clone());
            }
        }
        let manifest = self.manifest_for(generation, segments, new_codec, committed.config.clone());
        // This snapshot still maps the merged segments: let go of it, so the collection
        // after the commit can remove their files.
        drop(snapshot);
        self.publish(manifest)
    }
}

/// SPLADE postings a merge holds decoded at once (about 8 bytes each).
const MERGE_SPARSE_BLOCK: usize = 4 << 20;

/// Add segment `pos`'s live documents (vectors, text, SPLADE vector, PLAID codes when
/// `with_codes`) to `builder`.
fn copy_live_docs(
    snapshot: &Index,
    pos: usize,
    builder: &mut SegmentBuilder,
    with_codes: bool,
) -> Result<()> {
    let seg = snapshot.segment(pos);
    let store = seg.store();
    let deleted = snapshot.deleted(pos);
    // A block of documents' SPLADE vectors at a time, not the whole segment's.
    let mut sparse = seg
        .splade()
        .map(|s| s.document_cursor(store.num_docs(), MERGE_SPARSE_BLOCK));
    let mut values = crate::FieldValues::new();
    let mean_norm = seg.meta().plaid.as_ref().and_then(|p| p.mean_residual_norm);
    let mut row = Vec::new();
    for d in 0..store.num_docs() {
        if deleted.contains(d as u32) {
            continue;
        }
        if let Some(f) = seg.fields() {
            values = f.values(d as u32)?;
        }
        let extras = DocExtras {
            text: store.text(d),
            sparse: sparse.as_mut().map(|c| c.get(d)),
            fields: Some(&values),
        };
        let codes = match (with_codes, seg.plaid()) {
            (true, Some(p)) => {
                let (a, b) = (store.doc_offset(d), store.doc_offset(d) + store.doc_len(d));
                Some(CopiedCodes {
                    codes: &p.codes()[a..b],
                    residuals: p.residuals(a, b),
                    norm_sum: mean_norm.map(|m| f64::from(m) * (b - a) as f64),
                })
            }
            _ => None,
        };
        // A compact store's vectors are approximations (int8 rows, or decoded from the
        // codes); the codes themselves are copied unchanged when the codec is kept.
        let vectors = match store.rows(d) {
            crate::store::DocRows::F16(m) => Vectors::F16(m.as_slice()),
            rows @ crate::store::DocRows::Int8 { .. } => {
                rows.to_f32(&mut row);
                Vectors::F32(&row)
            }
            crate::store::DocRows::Missing { .. } => {
                let (plaid, codec) = seg.plaid().zip(snapshot.codec()).ok_or_else(|| {
                    IndexError::InvalidArgument(
                        "a segment without vectors has no PLAID codes to decode".into(),
                    )
                })?;
                row = plaid.decompress_doc(codec, store, d);
                Vectors::F32(&row)
            }
        };
        builder.add(store.doc_id(d), vectors, extras, codes)?;
    }
    Ok(())
}

impl Drop for IndexWriter {
    /// A batch never committed leaves nothing: its files are collected (no manifest lists
    /// them), and a directory this writer created goes too.
    fn drop(&mut self) {
        let had_batch = self.pending.is_some() || !self.pending_deletes.is_empty();
        drop(self.pending.take());
        drop(self.snapshot.take());
        match (&self.committed, self.cleanup_floor) {
            (Some(m), _) if had_batch => {
                gc::collect(&self.dir, Some(m));
            }
            (None, Some(floor)) => gc::collect_from(&self.dir, floor),
            _ => {}
        }
        if self.created_dir && self.committed.is_none() {
            drop(self.lock.take());
            let _ = std::fs::remove_file(self.dir.join(crate::segment::LOCK_NAME));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}
