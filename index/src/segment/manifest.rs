//! `manifest.json`: the one file that says what an index holds. Written last, atomically.
//!
//! Since format 3 an index is a list of segments (each with its own files and
//! tombstones) sharing one PLAID codec; format 1 and 2 manifests (one generation of
//! files, no segments) are read by `legacy.rs` and seen as one segment.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::FileEntry;
use super::footer::{FORMAT_VERSION, OLDEST_READABLE_VERSION};
use crate::component::Component;
use crate::error::{IndexError, Result};
use crate::IndexConfig;

pub const MANIFEST_NAME: &str = "manifest.json";

/// The model that produced the vectors. The index never interprets `encoder`; the
/// application stores there whatever it needs to encode queries the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub dim: usize,
    /// SHA-256 (hex) of the weight file, so a query is never encoded by another model.
    pub weights_sha256: String,
    #[serde(default)]
    pub encoder: serde_json::Value,
}

/// [`ModelInfo::name`] of an index built from pre-encoded vectors with no model named.
pub const NO_MODEL: &str = "none";

impl ModelInfo {
    /// An index of pre-encoded vectors built without a model: queries come as vectors.
    pub fn pre_encoded(dim: usize) -> Self {
        ModelInfo {
            name: NO_MODEL.to_string(),
            dim,
            weights_sha256: String::new(),
            encoder: serde_json::Value::Null,
        }
    }

    /// No model encodes this index's queries (see [`ModelInfo::pre_encoded`]).
    pub fn is_none(&self) -> bool {
        self.name == NO_MODEL && self.weights_sha256.is_empty() && self.encoder.is_null()
    }
}

/// How a segment keeps its token vectors for exact scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// IEEE half floats, 2 bytes per value: exact MaxSim (to f16 precision).
    #[default]
    F16,
    /// One signed byte per value and an f32 scale per vector (max |x| / 127): MaxSim
    /// from dequantised rows, approximate.
    Int8,
    /// No vectors kept: every score comes from PLAID's codes and residuals (the index
    /// must have plaid), approximate.
    None,
}

impl StoreKind {
    pub fn is_f16(&self) -> bool {
        *self == StoreKind::F16
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::F16 => "f16",
            StoreKind::Int8 => "int8",
            StoreKind::None => "none",
        }
    }
}

impl std::str::FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f16" => Ok(StoreKind::F16),
            "int8" => Ok(StoreKind::Int8),
            "none" => Ok(StoreKind::None),
            other => Err(format!("unknown store kind {other:?} (f16, int8 or none)")),
        }
    }
}

/// Files of the token store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFiles {
    /// The vectors file: f16 or int8 rows as `kind` says; absent when `kind` is `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<FileEntry>,
    #[serde(default, skip_serializing_if = "StoreKind::is_f16")]
    pub kind: StoreKind,
    pub offsets: FileEntry,
    pub doc_ids: FileEntry,
    /// Documents' texts, when the index keeps them (`IndexConfig::store_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<FileEntry>,
}

/// Files and parameters of the SPLADE component (`sparse/`, layout in `sparse/build.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseFiles {
    pub vocab_size: usize,
    pub num_postings: usize,
    /// Dequantisation step: weight = impact x scale.
    pub scale: f32,
    pub postings: FileEntry,
    /// The application's record of the SPLADE model (see `SparseConfig::model`).
    #[serde(default)]
    pub model: serde_json::Value,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// A tantivy index in its own directory (BM25's `s<N>.bm25/`, the fields'
/// `s<N>.fields/`). Tantivy's files have no Tessera footer; each is listed here with
/// size and CRC-32C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TantivyFiles {
    pub dir: String,
    /// Names relative to the index directory (`s<N>.bm25/<file>`).
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// BM25's tantivy directory.
pub type Bm25Files = TantivyFiles;

/// The PLAID codec every segment of the index is encoded with: k-means centroids (file
/// `c<id>.plaid.centroids`) and the residual quantiser, trained once on a sample of the
/// first build and reused for every later segment until `compact --retrain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecFiles {
    pub id: u64,
    pub num_centroids: usize,
    pub quantizer: crate::codec::ResidualQuantizer,
    pub centroids: FileEntry,
    /// The centroids file holds f16 values (else f32).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub f16_centroids: bool,
    /// The centroids file holds int8 values (`k x dim`) then one f32 scale per centroid
    /// (wins over `f16_centroids`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8_centroids: bool,
    /// Vectors in the index when the codec was trained.
    pub trained_on_vectors: usize,
    /// Mean L2 norm of the held-out sample's residuals (vector minus its centroid) at
    /// training: the baseline segments' own residual norms are compared with (drift).
    #[serde(default)]
    pub mean_residual_norm: Option<f32>,
    /// Generation of the commit that trained it.
    #[serde(default)]
    pub trained_generation: u64,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// A segment's PLAID data: every vector's centroid code and packed residual, and the
