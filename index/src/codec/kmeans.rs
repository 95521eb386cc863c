//! Seeded Lloyd k-means on a sample, with BLAS-class distance computation.
//!
//! Written here rather than taken from a crate: the Rust k-means crates either pull in
//! ndarray/linfa (a second linear-algebra stack beside candle's `gemm`) or need nightly
//! SIMD; the whole algorithm is ~60 lines around `gemm`, which does the heavy part
//! (`||x - c||² = ||x||² - 2⟨x, c⟩ + ||c||²`, the cross term as one matrix product per
//! block of points). Empty clusters are re-seeded from random sample points.
//!
//! With many centroids the assignment is two-level ([`TwoLevel`]): the centroids are
//! themselves clustered into ~sqrt(k) coarse cells, each point is routed to its best
//! coarse cell, and scored by `gemm` only against the centroids of that cell's nearest
//! `probe` cells (the "approximate k-means" of Philbin et al. 2007). With the defaults
//! that is 1/16 of the products of the exact assignment; the share of points it assigns
//! exactly as brute force would is measured at every build (`assignment_agreement` in the
//! codec's build record) and by `tests/plaid.rs`.

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
    /// Coarse cells each point's assignment searches ([`TwoLevel`]); 0 = exact
    /// assignment against every centroid.
    pub probe: usize,
}

/// Below this many centroids the exact assignment is cheap enough.
pub const TWO_LEVEL_MIN_K: usize = 2048;

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
        let assignment = if config.probe > 0 && k >= TWO_LEVEL_MIN_K {
            TwoLevel::new(&centroids, dim, config.probe, Metric::L2, config.seed)
                .assign(&centroids, points)
        } else {
            nearest_l2(points, &centroids, dim)
        };
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

/// What "nearest" means for an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Smallest Euclidean distance (k-means).
    L2,
    /// Largest inner product (ColBERTv2's assignment of vectors to unit centroids).
    InnerProduct,
}

/// A two-level assignment structure over a set of centroids: coarse cells (k-means of
/// the centroids), and per cell the centroids of its `probe` nearest cells.
pub struct TwoLevel {
    dim: usize,
    metric: Metric,
    coarse: Vec<f32>,
    /// Per coarse cell: the centroid ids a point routed there is scored against.
    reach: Vec<Vec<u32>>,
    penalty: Vec<f32>,
}

