//! Tessera: a multi-vector (late-interaction) retrieval engine.
//!
//! - [`encoder`]: text -> token vectors (candle BERT-family, ColBERT/PyLate aware);
//! - [`corpus`]: document readers (BEIR `corpus.jsonl`, generic JSONL);
//! - [`pipeline`]: documents -> batches -> encoder -> index writer, with progress;
//! - [`eval`]: BEIR loading, trec_eval-compatible metrics, run files, reports;
//! - [`cli`]: the `tessera` command line.
//!
//! The index itself (store, MaxSim) lives in the model-agnostic crate `tessera-index`.

pub mod encoder;
