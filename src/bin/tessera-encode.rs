//! `tessera-encode`: the encoder alone, for measuring it on a device and carrying it to
//! a machine with nothing else (no index, no server). Three commands:
//!
//! - `run`: encode a corpus (BEIR directory or JSONL), tokenising on a producer thread,
//!   and print documents/s and tokens/s as JSON;
//! - `parity`: encode the parity texts (tests/fixtures/minilm_parity.json) on the device
//!   and on the CPU in f32, and print the worst per-token cosine between them;
//! - `export-f16`: write a copy of a model directory with f16 weights (half the bytes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tessera::corpus::{self, CorpusFormat, JsonlReader, OnMalformed};
use tessera::encoder::{
    ColbertEncoder, DTypeSpec, DeviceSpec, Encoder, LoadOptions, Role, SpladeEncoder,
    SpladeOptions, SpladePooling,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera-encode",
    version,
    about = "Encode documents with a Tessera model and measure it"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Encode a corpus; print throughput as JSON.
    Run {
        /// BEIR dataset directory or JSONL corpus (`_id`, `title`, `text`).
        corpus: PathBuf,
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// auto = f32 on the CPU, f16 on CUDA.
        #[arg(long, default_value = "auto")]
        dtype: DTypeSpec,
        /// Documents per forward pass [default: the encoder's, 16 on the CPU].
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long, default_value_t = 256)]
        doc_max_len: usize,
        /// Encode only the first N documents.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Encode a corpus with a SPLADE model twice per chunk, pooling the logits fused and
    /// with candle's ops (the reference), and print both throughputs and their largest
    /// weight difference as JSON.
    Splade {
        /// BEIR dataset directory or JSONL corpus (`_id`, `title`, `text`).
        corpus: PathBuf,
        #[arg(long, default_value = "models/splade-tiny")]
        model: PathBuf,
        /// Documents per forward pass [default: the encoder's, 8].
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long, default_value_t = 256)]
        doc_max_len: usize,
        /// Encode only the first N documents.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Worst per-token cosine of the device's vectors against f32 CPU vectors.
    Parity {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        #[arg(long, default_value = "auto")]
        dtype: DTypeSpec,
        /// JSON with a `texts: [{text}]` list.
        #[arg(long, default_value = "tests/fixtures/minilm_parity.json")]
        texts: PathBuf,
    },
    /// Copy a model directory with its safetensors weights converted to f16.
    ExportF16 {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Run {
            corpus,
            model,
            device,
            dtype,
            batch_size,
            doc_max_len,
            limit,
        } => {
            let options = LoadOptions {
                batch_size,
                doc_max_len: Some(doc_max_len),
                dtype,
                ..Default::default()
            };
            let encoder = ColbertEncoder::load(&model, &options, device)?;
            let report = encode_corpus(&encoder, &corpus, limit)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Splade {
            corpus,
            model,
            batch_size,
            doc_max_len,
            limit,
        } => {
            let options = SpladeOptions {
                batch_size,
                doc_max_len: Some(doc_max_len),
                ..Default::default()
            };
            let fused = SpladeEncoder::load(&model, &options, DeviceSpec::Cpu)?;
            let ops = SpladeEncoder::load(&model, &options, DeviceSpec::Cpu)?
                .with_pooling(SpladePooling::CandleOps);
            let report = splade_corpus(&fused, &ops, &corpus, limit)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Parity {
            model,
            device,
            dtype,
            texts,
        } => {
            let texts_path = texts;
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&texts_path)?)?;
            let texts: Vec<String> = meta["texts"]
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("{}: no texts list", texts_path.display()))?
                .iter()
                .filter_map(|t| t["text"].as_str().map(str::to_string))
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let load = |device, dtype| {
                let options = LoadOptions {
                    doc_max_len: Some(512),
                    dtype,
                    ..Default::default()
                };
                ColbertEncoder::load(&model, &options, device)
            };
            let on_device = load(device, dtype)?;
            let cpu = load(DeviceSpec::Cpu, DTypeSpec::F32)?;
            let a = on_device.encode(&texts, Role::Document)?;
            let b = cpu.encode(&texts, Role::Document)?;
            let vs_cpu = worst_cosine(&a, b.iter().map(|m| m.as_slice().to_vec()), a[0].dim())?;
            // The numpy float64 reference of the original f32 weights (scripts/
            // reference_vectors.py), beside the texts file: covers f16 weight rounding too.
            let fixture = texts_path.with_extension("f32");
            let vs_numpy = match std::fs::read(&fixture) {
                Ok(bytes) => {
                    let all: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                        .collect();
                    let dim = a[0].dim();
                    let mut at = 0;
                    let rows = a.iter().map(|m| {
                        let n = m.len() * dim;
                        let v = all.get(at..at + n).map(<[f32]>::to_vec).unwrap_or_default();
                        at += n;
                        v
                    });
                    Some(worst_cosine(&a, rows, dim)?)
                }
                Err(_) => None,
            };
            let out = serde_json::json!({
                "device": format!("{:?}", on_device.device()),
                "dtype": format!("{:?}", on_device.dtype()),
                "texts": texts.len(),
                "tokens": a.iter().map(|m| m.len()).sum::<usize>(),
                "worst_cosine_vs_cpu_f32": vs_cpu,
                "worst_cosine_vs_numpy_reference": vs_numpy,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::ExportF16 { model, out } => export_f16(&model, &out)?,
    }
    Ok(())
}

/// Worst cosine between each token vector of `got` (unit rows) and the matching row of
/// `want` (normalised here), text by text.
fn worst_cosine(
    got: &[tessera_index::store::MultiVector],
    want: impl Iterator<Item = Vec<f32>>,
    dim: usize,
) -> anyhow::Result<f32> {
    let mut worst = 1.0f32;
    for (x, y) in got.iter().zip(want) {
        anyhow::ensure!(
            y.len() == x.len() * dim,
            "token counts differ from the reference"
        );
        for (r, s) in x.view().rows().zip(y.chunks_exact(dim)) {
            let dot: f32 = r.iter().zip(s).map(|(p, q)| p * q).sum();
            let norm = s.iter().map(|q| q * q).sum::<f32>().sqrt().max(1e-12);
            let c = dot / norm;
            // NaN (a broken forward pass) must not vanish into `min`.
            worst = if c.is_nan() { f32::NAN } else { worst.min(c) };
            if worst.is_nan() {
                return Ok(f32::NAN);
            }
        }
    }
    Ok(worst)
}

/// Encode every document once, timing the model only (tokenisation overlaps on a
/// producer thread, as in `tessera index`).
fn encode_corpus(
    encoder: &ColbertEncoder,
    corpus_path: &Path,
    limit: Option<usize>,
) -> anyhow::Result<serde_json::Value> {
    let path = corpus::resolve_corpus_path(corpus_path)?;
    let mut reader = JsonlReader::open(&path, CorpusFormat::default(), OnMalformed::Fail)?;
    let limit = limit.unwrap_or(usize::MAX);
    let started = Instant::now();
    let (mut docs, mut tokens, mut model_seconds) = (0usize, 0usize, 0.0f64);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            let mut sent = 0;
            loop {
                let mut texts = Vec::new();
                while texts.len() < 512 && sent + texts.len() < limit {
                    match reader.next() {
                        Some(Ok(d)) => texts.push(d.text),
                        Some(Err(e)) => {
                            let _ = tx.send(Err(anyhow::Error::from(e)));
                            return;
                        }
                        None => break,
                    }
                }
                if texts.is_empty() {
                    return;
                }
                sent += texts.len();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let items = encoder
                    .tokenize(&refs, Role::Document)
                    .map_err(anyhow::Error::from);
                if tx.send(items).is_err() {
                    return;
                }
            }
        });
        for items in rx {
            let items = items?;
            let t = Instant::now();
            let out = encoder.encode_tokenized(&items)?;
            model_seconds += t.elapsed().as_secs_f64();
            docs += items.len();
            tokens += items.iter().map(|t| t.ids.len()).sum::<usize>();
            drop(out);
        }
        Ok(())
    })?;
    let wall = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "device": format!("{:?}", encoder.device()),
        "dtype": format!("{:?}", encoder.dtype()),
        "documents": docs,
        "tokens": tokens,
        "seconds": wall,
        "model_seconds": model_seconds,
        "documents_per_s": docs as f64 / wall,
        "tokens_per_s": tokens as f64 / wall,
    }))
}