impl TwoLevel {
    pub fn new(centroids: &[f32], dim: usize, probe: usize, metric: Metric, seed: u64) -> Self {
        let k = centroids.len() / dim;
        let kc = ((k as f64).sqrt().round() as usize).clamp(1, k.max(1));
        let mut coarse = kmeans(
            centroids,
            dim,
            KMeansConfig {
                k: kc,
                iterations: 10,
                seed: seed ^ 0x9e37_79b9,
                probe: 0,
            },
        );
        if metric == Metric::InnerProduct {
            super::linalg::normalize_rows(&mut coarse, dim);
        }
        let (coarse, members) = balance_cells(centroids, coarse, dim, metric, seed);
        let kc = coarse.len() / dim;
        // Cells near each cell, by the same metric between coarse centroids.
        let mut cell_scores = vec![0.0f32; kc * kc];
        dot_matrix(&coarse, &coarse, dim, &mut cell_scores);
        let probe = probe.clamp(1, kc);
        let half: Vec<f32> = coarse_penalty(&coarse, dim, Metric::L2).unwrap_or_default();
        let reach = (0..kc)
            .map(|a| {
                let mut order: Vec<u32> = (0..kc as u32).collect();
                let score = |b: u32| cell_scores[a * kc + b as usize] - half[b as usize];
                order.sort_by(|&x, &y| score(y).total_cmp(&score(x)));
                let mut ids: Vec<u32> = order[..probe]
                    .iter()
                    .flat_map(|&b| members[b as usize].iter().copied())
                    .collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        let penalty = match metric {
            Metric::L2 => centroids
                .chunks_exact(dim)
                .map(|c| 0.5 * c.iter().map(|v| v * v).sum::<f32>())
                .collect(),
            Metric::InnerProduct => vec![0.0; k],
        };
        TwoLevel {
            dim,
            metric,
            coarse,
            reach,
            penalty,
        }
    }

    /// How many centroids a point routed to each coarse cell is scored against.
    pub fn reach_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.reach.iter().map(Vec::len)
    }

    /// Each point's centroid: its best coarse cell, then the best centroid that cell
    /// reaches (one `gemm` per cell's points, cells in parallel).
    /// `centroids` are the ones the structure was built on.
    pub fn assign(&self, centroids: &[f32], points: &[f32]) -> Vec<u32> {
        assert_eq!(
            centroids.len() / self.dim,
            self.penalty.len(),
            "built on other centroids"
        );
        let dim = self.dim;
        let cells = best_scoring(
            points,
            &self.coarse,
            dim,
            coarse_penalty(&self.coarse, dim, self.metric).as_deref(),
        );
        let mut by_cell: Vec<Vec<u32>> = vec![Vec::new(); self.reach.len()];
        for (p, &c) in cells.iter().enumerate() {
            by_cell[c as usize].push(p as u32);
        }
        let mut out = vec![0u32; cells.len()];
        let pieces: Vec<(Vec<u32>, Vec<u32>)> = by_cell
            .into_par_iter()
            .enumerate()
            .filter(|(_, pts)| !pts.is_empty())
            .flat_map_iter(|(cell, pts)| {
                let reach = &self.reach[cell];
                let sub = gather_rows(centroids, reach, dim);
                let pen: Vec<f32> = reach.iter().map(|&c| self.penalty[c as usize]).collect();
                pts.chunks(BLOCK)
                    .map(|chunk| {
                        let rows = gather_rows(points, chunk, dim);
                        let best: Vec<u32> = best_scoring_serial(&rows, &sub, dim, Some(&pen))
                            .into_iter()
                            .map(|i| reach[i as usize])
                            .collect();
                        (chunk.to_vec(), best)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (pts, best) in pieces {
            for (p, b) in pts.into_iter().zip(best) {
                out[p as usize] = b;
            }
        }
        out
    }
}

/// Rows `ids` of the row-major `rows` (`dim` wide), copied in order.
fn gather_rows(rows: &[f32], ids: &[u32], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &i in ids {
        out.extend_from_slice(&rows[i as usize * dim..(i as usize + 1) * dim]);
    }
    out
}

/// Which coarse cell owns each centroid, as per-cell member lists.
fn cell_members(centroids: &[f32], coarse: &[f32], dim: usize, metric: Metric) -> Vec<Vec<u32>> {
    let owner = best_scoring(
        centroids,
        coarse,
        dim,
        coarse_penalty(coarse, dim, metric).as_deref(),
    );
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); coarse.len() / dim];
    for (c, &o) in owner.iter().enumerate() {
        members[o as usize].push(c as u32);
    }
    members
}

/// Split every coarse cell that owns more than [`CELL_CAP`] times the mean share of
/// centroids into cells of about the mean, by k-means of its members' directions (two
/// rounds at most); returns the coarse centroids and their members. A split cell's
/// members go to the part k-means gave them, not to their best cell over all cells
/// again, and each part's coarse centroid is its members' mean. Cells within the cap are
/// kept as they are, so a balanced clustering is unchanged.
///
/// Without this the two-level assignment can degenerate into an exact one. Seen on the
/// synthetic collections of `tessera-bench gen`: the k-means centroids of noisy points
/// have small norms, and under L2 a centroid near the origin is nearest to the coarse
/// centroid with the smallest norm, whatever its direction. One coarse cell took almost
/// all of them, a cell's reach held 16,210 of 16,384 centroids, and k-means ran 7.3x
/// slower than with the split (2 M x 384-d: 123.1 s against 16.9 s). Splitting by
/// position does not help (those centroids crowd there too); by direction it does.
fn balance_cells(
    centroids: &[f32],
    coarse: Vec<f32>,
    dim: usize,
    metric: Metric,
    seed: u64,
) -> (Vec<f32>, Vec<Vec<u32>>) {
    let k = centroids.len() / dim;
    let mean = k.div_ceil((coarse.len() / dim).max(1)).max(1);
    let mut members = cell_members(centroids, &coarse, dim, metric);
    let mut coarse = coarse;
    for round in 0..2 {
        if members.iter().all(|m| m.len() <= CELL_CAP * mean) {
            break;
        }
        let mut next_coarse: Vec<f32> = Vec::with_capacity(coarse.len());
        let mut next_members: Vec<Vec<u32>> = Vec::with_capacity(members.len());
        for (cell, m) in members.into_iter().enumerate() {
            if m.len() <= CELL_CAP * mean {
                next_coarse.extend_from_slice(&coarse[cell * dim..(cell + 1) * dim]);
                next_members.push(m);
                continue;
            }
            // By direction: the crowded centroids differ in direction, not position.
            let mut unit = gather_rows(centroids, &m, dim);
            super::linalg::normalize_rows(&mut unit, dim);
            let mut directions = kmeans(
                &unit,
                dim,
                KMeansConfig {
                    k: m.len().div_ceil(mean),
                    iterations: 10,
                    seed: seed ^ (0x5bd1_e995 + (round * 1_000_003 + cell) as u64),
                    probe: 0,
                },
            );
            super::linalg::normalize_rows(&mut directions, dim);
            let owner = nearest_ip(&unit, &directions, dim);
            let n_parts = directions.len() / dim;
            let mut split: Vec<Vec<u32>> = vec![Vec::new(); n_parts];
            for (&c, &o) in m.iter().zip(&owner) {
                split[o as usize].push(c);
            }
            // Each part's coarse centroid is its members' mean, as k-means' would be.
            let mut parts = vec![0.0f32; n_parts * dim];
            for (p, ids) in split.iter().enumerate() {
                let row = &mut parts[p * dim..(p + 1) * dim];
                for &c in ids {
                    let v = &centroids[c as usize * dim..(c as usize + 1) * dim];
                    row.iter_mut()
                        .zip(v)
                        .for_each(|(r, x)| *r += x / ids.len() as f32);
                }
            }
            if metric == Metric::InnerProduct {
                super::linalg::normalize_rows(&mut parts, dim);
            }
            next_coarse.extend_from_slice(&parts);
            next_members.extend(split);
        }
        coarse = next_coarse;
        members = next_members;
    }
    (coarse, members)
}

/// A coarse cell owning more than this many times the mean share of centroids is split.
/// SciFact's largest cell in k-means holds 5.3x the mean (684 of 16,384 centroids in 128
/// cells), so its codec is bit for bit what it was before the split existed.
const CELL_CAP: usize = 8;

fn coarse_penalty(coarse: &[f32], dim: usize, metric: Metric) -> Option<Vec<f32>> {
    (metric == Metric::L2).then(|| {
        coarse
            .chunks_exact(dim)
            .map(|c| 0.5 * c.iter().map(|v| v * v).sum::<f32>())
            .collect()
    })
}

/// [`best_scoring`] on the calling thread (the two-level assignment parallelises over cells).
fn best_scoring_serial(
    points: &[f32],
    centroids: &[f32],
    dim: usize,
    penalty: Option<&[f32]>,
) -> Vec<u32> {
    let k = centroids.len() / dim;
    let rows = points.len() / dim;
    let mut scores = vec![0.0f32; rows * k];
    dot_matrix(points, centroids, dim, &mut scores);
    scores
        .chunks_exact_mut(k)
        .map(|row| {
            if let Some(p) = penalty {
                row.iter_mut().zip(p).for_each(|(s, h)| *s -= h);
            }
            argmax(row).0 as u32
        })
        .collect()
}
