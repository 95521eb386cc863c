//! ColBERT-style encoder on candle: BERT last hidden states, optional linear projection,
//! L2-normalised per token. Loads plain sentence-transformers, ColBERT and PyLate layouts.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::bert::Config as BertConfig;
use sha2::{Digest, Sha256};
use tessera_index::store::MultiVector;

use super::batch::{in_length_batches, padded};
use super::bert::Bert;
use super::config::{checkpoint_hints, DEFAULT_DOC_MAX_LEN, DEFAULT_QUERY_MAX_LEN};
use super::tokenize::{TextTokenizer, TokenizedText};
use super::{DeviceSpec, Encoder, EncoderError, EncoderSettings, LoadOptions, Result, Role};

/// Documents per forward pass when the caller names none. 16 on the CPU: measured with
/// `tessera-encode run datasets/scifact --limit 200 --batch-size B` (MiniLM, f32, 2
/// cores), 16 encoded 12.0-12.2 documents/s against 9.1-9.9 at 64; larger batches
/// allocate `batch x heads x len x len` attention tensors of hundreds of MB whose fresh
/// pages the kernel must zero. Other devices keep 32 (not measured there yet).
fn default_batch_size(device: &Device) -> usize {
    if matches!(device, Device::Cpu) {
        16
    } else {
        32
    }
}

/// A loaded multi-vector encoder.
pub struct ColbertEncoder {
    name: String,
    dir: PathBuf,
    weights_sha256: String,
    device: Device,
    dtype: DType,
    bert: Bert,
    projection: Option<Linear>,
    tokenizer: TextTokenizer,
    settings: EncoderSettings,
    batch_size: usize,
}

/// The output of one forward pass, before it is split into per-text multi-vectors.
pub struct EncodedBatch {
    pub vectors: Vec<MultiVector>,
    pub tokens: usize,
}

