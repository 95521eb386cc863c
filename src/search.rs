//! [`Searcher`]: an opened index plus the encoders that built it (ColBERT, and SPLADE
//! when the index has that component), so text queries are encoded exactly as the
//! documents were.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Position in the index's store (for its stored text).
    #[serde(skip)]
    pub doc: u32,
}

/// An index with the encoders its queries need. Encoders are shared (`Arc`), so several
/// indexes built with one model load it once.
pub struct Searcher {
    index: Index,
    encoder: Arc<ColbertEncoder>,
    splade: Option<Arc<SpladeEncoder>>,
}

/// A query encoded for every stage the index has: its text (BM25), token vectors
/// (MaxSim stages) and SPLADE weights (when the index has splade).
#[derive(Debug, Clone)]
pub struct EncodedQuery {
    pub text: String,
    pub vectors: MultiVector,
    pub sparse: Option<SparseVector>,
    /// The text had more tokens than a model's query length and was cut.
    pub truncated: bool,
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
        let encoder = Arc::new(load_query_encoder(&index, model, device)?);
        let splade = load_splade_encoder(&index, device)?.map(Arc::new);
        Ok(Searcher {
            index,
            encoder,
            splade,
        })
    }

    /// Open `index_dir`, taking its encoders from `cache` when an index opened before
    /// used the same model (same directory and weights), loading them otherwise.
    pub fn open_shared(
        index_dir: &Path,
        device: DeviceSpec,
        cache: &mut EncoderCache,
    ) -> Result<Self> {
        let index = Index::open(index_dir)?;
        let key = (
            recorded_encoder(&index)?.0,
            index.manifest().model.weights_sha256.clone(),
        );
        let encoder = match cache.colbert.iter().find(|(k, _)| *k == key) {
            Some((_, e)) => e.clone(),
            None => {
                let e = Arc::new(load_query_encoder(&index, None, device)?);
                cache.colbert.push((key, e.clone()));
                e
            }
        };
        let splade = match &index.manifest().components.splade {
            None => None,
            Some(files) => {
                let field = |name: &str| {
                    files
                        .model
                        .get(name)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let key = (PathBuf::from(field("model_dir")), field("weights_sha256"));
                match cache.splade.iter().find(|(k, _)| *k == key) {
                    Some((_, e)) => Some(e.clone()),
                    None => {
                        let e = load_splade_encoder(&index, device)?.map(Arc::new);
                        if let Some(e) = &e {
                            cache.splade.push((key, e.clone()));
                        }
                        e
                    }
                }
            }
        };
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
            encoder: Arc::new(encoder),
            splade: splade.map(Arc::new),
        })
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn encoder(&self) -> &ColbertEncoder {
        &self.encoder
    }

    pub fn splade(&self) -> Option<&SpladeEncoder> {
        self.splade.as_deref()
    }

    pub fn encode_queries(&self, texts: &[&str]) -> Result<Vec<MultiVector>> {
        let items = self.encoder.tokenize(texts, Role::Query)?;
        Ok(self.encoder.encode_tokenized(&items)?.vectors)
    }

    /// Encode one query for every stage the index has.
    pub fn encode_query(&self, text: &str) -> Result<EncodedQuery> {
        Ok(self.encode_batch(&[text])?.pop().expect("one in, one out"))
    }

    /// Encode queries for every stage the index has, batched; in input order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<EncodedQuery>> {
        let items = self.encoder.tokenize(texts, Role::Query)?;
        let vectors = self.encoder.encode_tokenized(&items)?.vectors;
        let (sparse, sparse_truncated) = match &self.splade {
            Some(s) => {
                let sitems = s.tokenize(texts, Role::Query)?;
                let cut: Vec<bool> = sitems.iter().map(|t| t.truncated).collect();
                (Some(s.encode_tokenized(&sitems, Role::Query)?), cut)
            }
            None => (None, vec![false; texts.len()]),
        };
        let mut sparse = sparse.map(|v| v.into_iter());
        Ok(texts
            .iter()
            .zip(vectors)
            .zip(items.iter().zip(sparse_truncated))
            .map(|((text, vectors), (item, cut))| EncodedQuery {
                text: text.to_string(),
                vectors,
                sparse: sparse.as_mut().and_then(|s| s.next()),
                truncated: item.truncated || cut,
            })
            .collect())
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
                doc: h.doc,
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

/// Encoders already loaded, keyed by model directory and weight hash.
#[derive(Default)]
pub struct EncoderCache {
    colbert: Vec<((PathBuf, String), Arc<ColbertEncoder>)>,
    splade: Vec<((PathBuf, String), Arc<SpladeEncoder>)>,
}

impl EncoderCache {
    /// Distinct models loaded (ColBERT, SPLADE).
    pub fn loaded(&self) -> (usize, usize) {
        (self.colbert.len(), self.splade.len())
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
        dtype: Default::default(),
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
