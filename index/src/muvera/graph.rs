//! Maximum-inner-product search through `hnsw_rs`.
//!
//! `hnsw_rs`'s `DistDot` assumes unit vectors, and FDEs are not unit vectors (their
//! norms carry the score), so the graph stores the standard MIPS-to-L2 lift
//! (Bachrach et al. 2014): a document `x` becomes `[x, √(M² − ‖x‖²)]` with `M` the
//! largest document norm, a query `q` becomes `[q, 0]`; then
//! `‖q' − x'‖² = ‖q‖² + M² − 2⟨q, x⟩`, so the L2 nearest neighbours are the inner-product
//! best. Distances use `DistL2` (SIMD through `simdeez`).

use std::path::Path;

use hnsw_rs::prelude::{AnnT, DistL2, Hnsw, HnswIo, ReloadOptions};
use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};

/// Graph construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphConfig {
    /// Neighbours per node (hnsw_rs caps it at 256).
    pub max_connections: usize,
    pub ef_construction: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            max_connections: 32,
            ef_construction: 200,
        }
    }
}

/// An HNSW over lifted vectors, answering inner-product queries.
pub struct MipsGraph {
    hnsw: Hnsw<'static, f32, DistL2>,
    dim: usize,
    max_norm: f32,
}

impl MipsGraph {
    /// Build over the row-major `vectors` (`n x dim`); ids are row numbers. Parallel.
    pub fn build(vectors: &[f32], dim: usize, config: GraphConfig) -> Result<Self> {
        if config.max_connections == 0 || config.max_connections > 256 {
            return Err(IndexError::InvalidArgument(format!(
                "HNSW max_connections must be 1..=256, not {}",
                config.max_connections
            )));
        }
        let n = vectors.len() / dim;
        let norms: Vec<f32> = vectors
            .chunks_exact(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();
        let max_norm = norms.iter().copied().fold(0.0f32, f32::max);
        let lifted: Vec<Vec<f32>> = vectors
            .chunks_exact(dim)
            .zip(&norms)
            .map(|(r, n)| {
                let mut v = r.to_vec();
                v.push((max_norm * max_norm - n * n).max(0.0).sqrt());
                v
            })
            .collect();
        let layers = 16;
        let hnsw = Hnsw::new(
            config.max_connections,
            n.max(1),
            layers,
            config.ef_construction,
            DistL2 {},
        );
        let items: Vec<(&[f32], usize)> = lifted
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i))
            .collect();
        hnsw.parallel_insert_slice(&items);
        let mut graph = MipsGraph {
            hnsw,
            dim,
            max_norm,
        };
        graph.hnsw.set_searching_mode(true);
        Ok(graph)
    }

    pub fn max_norm(&self) -> f32 {
        self.max_norm
    }

    /// The `n` rows with the largest inner product with `query` (approximately), best first.
    pub fn search(&self, query: &[f32], n: usize, ef_search: usize) -> Vec<u32> {
        assert_eq!(query.len(), self.dim, "query dimension");
        let mut q = query.to_vec();
        q.push(0.0);
        self.hnsw
            .search(&q, n, ef_search.max(n))
            .into_iter()
            .map(|nb| nb.d_id as u32)
            .collect()
    }

    /// Write `dir/<basename>.hnsw.graph` and `.hnsw.data`; returns the basename used.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        self.hnsw
            .file_dump(dir, basename)
            .map_err(|e| IndexError::corrupt(dir.join(basename), format!("cannot write HNSW: {e}")))
    }

    /// Reload a dumped graph; its data file is memory-mapped.
    pub fn load(dir: &Path, basename: &str, dim: usize, max_norm: f32) -> Result<Self> {
        let options = ReloadOptions::default().set_mmap(true);
        // hnsw_rs's loaded graph borrows its loader (which owns the memory map) for its
        // whole life; the loader is leaked so the graph can live in an `Index` without
        // a self-referential struct. One small loader per opened MUVERA index.
        let io: &'static mut HnswIo =
            Box::leak(Box::new(HnswIo::new_with_options(dir, basename, options)));
        let mut hnsw: Hnsw<'static, f32, DistL2> = io.load_hnsw::<f32, DistL2>().map_err(|e| {
            IndexError::corrupt(
                dir.join(format!("{basename}.hnsw.graph")),
                format!("cannot load HNSW: {e}"),
            )
        })?;
        hnsw.set_searching_mode(true);
        if hnsw.get_nb_point() > 0 {
            let probe = hnsw.get_point_indexation().get_data_dimension();
            if probe != dim + 1 {
                return Err(IndexError::corrupt(
                    dir.join(format!("{basename}.hnsw.data")),
                    format!("HNSW vectors have {probe} dims, expected {}", dim + 1),
                ));
            }
        }
        Ok(MipsGraph {
            hnsw,
            dim,
            max_norm,
        })
    }

    pub fn len(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
