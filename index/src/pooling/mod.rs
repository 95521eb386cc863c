//! Reduce a document's token vectors before storing them.
//!
//! - [`pool_hierarchical`] (Clavié et al. 2024): Ward-linkage agglomerative clustering of
//!   the vectors (dissimilarity 1 - cosine, as PyLate does) into
//!   `max(1, n / pool_factor)` clusters; each cluster becomes its mean, re-normalised.
//!   Clustering comes from `kodama` (fastcluster's algorithms).
//! - [`pool_by_groups`] (ColBERTer whole-word reduction, Hofstätter et al. 2022): mean of
//!   the vectors that share a group id (the encoder's word ids), re-normalised.
//!
//! Both keep the first `protected` vectors (CLS / marker) unpooled and preserve the
//! order in which clusters first appear.

use kodama::{linkage, Method};

/// Row-major `n x dim` in, row-major `m x dim` out with `m = max(1, n / pool_factor)`
/// pooled rows after the `protected` leading rows, which pass through unchanged.
pub fn pool_hierarchical(
    vectors: &[f32],
    dim: usize,
    pool_factor: usize,
    protected: usize,
) -> Vec<f32> {
    assert!(dim > 0 && vectors.len().is_multiple_of(dim));
    let n = vectors.len() / dim;
    let protected = protected.min(n);
    let rest = &vectors[protected * dim..];
    let m = rest.len() / dim;
    if pool_factor <= 1 || m <= 1 {
        return vectors.to_vec();
    }
    let clusters = (m / pool_factor).max(1);
    let labels = ward_labels(rest, dim, clusters);
    let mut out = vectors[..protected * dim].to_vec();
    out.extend(mean_by_label(rest, dim, &labels));
    out
}

/// Mean-pool rows that share a group id (e.g. sub-words of one word). `groups[i]` is
/// row `i`'s group; `None` rows (special tokens) stay on their own.
pub fn pool_by_groups(vectors: &[f32], dim: usize, groups: &[Option<u32>]) -> Vec<f32> {
    assert!(dim > 0 && vectors.len() == groups.len() * dim);
    mean_by_label(vectors, dim, &group_labels(groups))
}

/// Which output row of [`pool_hierarchical`] each input row went into (for explaining a
/// pooled vector by the tokens it pooled).
pub fn hierarchical_assignment(
    vectors: &[f32],
    dim: usize,
    pool_factor: usize,
    protected: usize,
) -> Vec<usize> {
    assert!(dim > 0 && vectors.len().is_multiple_of(dim));
    let n = vectors.len() / dim;
    let protected = protected.min(n);
    let m = n - protected;
    if pool_factor <= 1 || m <= 1 {
        return (0..n).collect();
    }
    let labels = ward_labels(&vectors[protected * dim..], dim, (m / pool_factor).max(1));
    let mut out: Vec<usize> = (0..protected).collect();
    out.extend(first_appearance(&labels).into_iter().map(|r| r + protected));
    out
}

/// Which output row of [`pool_by_groups`] each input row went into.
pub fn group_assignment(groups: &[Option<u32>]) -> Vec<usize> {
    first_appearance(&group_labels(groups))
}

fn group_labels(groups: &[Option<u32>]) -> Vec<usize> {
    // Label = index of the first row of the same group; ungrouped rows label themselves.
    let mut first: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| match g {
            Some(g) => *first.entry(*g).or_insert(i),
            None => i,
        })
        .collect()
}

/// Each label's rank in order of first appearance: the output row of `mean_by_label`.
fn first_appearance(labels: &[usize]) -> Vec<usize> {
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = slot.len();
            *slot.entry(l).or_insert(next)
        })
        .collect()
}

/// Cluster label per row: Ward linkage on `1 - cos`, cut to `clusters` clusters.
fn ward_labels(rows: &[f32], dim: usize, clusters: usize) -> Vec<usize> {
    let n = rows.len() / dim;
    let norms: Vec<f32> = rows
        .chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12))
        .collect();
    // Condensed upper triangle, row-major, as kodama (and scipy) expect.
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        let a = &rows[i * dim..(i + 1) * dim];
        for j in i + 1..n {
            let b = &rows[j * dim..(j + 1) * dim];
            let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norms[i] * norms[j]);
            condensed.push((1.0 - cos).max(0.0));
        }
    }
    let dendrogram = linkage(&mut condensed, n, Method::Ward);
    // Apply the first n - clusters merges; cluster labels n.. name merged clusters.
    let mut parent: Vec<usize> = (0..2 * n).collect();
    for (s, step) in dendrogram.steps().iter().take(n - clusters).enumerate() {
        parent[step.cluster1] = n + s;
        parent[step.cluster2] = n + s;
    }
    (0..n)
        .map(|mut i| {
            while parent[i] != i {
                i = parent[i];
            }
            i
        })
        .collect()
}

