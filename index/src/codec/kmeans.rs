//! Seeded Lloyd k-means on a sample, with BLAS-class distance computation.
//!
//! Written here rather than taken from a crate: the Rust k-means crates either pull in
//! ndarray/linfa (a second linear-algebra stack beside candle's `gemm`) or need nightly
//! SIMD; the whole algorithm is ~60 lines around `gemm`, which does the heavy part
//! (`||x - c||² = ||x||² - 2⟨x, c⟩ + ||c||²`, the cross term as one matrix product per
//! block of points). Empty clusters are re-seeded from random sample points.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::linalg::{argmax, dot_matrix};

/// Points per block in the assignment step (block x k scores live at once per thread).
const BLOCK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMeansConfig {
    pub k: usize,
    pub iterations: usize,
    pub seed: u64,
}

/// Train `k` centroids (row-major `k x dim`) on the row-major `points`.
pub fn kmeans(points: &[f32], dim: usize, config: KMeansConfig) -> Vec<f32> {
    let n = points.len() / dim;
    let k = config.k.min(n).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut centroids = Vec::with_capacity(k * dim);
    for i in sample(&mut rng, n, k) {
        centroids.extend_from_slice(&points[i * dim..(i + 1) * dim]);
    }
    for _ in 0..config.iterations {
        let assignment = nearest_l2(points, &centroids, dim);
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (p, &c) in points.chunks_exact(dim).zip(&assignment) {
            counts[c as usize] += 1;
            for (s, v) in sums[c as usize * dim..(c as usize + 1) * dim]
                .iter_mut()
                .zip(p)
            {
                *s += f64::from(*v);
            }
        }
        for c in 0..k {
            let row = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                let i = rng.gen_range(0..n);
                row.copy_from_slice(&points[i * dim..(i + 1) * dim]);
            } else {
                for (r, s) in row.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *r = (*s / counts[c] as f64) as f32;
                }
            }
        }
    }
    centroids
}

/// Nearest centroid by Euclidean distance, for every point (parallel over blocks).
pub fn nearest_l2(points: &[f32], centroids: &[f32], dim: usize) -> Vec<u32> {
    // argmin ||x-c||² = argmax ⟨x,c⟩ - ||c||²/2
    let half_norms: Vec<f32> = centroids
        .chunks_exact(dim)
        .map(|c| 0.5 * c.iter().map(|v| v * v).sum::<f32>())
        .collect();
    best_scoring(points, centroids, dim, Some(&half_norms))
}

/// Nearest centroid by inner product (ColBERTv2's assignment, with unit centroids).
pub fn nearest_ip(points: &[f32], centroids: &[f32], dim: usize) -> Vec<u32> {
    best_scoring(points, centroids, dim, None)
}

/// For every point, the centroid maximising `⟨x, c⟩ - penalty[c]`; one `gemm` per block
/// of points, blocks in parallel.
fn best_scoring(
    points: &[f32],
    centroids: &[f32],
    dim: usize,
    penalty: Option<&[f32]>,
) -> Vec<u32> {
    let k = centroids.len() / dim;
    points
        .par_chunks(BLOCK * dim)
        .flat_map_iter(|block| {
            let rows = block.len() / dim;
            let mut scores = vec![0.0f32; rows * k];
            dot_matrix(block, centroids, dim, &mut scores);
            scores
                .chunks_exact_mut(k)
                .map(|row| {
                    if let Some(p) = penalty {
                        row.iter_mut().zip(p).for_each(|(s, h)| *s -= h);
                    }
                    argmax(row).0 as u32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
