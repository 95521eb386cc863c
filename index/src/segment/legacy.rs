//! Manifests of format 1 and 2: one generation of files (`g<N>.*`), no segments, no
//! tombstones. Read into today's [`Manifest`] as one segment (id 0) whose files keep
//! their names, so an index written before the live index opens, searches and takes
//! writes (the first write lists the old files in a format-3 manifest).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::FileEntry;
use super::manifest::{
    Bm25Files, CodecFiles, Manifest, ModelInfo, MuveraSegmentFiles, PlaidSegmentFiles, SegmentMeta,
    SparseFiles, StoreFiles,
};
use crate::component::Component;
use crate::error::{IndexError, Result};
use crate::{IndexConfig, PlaidConfig, SparseConfig};

/// Format 1/2: files and parameters of the PLAID component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaidFiles {
    pub num_centroids: usize,
    pub quantizer: crate::codec::ResidualQuantizer,
    pub centroids: FileEntry,
    pub codes: FileEntry,
    pub residuals: FileEntry,
    pub ivf: FileEntry,
    /// How it was built (sample size, iterations, seed, timings), for humans.
    #[serde(default)]
    pub build: serde_json::Value,
}

/// Format 1/2: files and parameters of the MUVERA component. The two HNSW files are
/// written by `hnsw_rs` in its own format (no Tessera footer): size and CRC-32C of the
/// whole file are recorded here and checked at open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuveraFiles {
    pub config: crate::muvera::MuveraConfig,
    pub fde_dim: usize,
    /// Largest document FDE norm (the MIPS lift's M).
    pub max_norm: f32,
    /// hnsw_rs basename: files are `<basename>.hnsw.graph` and `<basename>.hnsw.data`.
    pub basename: String,
    pub graph: FileEntry,
    pub data: FileEntry,
    #[serde(default)]
    pub build: serde_json::Value,
}

/// Format 1/2: the components of the one generation. `store` is always there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyComponents {
    pub store: StoreFiles,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaid: Option<PlaidFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muvera: Option<MuveraFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splade: Option<SparseFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<Bm25Files>,
}

/// A format-1 or format-2 manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyManifest {
    pub format_version: u32,
    pub generation: u64,
    pub created_by: String,
    pub model: ModelInfo,
    pub num_docs: usize,
    pub num_vectors: usize,
    pub dim: usize,
    #[serde(default)]
    pub config: serde_json::Value,
    pub components: LegacyComponents,
    #[serde(default)]
    pub manifest_crc32c: Option<String>,
}

/// Parse a format-1/2 manifest and see it as one segment.
pub(super) fn read(path: &Path, raw: serde_json::Value) -> Result<Manifest> {
    let old: LegacyManifest = serde_json::from_value(raw).map_err(|e| IndexError::Manifest {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let c = old.components;
    let mut components = vec![Component::Store];
    for (comp, present) in [
        (Component::Plaid, c.plaid.is_some()),
        (Component::Muvera, c.muvera.is_some()),
        (Component::Splade, c.splade.is_some()),
        (Component::Bm25, c.bm25.is_some()),
    ] {
        if present {
            components.push(comp);
        }
    }
    let plaid_config = c.plaid.as_ref().map(|p| {
        // Format 1 kept the build configuration among the build statistics.
        let mut cfg: PlaidConfig = p
            .build
            .get("config")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        cfg.nbits = p.quantizer.nbits;
        cfg
    });
    let settings = IndexConfig {
        plaid: plaid_config,
        muvera: c.muvera.as_ref().map(|m| m.config),
        splade: c.splade.as_ref().map(|s| SparseConfig {
            vocab_size: s.vocab_size,
            model: s.model.clone(),
        }),
        bm25: c.bm25.is_some(),
        store_text: c.store.texts.is_some(),
        fields: Default::default(),
        store: Default::default(),
    };
    let codec = c.plaid.as_ref().map(|p| CodecFiles {
        f16_centroids: false,
        int8_centroids: false,
        id: 0,
        num_centroids: p.num_centroids,
        quantizer: p.quantizer.clone(),
        centroids: p.centroids.clone(),
        trained_on_vectors: old.num_vectors,
        mean_residual_norm: None,
        trained_generation: old.generation,
        build: p.build.clone(),
    });
    let segment = SegmentMeta {
        id: 0,
        num_docs: old.num_docs,
        num_vectors: old.num_vectors,
        codec: codec.as_ref().map(|c| c.id),
        store: c.store,
        ids: None,
        plaid: c.plaid.map(|p| PlaidSegmentFiles {
            codes: p.codes,
            residuals: p.residuals,
            ivf: p.ivf,
            mean_residual_norm: None,
        }),
        muvera: c.muvera.map(|m| MuveraSegmentFiles {
            fde_dim: m.fde_dim,
            max_norm: m.max_norm,
            basename: m.basename,
            graph: m.graph,
            data: m.data,
            build: m.build,
        }),
        splade: c.splade,
        bm25: c.bm25,
        fields: None,
        deletes: None,
        generation: old.generation,
        build: serde_json::Value::Null,
    };
    Ok(Manifest {
        format_version: old.format_version,
        generation: old.generation,
        created_by: old.created_by,
        model: old.model,
        dim: old.dim,
        num_docs: old.num_docs,
        num_vectors: old.num_vectors,
        config: old.config,
        components,
        settings,
        codec,
        next_id: 1,
        segments: vec![segment],
        manifest_crc32c: old.manifest_crc32c,
    })
}
