//! The on-disk envelope shared by every component: footed, checksummed files and the
//! manifest that commits them. Byte layout in `README.md` beside this file.

pub mod file;
pub mod footer;
pub mod manifest;

pub use file::{FileEntry, FileWriter, MappedFile};
pub use footer::{ComponentKind, Footer, FORMAT_VERSION, OLDEST_READABLE_VERSION};
pub use manifest::{
    Components, Manifest, ModelInfo, MuveraFiles, PlaidFiles, StoreFiles, MANIFEST_NAME,
};
