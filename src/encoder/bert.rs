//! BERT for token vectors: embeddings built here, the layers in `layers.rs` (why not
//! candle-transformers' `BertEncoder`: see there).
//!
//! Why not candle-transformers' `BertModel` (0.11.1): its attention mask is
//! `(1 - mask) * f32::MIN` cast to the model's dtype. In f16 and bf16 `f32::MIN` becomes
//! `-inf`, and `0 * -inf` is NaN at every attended position, so every half-precision
//! forward pass returns NaN (measured: all vectors NaN on the parity texts). Here the
//! mask uses the dtype's own most negative finite value, as PyTorch's
//! `torch.finfo(dtype).min` does; in f32 it is the same `f32::MIN` as before.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::bert::Config;

use super::layers::Layers;

pub(crate) struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    encoder: Layers,
}

impl Bert {
    /// Weights under `embeddings.*`/`encoder.*`, or the same under `<model_type>.` (as
    /// `bert.` in masked-LM checkpoints).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        match Self::load_at(vb.clone(), config) {
            Ok(b) => Ok(b),
            Err(first) => match &config.model_type {
                Some(prefix) => Self::load_at(vb.pp(prefix), config).map_err(|_| first),
                None => Err(first),
            },
        }
    }

    fn load_at(vb: VarBuilder, config: &Config) -> Result<Self> {
        let e = vb.pp("embeddings");
        Ok(Bert {
            word: embedding(
                config.vocab_size,
                config.hidden_size,
                e.pp("word_embeddings"),
            )?,
            position: embedding(
                config.max_position_embeddings,
                config.hidden_size,
                e.pp("position_embeddings"),
            )?,
            token_type: embedding(
                config.type_vocab_size,
                config.hidden_size,
                e.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(config.hidden_size, config.layer_norm_eps, e.pp("LayerNorm"))?,
            encoder: Layers::load(vb.pp("encoder"), config)?,
        })
    }

    /// Last hidden states, `batch x len x hidden`. `mask` is `batch x len`, 1 where the
    /// model attends.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let types = ids.zeros_like()?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(&types)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let x = self.norm.forward(&x)?;
        let dtype = x.dtype();
        let most_negative = match dtype {
            DType::F16 => f64::from(half::f16::MIN),
            DType::BF16 => f64::from(half::bf16::MIN),
            DType::F64 => f64::MIN,
            _ => f64::from(f32::MIN),
        };
        // (1 - mask) * most_negative, batch x 1 x 1 x len.
        let additive = ((mask.to_dtype(DType::F32)? - 1.0)? * (-most_negative))?
            .to_dtype(dtype)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        self.encoder.forward(&x, &additive)
    }
}
