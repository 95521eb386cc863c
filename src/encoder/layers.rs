//! BERT's transformer layers, for the multi-vector encoder (the same weights and the
//! same arithmetic as candle-transformers' `BertEncoder`, arranged for the CPU).
//!
//! Why not candle-transformers' `BertEncoder` (0.11.1), measured with `perf` on
//! `tessera-encode run` over SciFact (all-MiniLM-L6-v2, f32, 2 cores): its attention
//! softmax is candle-nn's generic `softmax` (max, subtract, exp, sum, divide: five
//! passes, each allocating a fresh `batch x heads x len x len` tensor, whose page
//! zeroing by the kernel alone took 21% of the run), it scales the scores in a pass of
//! its own, and its exact GELU calls libm's scalar `erff` per element (9% of the run,
//! plus its `expf`). Here:
//! - query, key and value are one matmul with the weights concatenated at load, the
//!   1/sqrt(head size) scale folded into the query's weights;
//! - the softmax is candle-nn's fused `softmax_last_dim` (one pass, one allocation);
//! - the exact (erf) GELU runs through [`gelu_erf_fast`] on the CPU in f32: a rational
//!   approximation of erf, branch-free and vectorised (AVX-512 or AVX2 where the CPU
//!   has it); its error against `erf` is tested in `tessera_index::activation` (< 1e-6
//!   absolute). Other devices
//!   and dtypes keep candle's `gelu_erf`.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::{layer_norm, linear, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;
use tessera_index::activation::{gelu_erf_fast, softmax_rows};

pub(crate) struct Layers {
    layers: Vec<Layer>,
}

struct Layer {
    /// Query (pre-scaled), key and value projections as one `[3 hidden, hidden]` weight.
    qkv: Linear,
    heads: usize,
    head_size: usize,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    act: HiddenAct,
    out: Linear,
    out_norm: LayerNorm,
}

impl Layers {
    /// Weights under `layer.<i>.` of `vb` (BERT's `encoder.`).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("layer.{i}")), config))
            .collect::<Result<_>>()?;
        Ok(Layers { layers })
    }

    /// `x`: `batch x len x hidden`; `mask`: additive, `batch x 1 x 1 x len`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward(&x, mask)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        let h = c.hidden_size;
        let heads = c.num_attention_heads;
        let head_size = h / heads;
        let a = vb.pp("attention");
        let s = a.pp("self");
        let scale = 1.0 / (head_size as f64).sqrt();
        let q = linear(h, h, s.pp("query"))?;
        let k = linear(h, h, s.pp("key"))?;
        let v = linear(h, h, s.pp("value"))?;
        let bias = |l: &Linear| {
            l.bias()
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("attention projection without bias".into()))
        };
        let weight = Tensor::cat(
            &[
                (q.weight() * scale)?,
                k.weight().clone(),
                v.weight().clone(),
            ],
            0,
        )?;
        let b = Tensor::cat(&[(bias(&q)? * scale)?, bias(&k)?, bias(&v)?], 0)?;
        let o = a.pp("output");
        Ok(Layer {
            qkv: Linear::new(weight, Some(b)),
            heads,
            head_size,
            attention_out: linear(h, h, o.pp("dense"))?,
            attention_norm: layer_norm(h, c.layer_norm_eps, o.pp("LayerNorm"))?,
            intermediate: linear(h, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            act: c.hidden_act,
            out: linear(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
            out_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, len, hidden) = x.dims3()?;
        // batch x len x 3 x heads x head -> three of batch x heads x len x head.
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, len, 3, self.heads, self.head_size))?;
        let part = |i| {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, len, hidden))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = activation(&self.intermediate.forward(&attended)?, self.act)?;
        self.out_norm
            .forward(&(self.out.forward(&inner)? + attended)?)
    }
}

fn activation(x: &Tensor, act: HiddenAct) -> Result<Tensor> {
    match act {
        HiddenAct::Gelu if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 => {
            x.apply_op1_no_bwd(&GeluErfFast)
        }
        HiddenAct::Gelu => x.gelu_erf(),
        HiddenAct::GeluApproximate => x.gelu(),
        HiddenAct::Relu => x.relu(),
    }
}

/// Softmax over the last dimension: [`SoftmaxFast`] on f32 CPU tensors, candle-nn's
/// fused one elsewhere.
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&SoftmaxFast)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// candle-nn's `softmax_last_dim` with its scalar libm `expf` (9% of a MiniLM encode
/// after the GELU was fixed, `perf`) replaced by the vectorised `tessera_index::activation::exp_fast`.
struct SoftmaxFast;

impl CustomOp1 for SoftmaxFast {
    fn name(&self) -> &'static str {
        "tessera-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let row = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        // Whole rows, about 16k values per task.
        let group = row * (16_384 / row).max(1);
        map_f32(self.name(), storage, layout, group, |s, d| {
            softmax_rows(s, d, row)
        })
    }
}

/// Exact (erf) GELU on f32 CPU tensors through [`gelu_erf_fast`].
struct GeluErfFast;

impl CustomOp1 for GeluErfFast {
    fn name(&self) -> &'static str {
        "tessera-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_f32(self.name(), storage, layout, 1 << 14, gelu_erf_fast)
    }
}

/// A contiguous f32 CPU tensor mapped chunk by chunk (in parallel) into a new one of the
/// same shape: `f(src_chunk, dst_chunk)`.
fn map_f32(
    name: &str,
    storage: &CpuStorage,
    layout: &Layout,
    chunk: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("{name}: f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: input must be contiguous");
    };
    let src = &all[start..end];
    let mut dst = vec![0f32; src.len()];
    dst.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk))
        .for_each(|(d, s)| f(s, d));
    Ok((CpuStorage::F32(dst), layout.shape().clone()))
}
