//! The application's error type: every library error, plus the few of its own.

use std::path::PathBuf;

use crate::corpus::CorpusError;
use crate::encoder::EncoderError;
use crate::eval::EvalError;
use crate::pipeline::PipelineError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Index(#[from] tessera_index::IndexError),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The model given for queries is not the one the index was built with.
    #[error(
        "{model}: weights differ from the model this index was built with \
         (index: {expected}, model: {found}); pass --model with the indexing model"
    )]
    ModelMismatch {
        model: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{index}: {reason}")]
    IndexMetadata { index: PathBuf, reason: String },
    /// Text to encode for an index built from pre-encoded vectors without a model.
    #[error(
        "{index} was built from pre-encoded vectors without a model: search it with query \
         vectors (`tessera search --query-vectors q.npy`, HTTP `vectors`), or build it with --model"
    )]
    NoModel { index: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// A filter that does not parse or names what the index lacks ("path: reason").
    #[error("invalid filter: {0}")]
    Filter(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