/// IVF (centroid -> the segment's documents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaidSegmentFiles {
    pub codes: FileEntry,
    pub residuals: FileEntry,
    pub ivf: FileEntry,
    /// Mean residual norm of this segment's vectors against the codec (drift).
    #[serde(default)]
    pub mean_residual_norm: Option<f32>,
}

/// A segment's MUVERA graph, written by `hnsw_rs` (no Tessera footer: size and CRC-32C
/// of each whole file are recorded here and checked at open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuveraSegmentFiles {
    pub fde_dim: usize,
    /// Largest document FDE norm in the segment (the MIPS lift's M).
    pub max_norm: f32,
    /// hnsw_rs basename: files are `<basename>.hnsw.graph` and `<basename>.hnsw.data`.
    pub basename: String,
    pub graph: FileEntry,
    pub data: FileEntry,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// A segment's tombstones: file `s<id>.g<generation>.deletes`, written by the commit
/// that last deleted from the segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletesFile {
    pub file: FileEntry,
    /// Documents deleted (the bitmap's cardinality, checked at open).
    pub count: usize,
}

/// One segment: a write-once set of documents with its own store and component files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Unique in the index, never reused; file names carry it (`s<id>.*`).
    pub id: u64,
    /// Documents stored (tombstoned ones included).
    pub num_docs: usize,
    pub num_vectors: usize,
    /// The codec its PLAID data was encoded with.
    #[serde(default)]
    pub codec: Option<u64>,
    pub store: StoreFiles,
    /// The segment's document numbers in id order (none for a format-1/2 segment).
    #[serde(default)]
    pub ids: Option<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaid: Option<PlaidSegmentFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muvera: Option<MuveraSegmentFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splade: Option<SparseFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<Bm25Files>,
    /// The documents' metadata fields (when the index declares any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<TantivyFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeletesFile>,
    /// Generation of the commit that wrote the segment.
    #[serde(default)]
    pub generation: u64,
    /// How it was built (documents, timings, a merge's sources), for humans.
    #[serde(default)]
    pub build: serde_json::Value,
}

impl SegmentMeta {
    /// Documents not tombstoned.
    pub fn live_docs(&self) -> usize {
        self.num_docs - self.deletes.as_ref().map_or(0, |d| d.count)
    }

    /// Every file of the segment, with size and checksum.
    pub fn files(&self) -> Vec<&FileEntry> {
        let s = &self.store;
        let mut v: Vec<&FileEntry> = s.vectors.iter().collect();
        v.extend([&s.offsets, &s.doc_ids]);
        v.extend(&s.texts);
        v.extend(&self.ids);
        if let Some(p) = &self.plaid {
            v.extend([&p.codes, &p.residuals, &p.ivf]);
        }
        if let Some(m) = &self.muvera {
            v.extend([&m.graph, &m.data]);
        }
        if let Some(sp) = &self.splade {
            v.push(&sp.postings);
        }
        for t in self.tantivy_dirs() {
            v.extend(&t.files);
        }
        if let Some(d) = &self.deletes {
            v.push(&d.file);
        }
        v
    }

    /// Bytes of each component's files in this segment (the store's include texts, ids
    /// and tombstones).
    pub fn component_bytes(&self) -> Vec<(Component, u64)> {
        let sum = |files: Vec<&FileEntry>| files.iter().map(|f| f.bytes).sum::<u64>();
        let s = &self.store;
        let mut store: Vec<&FileEntry> = s.vectors.iter().collect();
        store.extend([&s.offsets, &s.doc_ids]);
        store.extend(&s.texts);
        store.extend(&self.ids);
        store.extend(self.deletes.as_ref().map(|d| &d.file));
        let mut out = vec![(Component::Store, sum(store))];
        if let Some(p) = &self.plaid {
            out.push((Component::Plaid, sum(vec![&p.codes, &p.residuals, &p.ivf])));
        }
        if let Some(m) = &self.muvera {
            out.push((Component::Muvera, sum(vec![&m.graph, &m.data])));
        }
        if let Some(sp) = &self.splade {
            out.push((Component::Splade, sp.postings.bytes));
        }
        if let Some(b) = &self.bm25 {
            out.push((Component::Bm25, sum(b.files.iter().collect())));
        }
        if let Some(f) = &self.fields {
            out.push((Component::Fields, sum(f.files.iter().collect())));
        }
        out
    }

