//! Tessera: a multi-vector (late-interaction) retrieval engine.
//!
//! - [`encoder`]: text -> token vectors (candle BERT-family, ColBERT/PyLate aware);
//! - [`corpus`]: document readers (BEIR `corpus.jsonl`, generic JSONL);
//! - [`pipeline`]: documents -> batches -> encoder -> index writer, with progress;
//! - [`search`]: an index plus its encoder, for text queries;
//! - [`eval`]: BEIR loading, trec_eval-compatible metrics, run files, reports;
//! - [`server`]: the HTTP search API (`tessera serve`);
//! - [`cli`]: the `tessera` command line.
//!
//! The index itself (store, MaxSim) lives in the model-agnostic crate `tessera-index`.

pub mod cli;
pub mod corpus;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod info;
pub mod pipeline;
pub mod search;
pub mod server;

pub use error::{Error, Result};
