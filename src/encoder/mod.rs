//! Encoders turn text into token vectors. [`ColbertEncoder`] loads any BERT-family
//! checkpoint (plain sentence-transformers, ColBERT, PyLate) with candle;
//! [`SpladeEncoder`] turns a BERT masked-language model into sparse term weights.

mod batch;
mod bert;
mod colbert;
mod config;
pub mod device;
mod layers;
mod splade;
mod tokenize;

pub use colbert::{ColbertEncoder, EncodedBatch};
pub use config::{EncoderSettings, LoadOptions};
pub use device::{DTypeSpec, DeviceSpec};
pub use splade::{SpladeEncoder, SpladeOptions, SpladePooling, SpladeSettings};
pub use tokenize::{CharSpan, TokenSpan, TokenizedText};

use std::path::PathBuf;

/// Errors from loading a model or encoding text.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model inference: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("device: {0}")]
    Device(String),
}

pub type Result<T, E = EncoderError> = std::result::Result<T, E>;

/// Whether text is encoded as a query or as a document (markers, lengths, augmentation differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Document,
}

/// Anything that maps texts to multi-vectors (`n_tokens x dim`, L2-normalised rows).
pub trait Encoder: Send + Sync {
    /// Output dimension.
    fn dim(&self) -> usize;
    /// Encode texts in one role; one multi-vector per text, in input order.
    fn encode(&self, texts: &[&str], role: Role) -> Result<Vec<tessera_index::store::MultiVector>>;
}
