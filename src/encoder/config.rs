//! Encoder settings: read from the checkpoint's own config files, overridable by the
//! caller, and recorded in the index manifest so queries are encoded the same way.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EncoderError, Result};

/// How texts become token vectors. Stored in the manifest (`model.encoder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSettings {
    /// Queries are truncated (and, with augmentation, padded) to this many tokens.
    pub query_max_len: usize,
    /// Documents are truncated to this many tokens, special tokens included.
    pub doc_max_len: usize,
    /// Token inserted after `[CLS]` in queries (ColBERT `[unused0]`), if any.
    pub query_marker: Option<String>,
    /// Token inserted after `[CLS]` in documents (ColBERT `[unused1]`), if any.
    pub doc_marker: Option<String>,
    /// Pad queries with `[MASK]` up to `query_max_len`; the masks become query vectors.
    pub query_augmentation: bool,
    /// Whether the model attends to the `[MASK]` augmentation tokens.
    pub attend_to_mask_tokens: bool,
    /// Drop punctuation tokens from documents (ColBERT's skiplist).
    pub skip_punctuation: bool,
    /// Output dimension after the optional projection.
    pub dim: usize,
    /// Where the projection came from: `colbert-linear`, `pylate-dense`, or none.
    pub projection: Option<String>,
}

/// What a caller may override when loading a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub query_max_len: Option<usize>,
    pub doc_max_len: Option<usize>,
    pub skip_punctuation: Option<bool>,
    pub query_augmentation: Option<bool>,
    /// Documents per forward pass.
    pub batch_size: Option<usize>,
    /// Floating-point type of the forward pass.
    pub dtype: super::device::DTypeSpec,
}

/// Defaults for plain sentence-transformers models (MiniLM): no markers, no augmentation.
pub const DEFAULT_QUERY_MAX_LEN: usize = 32;
pub const DEFAULT_DOC_MAX_LEN: usize = 256;

/// Settings found in the checkpoint's own files, before overrides.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckpointHints {
    pub query_max_len: Option<usize>,
    pub doc_max_len: Option<usize>,
    pub query_marker: Option<String>,
    pub doc_marker: Option<String>,
    pub query_augmentation: Option<bool>,
    pub attend_to_mask_tokens: Option<bool>,
    pub skip_punctuation: Option<bool>,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EncoderError::Model {
                path: path.to_path_buf(),
                reason: format!("invalid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EncoderError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn get_usize(v: &Value, key: &str) -> Option<usize> {
    v.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

fn get_str(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn get_bool(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

/// Read ColBERT (`artifact.metadata`) or PyLate (`config_sentence_transformers.json`)
/// settings. Plain sentence-transformers configs carry none of these keys.
pub(crate) fn checkpoint_hints(dir: &Path) -> Result<CheckpointHints> {
    let mut h = CheckpointHints::default();
    if let Some(meta) = read_json(&dir.join("artifact.metadata"))? {
        // ColBERT writes its config flat; some versions nest it under "config".
        let c = meta.get("config").cloned().unwrap_or(meta);
        h.query_marker = get_str(&c, "query_token_id");
        h.doc_marker = get_str(&c, "doc_token_id");
        h.query_max_len = get_usize(&c, "query_maxlen");
        h.doc_max_len = get_usize(&c, "doc_maxlen");
        h.attend_to_mask_tokens = get_bool(&c, "attend_to_mask_tokens");
        h.skip_punctuation = get_bool(&c, "mask_punctuation");
        // ColBERT always augments queries with [MASK].
        h.query_augmentation = Some(true);
        return Ok(h);
    }
    if let Some(st) = read_json(&dir.join("config_sentence_transformers.json"))? {
        if st.get("query_prefix").is_some() || st.get("document_prefix").is_some() {
            h.query_marker = get_str(&st, "query_prefix");
            h.doc_marker = get_str(&st, "document_prefix");
            h.query_max_len = get_usize(&st, "query_length");
            h.doc_max_len = get_usize(&st, "document_length");
            h.attend_to_mask_tokens = get_bool(&st, "attend_to_expansion_tokens");
            h.query_augmentation = Some(get_bool(&st, "do_query_expansion").unwrap_or(true));
            h.skip_punctuation = Some(st.get("skiplist_words").is_some());
        }
    }
    if h.doc_max_len.is_none() {
        if let Some(sb) = read_json(&dir.join("sentence_bert_config.json"))? {
            h.doc_max_len = get_usize(&sb, "max_seq_length");
        }
    }
    Ok(h)
}
