//! What the application records in an index about the models that made it, as typed
//! structs (the index crate keeps them as opaque JSON): enough to encode queries, and
//! documents added later, exactly as the first documents were.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_index::Manifest;

use crate::encoder::{ColbertEncoder, EncoderSettings, SpladeEncoder, SpladeSettings};
use crate::error::{Error, Result};
use crate::pipeline::Pooling;

/// The ColBERT-style encoder of an index (`manifest.model.encoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model directory at build time (canonical); `--model` may point elsewhere as
    /// long as the weights hash the same.
    pub model_dir: PathBuf,
    pub settings: EncoderSettings,
    /// Pooling of document vectors (indexes before the live index kept it in `config`).
    #[serde(default)]
    pub pooling: Option<Pooling>,
}

impl ModelRecord {
    pub fn of(encoder: &ColbertEncoder, pooling: Option<Pooling>) -> Self {
        ModelRecord {
            model_dir: encoder
                .dir()
                .canonicalize()
                .unwrap_or_else(|_| encoder.dir().to_path_buf()),
            settings: encoder.settings().clone(),
            pooling,
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the record serialises")
    }

    /// The record of the index at `dir` with this manifest.
    pub fn read(manifest: &Manifest, dir: &Path) -> Result<Self> {
        let bad = |reason: String| Error::IndexMetadata {
            index: dir.to_path_buf(),
            reason,
        };
        let mut record: ModelRecord = serde_json::from_value(manifest.model.encoder.clone())
            .map_err(|e| {
                bad(format!(
                    "the manifest's record of the model is unreadable ({e}); pass --model"
                ))
            })?;
        if record.pooling.is_none() {
            if let Some(p) = manifest.config.get("pooling").filter(|p| !p.is_null()) {
                record.pooling = Some(
                    serde_json::from_value(p.clone())
                        .map_err(|e| bad(format!("the recorded pooling is unreadable: {e}")))?,
                );
            }
        }
        Ok(record)
    }
}

/// The SPLADE model of an index with the splade component (`settings.splade.model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpladeRecord {
    pub name: String,
    pub model_dir: PathBuf,
    pub weights_sha256: String,
    pub settings: SpladeSettings,
}

impl SpladeRecord {
    pub fn of(s: &SpladeEncoder) -> Self {
        SpladeRecord {
            name: s.name().to_string(),
            model_dir: s
                .dir()
                .canonicalize()
                .unwrap_or_else(|_| s.dir().to_path_buf()),
            weights_sha256: s.weights_sha256().to_string(),
            settings: s.settings().clone(),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the record serialises")
    }

    /// The record, if the index has splade.
    pub fn read(manifest: &Manifest, dir: &Path) -> Result<Option<Self>> {
        let Some(cfg) = &manifest.settings.splade else {
            return Ok(None);
        };
        serde_json::from_value(cfg.model.clone())
            .map(Some)
            .map_err(|e| Error::IndexMetadata {
                index: dir.to_path_buf(),
                reason: format!("the manifest's record of the SPLADE model is unreadable: {e}"),
            })
    }
}