/// Mean of the rows of each label, re-normalised, in order of each label's first row.
fn mean_by_label(rows: &[f32], dim: usize, labels: &[usize]) -> Vec<f32> {
    let mut order: Vec<usize> = Vec::new();
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut sums: Vec<f32> = Vec::new();
    for (row, &label) in rows.chunks_exact(dim).zip(labels) {
        let k = *slot.entry(label).or_insert_with(|| {
            order.push(label);
            sums.extend(std::iter::repeat_n(0.0, dim));
            order.len() - 1
        });
        for (s, v) in sums[k * dim..(k + 1) * dim].iter_mut().zip(row) {
            *s += v;
        }
    }
    for row in sums.chunks_exact_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The assignment names, for each input row, the output row whose mean it is part of.
    #[test]
    fn assignments_reproduce_the_pooled_rows() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (n, dim) = (23, 8);
        // Unit rows, as the encoder gives (protected rows pass through as they are).
        let v: Vec<f32> = (0..n)
            .flat_map(|_| {
                unit(
                    &(0..dim)
                        .map(|_| rng.gen_range(-1.0..1.0))
                        .collect::<Vec<f32>>(),
                )
            })
            .collect();
        let check = |pooled: Vec<f32>, assign: Vec<usize>| {
            let rows = pooled.len() / dim;
            assert_eq!(assign.iter().max().unwrap() + 1, rows);
            let mut sums = vec![0f32; rows * dim];
            for (r, &a) in assign.iter().enumerate() {
                for j in 0..dim {
                    sums[a * dim + j] += v[r * dim + j];
                }
            }
            for (s, p) in sums.chunks(dim).zip(pooled.chunks(dim)) {
                let s = unit(s);
                for (a, b) in s.iter().zip(p) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
        };
        check(
            pool_hierarchical(&v, dim, 3, 1),
            hierarchical_assignment(&v, dim, 3, 1),
        );
        let groups: Vec<Option<u32>> = (0..n)
            .map(|i| if i == 0 { None } else { Some(i as u32 / 3) })
            .collect();
        check(pool_by_groups(&v, dim, &groups), group_assignment(&groups));
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn ward_groups_the_obvious_clusters() {
        // Three tight groups of two nearly identical directions each.
        let mut rows = Vec::new();
        for base in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
            rows.extend(unit(&[base[0] + 0.01, base[1], base[2]]));
            rows.extend(unit(&[base[0], base[1] + 0.01, base[2] + 0.01]));
        }
        let out = pool_hierarchical(&rows, 3, 2, 0);
        assert_eq!(out.len(), 9, "6 vectors / factor 2 = 3 clusters");
        for (row, axis) in out.chunks_exact(3).zip(0..3) {
            assert!(row[axis] > 0.99, "cluster {axis} mean {row:?}");
        }
    }

    #[test]
    fn protected_rows_pass_through_and_counts_follow_the_factor() {
        let rows: Vec<f32> = (0..11 * 4).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        for factor in 1..=4 {
            let out = pool_hierarchical(&rows, 4, factor, 1);
            let expected = if factor == 1 {
                11
            } else {
                1 + (10 / factor).max(1)
            };
            assert_eq!(out.len() / 4, expected, "factor {factor}");
            assert_eq!(&out[..4], &rows[..4], "protected CLS row unchanged");
        }
        assert_eq!(
            pool_hierarchical(&rows[..4], 4, 3, 0).len(),
            4,
            "one vector stays one"
        );
    }

    #[test]
    fn whole_word_pooling_averages_subwords() {
        let rows = [
            1.0, 0.0, /* word 0 */ 0.0, 1.0, /* word 0 */ 1.0, 0.0,
            /* special */ 0.0, 1.0, /* word 1 */
        ];
        let out = pool_by_groups(&rows, 2, &[Some(0), Some(0), None, Some(1)]);
        assert_eq!(out.len(), 6);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((out[0] - h).abs() < 1e-6 && (out[1] - h).abs() < 1e-6);
        assert_eq!(&out[2..], &[1.0, 0.0, 0.0, 1.0]);
    }
}
