//! Fixed-dimensional encodings (Dhulipala et al. 2024, MUVERA).
//!
//! Per repetition: `k_sim` Gaussian hyperplanes split the space into `2^k_sim`
//! partitions (a vector's partition is its sign pattern, bit b = hyperplane b); every
//! vector is projected to `d_proj` dims by a random ±1/√d_proj matrix (no projection when
//! `d_proj == dim`). A query's block for a partition is the sum of its projected vectors
//! there; a document's is their average, and an empty partition takes the projected
//! vector whose sign pattern is nearest in Hamming distance. `r_reps` repetitions are
//! concatenated; an optional Count-Sketch maps the result to `d_final` dims. Then
//! `FDE(q) · FDE(d)` approximates `Σ_i max_j ⟨q_i, d_j⟩`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::codec::linalg::dot_matrix;

/// FDE parameters; the paper's defaults are `k_sim 5, d_proj 32, r_reps 20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdeConfig {
    pub k_sim: u32,
    pub d_proj: usize,
    pub r_reps: usize,
    /// Final Count-Sketch dimension (`None` = no final projection).
    pub d_final: Option<usize>,
    /// Fill a document's empty partitions from the nearest vector (paper: yes).
    pub fill_empty: bool,
    /// Same seed for documents and queries (recorded in the manifest).
    pub seed: u64,
}

impl Default for FdeConfig {
    fn default() -> Self {
        FdeConfig {
            k_sim: 5,
            d_proj: 32,
            r_reps: 20,
            d_final: None,
            fill_empty: true,
            seed: 42,
        }
    }
}

/// The random matrices of one configuration, ready to encode.
#[derive(Debug, Clone)]
pub struct FdeEncoder {
    dim: usize,
    config: FdeConfig,
    /// `(r_reps * k_sim) x dim`, row-major.
    hyperplanes: Vec<f32>,
    /// `(r_reps * d_proj) x dim`, or `None` for the identity (`d_proj == dim`).
    projections: Option<Vec<f32>>,
    /// Count-Sketch: target index and sign of every pre-final coordinate.
    sketch: Option<(Vec<u32>, Vec<f32>)>,
}

impl FdeEncoder {
    pub fn new(dim: usize, config: FdeConfig) -> Self {
        assert!(
            dim > 0 && config.r_reps > 0 && config.d_proj > 0 && (1..=16).contains(&config.k_sim)
        );
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let hyperplanes: Vec<f32> = (0..config.r_reps * config.k_sim as usize * dim)
            .map(|_| standard_normal(&mut rng))
            .collect();
        let projections = (config.d_proj != dim).then(|| {
            let scale = 1.0 / (config.d_proj as f32).sqrt();
            (0..config.r_reps * config.d_proj * dim)
                .map(|_| if rng.gen::<bool>() { scale } else { -scale })
                .collect()
        });
        let mut encoder = FdeEncoder {
            dim,
            config,
            hyperplanes,
            projections,
            sketch: None,
        };
        if let Some(d_final) = config.d_final {
            let n = encoder.unsketched_dim();
            let idx = (0..n).map(|_| rng.gen_range(0..d_final as u32)).collect();
            let sign = (0..n)
                .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
                .collect();
            encoder.sketch = Some((idx, sign));
        }
        encoder
    }

    pub fn config(&self) -> &FdeConfig {
        &self.config
    }

    fn proj_dim(&self) -> usize {
        if self.projections.is_some() {
            self.config.d_proj
        } else {
            self.dim
        }
    }

    fn partitions(&self) -> usize {
        1 << self.config.k_sim
    }

    fn unsketched_dim(&self) -> usize {
        self.config.r_reps * self.partitions() * self.proj_dim()
    }

    /// Length of every FDE this encoder produces.
    pub fn output_dim(&self) -> usize {
        self.config.d_final.unwrap_or_else(|| self.unsketched_dim())
    }

    /// Partition (sign pattern) of every vector in every repetition: `n x r_reps`.
    pub fn partition_codes(&self, vectors: &[f32]) -> Vec<u32> {
        let n = vectors.len() / self.dim;
        let k = self.config.k_sim as usize;
        let mut signs = vec![0.0f32; n * self.config.r_reps * k];
        dot_matrix(vectors, &self.hyperplanes, self.dim, &mut signs);
        signs
            .chunks_exact(k)
            .map(|bits| {
                bits.iter()
                    .enumerate()
                    .fold(0u32, |c, (b, &s)| c | (u32::from(s > 0.0) << b))
            })
            .collect()
    }

    fn project(&self, vectors: &[f32]) -> Vec<f32> {
        match &self.projections {
            Some(p) => {
                let n = vectors.len() / self.dim;
                let mut out = vec![0.0f32; n * self.config.r_reps * self.config.d_proj];
                dot_matrix(vectors, p, self.dim, &mut out);
                out
            }
            None => vectors.to_vec(),
        }
    }

    /// The query FDE: per partition, the sum of the query's projected vectors.
    pub fn encode_query(&self, vectors: &[f32]) -> Vec<f32> {
        self.encode(vectors, false)
    }

    /// The document FDE: per partition, the mean; empty partitions filled (if enabled).
    pub fn encode_document(&self, vectors: &[f32]) -> Vec<f32> {
        self.encode(vectors, true)
    }

    fn encode(&self, vectors: &[f32], document: bool) -> Vec<f32> {
        assert_eq!(vectors.len() % self.dim, 0);
        let n = vectors.len() / self.dim;
        let (reps, parts, pd) = (self.config.r_reps, self.partitions(), self.proj_dim());
        let codes = self.partition_codes(vectors);
        let projected = self.project(vectors);
        // Row v of `projected` holds all repetitions: rep r at [r * pd, (r + 1) * pd)
        // (identity: the same vector for every repetition).
        let row = |v: usize, r: usize| -> &[f32] {
            if self.projections.is_some() {
                &projected[(v * reps + r) * pd..(v * reps + r + 1) * pd]
            } else {
                &projected[v * pd..(v + 1) * pd]
            }
        };
        let mut fde = vec![0.0f32; self.unsketched_dim()];
        let mut counts = vec![0u32; parts];
        for r in 0..reps {
            let block = &mut fde[r * parts * pd..(r + 1) * parts * pd];
            counts.fill(0);
            for v in 0..n {
                let p = codes[v * reps + r] as usize;
                counts[p] += 1;
                for (o, x) in block[p * pd..(p + 1) * pd].iter_mut().zip(row(v, r)) {
                    *o += x;
                }
            }
            if !document {
                continue;
            }
            for p in 0..parts {
                let out = &mut block[p * pd..(p + 1) * pd];
                if counts[p] > 0 {
                    let c = counts[p] as f32;
                    out.iter_mut().for_each(|x| *x /= c);
                } else if self.config.fill_empty && n > 0 {
                    let nearest = (0..n)
                        .min_by_key(|&v| (codes[v * reps + r] ^ p as u32).count_ones())
                        .expect("n > 0");
                    out.copy_from_slice(row(nearest, r));
                }
            }
        }
        match &self.sketch {
            None => fde,
            Some((idx, sign)) => {
                let mut out = vec![0.0f32; self.output_dim()];
                for ((x, &i), s) in fde.iter().zip(idx).zip(sign) {
                    out[i as usize] += s * x;
                }
                out
            }
        }
    }
}

/// One standard normal sample (Box–Muller); the only Gaussian this crate needs, so no
/// `rand_distr` (whose current release needs a newer `rand` than ours).
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
