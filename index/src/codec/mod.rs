//! Compression of token vectors: k-means centroids ([`kmeans`]) and ColBERTv2 residual
//! quantisation ([`residual`]). [`linalg`] holds the `gemm`-backed products they share
//! with PLAID's search.

pub mod kmeans;
pub mod linalg;
pub mod residual;

pub use kmeans::{kmeans, nearest_ip, nearest_l2, KMeansConfig, Metric, TwoLevel, TWO_LEVEL_MIN_K};
pub use residual::{ResidualDecoder, ResidualQuantizer};

/// ColBERTv2's default number of centroids: `2^floor(log2(16 * sqrt(n_vectors)))`.
pub fn default_num_centroids(n_vectors: usize) -> usize {
    let x = 16.0 * (n_vectors.max(1) as f64).sqrt();
    1usize << (x.log2().floor() as u32)
}
