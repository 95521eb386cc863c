//! The on-disk envelope shared by every component: footed, checksummed files, the
//! manifest that commits them (a list of segments), the writer lock, and the registry
//! of files open readers use. Byte layout in `README.md` beside this file.

pub mod file;
pub mod footer;
mod legacy;
pub mod lock;
pub mod manifest;
pub mod registry;
pub(crate) mod tantivy_dir;

pub use file::{check_foreign, foreign_entry, FileEntry, FileWriter, MappedFile};
pub use footer::{ComponentKind, Footer, FORMAT_VERSION, OLDEST_READABLE_VERSION};
pub use legacy::{LegacyComponents, LegacyManifest, MuveraFiles, PlaidFiles};
pub use lock::{DirLock, LOCK_NAME};
pub use manifest::{
    check_file_name, Bm25Files, CodecFiles, DeletesFile, Manifest, ModelInfo, MuveraSegmentFiles,
    PlaidSegmentFiles, SegmentMeta, SparseFiles, StoreFiles, StoreKind, TantivyFiles,
    MANIFEST_NAME,
};

/// What follows `<letter><number>.` in the name of a file (or directory) Tessera writes.
const ENTRY_KINDS: [&str; 11] = [
    "vectors.f16",
    "offsets.u64",
    "doc_ids.bin",
    "texts",
    "ids",
    "plaid.",
    "muvera",
    "sparse",
    "bm25",
    "fields",
    "g",
];

/// Whether `name` is of the index's naming scheme: `g<N>.<kind>` (format 1/2
/// generations), `s<N>.<kind>` (segments, their tombstones `s<N>.g<M>.deletes`),
/// `c<N>.plaid.centroids` (codecs). Only such entries are ever deleted, so a user's own
/// files in an index directory are safe.
pub fn is_index_entry(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(['g', 's', 'c']) else {
        return false;
    };
    let Some((n, kind)) = rest.split_once('.') else {
        return false;
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if let Some(gen) = kind.strip_prefix('g') {
        return gen
            .strip_suffix(".deletes")
            .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    }
    ENTRY_KINDS[..9].iter().any(|k| kind.starts_with(k))
}
