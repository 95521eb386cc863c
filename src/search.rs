//! [`Searcher`]: an opened index plus the encoders that built it (ColBERT, and SPLADE
//! when the index has that component), so text queries are encoded exactly as the
//! documents were.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tessera_index::store::MultiVector;
use tessera_index::{Index, Mode, Query, SearchParams, SparseVector};

use crate::encoder::{
    ColbertEncoder, DeviceSpec, EncoderSettings, LoadOptions, Role, SpladeEncoder, SpladeOptions,
    SpladeSettings,
};
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
    splade: Option<SpladeEncoder>,
}

/// A query encoded for every stage the index has: its text (BM25), token vectors
/// (MaxSim stages) and SPLADE weights (when the index has splade).
#[derive(Debug, Clone)]
pub struct EncodedQuery {
    pub text: String,
    pub vectors: MultiVector,
    pub sparse: Option<SparseVector>,
}

impl EncodedQuery {
    pub fn as_query(&self) -> Query<'_> {
        Query {
            vectors: Some(self.vectors.view()),
            sparse: self.sparse.as_ref(),
            text: Some(&self.text),
        }
    }
}

impl Searcher {
    /// Open `index_dir` and load its model (from the manifest, or `model` if given;
    /// either way its weights must hash to what the manifest records).
    pub fn open(index_dir: &Path, model: Option<&Path>, device: DeviceSpec) -> Result<Self> {
        let index = Index::open(index_dir)?;
        let encoder = load_query_encoder(&index, model, device)?;
        let splade = load_splade_encoder(&index, device)?;
        Ok(Searcher {
            index,
            encoder,
            splade,
        })
    }

    /// Use already loaded encoders (checked against the index like `open` does). An index
    /// with splade loads its recorded SPLADE model when `splade` is `None`.
    pub fn with_encoders(
        index: Index,
        encoder: ColbertEncoder,
        splade: Option<SpladeEncoder>,
    ) -> Result<Self> {
        check_weights(&index, &encoder)?;
        let splade = match splade {
            Some(s) => {
                check_splade(&index, &s)?;
                Some(s)
            }
            None => load_splade_encoder(&index, DeviceSpec::Cpu)?,
        };
        Ok(Searcher {
            index,
            encoder,
            splade,
        })
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn encoder(&self) -> &ColbertEncoder {
        &self.encoder
    }

    pub fn splade(&self) -> Option<&SpladeEncoder> {
        self.splade.as_ref()
    }

    pub fn encode_queries(&self, texts: &[&str]) -> Result<Vec<MultiVector>> {
        let items = self.encoder.tokenize(texts, Role::Query)?;
        Ok(self.encoder.encode_tokenized(&items)?.vectors)
    }

    /// Encode one query for every stage the index has.
    pub fn encode_query(&self, text: &str) -> Result<EncodedQuery> {
        let vectors = self
            .encode_queries(&[text])?
            .pop()
            .expect("one in, one out");
        let sparse = match &self.splade {
            Some(s) => s.encode(&[text], Role::Query)?.pop(),
            None => None,
        };
        Ok(EncodedQuery {
            text: text.to_string(),
            vectors,
            sparse,
        })
    }

    /// Search with token vectors only (modes that need SPLADE weights or text fail).
    pub fn search_vectors(
        &self,
        query: &MultiVector,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<SearchHit>> {
        self.search_query(&Query::vectors(query.view()), k, mode, params)
    }

    /// Search with an encoded query.
    pub fn search_encoded(
        &self,
        query: &EncodedQuery,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<SearchHit>> {
        self.search_query(&query.as_query(), k, mode, params)
    }

    /// Search with whatever parts of a query the caller has.
    pub fn search_query(
        &self,
        query: &Query<'_>,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<Vec<SearchHit>> {
        let hits = self.index.search(query, k, mode, params)?;
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
        let q = self.encode_query(query)?;
        self.search_encoded(&q, k, mode, params)
    }
}

/// The SPLADE model recorded with the index's splade component, loaded and checked.
fn load_splade_encoder(index: &Index, device: DeviceSpec) -> Result<Option<SpladeEncoder>> {
    let Some(files) = &index.manifest().components.splade else {
        return Ok(None);
    };
    let bad = |reason: String| Error::IndexMetadata {
        index: index.dir().to_path_buf(),
        reason,
    };
    let dir = files
        .model
        .get("model_dir")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("manifest records no SPLADE model_dir".into()))?;
    let settings: SpladeSettings = files
        .model
        .get("settings")
        .cloned()
        .ok_or_else(|| bad("manifest records no SPLADE settings".into()))
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| bad(format!("SPLADE settings unreadable: {e}")))
        })?;
    let options = SpladeOptions {
        doc_max_len: Some(settings.doc_max_len),
        query_max_len: Some(settings.query_max_len),
        threshold: Some(settings.threshold),
        doc_max_terms: settings.doc_max_terms,
        batch_size: None,
    };
    let encoder = SpladeEncoder::load(Path::new(dir), &options, device)?;
    check_splade(index, &encoder)?;
    Ok(Some(encoder))
}

fn check_splade(index: &Index, encoder: &SpladeEncoder) -> Result<()> {
    let expected = index
        .manifest()
        .components
        .splade
        .as_ref()
        .and_then(|f| f.model.get("weights_sha256"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if encoder.weights_sha256() != expected {
        return Err(Error::ModelMismatch {
            model: encoder.dir().to_path_buf(),
            expected: expected.to_string(),
            found: encoder.weights_sha256().to_string(),
        });
    }
    Ok(())
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
