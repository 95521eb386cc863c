//! Reading an index: [`Index`] is a snapshot of one committed manifest, its segments
//! opened through memory maps. It never changes; [`Index::reload`] gives the snapshot of
//! the newest commit, sharing every segment the two have in common (segment files are
//! write-once, so a segment opened once serves every later snapshot until it is merged
//! away; only its tombstones are reread when they changed).
//!
//! External ids are found through one tracker, [`Index::lookup`]: each segment keeps
//! its ids' sorted order (`store/ids.rs`), segments are searched newest first, and a
//! tombstoned document is never returned, so an id maps to at most one live document.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::allow::Allow;
use crate::component::Component;
use crate::error::{IndexError, Result};
use crate::fields::{FieldSchema, FieldsIndex};
use crate::lexical::Bm25Index;
use crate::muvera::{FdeEncoder, MuveraSegment};
use crate::plaid::{PlaidCodec, PlaidSegment};
use crate::segment::registry::FileLease;
use crate::segment::{ComponentKind, DeletesFile, Manifest, MappedFile, SegmentMeta};
use crate::sparse::SparseIndex;
use crate::store::{IdOrder, MultiVector, TokenStore};

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

/// How far [`Index::open_observed`] has got: segments (and the documents they hold)
/// opened and checked, of those the manifest lists. Reported once before the first
/// segment (the codec is open then) and after each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenProgress {
    pub segments_done: usize,
    pub segments: usize,
    pub docs_done: usize,
    pub docs: usize,
}

/// A document of a snapshot: the segment's position in [`Index::segments`] and the
/// document's number in that segment. Valid for the snapshot that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocAddress {
    pub segment: u32,
    pub doc: u32,
}

/// A document and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredDoc {
    pub addr: DocAddress,
    pub score: f32,
}

/// One segment's files, opened. Shared by every snapshot that lists the segment.
pub struct SegmentReader {
    meta: SegmentMeta,
    store: TokenStore,
    ids: IdOrder,
    plaid: Option<PlaidSegment>,
    muvera: Option<MuveraSegment>,
    splade: Option<SparseIndex>,
    bm25: Option<Bm25Index>,
    fields: Option<FieldsIndex>,
    _lease: FileLease,
}

impl SegmentReader {
    fn open(
        dir: &Path,
        meta: &SegmentMeta,
        codec: Option<&PlaidCodec>,
        fde: Option<&FdeEncoder>,
        schema: &FieldSchema,
        dim: usize,
        verify: bool,
    ) -> Result<Self> {
        // Leased before opening, so a writer in this process cannot collect them between.
        let mut names: Vec<&str> = meta.files().iter().map(|f| f.name.as_str()).collect();
        for b in meta.tantivy_dirs() {
            names.push(&b.dir);
        }
        let lease = FileLease::take(dir, names);
        let store = TokenStore::open(
            dir,
            &meta.store,
            dim,
            meta.num_docs,
            meta.num_vectors,
            verify,
        )?;
        let ids = match &meta.ids {
            Some(entry) => IdOrder::open(dir, entry, &store, verify)?,
            None => IdOrder::compute(&store, &dir.join(&meta.store.doc_ids.name))?,
        };
        let plaid = match (&meta.plaid, codec) {
            (Some(files), Some(codec)) => Some(PlaidSegment::open(
                dir,
                files,
                codec,
                meta.num_docs,
                meta.num_vectors,
                verify,
            )?),
            _ => None,
        };
        let muvera = match (&meta.muvera, fde) {
            (Some(files), Some(fde)) => {
                Some(MuveraSegment::open(dir, files, fde, meta.num_docs, verify)?)
            }
            _ => None,
        };
        let splade = meta
            .splade
            .as_ref()
            .map(|f| SparseIndex::open(dir, f, meta.num_docs, verify))
            .transpose()?;
        let bm25 = meta
            .bm25
            .as_ref()
            .map(|f| Bm25Index::open(dir, f, meta.num_docs, verify))
            .transpose()?;
        let fields = meta
            .fields
            .as_ref()
            .map(|f| FieldsIndex::open(dir, f, schema, meta.num_docs, verify))
            .transpose()?;
        Ok(SegmentReader {
            meta: meta.clone(),
            store,
            ids,
            plaid,
            muvera,
            splade,
            bm25,
            fields,
            _lease: lease,
        })
    }

    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    pub fn ids(&self) -> &IdOrder {
        &self.ids
    }