    /// The segment's tantivy directories (BM25's, the fields').
    pub fn tantivy_dirs(&self) -> impl Iterator<Item = &TantivyFiles> {
        self.bm25.iter().chain(self.fields.iter())
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format of this manifest: 3 when written by this build, 1 or 2 when read from
    /// an index written before segments (see `legacy.rs`).
    pub format_version: u32,
    /// Bumped on every commit; a commit's new files carry it or a new segment id, so a
    /// write never touches a file the previous manifest lists.
    pub generation: u64,
    pub created_by: String,
    pub model: ModelInfo,
    pub dim: usize,
    /// Live documents (tombstoned ones left out).
    pub num_docs: usize,
    /// Vectors stored in all segments (tombstoned documents' included until a merge).
    pub num_vectors: usize,
    /// Free-form build configuration (pooling, lengths, source corpus), for humans and tools.
    #[serde(default)]
    pub config: serde_json::Value,
    /// What every segment holds; `store` first.
    pub components: Vec<Component>,
    /// How segments are built: the components' settings, reused by every later write.
    pub settings: IndexConfig,
    /// The PLAID codec, when the index has plaid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<CodecFiles>,
    /// The id the next segment (or codec) gets.
    pub next_id: u64,
    pub segments: Vec<SegmentMeta>,
    /// CRC-32C of the manifest file itself, as `0x` and 8 hex digits: computed over the
    /// file's bytes with these 8 digits written as zeros (see [`Manifest::to_sealed_bytes`]).
    /// Written by every commit since format 2 and checked at open, so any edit (one digit
    /// of a quantiser weight, a seed) is an error naming the file, never silently
    /// different results. Always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_crc32c: Option<String>,
}

impl Manifest {
    /// Every file listed, with size and checksum.
    pub fn files(&self) -> Vec<&FileEntry> {
        let mut v: Vec<&FileEntry> = self.codec.iter().map(|c| &c.centroids).collect();
        for s in &self.segments {
            v.extend(s.files());
        }
        v
    }

    /// File names this manifest lists.
    pub fn file_names(&self) -> Vec<&str> {
        self.files().into_iter().map(|f| f.name.as_str()).collect()
    }

    /// Total bytes of all files the manifest lists.
    pub fn index_bytes(&self) -> u64 {
        self.files().iter().map(|f| f.bytes).sum()
    }

    /// Bytes of each component's files over all segments (the codec's centroids count
    /// as plaid's).
    pub fn component_bytes(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for s in &self.segments {
            for (c, b) in s.component_bytes() {
                *out.entry(c.name().to_string()).or_insert(0) += b;
            }
        }
        if let Some(c) = &self.codec {
            *out.entry(Component::Plaid.name().to_string()).or_insert(0) += c.centroids.bytes;
        }
        out
    }

    /// Tombstoned documents over all segments.
    pub fn deleted_docs(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.deletes.as_ref().map_or(0, |d| d.count))
            .sum()
    }

    pub fn has(&self, c: Component) -> bool {
        self.components.contains(&c)
    }

    /// The manifest file's bytes: pretty JSON whose last field, `manifest_crc32c`, holds
    /// the CRC-32C of these same bytes with that field's 8 hex digits as zeros.
    pub fn to_sealed_bytes(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed.manifest_crc32c = Some(format!("0x{:08x}", 0));
        let mut bytes = serde_json::to_vec_pretty(&sealed).expect("manifest serialises");
        let at = checksum_digits(&bytes).expect("the field just written is there");
        let crc = crc32c::crc32c(&bytes);
        bytes[at..at + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
        bytes
    }

    /// Refuse a manifest file whose checksum is missing (format >= 2) or wrong.
    fn verify_checksum(path: &Path, bytes: &[u8], format_version: u32) -> Result<()> {
        let Some(at) = checksum_digits(bytes) else {
            if format_version >= 2 {
                return Err(IndexError::Manifest {
                    path: path.to_path_buf(),
                    reason:
                        "manifest_crc32c is missing (every manifest since format 2 ends with one)"
                            .into(),
                });
            }
            return Ok(());
        };
        let expected = std::str::from_utf8(&bytes[at..at + 8])
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| IndexError::Manifest {
                path: path.to_path_buf(),
                reason: "manifest_crc32c is not 0x and 8 hex digits".into(),
            })?;
        let mut zeroed = bytes.to_vec();
        zeroed[at..at + 8].copy_from_slice(b"00000000");
        let found = crc32c::crc32c(&zeroed);
        if found != expected {
            return Err(IndexError::ChecksumMismatch {
                path: path.to_path_buf(),
                expected,
                found,
            });
        }
        Ok(())
    }

