//! The PLAID codec: k-means centroids and the residual quantiser, trained once per index
//! (on a sample of the first build, or of everything at `compact --retrain`) and reused
//! to encode every later segment, so centroid scores computed once per query serve all
//! segments and segments merge by copying codes.

use std::path::Path;
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::PlaidConfig;
use crate::codec::linalg::normalize_rows;
use crate::codec::{
    default_num_centroids, kmeans, nearest_ip, KMeansConfig, Metric, ResidualDecoder,
    ResidualQuantizer, TwoLevel, TWO_LEVEL_MIN_K,
};
use crate::error::{IndexError, Result};
use crate::segment::{CodecFiles, ComponentKind, FileWriter, MappedFile};
use crate::store::{MultiVectorRef, TokenStore};

/// Vectors of `store` at the sampled positions `idx`, as f32 rows in `idx`'s order. Read
/// in ascending position, dropping the store's pages behind every 64 MiB: random reads
/// map whole neighbourhoods of cached pages (fault-around), so reading a 5% sample in
/// `idx`'s order left nearly the whole store resident.
fn sample_rows(store: &TokenStore, idx: &[usize]) -> Vec<f32> {
    let dim = store.dim();
    let all = store.all_vectors();
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_unstable_by_key(|&j| idx[j]);
    let mut out = vec![0.0f32; idx.len() * dim];
    let step = ((64 << 20) / (dim * 2)).max(1);
    let mut released = 0;
    for j in order {
        let i = idx[j];
        all[i * dim..(i + 1) * dim].convert_to_f32_slice(&mut out[j * dim..(j + 1) * dim]);
        if i >= released + step {
            store.release_vectors(released..i);
            released = i;
        }
    }
    store.release_all_vectors();
    out
}

/// Vectors of `store` at `idx`, as f32 rows.
pub(super) fn rows_f32(store: &TokenStore, idx: impl Iterator<Item = usize>) -> Vec<f32> {
    let dim = store.dim();
    let all = store.all_vectors();
    let mut out = Vec::new();
    let mut buf = vec![0.0f32; dim];
    for i in idx {
        all[i * dim..(i + 1) * dim].convert_to_f32_slice(&mut buf);
        out.extend_from_slice(&buf);
    }
    out
}

/// Row-major int8 rows (`dim` values each) times their row's scale.
fn dequantize(values: &[i8], scales: &[f32], dim: usize) -> Vec<f32> {
    values
        .chunks_exact(dim)
        .zip(scales)
        .flat_map(|(row, &s)| row.iter().map(move |&v| f32::from(v) * s))
        .collect()
}