    pub fn plaid(&self) -> Option<&PlaidSegment> {
        self.plaid.as_ref()
    }

    pub fn muvera(&self) -> Option<&MuveraSegment> {
        self.muvera.as_ref()
    }

    pub fn splade(&self) -> Option<&SparseIndex> {
        self.splade.as_ref()
    }

    pub fn bm25(&self) -> Option<&Bm25Index> {
        self.bm25.as_ref()
    }

    /// The documents' metadata fields, if the index declares any.
    pub fn fields(&self) -> Option<&FieldsIndex> {
        self.fields.as_ref()
    }

    pub fn num_docs(&self) -> usize {
        self.store.num_docs()
    }
}

/// A segment as one snapshot sees it: its files and its tombstones then.
#[derive(Clone)]
struct SegmentView {
    data: Arc<SegmentReader>,
    deletes: Option<DeletesFile>,
    deleted: Arc<RoaringBitmap>,
    _lease: Option<Arc<FileLease>>,
}

struct Snapshot {
    dir: PathBuf,
    manifest: Manifest,
    codec: Option<Arc<PlaidCodec>>,
    fde: Option<FdeEncoder>,
    segments: Vec<SegmentView>,
    _codec_lease: Option<Arc<FileLease>>,
}

/// A committed index: one consistent snapshot of its segments. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    inner: Arc<Snapshot>,
}

/// How often `open` re-reads the manifest when a listed file vanished meanwhile (a
/// writer in another process committed and collected it).
const OPEN_ATTEMPTS: usize = 5;

