//! [`Searcher`]: an opened index plus the encoders that built it (ColBERT, and SPLADE
//! when the index has that component), so text queries are encoded exactly as the
//! documents were. [`ParamOverrides`] is the one shape of per-request search knobs (the
//! command line's flags and the HTTP API's `params` both become it); [`ModelRecord`] and
//! [`SpladeRecord`] are what an index records about its models.

mod explain;
mod params;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tessera_index::store::MultiVector;
use tessera_index::{
    Component, DocAddress, Filter, Index, Mode, Plan, Query, SearchParams, SparseVector,
};

pub use explain::{DocumentToken, DocumentVector, Explanation, QueryTokenMatch};
pub use params::{ParamOverrides, RescoreChoice, SparseScorerChoice};
pub use record::{ModelRecord, SpladeRecord};

use crate::encoder::{ColbertEncoder, DeviceSpec, LoadOptions, Role, SpladeEncoder, SpladeOptions};
use crate::error::{Error, Result};

/// One result, with the document's external id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub score: f32,
    /// Where the document is in the snapshot searched (for its stored text).
    #[serde(skip)]
    pub addr: DocAddress,
}

/// An index with the encoders its queries need. Encoders are shared (`Arc`), so several
/// indexes built with one model load it once, and a reloaded snapshot keeps them.
#[derive(Clone)]
pub struct Searcher {
    index: Index,
    /// `None`: an index of pre-encoded vectors built without a model (queries come as
    /// vectors).
    encoder: Option<Arc<ColbertEncoder>>,
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
        self.filtered(None)
    }

    /// The query, restricted to documents `filter` admits.
    pub fn filtered<'a>(&'a self, filter: Option<&'a Filter>) -> Query<'a> {
        Query {
            vectors: Some(self.vectors.view()),
            sparse: self.sparse.as_ref(),
            text: Some(&self.text),
            filter,
        }
    }
}

impl Searcher {
    /// Open `index_dir` and load its model (from the manifest, or `model` if given;
    /// either way its weights must hash to what the manifest records).
    pub fn open(index_dir: &Path, model: Option<&Path>, device: DeviceSpec) -> Result<Self> {
        let index = Index::open(index_dir)?;
        let encoder = match index.manifest().model.is_none() {
            true if model.is_some() => {
                return Err(Error::Usage(format!(
                    "{} was built without a model, so --model cannot be checked against it: \
                     search it with --query-vectors, or rebuild it with --model",
                    index_dir.display()
                )))
            }
            true => None,
            false => Some(Arc::new(load_query_encoder(&index, model, device)?)),
        };
        let splade = load_splade_encoder(&index, device)?.map(Arc::new);
        Ok(Searcher {
            index,
            encoder,
            splade,
        })
    }

