//! Building the PLAID component from a finished token store: sample, k-means, residual
//! quantiser, then every vector's centroid code and packed residual, and the IVF.

use std::path::Path;
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::codec::linalg::normalize_rows;
use crate::codec::{default_num_centroids, kmeans, nearest_ip, KMeansConfig, ResidualQuantizer};
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileWriter, PlaidFiles};
use crate::store::TokenStore;

/// How to build PLAID. Every field has a ColBERTv2-like default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaidConfig {
    /// Bits per residual dimension: 1, 2 or 4.
    pub nbits: u32,
    /// Number of centroids; default `2^floor(log2(16 * sqrt(n_vectors)))`.
    pub num_centroids: Option<usize>,
    /// k-means trains on `sample_per_centroid * k` sampled vectors (at most all of them).
    pub sample_per_centroid: usize,
    pub kmeans_iterations: usize,
    pub seed: u64,
}

impl Default for PlaidConfig {
    fn default() -> Self {
        PlaidConfig {
            nbits: 2,
            num_centroids: None,
            sample_per_centroid: 16,
            kmeans_iterations: 8,
            seed: 12345,
        }
    }
}

/// Vectors encoded per block when assigning codes (bounds memory: block x k scores).
const ENCODE_BLOCK: usize = 1 << 15;

pub fn build_plaid(
    dir: &Path,
    generation: u64,
    store: &TokenStore,
    config: &PlaidConfig,
) -> Result<PlaidFiles> {
    if !matches!(config.nbits, 1 | 2 | 4) {
        return Err(IndexError::InvalidArgument(format!(
            "nbits must be 1, 2 or 4, not {}",
            config.nbits
        )));
    }
    let started = Instant::now();
    let dim = store.dim();
    let n = store.num_vectors();
    let k = config
        .num_centroids
        .unwrap_or_else(|| default_num_centroids(n))
        .clamp(1, n);
    let all = store.all_vectors();
    let rows_f32 = |idx: &mut dyn Iterator<Item = usize>| {
        let mut out = Vec::new();
        let mut buf = vec![0.0f32; dim];
        for i in idx {
            all[i * dim..(i + 1) * dim].convert_to_f32_slice(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    };

    // Sample: 95% trains k-means, 5% (held out) fits the residual quantiser.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let sample_size = (config.sample_per_centroid.max(1) * k).min(n);
    let picked = sample(&mut rng, n, sample_size).into_vec();
    let heldout_len = (sample_size / 20).clamp(1.min(sample_size), 50_000);
    let (heldout_idx, train_idx) = picked.split_at(heldout_len);
    let train = rows_f32(&mut train_idx.iter().copied());
    let train = if train.is_empty() {
        rows_f32(&mut heldout_idx.iter().copied())
    } else {
        train
    };
    let mut centroids = kmeans(
        &train,
        dim,
        KMeansConfig {
            k,
            iterations: config.kmeans_iterations,
            seed: config.seed,
        },
    );
    normalize_rows(&mut centroids, dim);
    // k-means returns at most one centroid per training point: with very few vectors
    // (the held-out share taken) that can be fewer than asked for.
    let k = centroids.len() / dim;
    let kmeans_seconds = started.elapsed().as_secs_f64();

    let heldout = rows_f32(&mut heldout_idx.iter().copied());
    let codes = nearest_ip(&heldout, &centroids, dim);
    let mut residual_values = Vec::with_capacity(heldout.len());
    for (v, &c) in heldout.chunks_exact(dim).zip(&codes) {
        let c = &centroids[c as usize * dim..(c as usize + 1) * dim];
        residual_values.extend(v.iter().zip(c).map(|(a, b)| a - b));
    }
    let quantizer = ResidualQuantizer::fit(dim, config.nbits, residual_values);

    // Encode every vector, streaming codes and residuals to disk.
    let mut codes_file = FileWriter::create(
        dir,
        &format!("g{generation}.plaid.codes"),
        ComponentKind::Codes,
    )?;
    let mut res_file = FileWriter::create(
        dir,
        &format!("g{generation}.plaid.residuals"),
        ComponentKind::Residuals,
    )?;
    let packed_len = quantizer.packed_len();
    let mut all_codes: Vec<u32> = Vec::with_capacity(n);
    let mut packed = vec![0u8; packed_len];
    let mut start = 0;
    while start < n {
        let end = (start + ENCODE_BLOCK).min(n);
        let block = rows_f32(&mut (start..end));
        let block_codes = nearest_ip(&block, &centroids, dim);
        let mut res_bytes = Vec::with_capacity((end - start) * packed_len);
        let mut residual = vec![0.0f32; dim];
        for (v, &c) in block.chunks_exact(dim).zip(&block_codes) {
            let c = &centroids[c as usize * dim..(c as usize + 1) * dim];
            for ((r, a), b) in residual.iter_mut().zip(v).zip(c) {
                *r = a - b;
            }
            quantizer.pack(&residual, &mut packed);
            res_bytes.extend_from_slice(&packed);
        }
        codes_file.write(bytemuck::cast_slice(&block_codes))?;
        res_file.write(&res_bytes)?;
        all_codes.extend_from_slice(&block_codes);
        start = end;
    }
    let codes = codes_file.finish()?;
    let residuals = res_file.finish()?;

    let mut cfile = FileWriter::create(
        dir,
        &format!("g{generation}.plaid.centroids"),
        ComponentKind::Centroids,
    )?;
    cfile.write(bytemuck::cast_slice(&centroids))?;
    let centroids_entry = cfile.finish()?;

    let (offsets, docs) = build_ivf(store, &all_codes, k);
    let mut ivf = FileWriter::create(dir, &format!("g{generation}.plaid.ivf"), ComponentKind::Ivf)?;
    ivf.write(bytemuck::cast_slice(&offsets))?;
    ivf.write(bytemuck::cast_slice(&docs))?;
    let ivf = ivf.finish()?;

    Ok(PlaidFiles {
        num_centroids: k,
        quantizer,
        centroids: centroids_entry,
        codes,
        residuals,
        ivf,
        build: serde_json::json!({
            "config": config,
            "kmeans_sample": train.len() / dim,
            "heldout": heldout_len,
            "kmeans_seconds": kmeans_seconds,
            "total_seconds": started.elapsed().as_secs_f64(),
        }),
    })
}

/// Centroid -> sorted unique documents having a vector there: `k + 1` offsets and the ids.
fn build_ivf(store: &TokenStore, codes: &[u32], k: usize) -> (Vec<u64>, Vec<u32>) {
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(codes.len());
    let mut start = 0;
    for d in 0..store.num_docs() {
        let end = start + store.doc_len(d);
        let mut doc_codes: Vec<u32> = codes[start..end].to_vec();
        doc_codes.sort_unstable();
        doc_codes.dedup();
        pairs.extend(doc_codes.into_iter().map(|c| (c, d as u32)));
        start = end;
    }
    pairs.sort_unstable();
    let mut offsets = vec![0u64; k + 1];
    for &(c, _) in &pairs {
        offsets[c as usize + 1] += 1;
    }
    for c in 0..k {
        offsets[c + 1] += offsets[c];
    }
    (offsets, pairs.into_iter().map(|(_, d)| d).collect())
}
