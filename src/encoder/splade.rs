//! SPLADE encoder: a BERT masked-language model whose MLM logits become term weights,
//! `w_t = max_i log(1 + relu(logit_{i,t}))` over the text's non-padding positions.
//!
//! The model is candle-transformers' `BertForMaskedLM` (dense -> GELU -> LayerNorm ->
//! decoder). Checkpoints that tie the decoder to the word embeddings store no
//! `cls.predictions.decoder.*` (SPLADE-tiny among them); older ones name LayerNorm
//! parameters `gamma`/`beta`. A renamer maps what candle asks for onto what the file
//! holds: the decoder weight to `bert.embeddings.word_embeddings.weight`, its bias to
//! `cls.predictions.bias`. SPLADE runs in f32 only: candle's BERT turns half precision into
//! NaN (see `bert.rs`), and the MLM head here is candle's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertForMaskedLM, Config as BertConfig};
use serde::{Deserialize, Serialize};
use tessera_index::SparseVector;

use super::batch::{in_length_batches, padded};
use super::colbert::sha256_files;
use super::tokenize::{TextTokenizer, TokenizedText};
use super::{DeviceSpec, EncoderError, EncoderSettings, Result, Role};

/// How texts become SPLADE vectors. Stored in the manifest beside the component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpladeSettings {
    /// Documents are cut to this many tokens, `[CLS]` and `[SEP]` included.
    pub doc_max_len: usize,
    /// Queries are cut to this many tokens.
    pub query_max_len: usize,
    /// Terms at or below this weight are dropped.
    pub threshold: f32,
    /// Keep at most this many terms per document (the heaviest); `None` keeps all.
    pub doc_max_terms: Option<usize>,
    pub vocab_size: usize,
}

/// Overrides for [`SpladeEncoder::load`].
#[derive(Debug, Clone, Default)]
pub struct SpladeOptions {
    pub doc_max_len: Option<usize>,
    pub query_max_len: Option<usize>,
    pub threshold: Option<f32>,
    pub doc_max_terms: Option<usize>,
    pub batch_size: Option<usize>,
}

pub const DEFAULT_SPLADE_DOC_MAX_LEN: usize = 256;
pub const DEFAULT_SPLADE_QUERY_MAX_LEN: usize = 64;
/// Logits are `batch x len x vocab` f32: 8 x 256 x 30,522 is 250 MB.
const DEFAULT_BATCH_SIZE: usize = 8;

/// How [`SpladeEncoder::term_weights`] pools the MLM logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpladePooling {
    /// On the CPU: one pass over each text's attended rows of logits keeps their
    /// elementwise max, then `log(1 + relu(.))` of that one row. The function is
    /// monotone, so it commutes with the max. Candle's ops make five passes over the
    /// whole `batch x len x vocab` tensor instead (relu, +1, log, mask, max), each a
    /// new allocation, and they cost more than the MLM decoder's matmul on short texts
    /// (`tessera-encode splade` measures both). Other devices use the ops.
    #[default]
    Fused,
    /// Candle's tensor ops (the reference).
    CandleOps,
}

/// [`SpladePooling::Fused`] on CPU logits `batch x len x vocab`.
fn fused_pool(logits: &candle_core::Tensor, batch: &[&TokenizedText]) -> Result<Vec<Vec<f32>>> {
    let (b, len, v) = logits.dims3()?;
    let logits = logits.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = logits.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        unreachable!("fused pooling runs on CPU tensors only");
    };
    let all = &cpu.as_slice::<f32>()?[layout.start_offset()..][..b * len * v];
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut acc = vec![f32::NEG_INFINITY; v];
            for (p, _) in t.attention.iter().enumerate().filter(|&(_, &a)| a != 0) {
                let row = &all[(i * len + p) * v..][..v];
                for (m, &x) in acc.iter_mut().zip(row) {
                    *m = if x > *m { x } else { *m };
                }
            }
            // No attended position (cannot happen: [CLS] and [SEP] are): all zero.
            for m in &mut acc {
                *m = if *m == f32::NEG_INFINITY {
                    0.0
                } else {
                    (m.max(0.0) + 1.0).ln()
                };
            }
            acc
        })
        .collect())
}