    /// Open `index_dir`, taking its encoders from `cache` when an index opened before
    /// used the same model (same directory and weights), loading them otherwise.
    /// `progress` hears of each step (segments opened, models loaded), for logging.
    pub fn open_shared(
        index_dir: &Path,
        device: DeviceSpec,
        cache: &mut EncoderCache,
        progress: &mut dyn FnMut(LoadStep),
    ) -> Result<Self> {
        let index = Index::open_observed(index_dir, Default::default(), &mut |p| {
            progress(LoadStep::Index(p))
        })?;
        let encoder = match index.manifest().model.is_none() {
            true => None,
            false => Some(cached_query_encoder(&index, device, cache, progress)?),
        };
        let splade = match SpladeRecord::read(index.manifest(), index.dir())? {
            None => None,
            Some(r) => {
                let key = (r.model_dir, r.weights_sha256);
                match cache.splade.iter().find(|(k, _)| *k == key) {
                    Some((_, e)) => Some(e.clone()),
                    None => {
                        let t = std::time::Instant::now();
                        let e = load_splade_encoder(&index, device)?.map(Arc::new);
                        if let Some(e) = &e {
                            cache.splade.push((key.clone(), e.clone()));
                            progress(LoadStep::Model {
                                what: "SPLADE",
                                dir: key.0,
                                seconds: t.elapsed().as_secs_f64(),
                            });
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
            encoder: Some(Arc::new(encoder)),
            splade: splade.map(Arc::new),
        })
    }

    /// The same encoders over another snapshot of the same index (after a commit).
    pub fn with_index(&self, index: Index) -> Searcher {
        Searcher {
            index,
            encoder: self.encoder.clone(),
            splade: self.splade.clone(),
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The query encoder; an error naming the index when it was built without a model.
    pub fn encoder(&self) -> Result<&ColbertEncoder> {
        self.encoder.as_deref().ok_or_else(|| Error::NoModel {
            index: self.index.dir().to_path_buf(),
        })
    }

    pub fn shared_encoder(&self) -> Option<Arc<ColbertEncoder>> {
        self.encoder.clone()
    }

    pub fn splade(&self) -> Option<&SpladeEncoder> {
        self.splade.as_deref()
    }

    pub fn shared_splade(&self) -> Option<Arc<SpladeEncoder>> {
        self.splade.clone()
    }

    pub fn encode_queries(&self, texts: &[&str]) -> Result<Vec<MultiVector>> {
        let encoder = self.encoder()?;
        let items = encoder.tokenize(texts, Role::Query)?;
        Ok(encoder.encode_tokenized(&items)?.vectors)
    }

    /// Encode one query for every stage the index has.
    pub fn encode_query(&self, text: &str) -> Result<EncodedQuery> {
        Ok(self.encode_batch(&[text])?.pop().expect("one in, one out"))
    }

    /// Encode queries for every stage the index has, batched; in input order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<EncodedQuery>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encoder = self.encoder()?;
        let items = encoder.tokenize(texts, Role::Query)?;
        let vectors = encoder.encode_tokenized(&items)?.vectors;
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
        Ok(self.search_planned(query, k, mode, params)?.0)
    }

    /// [`Searcher::search_query`], also saying what ran (the filter's cost, whether a
    /// filtered approximate stage was run exactly).
    pub fn search_planned(
        &self,
        query: &Query<'_>,
        k: usize,
        mode: &Mode,
        params: &SearchParams,
    ) -> Result<(Vec<SearchHit>, Plan)> {
        let (hits, plan) = self.index.search_planned(query, k, mode, params)?;
        let hits = hits
            .into_iter()
            .map(|h| SearchHit {
                id: self.index.doc_id(h.addr).to_string(),
                score: h.score,
                addr: h.addr,
            })
            .collect();
        Ok((hits, plan))
    }

    /// Parse a filter (Qdrant's JSON) against this index's fields.
    pub fn parse_filter(&self, value: &serde_json::Value, root: &str) -> Result<Filter> {
        Filter::parse(value, &self.index.manifest().settings.fields, root)
            .map_err(|e| Error::Filter(e.to_string()))
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
pub fn load_splade_encoder(index: &Index, device: DeviceSpec) -> Result<Option<SpladeEncoder>> {
    let Some(record) = SpladeRecord::read(index.manifest(), index.dir())? else {
        return Ok(None);
    };
    let s = &record.settings;
    let options = SpladeOptions {
        doc_max_len: Some(s.doc_max_len),
        query_max_len: Some(s.query_max_len),
        threshold: Some(s.threshold),
        doc_max_terms: s.doc_max_terms,
        batch_size: None,
    };
    let encoder = SpladeEncoder::load(&record.model_dir, &options, device)?;
    check_splade(index, &encoder)?;
    Ok(Some(encoder))
}

fn check_splade(index: &Index, encoder: &SpladeEncoder) -> Result<()> {
    let expected = SpladeRecord::read(index.manifest(), index.dir())?
        .map(|r| r.weights_sha256)
        .unwrap_or_default();
    if encoder.weights_sha256() != expected {
        return Err(Error::ModelMismatch {
            model: encoder.dir().to_path_buf(),
            expected,
            found: encoder.weights_sha256().to_string(),
        });
    }
    Ok(())
}

/// A step of [`Searcher::open_shared`].
#[derive(Debug, Clone)]
pub enum LoadStep {
    /// Segments opened and checked so far.
    Index(tessera_index::OpenProgress),
    /// A model loaded (not reported when the cache had it).
    Model {
        what: &'static str,
        dir: PathBuf,
        seconds: f64,
    },
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

/// The index's query encoder from `cache` (same model directory and weights), loaded
/// and cached otherwise.
fn cached_query_encoder(
    index: &Index,
    device: DeviceSpec,
    cache: &mut EncoderCache,
    progress: &mut dyn FnMut(LoadStep),
) -> Result<Arc<ColbertEncoder>> {
    let record = ModelRecord::read(index.manifest(), index.dir())?;
    let key = (
        record.model_dir,
        index.manifest().model.weights_sha256.clone(),
    );
    if let Some((_, e)) = cache.colbert.iter().find(|(k, _)| *k == key) {
        return Ok(e.clone());
    }
    let t = std::time::Instant::now();
    let e = Arc::new(load_query_encoder(index, None, device)?);
    cache.colbert.push((key.clone(), e.clone()));
    progress(LoadStep::Model {
        what: "ColBERT",
        dir: key.0,
        seconds: t.elapsed().as_secs_f64(),
    });
    Ok(e)
}

/// Load the index's query encoder: its recorded model directory, or `model`; the
/// recorded lengths, markers and augmentation.
pub fn load_query_encoder(
    index: &Index,
    model: Option<&Path>,
    device: DeviceSpec,
) -> Result<ColbertEncoder> {
    load_encoder(index, model, device, None)
}

/// [`load_query_encoder`] with a batch size for documents (`tessera add`).
pub fn load_encoder(
    index: &Index,
    model: Option<&Path>,
    device: DeviceSpec,
    batch_size: Option<usize>,
) -> Result<ColbertEncoder> {
    if index.manifest().model.is_none() {
        return Err(Error::NoModel {
            index: index.dir().to_path_buf(),
        });
    }
    let record = ModelRecord::read(index.manifest(), index.dir())?;
    let settings = &record.settings;
    let dir = model
        .map(Path::to_path_buf)
        .unwrap_or(record.model_dir.clone());
    let options = LoadOptions {
        query_max_len: Some(settings.query_max_len),
        doc_max_len: Some(settings.doc_max_len),
        skip_punctuation: Some(settings.skip_punctuation),
        query_augmentation: Some(settings.query_augmentation),
        batch_size,
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

/// Components as names (for reports and JSON).
pub fn component_names(index: &Index) -> Vec<String> {
    index
        .components()
        .iter()
        .map(Component::to_string)
        .collect()
}