impl Index {
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, OpenOptions::default())
    }

    pub fn open_with(dir: &Path, options: OpenOptions) -> Result<Self> {
        Self::open_reusing(dir, options, None, &mut |_| {})
    }

    /// [`Index::open_with`], calling `progress` after the codec and after each segment is
    /// opened (and its files checked): for logging a long load.
    pub fn open_observed(
        dir: &Path,
        options: OpenOptions,
        progress: &mut dyn FnMut(OpenProgress),
    ) -> Result<Self> {
        Self::open_reusing(dir, options, None, progress)
    }

    /// The snapshot of the newest commit: `self` again if nothing was committed since,
    /// otherwise a new one sharing the segments both list.
    pub fn reload(&self) -> Result<Index> {
        let manifest = Manifest::read(&self.inner.dir)?;
        if manifest.generation == self.inner.manifest.generation {
            return Ok(self.clone());
        }
        Self::open_reusing(
            &self.inner.dir,
            OpenOptions {
                verify_checksums: true,
            },
            Some(self),
            &mut |_| {},
        )
    }

    fn open_reusing(
        dir: &Path,
        options: OpenOptions,
        previous: Option<&Index>,
        progress: &mut dyn FnMut(OpenProgress),
    ) -> Result<Self> {
        let dir = dir.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => IndexError::NotAnIndex {
                path: dir.to_path_buf(),
            },
            _ => IndexError::io(dir, e),
        })?;
        let mut attempt = 1;
        loop {
            let manifest = Manifest::read(&dir)?;
            match Self::open_manifest(&dir, manifest, options, previous, progress) {
                // A listed file is gone: a newer commit replaced this manifest meanwhile.
                Err(IndexError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < OPEN_ATTEMPTS =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn open_manifest(
        dir: &Path,
        manifest: Manifest,
        options: OpenOptions,
        previous: Option<&Index>,
        progress: &mut dyn FnMut(OpenProgress),
    ) -> Result<Self> {
        let verify = options.verify_checksums;
        let mut step = OpenProgress {
            segments_done: 0,
            segments: manifest.segments.len(),
            docs_done: 0,
            docs: manifest.segments.iter().map(|s| s.num_docs).sum(),
        };
        let prev = previous.map(|p| &p.inner);
        let (codec, codec_lease) = match &manifest.codec {
            None => (None, None),
            Some(files) => {
                match prev.and_then(|p| p.codec.clone().filter(|c| c.id() == files.id)) {
                    Some(c) => (Some(c), prev.and_then(|p| p._codec_lease.clone())),
                    None => {
                        let lease = Arc::new(FileLease::take(dir, [files.centroids.name.as_str()]));
                        let codec = PlaidCodec::open(dir, files, manifest.dim, verify)?;
                        (Some(Arc::new(codec)), Some(lease))
                    }
                }
            }
        };
        progress(step);
        let fde = manifest
            .settings
            .muvera
            .map(|m| FdeEncoder::new(manifest.dim, m.fde));
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for meta in &manifest.segments {
            let old = prev.and_then(|p| {
                p.segments
                    .iter()
                    .find(|s| s.data.meta.id == meta.id && s.data.meta.store == meta.store)
            });
            let data = match old {
                Some(s) => s.data.clone(),
                None => Arc::new(SegmentReader::open(
                    dir,
                    meta,
                    codec.as_deref(),
                    fde.as_ref(),
                    &manifest.settings.fields,
                    manifest.dim,
                    verify,
                )?),
            };
            let view = match old.filter(|s| s.deletes == meta.deletes) {
                Some(s) => SegmentView { data, ..s.clone() },
                None => {
                    let lease = meta
                        .deletes
                        .as_ref()
                        .map(|d| Arc::new(FileLease::take(dir, [d.file.name.as_str()])));
                    let deleted = match &meta.deletes {
                        Some(d) => read_deletes(dir, d, meta.num_docs, verify)?,
                        None => RoaringBitmap::new(),
                    };
                    SegmentView {
                        data,
                        deletes: meta.deletes.clone(),
                        deleted: Arc::new(deleted),
                        _lease: lease,
                    }
                }
            };
            segments.push(view);
            step.segments_done += 1;
            step.docs_done += meta.num_docs;
            progress(step);
        }
        Ok(Index {
            inner: Arc::new(Snapshot {
                dir: dir.to_path_buf(),
                manifest,
                codec,
                fde,
                segments,
                _codec_lease: codec_lease,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    pub fn generation(&self) -> u64 {
        self.inner.manifest.generation
    }

    pub fn dim(&self) -> usize {
        self.inner.manifest.dim
    }

    /// Live documents.
    pub fn num_docs(&self) -> usize {
        self.inner.manifest.num_docs
    }

    /// Vectors stored (tombstoned documents' included until merged away).
    pub fn num_vectors(&self) -> usize {
        self.inner.manifest.num_vectors
    }

    /// Components this index holds, `store` first.
    pub fn components(&self) -> &[Component] {
        &self.inner.manifest.components
    }

    pub fn has(&self, c: Component) -> bool {
        self.inner.manifest.has(c)
    }

    /// The PLAID codec every segment shares, if the index has plaid.
    pub fn codec(&self) -> Option<&PlaidCodec> {
        self.inner.codec.as_deref()
    }

    /// MUVERA's (seeded, index-wide) FDE encoder, if the index has muvera.
    pub fn fde_encoder(&self) -> Option<&FdeEncoder> {
        self.inner.fde.as_ref()
    }

    pub fn num_segments(&self) -> usize {
        self.inner.segments.len()
    }

    /// Segment `i` of the snapshot.
    pub fn segment(&self, i: usize) -> &SegmentReader {
        &self.inner.segments[i].data
    }

    /// Segment `i`'s tombstones in this snapshot.
    pub fn deleted(&self, i: usize) -> &RoaringBitmap {
        &self.inner.segments[i].deleted
    }

    /// The documents of segment `i` a search may return (not tombstoned).
    pub fn allow(&self, i: usize) -> Allow {
        Allow::alive(&self.inner.segments[i].deleted)
    }

    pub fn is_live(&self, a: DocAddress) -> bool {
        !self.deleted(a.segment as usize).contains(a.doc)
    }

    /// External id of a document.
    pub fn doc_id(&self, a: DocAddress) -> &str {
        self.segment(a.segment as usize)
            .store
            .doc_id(a.doc as usize)
    }

    /// A document's stored text, if the index keeps texts.
    pub fn text(&self, a: DocAddress) -> Option<&str> {
        self.segment(a.segment as usize).store.text(a.doc as usize)
    }

    /// A document's metadata field values (empty when the index declares no fields).
    pub fn fields(&self, a: DocAddress) -> Result<crate::FieldValues> {
        match self.segment(a.segment as usize).fields() {
            Some(f) => f.values(a.doc),
            None => Ok(crate::FieldValues::new()),
        }
    }

    /// A document's token vectors as its segment keeps them.
    pub fn vectors(&self, a: DocAddress) -> crate::store::DocRows<'_> {
        self.segment(a.segment as usize).store.rows(a.doc as usize)
    }

    /// A document's token vectors as f32: the f16 rows, dequantised int8 rows, or (a
    /// segment without vectors) rows decoded from PLAID's codes and residuals. Exact
    /// only where [`Index::store_kind`] is f16.
    pub fn vectors_f32(&self, a: DocAddress) -> MultiVector {
        let seg = self.segment(a.segment as usize);
        let dim = self.inner.manifest.dim;
        let mut out = Vec::new();
        if !seg.store.rows(a.doc as usize).to_f32(&mut out) {
            let (plaid, codec) = seg
                .plaid()
                .zip(self.codec())
                .expect("a store without vectors is only built with plaid");
            out = plaid.decompress_doc(codec, &seg.store, a.doc as usize);
        }
        MultiVector::new(out, dim)
    }

    /// For a document of a segment that keeps no vectors: per query token, the document
    /// vector that gives its best term of the score from codes (`maxsim::codes`) and
    /// that term, then the score as search computes it (their sum, the kernel's bits).
    /// `None` where the segment keeps vectors.
    pub fn codes_terms(
        &self,
        a: DocAddress,
        query: crate::store::MultiVectorRef<'_, f32>,
    ) -> Option<(Vec<(usize, f32)>, f32)> {
        use crate::maxsim::codes;
        let seg = self.segment(a.segment as usize);
        if seg.store.has_vectors() {
            return None;
        }
        let (plaid, codec) = seg.plaid().zip(self.codec())?;
        let (start, len) = (
            seg.store.doc_offset(a.doc as usize),
            seg.store.doc_len(a.doc as usize),
        );
        let q = codec.codes_query(query, None);
        let (c, r) = (
            &plaid.codes()[start..start + len],
            plaid.residuals(start, start + len),
        );
        let terms = codes::codes_best_terms(&q, codec.residual_bytes(), c, r);
        let score = codes::maxsim_codes(
            &q,
            codec.residual_bytes(),
            c,
            r,
            crate::maxsim::Kernel::detect(),
        );
        Some((terms, score))
    }

    /// How new segments keep vectors (`IndexConfig::store`); every segment of an index
    /// keeps them alike unless it was rebuilt.
    pub fn store_kind(&self) -> crate::StoreKind {
        self.inner.manifest.settings.store
    }

    /// Whether the index keeps documents' texts.
    pub fn has_texts(&self) -> bool {
        self.inner.manifest.settings.store_text
    }

    /// The live document with external id `id`.
    pub fn lookup(&self, id: &str) -> Option<DocAddress> {
        // Newest first: an id upserted lives in the newest segment holding it.
        for (i, s) in self.inner.segments.iter().enumerate().rev() {
            let found = s.data.ids.find(&s.data.store, id);
            if let Some(&doc) = found.iter().rev().find(|&&d| !s.deleted.contains(d)) {
                return Some(DocAddress {
                    segment: i as u32,
                    doc,
                });
            }
        }
        None
    }

    /// Every live document, segment by segment.
    pub fn live_docs(&self) -> impl Iterator<Item = DocAddress> + '_ {
        self.inner.segments.iter().enumerate().flat_map(|(i, s)| {
            (0..s.data.num_docs() as u32)
                .filter(|d| !s.deleted.contains(*d))
                .map(move |doc| DocAddress {
                    segment: i as u32,
                    doc,
                })
        })
    }

    /// Better first: higher score, then the smaller external id (so a ranking does not
    /// depend on which segment holds which document).
    pub fn rank_cmp(&self, a: &ScoredDoc, b: &ScoredDoc) -> std::cmp::Ordering {
        b.score
            .total_cmp(&a.score)
            .then_with(|| self.doc_id(a.addr).cmp(self.doc_id(b.addr)))
    }
}

/// A segment's tombstones from its deletes file: a serialised roaring bitmap of
/// document numbers below the segment's count, as many as the manifest says.
fn read_deletes(
    dir: &Path,
    d: &DeletesFile,
    num_docs: usize,
    verify: bool,
) -> Result<RoaringBitmap> {
    let file = MappedFile::open(dir, &d.file, ComponentKind::Deletes, verify)?;
    let bitmap = RoaringBitmap::deserialize_from(file.payload())
        .map_err(|e| IndexError::corrupt(file.path(), format!("not a roaring bitmap: {e}")))?;
    if bitmap.len() as usize != d.count || bitmap.max().is_some_and(|m| m as usize >= num_docs) {
        return Err(IndexError::corrupt(
            file.path(),
            format!(
                "holds {} deletions (highest {:?}); the manifest says {} of {num_docs} documents",
                bitmap.len(),
                bitmap.max(),
                d.count
            ),
        ));
    }
    Ok(bitmap)
}