/// Encode every document with both SPLADE poolings, alternating per chunk of 512 so
/// both see the same machine load, timing the model only.
fn splade_corpus(
    fused: &SpladeEncoder,
    ops: &SpladeEncoder,
    corpus_path: &Path,
    limit: Option<usize>,
) -> anyhow::Result<serde_json::Value> {
    let path = corpus::resolve_corpus_path(corpus_path)?;
    let mut reader = JsonlReader::open(&path, CorpusFormat::default(), OnMalformed::Fail)?;
    let limit = limit.unwrap_or(usize::MAX);
    let (mut docs, mut tokens, mut terms) = (0usize, 0usize, 0usize);
    let (mut fused_s, mut ops_s, mut worst) = (0.0f64, 0.0f64, 0.0f32);
    loop {
        let mut texts = Vec::new();
        while texts.len() < 512 && docs + texts.len() < limit {
            match reader.next() {
                Some(d) => texts.push(d?.text),
                None => break,
            }
        }
        if texts.is_empty() {
            break;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let items = fused.tokenize(&refs, Role::Document)?;
        let t = Instant::now();
        let a = fused.encode_tokenized(&items, Role::Document)?;
        fused_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let b = ops.encode_tokenized(&items, Role::Document)?;
        ops_s += t.elapsed().as_secs_f64();
        for (x, y) in a.iter().zip(&b) {
            anyhow::ensure!(x.terms() == y.terms(), "the poolings keep different terms");
            for (p, q) in x.weights().iter().zip(y.weights()) {
                worst = worst.max((p - q).abs());
            }
            terms += x.len();
        }
        docs += items.len();
        tokens += items.iter().map(|t| t.ids.len()).sum::<usize>();
    }
    Ok(serde_json::json!({
        "documents": docs,
        "tokens": tokens,
        "mean_terms_per_document": terms as f64 / docs.max(1) as f64,
        "fused_seconds": fused_s,
        "candle_ops_seconds": ops_s,
        "fused_documents_per_s": docs as f64 / fused_s,
        "candle_ops_documents_per_s": docs as f64 / ops_s,
        "speedup": ops_s / fused_s,
        "largest_weight_difference": worst,
    }))
}

/// Copy `model` to `out` with `model.safetensors` (and `1_Dense/model.safetensors`) in
/// f16; every other file is copied as is.
fn export_f16(model: &Path, out: &Path) -> anyhow::Result<()> {
    use candle_core::{DType, Device};
    copy_dir(model, out)?;
    for rel in ["model.safetensors", "1_Dense/model.safetensors"] {
        let src = model.join(rel);
        if !src.is_file() {
            continue;
        }
        let tensors = candle_core::safetensors::load(&src, &Device::Cpu)?;
        let half = tensors
            .into_iter()
            .map(|(k, t)| {
                let t = if t.dtype().is_float() {
                    t.to_dtype(DType::F16)?
                } else {
                    t
                };
                Ok((k, t))
            })
            .collect::<candle_core::Result<std::collections::HashMap<_, _>>>()?;
        candle_core::safetensors::save(&half, out.join(rel))?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}