pub struct SpladeEncoder {
    pooling: SpladePooling,
    name: String,
    dir: PathBuf,
    weights_sha256: String,
    device: Device,
    model: BertForMaskedLM,
    tokenizer: TextTokenizer,
    settings: SpladeSettings,
    batch_size: usize,
}

fn model_err(path: &Path, reason: impl Into<String>) -> EncoderError {
    EncoderError::Model {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Map a tensor name candle's BERT asks for onto the name the checkpoint uses.
fn resolve_name(have: &HashSet<String>, name: &str) -> String {
    if have.contains(name) {
        return name.to_string();
    }
    let alternatives = [
        (
            "cls.predictions.decoder.weight",
            "bert.embeddings.word_embeddings.weight",
        ),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
    ];
    for (asked, stored) in alternatives {
        if name == asked && have.contains(stored) {
            return stored.to_string();
        }
    }
    for (suffix, old) in [
        (".LayerNorm.weight", ".LayerNorm.gamma"),
        (".LayerNorm.bias", ".LayerNorm.beta"),
    ] {
        if let Some(stem) = name.strip_suffix(suffix) {
            let candidate = format!("{stem}{old}");
            if have.contains(&candidate) {
                return candidate;
            }
        }
    }
    name.to_string()
}

impl SpladeEncoder {
    /// Load a `BertForMaskedLM` checkpoint (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, options: &SpladeOptions, device: DeviceSpec) -> Result<Self> {
        if !dir.is_dir() {
            return Err(model_err(
                dir,
                "SPLADE model directory not found (run scripts/fetch-models.sh for splade-tiny, \
                 or pass --splade-model <dir>)",
            ));
        }
        let device = device.open()?;
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| EncoderError::Io {
            path: config_path.clone(),
            source: e,
        })?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| model_err(&config_path, format!("not a BERT config: {e}")))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(model_err(
                &weights,
                "missing (only safetensors weights are supported)",
            ));
        }
        let weights_sha256 = sha256_files(&[weights.as_path()])?;
        // SAFETY (inside candle): read-only map of a file not modified while loaded.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
            .map_err(|e| model_err(&weights, e.to_string()))?;
        let have: HashSet<String> = tensors.tensors().into_iter().map(|(n, _)| n).collect();
        if !have.contains("cls.predictions.bias") && !have.contains("cls.predictions.decoder.bias")
        {
            return Err(model_err(
                &weights,
                "no MLM head (cls.predictions.*): SPLADE needs a BertForMaskedLM checkpoint",
            ));
        }
        // SAFETY: as above.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| model_err(&weights, e.to_string()))?
            .rename_f(move |name| resolve_name(&have, name));
        let model = BertForMaskedLM::load(vb, &config)
            .map_err(|e| model_err(&weights, format!("cannot build the MLM model: {e}")))?;

        let settings = SpladeSettings {
            doc_max_len: options.doc_max_len.unwrap_or(DEFAULT_SPLADE_DOC_MAX_LEN),
            query_max_len: options
                .query_max_len
                .unwrap_or(DEFAULT_SPLADE_QUERY_MAX_LEN),
            threshold: options.threshold.unwrap_or(0.0),
            doc_max_terms: options.doc_max_terms,
            vocab_size: config.vocab_size,
        };
        for (what, len) in [
            ("query", settings.query_max_len),
            ("document", settings.doc_max_len),
        ] {
            if len > config.max_position_embeddings || len < 3 {
                return Err(model_err(
                    &config_path,
                    format!(
                        "SPLADE {what} max length {len} must be in 3..={}",
                        config.max_position_embeddings
                    ),
                ));
            }
        }
        // The tokenizer frames `[CLS] text [SEP]`: no markers, augmentation or skiplist.
        let framing = EncoderSettings {
            query_max_len: settings.query_max_len,
            doc_max_len: settings.doc_max_len,
            query_marker: None,
            doc_marker: None,
            query_augmentation: false,
            attend_to_mask_tokens: false,
            skip_punctuation: false,
            dim: config.vocab_size,
            projection: None,
        };
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), &framing)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(model_err(
                &config_path,
                format!(
                    "tokenizer has {} tokens but the model only {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            ));
        }
        Ok(SpladeEncoder {
            pooling: SpladePooling::default(),
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "splade".into()),
            dir: dir.to_path_buf(),
            weights_sha256,
            device,
            model,
            tokenizer,
            settings,
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    pub fn settings(&self) -> &SpladeSettings {
        &self.settings
    }

    /// Identifies the tokenizer's behaviour; equal fingerprints tokenise identically.
    pub fn tokenizer_fingerprint(&self) -> &str {
        self.tokenizer.fingerprint()
    }

    pub fn tokenize(&self, texts: &[&str], role: Role) -> Result<Vec<TokenizedText>> {
        self.tokenizer.tokenize(texts, role)
    }

    /// Re-frame another encoder's tokenisation (same tokenizer fingerprint) for this
    /// model: its body tokens between `[CLS]` and `[SEP]`, cut to this model's length.
    pub fn reframe(&self, other: &TokenizedText, role: Role) -> TokenizedText {
        let body = other.body.clone();
        self.tokenizer
            .frame(&other.ids[body.clone()], &other.word_ids[body], role)
    }

    /// Encode texts in `role`; one sparse vector per text, in input order.
    pub fn encode(&self, texts: &[&str], role: Role) -> Result<Vec<SparseVector>> {
        let items = self.tokenize(texts, role)?;
        self.encode_tokenized(&items, role)
    }

    /// Encode pre-tokenised texts, batched by length; results in input order.
    pub fn encode_tokenized(
        &self,
        items: &[TokenizedText],
        role: Role,
    ) -> Result<Vec<SparseVector>> {
        in_length_batches(items, self.batch_size, |batch| self.forward(batch, role))
    }

    /// How the term weights are pooled from the logits: [`SpladePooling::Fused`]
    /// (the default) or candle's tensor ops, kept as the reference.
    pub fn with_pooling(mut self, pooling: SpladePooling) -> Self {
        self.pooling = pooling;
        self
    }

    /// Raw term weights `max_i log(1 + relu(logit_i))` over each text's attended
    /// positions, for one padded batch (`batch x vocab`).
    pub fn term_weights(&self, batch: &[&TokenizedText]) -> Result<Vec<Vec<f32>>> {
        let (ids, mask) = padded(batch, &self.device)?;
        let types = ids.zeros_like()?;
        let logits = self.model.forward(&ids, &types, Some(&mask))?;
        match (self.pooling, self.device.is_cpu()) {
            (SpladePooling::Fused, true) => fused_pool(&logits, batch),
            _ => {
                // log1p(relu(x)) is ≥ 0, so zeroing padded positions cannot raise the max.
                let weights = (logits.relu()? + 1.0)?.log()?;
                let weights =
                    weights.broadcast_mul(&mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?)?;
                Ok(weights.max(1)?.to_dtype(DType::F32)?.to_vec2()?)
            }
        }
    }

    fn forward(&self, batch: &[&TokenizedText], role: Role) -> Result<Vec<SparseVector>> {
        let rows = self.term_weights(batch)?;
        let max_terms = match role {
            Role::Document => self.settings.doc_max_terms,
            Role::Query => None,
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut pairs: Vec<(u32, f32)> = row
                    .into_iter()
                    .enumerate()
                    .filter(|&(_, w)| w > self.settings.threshold)
                    .map(|(t, w)| (t as u32, w))
                    .collect();
                if let Some(m) = max_terms {
                    if pairs.len() > m {
                        pairs.select_nth_unstable_by(m, |a, b| b.1.total_cmp(&a.1));
                        pairs.truncate(m);
                    }
                }
                SparseVector::from_pairs(pairs)
            })
            .collect())
    }
}
