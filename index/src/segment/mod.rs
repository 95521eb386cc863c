//! The on-disk envelope shared by every component: footed, checksummed files and the
//! manifest that commits them. Byte layout in `README.md` beside this file.

pub mod file;
pub mod footer;
pub mod lock;
pub mod manifest;

pub use file::{check_foreign, foreign_entry, FileEntry, FileWriter, MappedFile};
pub use footer::{ComponentKind, Footer, FORMAT_VERSION, OLDEST_READABLE_VERSION};
pub use lock::{DirLock, LOCK_NAME};
pub use manifest::{
    Bm25Files, Components, Manifest, ModelInfo, MuveraFiles, PlaidFiles, SparseFiles, StoreFiles,
    MANIFEST_NAME,
};
