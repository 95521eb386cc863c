//! MUVERA (Dhulipala et al. 2024): fixed-dimensional encodings ([`fde`]) of documents in
//! an HNSW graph ([`graph`]); a query's FDE finds candidates, exact MaxSim on the stored
//! vectors ranks them. Also the single-vector baseline the paper compares against.

pub mod fde;
pub mod graph;

use std::path::Path;
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use fde::{FdeConfig, FdeEncoder};
pub use graph::{GraphConfig, MipsGraph};

use crate::allow::Allow;
use crate::error::{IndexError, Result};
use crate::maxsim::Hit;
use crate::segment::file::{check_foreign, foreign_entry};
use crate::segment::MuveraSegmentFiles;
use crate::store::{MultiVectorRef, TokenStore};

/// How MUVERA is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MuveraConfig {
    pub fde: FdeConfig,
    pub graph: GraphConfig,
}

/// Per-query knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuveraParams {
    /// Documents taken from the graph and re-ranked by exact MaxSim.
    pub candidates: usize,
    /// HNSW search breadth (at least `candidates`).
    pub ef_search: usize,
}

impl MuveraParams {
    /// Defaults by k: `max(10k, 1000)` candidates. On SciFact with MiniLM vectors and
    /// paper FDE settings, 1,000 candidates keep 0.967 of the exhaustive top-100 and 500
    /// only 0.904 (README, "MUVERA").
    pub fn for_k(k: usize) -> Self {
        let candidates = (10 * k).max(1000);
        MuveraParams {
            candidates,
            ef_search: candidates,
        }
    }
}

/// Every document's FDE, row-major, computed in parallel.
pub fn document_fdes(store: &TokenStore, encoder: &FdeEncoder) -> Vec<f32> {
    (0..store.num_docs())
        .into_par_iter()
        .flat_map_iter(|d| {
            let doc = store.doc(d);
            let mut v = vec![0.0f32; doc.as_slice().len()];
            doc.as_slice().convert_to_f32_slice(&mut v);
            encoder.encode_document(&v)
        })
        .collect()
}

/// Mean of each document's vectors (the single-vector baseline's document vector).
pub fn mean_vectors(store: &TokenStore) -> Vec<f32> {
    let dim = store.dim();
    (0..store.num_docs())
        .into_par_iter()
        .flat_map_iter(|d| {
            let doc = store.doc(d);
            let mut mean = vec![0.0f32; dim];
            for row in doc.rows() {
                for (m, x) in mean.iter_mut().zip(row) {
                    *m += x.to_f32();
                }
            }
            let n = doc.len() as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            mean
        })
        .collect()
}

/// Build a segment's MUVERA graph: every document's FDE (with the index's seeded
/// encoder) in an HNSW, dumped as `<prefix>.muvera.hnsw.*`.
pub fn build_segment(
    dir: &Path,
    prefix: &str,
    store: &TokenStore,
    config: &MuveraConfig,
) -> Result<MuveraSegmentFiles> {
    let started = Instant::now();
    let encoder = FdeEncoder::new(store.dim(), config.fde);
    let fdes = document_fdes(store, &encoder);
    let fde_seconds = started.elapsed().as_secs_f64();
    let graph = MipsGraph::build(&fdes, encoder.output_dim(), config.graph)?;
    let graph_seconds = started.elapsed().as_secs_f64() - fde_seconds;
    let basename = graph.dump(dir, &format!("{prefix}.muvera"))?;
    let graph_file = foreign_entry(dir, &format!("{basename}.hnsw.graph"))?;
    let data_file = foreign_entry(dir, &format!("{basename}.hnsw.data"))?;
    Ok(MuveraSegmentFiles {
        fde_dim: encoder.output_dim(),
        max_norm: graph.max_norm(),
        basename,
        graph: graph_file,
        data: data_file,
        build: serde_json::json!({
            "fde_seconds": fde_seconds,
            "graph_seconds": graph_seconds,
            "total_seconds": started.elapsed().as_secs_f64(),
        }),
    })
}

/// A segment's MUVERA graph, opened.
pub struct MuveraSegment {
    graph: MipsGraph,
}

impl MuveraSegment {
    pub fn open(
        dir: &Path,
        files: &MuveraSegmentFiles,
        encoder: &FdeEncoder,
        num_docs: usize,
        verify: bool,
    ) -> Result<Self> {
        check_foreign(dir, &files.graph, verify)?;
        check_foreign(dir, &files.data, verify)?;
        if encoder.output_dim() != files.fde_dim {
            return Err(IndexError::Manifest {
                path: dir.join(crate::segment::MANIFEST_NAME),
                reason: format!(
                    "MUVERA config gives {}-d FDEs, the segment's graph holds {}",
                    encoder.output_dim(),
                    files.fde_dim
                ),
            });
        }
        let graph = MipsGraph::load(dir, &files.basename, files.fde_dim, files.max_norm)?;
        if graph.len() != num_docs {
            return Err(IndexError::corrupt(
                dir.join(&files.graph.name),
                format!("HNSW holds {} documents, the store {num_docs}", graph.len()),
            ));
        }
        Ok(MuveraSegment { graph })
    }

    /// The allowed documents whose FDE best matches the query's, with the FDE inner
    /// product (comparable across segments: one encoder), best first.
    pub fn candidates(&self, query_fde: &[f32], params: &MuveraParams, allow: &Allow) -> Vec<Hit> {
        // Never ask the graph for more than it holds (hnsw_rs reserves `ef` up front).
        let n = self.graph.len().max(1);
        let candidates = params.candidates.min(n);
        let ef = params.ef_search.min(n).max(candidates);
        let filter = |d: u32| allow.contains(d);
        let allow_fn: Option<&(dyn Fn(u32) -> bool + Sync)> =
            if allow.is_all() { None } else { Some(&filter) };
        self.graph
            .search_scored(query_fde, candidates, ef, allow_fn)
            .into_iter()
            .map(|(doc, score)| Hit { doc, score })
            .collect()
    }
}

/// The paper's baseline: one mean vector per document in the same kind of graph.
pub struct SingleVectorBaseline {
    graph: MipsGraph,
}

impl SingleVectorBaseline {
    pub fn build(store: &TokenStore, config: GraphConfig) -> Result<Self> {
        Ok(SingleVectorBaseline {
            graph: MipsGraph::build(&mean_vectors(store), store.dim(), config)?,
        })
    }

    pub fn candidates(&self, query: MultiVectorRef<'_, f32>, params: &MuveraParams) -> Vec<u32> {
        let mut mean = vec![0.0f32; query.dim()];
        for row in query.rows() {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut()
            .for_each(|m| *m /= query.len().max(1) as f32);
        self.graph
            .search(&mean, params.candidates, params.ef_search)
    }
}
