//! The 32-byte footer every binary index file ends with. Layout in `segment/README.md`.

use std::path::Path;

use crate::error::{IndexError, Result};

/// `b"TSRA"`: marks a Tessera index file.
pub const MAGIC: [u8; 4] = *b"TSRA";
/// Format version written by this build (2: the manifest carries its own checksum and
/// may name only files inside the index directory; 3: segments, tombstones, one codec).
pub const FORMAT_VERSION: u32 = 3;
/// Oldest format version this build still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Size of the footer in bytes.
pub const FOOTER_LEN: usize = 32;

/// Which component a file belongs to; stored as 8 ASCII bytes, zero-padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// Flat f16 token-vector matrix.
    Vectors,
    /// Token vectors as int8 rows, then one f32 scale per row (`store::Int8Rows`).
    VectorsI8,
    /// Per-document start offsets into the vector matrix (`n_docs + 1` u64).
    Offsets,
    /// External document ids.
    DocIds,
    /// PLAID: k-means centroids, f32 `k x dim`.
    Centroids,
    /// PLAID: centroid id (u32) of every vector.
    Codes,
    /// PLAID: packed quantised residuals of every vector.
    Residuals,
    /// PLAID: inverted file, centroid -> documents.
    Ivf,
    /// SPLADE: term offsets, per-term maximum impacts, postings (doc ids, impacts).
    SparsePostings,
    /// Documents' texts (UTF-8) and their byte offsets.
    Texts,
    /// A segment's document numbers in the order of their external ids.
    IdOrder,
    /// A segment's tombstones: the deleted documents, as a serialised roaring bitmap.
    Deletes,
}

impl ComponentKind {
    fn tag(self) -> [u8; 8] {
        match self {
            ComponentKind::Vectors => *b"vectors\0",
            ComponentKind::VectorsI8 => *b"vec_i8\0\0",
            ComponentKind::Offsets => *b"offsets\0",
            ComponentKind::DocIds => *b"doc_ids\0",
            ComponentKind::Centroids => *b"centroid",
            ComponentKind::Codes => *b"codes\0\0\0",
            ComponentKind::Residuals => *b"residual",
            ComponentKind::Ivf => *b"ivf\0\0\0\0\0",
            ComponentKind::SparsePostings => *b"impacts\0",
            ComponentKind::Texts => *b"texts\0\0\0",
            ComponentKind::IdOrder => *b"id_order",
            ComponentKind::Deletes => *b"deletes\0",
        }
    }

    fn tag_str(tag: &[u8; 8]) -> String {
        String::from_utf8_lossy(tag)
            .trim_end_matches('\0')
            .to_string()
    }
}

/// Decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub version: u32,
    pub kind: ComponentKind,
    pub payload_len: u64,
    pub crc32c: u32,
}

impl Footer {
    /// A footer for `payload_len` bytes of `kind` whose CRC-32C is `crc32c`.
    pub fn new(kind: ComponentKind, payload_len: u64, crc32c: u32) -> Self {
        Footer {
            version: FORMAT_VERSION,
            kind,
            payload_len,
            crc32c,
        }
    }

    /// Little-endian bytes: magic, version, kind tag, payload length, CRC-32C, reserved.
    pub fn to_bytes(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.version.to_le_bytes());
        out[8..16].copy_from_slice(&self.kind.tag());
        out[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        out[24..28].copy_from_slice(&self.crc32c.to_le_bytes());
        out
    }

    /// Split `file` into payload and footer, checking magic, version, kind, length and,
    /// when `verify_crc`, the checksum. `path` only names the file in errors.
    pub fn split<'a>(
        path: &Path,
        file: &'a [u8],
        expected: ComponentKind,
        verify_crc: bool,
    ) -> Result<(&'a [u8], Footer)> {
        if file.len() < FOOTER_LEN {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "file is {} bytes, shorter than the {FOOTER_LEN}-byte footer (truncated?)",
                    file.len()
                ),
            ));
        }
        let (payload, f) = file.split_at(file.len() - FOOTER_LEN);
        if f[0..4] != MAGIC {
            return Err(IndexError::corrupt(
                path,
                "footer magic is not TSRA (truncated, or not a Tessera file)",
            ));
        }
        let version = u32::from_le_bytes(f[4..8].try_into().expect("4 bytes"));
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(IndexError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                oldest: OLDEST_READABLE_VERSION,
                current: FORMAT_VERSION,
            });
        }
        let tag: [u8; 8] = f[8..16].try_into().expect("8 bytes");
        if tag != expected.tag() {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "component kind is {:?}, expected {:?}",
                    ComponentKind::tag_str(&tag),
                    ComponentKind::tag_str(&expected.tag())
                ),
            ));
        }
        let payload_len = u64::from_le_bytes(f[16..24].try_into().expect("8 bytes"));
        if payload_len != payload.len() as u64 {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "footer says payload is {payload_len} bytes, file holds {}",
                    payload.len()
                ),
            ));
        }
        let crc = u32::from_le_bytes(f[24..28].try_into().expect("4 bytes"));
        if f[28..32] != [0u8; 4] {
            // Reserved for a later version, which would also bump `version`.
            return Err(IndexError::corrupt(
                path,
                "reserved footer bytes are not zero",
            ));
        }
        if verify_crc {
            let expected_crc = crc;
            let found = crc32c::crc32c(payload);
            if found != expected_crc {
                return Err(IndexError::ChecksumMismatch {
                    path: path.to_path_buf(),
                    expected: expected_crc,
                    found,
                });
            }
        }
        let footer = Footer {
            version,
            kind: expected,
            payload_len,
            crc32c: crc,
        };
        Ok((payload, footer))
    }
}
