//! One error type for the index crate. Every variant that concerns a file names it.

use std::path::PathBuf;

/// Result alias used throughout `tessera-index`.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// What can go wrong reading or writing an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not what the format says they must be (truncated, flipped, foreign).
    #[error("{path}: corrupt index file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The file is intact but written by a format version this build cannot read.
    #[error(
        "{path}: format version {found} is not supported (this build reads {oldest}..={current})"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        oldest: u32,
        current: u32,
    },
    /// The checksum in the footer does not match the payload.
    #[error(
        "{path}: checksum mismatch (footer says {expected:#010x}, payload hashes to {found:#010x})"
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
    #[error("{path}: invalid manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: no index here (manifest.json is missing)")]
    NotAnIndex { path: PathBuf },
    /// Vectors handed to the index do not have the index's dimension.
    #[error("dimension mismatch: index has dim {expected}, got {found}")]
    Dimension { expected: usize, found: usize },
    /// A search mode names a first stage whose component this index was built without.
    #[error("mode {mode:?} needs the {component:?} component, which this index lacks (it has: {available})")]
    MissingComponent {
        mode: String,
        component: String,
        available: String,
    },
    /// A stage of the mode needs a part of the query the caller did not provide.
    #[error("mode {mode:?}: the {stage} stage needs {needs}, which the query lacks")]
    QueryLacks {
        mode: String,
        stage: String,
        needs: &'static str,
    },
    /// Another writer holds the index directory's lock.
    #[error(
        "{dir}: another writer is working on this index ({}); one writer at a time, try again when it has finished",
        match holder { Some(pid) => format!("process {pid}"), None => "process unknown".to_string() }
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    /// A writer found an index it cannot read where it was asked to write, and refused
    /// to replace it (the caller may ask for that explicitly).
    #[error("{dir}: holds an index this build cannot read, left untouched ({reason}); to replace it on purpose, write with --force")]
    ExistingIndexUnreadable { dir: PathBuf, reason: String },
    /// The search ran past its [`crate::Deadline`] and stopped.
    #[error("the search ran past its deadline and was stopped")]
    DeadlineExceeded,
    /// `add` of an id a live document already has.
    #[error("document {id:?} is already in the index; add it with upsert to replace it")]
    DocumentExists { id: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
