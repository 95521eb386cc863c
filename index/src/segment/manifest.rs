//! `manifest.json`: the one file that says what an index holds. Written last, atomically.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::FileEntry;
use super::footer::{FORMAT_VERSION, OLDEST_READABLE_VERSION};
use crate::error::{IndexError, Result};

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

/// Files of the token store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFiles {
    pub vectors: FileEntry,
    pub offsets: FileEntry,
    pub doc_ids: FileEntry,
    /// Documents' texts, when the index keeps them (`IndexConfig::store_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<FileEntry>,
}

/// Files and parameters of the PLAID component (see `plaid/README.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaidFiles {
    pub num_centroids: usize,
    pub quantizer: crate::codec::ResidualQuantizer,
    pub centroids: FileEntry,
    pub codes: FileEntry,
    pub residuals: FileEntry,
    pub ivf: FileEntry,
    /// How it was built (sample size, iterations, seed, timings), for humans.
    #[serde(default)]
    pub build: serde_json::Value,
}

/// Files and parameters of the MUVERA component (`muvera/`). The two HNSW files are
/// written by `hnsw_rs` in its own format (no Tessera footer): size and CRC-32C of the
/// whole file are recorded here and checked at open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuveraFiles {
    pub config: crate::muvera::MuveraConfig,
    pub fde_dim: usize,
    /// Largest document FDE norm (the MIPS lift's M).
    pub max_norm: f32,
    /// hnsw_rs basename: files are `<basename>.hnsw.graph` and `<basename>.hnsw.data`.
    pub basename: String,
    pub graph: FileEntry,
    pub data: FileEntry,
    #[serde(default)]
    pub build: serde_json::Value,
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

/// The BM25 component: a tantivy index in its own directory `g<N>.bm25/`. Tantivy's
/// files have no Tessera footer; each is listed here with size and CRC-32C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bm25Files {
    pub dir: String,
    /// Names relative to the index directory (`g<N>.bm25/<file>`).
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// Every component an index can hold. `store` is always there; first stages are optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Components {
    pub store: StoreFiles,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaid: Option<PlaidFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muvera: Option<MuveraFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splade: Option<SparseFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<Bm25Files>,
}

impl Components {
    /// Names of the components present.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = vec!["store"];
        if self.plaid.is_some() {
            v.push("plaid");
        }
        if self.muvera.is_some() {
            v.push("muvera");
        }
        if self.splade.is_some() {
            v.push("splade");
        }
        if self.bm25.is_some() {
            v.push("bm25");
        }
        v
    }

    /// Every file listed, with size and checksum.
    pub fn files(&self) -> Vec<&FileEntry> {
        let s = &self.store;
        let mut v = vec![&s.vectors, &s.offsets, &s.doc_ids];
        v.extend(&s.texts);
        if let Some(p) = &self.plaid {
            v.extend([&p.centroids, &p.codes, &p.residuals, &p.ivf]);
        }
        if let Some(m) = &self.muvera {
            v.extend([&m.graph, &m.data]);
        }
        if let Some(sp) = &self.splade {
            v.push(&sp.postings);
        }
        if let Some(b) = &self.bm25 {
            v.extend(&b.files);
        }
        v
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Bumped on every commit into the same directory; file names carry it, so a new
    /// write never touches the files the previous manifest lists.
    pub generation: u64,
    pub created_by: String,
    pub model: ModelInfo,
    pub num_docs: usize,
    pub num_vectors: usize,
    pub dim: usize,
    /// Free-form build configuration (pooling, lengths, source corpus), for humans and tools.
    #[serde(default)]
    pub config: serde_json::Value,
    pub components: Components,
    /// CRC-32C of the manifest file itself, as `0x` and 8 hex digits: computed over the
    /// file's bytes with these 8 digits written as zeros (see [`Manifest::to_sealed_bytes`]).
    /// Written by every commit since format 2 and checked at open, so any edit (one digit
    /// of a quantiser weight, a seed) is an error naming the file, never silently
    /// different results. Format-1 manifests have none. Always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_crc32c: Option<String>,
}

impl Manifest {
    /// Total bytes of all files the manifest lists.
    pub fn index_bytes(&self) -> u64 {
        self.components.files().iter().map(|f| f.bytes).sum()
    }

    /// Bytes of each component's files (the store's include the texts it keeps).
    pub fn component_bytes(&self) -> std::collections::BTreeMap<String, u64> {
        let c = &self.components;
        let sum = |files: Vec<&FileEntry>| files.iter().map(|f| f.bytes).sum::<u64>();
        let s = &c.store;
        let mut store = vec![&s.vectors, &s.offsets, &s.doc_ids];
        store.extend(&s.texts);
        let mut out = std::collections::BTreeMap::new();
        out.insert("store".to_string(), sum(store));
        if let Some(p) = &c.plaid {
            out.insert(
                "plaid".into(),
                sum(vec![&p.centroids, &p.codes, &p.residuals, &p.ivf]),
            );
        }
        if let Some(m) = &c.muvera {
            out.insert("muvera".into(), sum(vec![&m.graph, &m.data]));
        }
        if let Some(sp) = &c.splade {
            out.insert("splade".into(), sp.postings.bytes);
        }
        if let Some(b) = &c.bm25 {
            out.insert("bm25".into(), sum(b.files.iter().collect()));
        }
        out
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

    /// Refuse a manifest that names a file outside the index directory.
    fn validate_names(&self, path: &Path) -> Result<()> {
        let c = &self.components;
        let mut names: Vec<&str> = self.file_names();
        if let Some(m) = &c.muvera {
            names.push(&m.basename);
        }
        if let Some(b) = &c.bm25 {
            names.push(&b.dir);
        }
        for name in names {
            check_file_name(name).map_err(|reason| IndexError::Manifest {
                path: path.to_path_buf(),
                reason,
            })?;
        }
        if let Some(b) = &c.bm25 {
            if let Some(f) = b
                .files
                .iter()
                .find(|f| !f.name.starts_with(&format!("{}/", b.dir)))
            {
                return Err(IndexError::Manifest {
                    path: path.to_path_buf(),
                    reason: format!(
                        "bm25 file {:?} is not inside its directory {:?}",
                        f.name, b.dir
                    ),
                });
            }
        }
        Ok(())
    }

    /// Read and validate `dir/manifest.json`.
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
        if let Some(v) = raw.get("format_version").and_then(|v| v.as_u64()) {
            let v = v as u32;
            if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&v) {
                return Err(IndexError::UnsupportedVersion {
                    path,
                    found: v,
                    oldest: OLDEST_READABLE_VERSION,
                    current: FORMAT_VERSION,
                });
            }
            Self::verify_checksum(&path, text.as_bytes(), v)?;
        }
        let manifest: Manifest = serde_json::from_value(raw).map_err(|e| IndexError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        manifest.validate_names(&path)?;
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

    /// File names this manifest lists.
    pub fn file_names(&self) -> Vec<&str> {
        self.components
            .files()
            .into_iter()
            .map(|f| f.name.as_str())
            .collect()
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
