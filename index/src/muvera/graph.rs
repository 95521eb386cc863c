//! Maximum-inner-product search through `hnsw_rs`.
//!
//! `hnsw_rs`'s `DistDot` assumes unit vectors, and FDEs are not unit vectors (their
//! norms carry the score), so the graph stores the standard MIPS-to-L2 lift
//! (Bachrach et al. 2014): a document `x` becomes `[x, √(M² − ‖x‖²)]` with `M` the
//! largest document norm, a query `q` becomes `[q, 0]`; then
//! `‖q' − x'‖² = ‖q‖² + M² − 2⟨q, x⟩`, so the L2 nearest neighbours are the inner-product
//! best. Distances use `DistL2` (SIMD through `simdeez`).

use std::path::Path;

use hnsw_rs::filter::FilterT;
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

type Graph<'a> = Hnsw<'a, f32, DistL2>;

/// A graph reloaded from disk together with the hnsw_rs loader it borrows (which owns
/// the memory map of the data file): dropped together, nothing leaked.
#[ouroboros::self_referencing]
struct Loaded {
    io: HnswIo,
    #[borrows(mut io)]
    #[not_covariant]
    graph: Graph<'this>,
}

enum Hnsws {
    Built(Graph<'static>),
    Loaded(Loaded),
}

/// An HNSW over lifted vectors, answering inner-product queries.
pub struct MipsGraph {
    hnsw: Hnsws,
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
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        Ok(MipsGraph {
            hnsw: Hnsws::Built(hnsw),
            dim,
            max_norm,
        })
    }

    fn with<R>(&self, f: impl for<'a> FnOnce(&Graph<'a>) -> R) -> R {
        match &self.hnsw {
            Hnsws::Built(h) => f(h),
            Hnsws::Loaded(l) => l.with_graph(f),
        }
    }

    pub fn max_norm(&self) -> f32 {
        self.max_norm
    }

    /// The `n` rows with the largest inner product with `query` (approximately), best first.
    pub fn search(&self, query: &[f32], n: usize, ef_search: usize) -> Vec<u32> {
        self.search_scored(query, n, ef_search, None)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The `n` allowed rows with the largest inner product with `query` (approximately),
    /// best first, with that inner product (recovered from the lifted L2 distance:
    /// `⟨q, x⟩ = (‖q‖² + M² − d²) / 2`). `allow` filters inside the graph search
    /// (hnsw_rs's filtered search), so `n` allowed rows come back when there are `n`.
    pub fn search_scored(
        &self,
        query: &[f32],
        n: usize,
        ef_search: usize,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<(u32, f32)> {
        assert_eq!(query.len(), self.dim, "query dimension");
        let mut q = query.to_vec();
        q.push(0.0);
        let q_sq: f32 = query.iter().map(|v| v * v).sum();
        let m_sq = self.max_norm * self.max_norm;
        let filter = allow.map(|f| move |id: &usize| f(*id as u32));
        let found = self.with(|h| match &filter {
            Some(f) => h.search_filter(&q, n, ef_search.max(n), Some(f as &dyn FilterT)),
            None => h.search(&q, n, ef_search.max(n)),
        });
        found
            .into_iter()
            .map(|nb| {
                (
                    nb.d_id as u32,
                    0.5 * (q_sq + m_sq - nb.distance * nb.distance),
                )
            })
            .collect()
    }

    /// Write `dir/<basename>.hnsw.graph` and `.hnsw.data`; returns the basename used.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        self.with(|h| h.file_dump(dir, basename))
            .map_err(|e| IndexError::corrupt(dir.join(basename), format!("cannot write HNSW: {e}")))
    }

    /// Reload a dumped graph; its data file is memory-mapped.
    pub fn load(dir: &Path, basename: &str, dim: usize, max_norm: f32) -> Result<Self> {
        let options = ReloadOptions::default().set_mmap(true);
        let io = HnswIo::new_with_options(dir, basename, options);
        let graph_path = dir.join(format!("{basename}.hnsw.graph"));
        let loaded = Loaded::try_new(io, |io| {
            let mut hnsw: Graph<'_> = io
                .load_hnsw::<f32, DistL2>()
                .map_err(|e| IndexError::corrupt(&graph_path, format!("cannot load HNSW: {e}")))?;
            hnsw.set_searching_mode(true);
            Ok::<_, IndexError>(hnsw)
        })?;
        let graph = MipsGraph {
            hnsw: Hnsws::Loaded(loaded),
            dim,
            max_norm,
        };
        let (points, probe) = graph.with(|h| {
            (
                h.get_nb_point(),
                h.get_point_indexation().get_data_dimension(),
            )
        });
        if points > 0 && probe != dim + 1 {
            return Err(IndexError::corrupt(
                dir.join(format!("{basename}.hnsw.data")),
                format!("HNSW vectors have {probe} dims, expected {}", dim + 1),
            ));
        }
        Ok(graph)
    }

    pub fn len(&self) -> usize {
        self.with(|h| h.get_nb_point())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