    /// Refuse a manifest that names a file outside the index directory, or whose
    /// segments disagree with its components and counts.
    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| IndexError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let mut names: Vec<&str> = self.file_names();
        for s in &self.segments {
            if let Some(m) = &s.muvera {
                names.push(&m.basename);
            }
            for b in s.tantivy_dirs() {
                names.push(&b.dir);
                if let Some(f) = b
                    .files
                    .iter()
                    .find(|f| !f.name.starts_with(&format!("{}/", b.dir)))
                {
                    return Err(bad(format!(
                        "tantivy file {:?} is not inside its directory {:?}",
                        f.name, b.dir
                    )));
                }
            }
        }
        for name in names {
            check_file_name(name).map_err(bad)?;
        }
        if self.components.first() != Some(&Component::Store) {
            return Err(bad("components must start with store".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for s in &self.segments {
            if !ids.insert(s.id) || s.id >= self.next_id {
                return Err(bad(format!(
                    "segment id {} repeats or is not below next_id",
                    s.id
                )));
            }
            let has = [
                (Component::Plaid, s.plaid.is_some()),
                (Component::Muvera, s.muvera.is_some()),
                (Component::Splade, s.splade.is_some()),
                (Component::Bm25, s.bm25.is_some()),
                (Component::Fields, s.fields.is_some()),
            ];
            for (c, present) in has {
                if present != self.has(c) {
                    return Err(bad(format!(
                        "segment {} {} {c} but the index {}",
                        s.id,
                        if present { "has" } else { "lacks" },
                        if self.has(c) { "has it" } else { "does not" }
                    )));
                }
            }
            if s.plaid.is_some()
                && (self.codec.is_none() || s.codec != self.codec.as_ref().map(|c| c.id))
            {
                return Err(bad(format!(
                    "segment {} was not encoded with the index's codec",
                    s.id
                )));
            }
            if s.deletes.as_ref().is_some_and(|d| d.count > s.num_docs) {
                return Err(bad(format!(
                    "segment {} deletes more documents than it holds",
                    s.id
                )));
            }
        }
        let live: usize = self.segments.iter().map(SegmentMeta::live_docs).sum();
        let vectors: usize = self.segments.iter().map(|s| s.num_vectors).sum();
        if live != self.num_docs || vectors != self.num_vectors {
            return Err(bad(format!(
                "counts disagree with the segments: {} live documents and {} vectors listed, segments hold {live} and {vectors}",
                self.num_docs, self.num_vectors
            )));
        }
        Ok(())
    }

    /// Read and validate `dir/manifest.json` (any format from 1 to this build's).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NotAnIndex {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(IndexError::io(&path, e)),
        };
        // Check the version before the checksum and the schema, so a future format gets
        // the right error.
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| IndexError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let version = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| IndexError::Manifest {
                path: path.clone(),
                reason: "format_version is missing".into(),
            })? as u32;
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(IndexError::UnsupportedVersion {
                path,
                found: version,
                oldest: OLDEST_READABLE_VERSION,
                current: FORMAT_VERSION,
            });
        }
        Self::verify_checksum(&path, text.as_bytes(), version)?;
        let manifest = if version < 3 {
            super::legacy::read(&path, raw)?
        } else {
            serde_json::from_value(raw).map_err(|e| IndexError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?
        };
        manifest.validate(&path)?;
        Ok(manifest)
    }

    /// Write `dir/manifest.json` atomically: temp file, fsync, rename, fsync directory.
    /// Readers see either the previous manifest or this one, never a torn file.
    pub fn commit(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("{MANIFEST_NAME}.tmp"));
        let path = dir.join(MANIFEST_NAME);
        let json = self.to_sealed_bytes();
        {
            let mut f = File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
            f.write_all(&json).map_err(|e| IndexError::io(&tmp, e))?;
            f.sync_all().map_err(|e| IndexError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))?;
        sync_dir(dir)
    }
}

/// Where the 8 hex digits of the (last) `"manifest_crc32c": "0x…"` field start.
fn checksum_digits(bytes: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"manifest_crc32c\": \"0x";
    let at = bytes.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    (bytes.len() >= at + 8).then_some(at)
}

/// A name the manifest may list: a plain file name inside the index directory, or
/// `dir/file` for the files of a component kept in its own directory (BM25's tantivy
/// index). Never absolute, never `..`, never empty parts or backslashes.
pub fn check_file_name(name: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |p: &str| !p.is_empty() && p != "." && p != ".." && !p.contains(['\\', '\0', ':']);
    if parts.len() > 2 || !parts.iter().all(|p| plain(p)) {
        return Err(format!(
            "file name {name:?} is not a plain name inside the index directory"
        ));
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| IndexError::io(dir, e))?;
    d.sync_all().map_err(|e| IndexError::io(dir, e))
}
