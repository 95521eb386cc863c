//! [`Searcher`]: an opened index plus the encoder that built it, so text queries are
//! encoded exactly as the documents were.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tessera_index::store::MultiVector;
use tessera_index::{Index, Mode, SearchParams};

use crate::encoder::{ColbertEncoder, DeviceSpec, EncoderSettings, LoadOptions, Role};
use crate::error::{Error, Result};

/// One result, with the document's external id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub score: f32,
}

pub struct Searcher {
    index: Index,
    encoder: ColbertEncoder,
}

impl Searcher {
    /// Open `index_dir` and load its model (from the manifest, or `model` if given;
    /// either way its weights must hash to what the manifest records).
    pub fn open(index_dir: &Path, model: Option<&Path>, device: DeviceSpec) -> Result<Self> {
        let index = Index::open(index_dir)?;
        let encoder = load_query_encoder(&index, model, device)?;
        Ok(Searcher { index, encoder })
    }

    /// Use an already loaded encoder (checked against the index like `open` does).
    pub fn with_encoder(index: Index, encoder: ColbertEncoder) -> Result<Self> {
        check_weights(&index, &encoder)?;
        Ok(Searcher { index, encoder })
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn encoder(&self) -> &ColbertEncoder {
        &self.encoder
    }

    pub fn encode_queries(&self, texts: &[&str]) -> Result<Vec<MultiVector>> {
        let items = self.encoder.tokenize(texts, Role::Query)?;
        Ok(self.encoder.encode_tokenized(&items)?.vectors)
    }

    /// Search with an encoded query.
    pub fn search_vectors(
        &self,
        query: &MultiVector,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<SearchHit>> {
        let hits = self.index.search(query.view(), k, mode, params)?;
        let store = self.index.store();
        Ok(hits
            .into_iter()
            .map(|h| SearchHit {
                id: store.doc_id(h.doc as usize).to_string(),
                score: h.score,
            })
            .collect())
    }

    /// Encode `query` and search.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<SearchHit>> {
        self.index.check_mode(mode)?;
        let q = self
            .encode_queries(&[query])?
            .pop()
            .expect("one query in, one out");
        self.search_vectors(&q, k, mode, params)
    }
}

/// The settings and model directory recorded by the indexing pipeline.
fn recorded_encoder(index: &Index) -> Result<(PathBuf, EncoderSettings)> {
    let enc = &index.manifest().model.encoder;
    let bad = |reason: &str| Error::IndexMetadata {
        index: index.dir().to_path_buf(),
        reason: reason.to_string(),
    };
    let dir = enc
        .get("model_dir")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("manifest records no model_dir; pass --model"))?;
    let settings = enc
        .get("settings")
        .cloned()
        .ok_or_else(|| bad("manifest records no encoder settings"))?;
    let settings: EncoderSettings = serde_json::from_value(settings)
        .map_err(|e| bad(&format!("manifest encoder settings unreadable: {e}")))?;
    Ok((PathBuf::from(dir), settings))
}

fn load_query_encoder(
    index: &Index,
    model: Option<&Path>,
    device: DeviceSpec,
) -> Result<ColbertEncoder> {
    let (recorded_dir, settings) = recorded_encoder(index)?;
    let dir = model.map(Path::to_path_buf).unwrap_or(recorded_dir);
    let options = LoadOptions {
        query_max_len: Some(settings.query_max_len),
        doc_max_len: Some(settings.doc_max_len),
        skip_punctuation: Some(settings.skip_punctuation),
        query_augmentation: Some(settings.query_augmentation),
        batch_size: None,
    };
    let encoder = ColbertEncoder::load(&dir, &options, device)?;
    check_weights(index, &encoder)?;
    Ok(encoder)
}

fn check_weights(index: &Index, encoder: &ColbertEncoder) -> Result<()> {
    let expected = &index.manifest().model.weights_sha256;
    if encoder.weights_sha256() != expected {
        return Err(Error::ModelMismatch {
            model: encoder.dir().to_path_buf(),
            expected: expected.clone(),
            found: encoder.weights_sha256().to_string(),
        });
    }
    Ok(())
}