/// Train a codec on a sample of `store`'s vectors and write its centroids as
/// `c<id>.plaid.centroids`. Sample: `sample_per_centroid * k` vectors, 95% for k-means,
/// 5% (held out) for the residual quantiser's bucket cut-offs and the baseline residual norm.
pub fn train_codec(
    dir: &Path,
    id: u64,
    store: &TokenStore,
    config: &PlaidConfig,
    generation: u64,
) -> Result<CodecFiles> {
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
        .clamp(1, n.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let cap = config.max_sample_bytes.map_or(usize::MAX, |b| {
        ((b / (dim.max(1) as u64 * 4)) as usize).max(1)
    });
    let sample_size = (config.sample_per_centroid.max(1) * k).min(n).min(cap);
    let picked = sample(&mut rng, n, sample_size).into_vec();
    let heldout_len = (sample_size / 20).clamp(1.min(sample_size), 50_000);
    let (heldout_idx, train_idx) = picked.split_at(heldout_len);
    let mut train = sample_rows(store, train_idx);
    if train.is_empty() {
        train = sample_rows(store, heldout_idx);
    }
    let mut centroids = kmeans(
        &train,
        dim,
        KMeansConfig {
            k,
            iterations: config.kmeans_iterations,
            seed: config.seed,
            probe: config.assign_probe,
        },
    );
    normalize_rows(&mut centroids, dim);
    let mut int8 = None;
    if config.int8_centroids {
        // Quantised before the residual statistics, as f16 below: encoding and search
        // use the dequantised centroids.
        let (mut values, mut scales) = (Vec::new(), Vec::new());
        crate::maxsim::int8::quantize_rows(&centroids, dim, &mut values, &mut scales);
        centroids = dequantize(&values, &scales, dim);
        int8 = Some((values, scales));
    } else if config.f16_centroids {
        // Rounded before the residual statistics, so the quantiser fits the centroids
        // encoding and search will use.
        for c in centroids.iter_mut() {
            *c = half::f16::from_f32(*c).to_f32();
        }
    }
    // k-means returns at most one centroid per training point: with very few vectors
    // (the held-out share taken) that can be fewer than asked for.
    let k = centroids.len() / dim;
    let kmeans_seconds = started.elapsed().as_secs_f64();

    let heldout = sample_rows(store, heldout_idx);
    let codes = nearest_ip(&heldout, &centroids, dim);
    // How often the two-level assignment encoding will use agrees with brute force, on
    // the held-out vectors (kept in the build record).
    let agreement = (config.assign_probe > 0 && k >= TWO_LEVEL_MIN_K).then(|| {
        let two = TwoLevel::new(
            &centroids,
            dim,
            config.assign_probe,
            Metric::InnerProduct,
            config.seed,
        )
        .assign(&centroids, &heldout);
        two.iter().zip(&codes).filter(|(a, b)| a == b).count() as f64 / codes.len().max(1) as f64
    });
    let mut residual_values = Vec::with_capacity(heldout.len());
    let mut norm_sum = 0.0f64;
    for (v, &c) in heldout.chunks_exact(dim).zip(&codes) {
        let c = &centroids[c as usize * dim..(c as usize + 1) * dim];
        let mut sq = 0.0f32;
        for (a, b) in v.iter().zip(c) {
            residual_values.push(a - b);
            sq += (a - b) * (a - b);
        }
        norm_sum += f64::from(sq.sqrt());
    }
    let mean_residual_norm = (norm_sum / codes.len().max(1) as f64) as f32;
    let quantizer = ResidualQuantizer::fit(dim, config.nbits, residual_values);

    let mut file = FileWriter::create(
        dir,
        &format!("c{id}.plaid.centroids"),
        ComponentKind::Centroids,
    )?;
    if let Some((values, scales)) = &int8 {
        file.write(bytemuck::cast_slice(values))?;
        let scales: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        file.write(&scales)?;
    } else if config.f16_centroids {
        let half: Vec<half::f16> = centroids.iter().map(|&c| half::f16::from_f32(c)).collect();
        file.write(bytemuck::cast_slice(&half))?;
    } else {
        file.write(bytemuck::cast_slice(&centroids))?;
    }
    let centroids_entry = file.finish()?;
    Ok(CodecFiles {
        id,
        num_centroids: k,
        quantizer,
        centroids: centroids_entry,
        f16_centroids: config.f16_centroids && !config.int8_centroids,
        int8_centroids: config.int8_centroids,
        trained_on_vectors: n,
        mean_residual_norm: Some(mean_residual_norm),
        trained_generation: generation,
        build: serde_json::json!({
            "config": config,
            "kmeans_sample": train.len() / dim,
            "sample_capped": sample_size == cap,
            "heldout": heldout_len,
            "kmeans_seconds": kmeans_seconds,
            "assignment_agreement": agreement,
            "total_seconds": started.elapsed().as_secs_f64(),
        }),
    })
}

/// The centroid table: the mapped f32 file, or f16 values widened once at open.
enum Centroids {
    Mapped(MappedFile),
    Widened(Vec<f32>),
}

/// An opened codec: the centroids (memory-mapped, or read from f16), the quantiser and
/// its decoder.
pub struct PlaidCodec {
    id: u64,
    dim: usize,
    num_centroids: usize,
    centroids: Centroids,
    quantizer: ResidualQuantizer,
    decoder: ResidualDecoder,
    /// The two-level assignment structure, built on first encode, per probe.
    two_level: std::sync::Mutex<Option<(usize, std::sync::Arc<TwoLevel>)>>,
    /// The centroids quantised for the int8 score table, on first use.
    centroids_i8: std::sync::OnceLock<crate::maxsim::int8::RowsI8>,
    /// The residual weights as bytes, for scoring straight from codes.
    residual_bytes: crate::maxsim::codes::ResidualBytes,
}

impl PlaidCodec {
    pub fn open(dir: &Path, files: &CodecFiles, dim: usize, verify: bool) -> Result<Self> {
        let centroids = MappedFile::open(dir, &files.centroids, ComponentKind::Centroids, verify)?;
        let k = files.num_centroids;
        let q = &files.quantizer;
        let buckets = 1usize << q.nbits.min(8);
        if q.dim != dim
            || !matches!(q.nbits, 1 | 2 | 4)
            || q.cutoffs.len() + 1 != buckets
            || q.weights.len() != buckets
            || k == 0
        {
            return Err(IndexError::Manifest {
                path: dir.join(crate::segment::MANIFEST_NAME),
                reason: "PLAID quantizer does not match its dimension or nbits".into(),
            });
        }
        let (width, extra) = match (files.int8_centroids, files.f16_centroids) {
            (true, _) => (1, 4 * k),
            (false, true) => (2, 0),
            (false, false) => (4, 0),
        };
        if centroids.payload().len() != k * dim * width + extra {
            return Err(IndexError::corrupt(
                centroids.path(),
                format!(
                    "holds {} bytes, expected {} (centroids x dim x {width}{})",
                    centroids.payload().len(),
                    k * dim * width + extra,
                    if extra > 0 {
                        " + a scale per centroid"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let centroids_i8 = std::sync::OnceLock::new();
        let centroids = if files.int8_centroids {
            let (values, scales) = centroids.payload().split_at(k * dim);
            let values: Vec<i8> = bytemuck::cast_slice(values).to_vec();
            let scales: Vec<f32> = scales
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            if let Some(bad) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
                return Err(IndexError::corrupt(
                    centroids.path(),
                    format!("centroid {bad} has scale {}", scales[bad]),
                ));
            }
            let widened = dequantize(&values, &scales, dim);
            let _ = centroids_i8.set(crate::maxsim::int8::RowsI8::from_parts(values, scales, dim));
            Centroids::Widened(widened)
        } else if files.f16_centroids {
            let half: &[half::f16] =
                bytemuck::try_cast_slice(centroids.payload()).map_err(|e| {
                    IndexError::corrupt(centroids.path(), format!("misaligned array: {e}"))
                })?;
            Centroids::Widened(half.iter().map(|v| v.to_f32()).collect())
        } else {
            bytemuck::try_cast_slice::<u8, f32>(centroids.payload()).map_err(|e| {
                IndexError::corrupt(centroids.path(), format!("misaligned array: {e}"))
            })?;
            Centroids::Mapped(centroids)
        };
        Ok(PlaidCodec {
            id: files.id,
            dim,
            num_centroids: k,
            decoder: ResidualDecoder::new(q),
            residual_bytes: crate::maxsim::codes::ResidualBytes::new(q),
            quantizer: q.clone(),
            centroids,
            two_level: std::sync::Mutex::new(None),
            centroids_i8,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_centroids(&self) -> usize {
        self.num_centroids
    }

    pub fn quantizer(&self) -> &ResidualQuantizer {
        &self.quantizer
    }

    pub fn centroids(&self) -> &[f32] {
        match &self.centroids {
            Centroids::Mapped(f) => bytemuck::cast_slice(f.payload()),
            Centroids::Widened(v) => v,
        }
    }

    pub fn centroid(&self, c: usize) -> &[f32] {
        &self.centroids()[c * self.dim..(c + 1) * self.dim]
    }

    /// Query-token x centroid scores, centroid-major (`out[c * nq + i] ≈ ⟨q_i, c⟩`), as
    /// `table` asks, into `out` (resized): f32 products, or from centroids and query quantised to int8
    /// (`maxsim::int8::score_table`, the same bits on every CPU; fast with AVX-512
    /// VNNI). `Auto` takes int8 where VNNI runs.
    pub fn centroid_scores_into(
        &self,
        query: MultiVectorRef<'_, f32>,
        table: crate::plaid::ScoreTable,
        out: &mut Vec<f32>,
    ) {
        use crate::maxsim::int8;
        let use_int8 = self.int8_table(table);
        out.clear();
        out.resize(self.num_centroids * query.len(), 0.0);
        let kernel = crate::maxsim::Kernel::detect();
        if !use_int8 {
            kernel.dot_matrix(self.centroids(), query.as_slice(), self.dim, out);
            return;
        }
        let rows = self
            .centroids_i8
            .get_or_init(|| int8::RowsI8::new(self.centroids(), self.dim));
        let simd = kernel != crate::maxsim::Kernel::Scalar;
        int8::score_table(rows, &int8::QueryI8::new(query), out, simd);
    }

    /// Whether `table` gives the int8 centroid table on this CPU.
    pub fn int8_table(&self, table: crate::plaid::ScoreTable) -> bool {
        match table {
            crate::plaid::ScoreTable::F32 => false,
            crate::plaid::ScoreTable::Int8 => true,
            crate::plaid::ScoreTable::Auto => {
                crate::maxsim::int8::vnni_available() && self.dim.is_multiple_of(4)
            }
        }
    }

    /// The residual weights as bytes (`maxsim::codes`).
    pub fn residual_bytes(&self) -> &crate::maxsim::codes::ResidualBytes {
        &self.residual_bytes
    }

    /// `query` prepared for scoring straight from codes and residuals
    /// (`maxsim::codes`): with `table`, the int8 centroid table already computed for it
    /// (`centroid_scores_into` with an int8 `ScoreTable`), else computed here.
    pub fn codes_query<'t>(
        &self,
        query: MultiVectorRef<'_, f32>,
        table: Option<&'t [f32]>,
    ) -> crate::maxsim::codes::CodesQuery<'t> {
        use crate::maxsim::int8;
        let q8 = int8::QueryI8::new(query);
        let table = match table {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => {
                let mut out = Vec::new();
                self.centroid_scores_into(query, crate::plaid::ScoreTable::Int8, &mut out);
                std::borrow::Cow::Owned(out)
            }
        };
        crate::maxsim::codes::CodesQuery::new(q8, table)
    }

    fn two_level(&self, probe: usize) -> std::sync::Arc<TwoLevel> {
        let mut slot = self.two_level.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((p, t)) if *p == probe => t.clone(),
            _ => {
                let t = std::sync::Arc::new(TwoLevel::new(
                    self.centroids(),
                    self.dim,
                    probe,
                    Metric::InnerProduct,
                    // Seeded by the codec: every segment is encoded through the same cells.
                    self.id ^ 0x5eed,
                ));
                *slot = Some((probe, t.clone()));
                t
            }
        }
    }

    /// Decompress one vector (centroid + residual, normalised) into `out`.
    pub fn decode(&self, code: u32, packed: &[u8], out: &mut [f32]) {
        self.decoder
            .decode(self.centroid(code as usize), packed, out);
    }

    /// Encode row-major f32 vectors: each one's nearest centroid (inner product), its
    /// packed residual appended to `packed`, and each residual's L2 norm (before
    /// quantisation: how far the vector is from the codec's centroids).
    /// `assign_probe` as [`PlaidConfig::assign_probe`] (0: exact assignment).
    pub fn encode(
        &self,
        rows: &[f32],
        packed: &mut Vec<u8>,
        assign_probe: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let dim = self.dim;
        let codes = match assign_probe > 0 && self.num_centroids >= TWO_LEVEL_MIN_K {
            true => self.two_level(assign_probe).assign(self.centroids(), rows),
            false => nearest_ip(rows, self.centroids(), dim),
        };
        let mut residual = vec![0.0f32; dim];
        let mut buf = vec![0u8; self.quantizer.packed_len()];
        let mut norms = Vec::with_capacity(codes.len());
        for (v, &c) in rows.chunks_exact(dim).zip(&codes) {
            let c = self.centroid(c as usize);
            let mut sq = 0.0f32;
            for ((r, a), b) in residual.iter_mut().zip(v).zip(c) {
                *r = a - b;
                sq += *r * *r;
            }
            norms.push(sq.sqrt());
            self.quantizer.pack(&residual, &mut buf);
            packed.extend_from_slice(&buf);
        }
        (codes, norms)
    }
}