fn model_err(path: &Path, reason: impl Into<String>) -> EncoderError {
    EncoderError::Model {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl ColbertEncoder {
    /// Load the checkpoint in `dir` (config.json, model.safetensors, tokenizer.json,
    /// and optionally ColBERT/PyLate extras) onto `device`.
    pub fn load(dir: &Path, options: &LoadOptions, device: DeviceSpec) -> Result<Self> {
        if !dir.is_dir() {
            return Err(model_err(
                dir,
                "model directory not found (run scripts/fetch-models.sh for the default models, \
                 or pass --model <dir> with config.json, model.safetensors, tokenizer.json)",
            ));
        }
        let device = device.open()?;
        let dtype = options.dtype.resolve(&device);
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| EncoderError::Io {
            path: config_path.clone(),
            source: e,
        })?;
        let bert_config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| model_err(&config_path, format!("not a BERT config: {e}")))?;

        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(model_err(
                &weights,
                "missing (only safetensors weights are supported; convert pytorch_model.bin first)",
            ));
        }
        // The projection is part of the model: a checkpoint that differs only there
        // must not pass as the same model. Plain models hash to their file's SHA-256.
        let dense = dir.join("1_Dense").join("model.safetensors");
        let weights_sha256 = sha256_files(&[weights.as_path(), dense.as_path()])?;
        // SAFETY (inside candle): the weight file is memory-mapped read-only and not
        // modified while the encoder lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], dtype, &device) }
            .map_err(|e| model_err(&weights, e.to_string()))?;
        let bert = Bert::load(vb.clone(), &bert_config)
            .map_err(|e| model_err(&weights, format!("cannot build BERT from weights: {e}")))?;

        let (projection, projection_source) =
            load_projection(dir, &vb, bert_config.hidden_size, &device, dtype)?;
        let dim = match &projection {
            Some(p) => p.weight().dim(0)?,
            None => bert_config.hidden_size,
        };

        let hints = checkpoint_hints(dir)?;
        let settings = EncoderSettings {
            query_max_len: options
                .query_max_len
                .or(hints.query_max_len)
                .unwrap_or(DEFAULT_QUERY_MAX_LEN),
            doc_max_len: options
                .doc_max_len
                .or(hints.doc_max_len)
                .unwrap_or(DEFAULT_DOC_MAX_LEN),
            query_marker: hints.query_marker,
            doc_marker: hints.doc_marker,
            query_augmentation: options
                .query_augmentation
                .or(hints.query_augmentation)
                .unwrap_or(false),
            attend_to_mask_tokens: hints.attend_to_mask_tokens.unwrap_or(false),
            skip_punctuation: options
                .skip_punctuation
                .or(hints.skip_punctuation)
                .unwrap_or(false),
            dim,
            projection: projection_source,
        };
        for (what, len) in [
            ("query", settings.query_max_len),
            ("document", settings.doc_max_len),
        ] {
            if len > bert_config.max_position_embeddings {
                return Err(model_err(
                    &config_path,
                    format!(
                        "{what} max length {len} exceeds the model's {} positions",
                        bert_config.max_position_embeddings
                    ),
                ));
            }
            if len < 4 {
                return Err(model_err(
                    &config_path,
                    format!("{what} max length {len} leaves no room for text"),
                ));
            }
        }
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), &settings)?;
        if tokenizer.vocab_size() > bert_config.vocab_size {
            return Err(model_err(
                &config_path,
                format!(
                    "tokenizer has {} tokens but the model only {}",
                    tokenizer.vocab_size(),
                    bert_config.vocab_size
                ),
            ));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let batch_size = options
            .batch_size
            .unwrap_or_else(|| default_batch_size(&device))
            .max(1);
        Ok(ColbertEncoder {
            name,
            dir: dir.to_path_buf(),
            weights_sha256,
            device,
            dtype,
            bert,
            projection,
            tokenizer,
            settings,
            batch_size,
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

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The floating-point type the model runs in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Tokenise without encoding (for counting tokens, or for a caller that batches).
    pub fn tokenize(&self, texts: &[&str], role: Role) -> Result<Vec<TokenizedText>> {
        self.tokenizer.tokenize(texts, role)
    }

    /// Tokenise one text, with every position's token string and character span.
    pub fn tokenize_with_spans(
        &self,
        text: &str,
        role: Role,
    ) -> Result<(TokenizedText, Vec<super::tokenize::TokenSpan>)> {
        self.tokenizer.tokenize_with_spans(text, role)
    }

    /// Identifies the tokenizer's behaviour; equal fingerprints tokenise identically.
    pub fn tokenizer_fingerprint(&self) -> &str {
        self.tokenizer.fingerprint()
    }

    /// Encode pre-tokenised texts: sorted by length into batches so padding stays small,
    /// results returned in input order. Also returns the number of vectors produced.
    pub fn encode_tokenized(&self, items: &[TokenizedText]) -> Result<EncodedBatch> {
        let vectors = in_length_batches(items, self.batch_size, |batch| self.forward(batch))?;
        let tokens = vectors.iter().map(MultiVector::len).sum();
        Ok(EncodedBatch { vectors, tokens })
    }

    /// One padded forward pass; kept positions only, L2-normalised.
    fn forward(&self, batch: &[&TokenizedText]) -> Result<Vec<MultiVector>> {
        let (ids, mask) = padded(batch, &self.device)?;
        let mut hidden = self.bert.forward(&ids, &mask)?;
        if let Some(p) = &self.projection {
            hidden = p.forward(&hidden)?;
        }
        let hidden: Vec<Vec<Vec<f32>>> = hidden.to_dtype(DType::F32)?.to_vec3()?;
        let dim = self.settings.dim;
        Ok(batch
            .iter()
            .zip(hidden)
            .map(|(t, rows)| {
                let mut data = Vec::with_capacity(t.keep.iter().filter(|k| **k).count() * dim);
                for (row, _) in rows.iter().zip(&t.keep).filter(|(_, k)| **k) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    data.extend(row.iter().map(|v| v / norm));
                }
                MultiVector::new(data, dim)
            })
            .collect())
    }
}

impl Encoder for ColbertEncoder {
    fn dim(&self) -> usize {
        self.settings.dim
    }

    fn encode(&self, texts: &[&str], role: Role) -> Result<Vec<MultiVector>> {
        let items = self.tokenize(texts, role)?;
        Ok(self.encode_tokenized(&items)?.vectors)
    }
}

/// ColBERT keeps its projection as `linear.weight` beside BERT's weights; PyLate in a
/// sentence-transformers `1_Dense/` module. Plain models have none.
fn load_projection(
    dir: &Path,
    vb: &VarBuilder,
    hidden: usize,
    device: &Device,
    dtype: DType,
) -> Result<(Option<Linear>, Option<String>)> {
    if vb.contains_tensor("linear.weight") {
        let w = vb.get_unchecked("linear.weight")?;
        check_projection(&dir.join("model.safetensors"), &w, hidden)?;
        return Ok((Some(Linear::new(w, None)), Some("colbert-linear".into())));
    }
    let dense = dir.join("1_Dense").join("model.safetensors");
    if dense.is_file() {
        // SAFETY (inside candle): read-only map of a file not modified while loaded.
        let dvb = unsafe { VarBuilder::from_mmaped_safetensors(&[&dense], dtype, device) }
            .map_err(|e| model_err(&dense, e.to_string()))?;
        let w = dvb
            .get_unchecked("linear.weight")
            .map_err(|e| model_err(&dense, format!("no linear.weight: {e}")))?;
        check_projection(&dense, &w, hidden)?;
        let b = if dvb.contains_tensor("linear.bias") {
            Some(dvb.get_unchecked("linear.bias")?)
        } else {
            None
        };
        return Ok((Some(Linear::new(w, b)), Some("pylate-dense".into())));
    }
    if dir.join("1_Dense").is_dir() {
        return Err(model_err(
            &dir.join("1_Dense"),
            "projection module found but no model.safetensors in it (pytorch .bin is not supported)",
        ));
    }
    Ok((None, None))
}

fn check_projection(path: &Path, w: &Tensor, hidden: usize) -> Result<()> {
    match w.dims() {
        [_, h] if *h == hidden => Ok(()),
        dims => Err(model_err(
            path,
            format!("projection weight has shape {dims:?}, expected [dim, {hidden}]"),
        )),
    }
}

/// SHA-256 over the bytes of the files that exist among `paths`, in order.
pub(crate) fn sha256_files(paths: &[&Path]) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in paths.iter().filter(|p| p.is_file()) {
        let io = |e| EncoderError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
