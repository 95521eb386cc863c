//! Writing one segment: documents stream into its store (and texts, SPLADE vectors,
//! tantivy) as they arrive; `finish` builds what needs the whole segment (PLAID codes and
//! IVF, MUVERA's graph, SPLADE postings, the id order) and returns its manifest entry.

use std::path::{Path, PathBuf};
use std::time::Instant;

use half::f16;
use roaring::RoaringBitmap;

use crate::error::{IndexError, Result};
use crate::fields::FieldsBuilder;
use crate::lexical::Bm25Builder;
use crate::plaid::{encode_segment, train_codec, PlaidCodec, PlaidSegmentWriter};
use crate::segment::{
    CodecFiles, ComponentKind, DeletesFile, FileWriter, SegmentMeta, StoreFiles, StoreKind,
};
use crate::sparse::SparseBuilder;
use crate::store::{write_id_order, StoreWriter, TextsWriter, TokenStore};
use crate::{muvera, DocExtras, IndexConfig};

/// A document's vectors as they arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Vectors<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

/// A document's PLAID data copied from the segment it is merged from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CopiedCodes<'a> {
    pub codes: &'a [u32],
    pub residuals: &'a [u8],
    /// Sum of its residual norms, estimated from the source segment's mean (the exact
    /// norms were not kept).
    pub norm_sum: Option<f64>,
}

/// What the PLAID part of a segment is made from.
#[derive(Clone, Copy)]
pub(crate) enum PlaidSource<'a> {
    /// The index has no plaid.
    None,
    /// Encode the segment's vectors with this codec.
    Encode(&'a PlaidCodec),
    /// Train a new codec (with this id) on the segment's vectors, then encode.
    Train(u64),
}

/// Seconds per part of a segment's finish.
struct Laps {
    clock: Instant,
    map: serde_json::Map<String, serde_json::Value>,
}

impl Laps {
    fn start() -> Self {
        Laps {
            clock: Instant::now(),
            map: serde_json::Map::new(),
        }
    }

    /// Record the time since the last lap (or restart) as `name`.
    fn lap(&mut self, name: &str) {
        self.set(name, self.clock.elapsed().as_secs_f64());
        self.restart();
    }

    fn restart(&mut self) {
        self.clock = Instant::now();
    }

    fn set(&mut self, name: &str, seconds: f64) {
        self.map.insert(name.into(), seconds.into());
    }
}

/// A segment being written.
pub(crate) struct SegmentBuilder {
    dir: PathBuf,
    id: u64,
    prefix: String,
    settings: IndexConfig,
    store: StoreWriter,
    texts: Option<TextsWriter>,
    splade: Option<SparseBuilder>,
    bm25: Option<Bm25Builder>,
    fields: Option<FieldsBuilder>,
    /// Codes copied from merged segments (same codec), instead of encoding at finish.
    copied_codes: Option<PlaidSegmentWriter>,
    deleted: RoaringBitmap,
    started: Instant,
}

/// Name of a segment's tombstones file written by commit `generation`.
pub(crate) fn deletes_name(segment: u64, generation: u64) -> String {
    format!("s{segment}.g{generation}.deletes")
}

/// Write a segment's tombstones as a footed, serialised roaring bitmap.
pub(crate) fn write_deletes(
    dir: &Path,
    name: &str,
    deleted: &RoaringBitmap,
) -> Result<DeletesFile> {
    let mut bytes = Vec::with_capacity(deleted.serialized_size());
    deleted
        .serialize_into(&mut bytes)
        .map_err(|e| IndexError::io(dir.join(name), e))?;
    let mut w = FileWriter::create(dir, name, ComponentKind::Deletes)?;
    w.write(&bytes)?;
    Ok(DeletesFile {
        file: w.finish()?,
        count: deleted.len() as usize,
    })
}

impl SegmentBuilder {
    /// Start segment `id`; with `copy_codes`, documents bring their PLAID codes.
    pub(crate) fn create(
        dir: &Path,
        id: u64,
        settings: &IndexConfig,
        dim: usize,
        copy_codes: Option<&PlaidCodec>,
    ) -> Result<Self> {
        let prefix = format!("s{id}");
        let store = StoreWriter::create(dir, &prefix, dim)?;
        let texts = match settings.store_text {
            true => Some(TextsWriter::create(dir, &prefix)?),
            false => None,
        };
        let bm25 = match settings.bm25 {
            true => Some(Bm25Builder::create(dir, &prefix)?),
            false => None,
        };
        let fields = match settings.fields.is_empty() {
            false => Some(FieldsBuilder::create(dir, &prefix, &settings.fields)?),
            true => None,
        };
        let copied_codes = match (copy_codes, &settings.plaid) {
            (Some(codec), Some(_)) => Some(PlaidSegmentWriter::create(dir, &prefix, codec)?),
            _ => None,
        };
        let splade = match settings.splade.clone() {
            Some(c) => Some(SparseBuilder::create(dir, &prefix, c)?),
            None => None,
        };
        Ok(SegmentBuilder {
            dir: dir.to_path_buf(),
            id,
            prefix,
            splade,
            settings: settings.clone(),
            store,
            texts,
            bm25,
            fields,
            copied_codes,
            deleted: RoaringBitmap::new(),
            started: Instant::now(),
        })
    }

    /// Documents added (tombstoned ones included).
    pub(crate) fn num_docs(&self) -> usize {
        self.store.num_docs()
    }

    pub(crate) fn num_vectors(&self) -> usize {
        self.store.num_vectors() as usize
    }

    /// Documents added and not deleted since.
    pub(crate) fn live_docs(&self) -> usize {
        self.num_docs() - self.deleted.len() as usize
    }

    /// The live document with this id in the segment.
    pub(crate) fn find(&self, id: &str) -> Option<u32> {
        self.store.find(id)
    }

    /// Refuse a document before anything is written, so components never disagree
    /// about which documents exist (the id's uniqueness is the caller's to check).
    pub(crate) fn check(
        &self,
        id: &str,
        vectors: Vectors<'_>,
        extras: &DocExtras<'_>,
    ) -> Result<()> {
        match vectors {
            Vectors::F32(v) => self.store.check_f32(id, v)?,
            Vectors::F16(v) => self.store.check_f16(id, v)?,
        }
        if self.splade.is_some() && extras.sparse.is_none() {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: the index builds splade but no sparse vector was given"
            )));
        }
        if (self.bm25.is_some() || self.texts.is_some()) && extras.text.is_none() {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: the index keeps texts or builds bm25 but no text was given"
            )));
        }
        if let (Some(b), Some(v)) = (&self.splade, extras.sparse) {
            b.check(v)?;
        }
        self.checked_fields(id, extras)?;
        Ok(())
    }

    /// The document's field values checked against the schema (as they are stored).
    fn checked_fields(&self, id: &str, extras: &DocExtras<'_>) -> Result<crate::FieldValues> {
        let empty = crate::FieldValues::new();
        let given = extras.fields.unwrap_or(&empty);
        if self.settings.fields.is_empty() {
            return match given.keys().next() {
                None => Ok(empty),
                Some(k) => Err(IndexError::InvalidArgument(format!(
                    "document {id:?}: field {k:?} given but the index declares no fields"
                ))),
            };
        }
        self.settings
            .fields
            .check(given)
            .map_err(|e| IndexError::InvalidArgument(format!("document {id:?}: {e}")))
    }

    /// Append a document; returns its number. `codes` (codes, packed residuals and, when
    /// known, the sum of the residual norms) are required when the builder copies codes,
    /// ignored otherwise.
    pub(crate) fn add(
        &mut self,
        id: &str,
        vectors: Vectors<'_>,
        extras: DocExtras<'_>,
        codes: Option<CopiedCodes<'_>>,
    ) -> Result<u32> {
        self.check(id, vectors, &extras)?;
        let doc = self.store.num_docs() as u32;
        match vectors {
            Vectors::F32(v) => self.store.add(id, v)?,
            Vectors::F16(v) => self.store.add_f16(id, v)?,
        }
        if let (Some(b), Some(v)) = (&mut self.splade, extras.sparse) {
            b.add(v)?;
        }
        if let (Some(b), Some(t)) = (&mut self.bm25, extras.text) {
            b.add(t)?;
        }
        if let (Some(w), Some(t)) = (&mut self.texts, extras.text) {
            w.add(t)?;
        }
        if self.fields.is_some() {
            let values = self.checked_fields(id, &extras)?;
            if let Some(f) = &mut self.fields {
                f.add(&values)?;
            }
        }
        if let Some(w) = &mut self.copied_codes {
            let c = codes.expect("a merge brings every document's codes");
            w.add_doc(c.codes, c.residuals, c.norm_sum)?;
        }
        Ok(doc)
    }

    /// Tombstone document `doc` of this segment before it commits; its id may be added
    /// again.
    pub(crate) fn delete(&mut self, doc: u32) {
        self.deleted.insert(doc);
        let id = self.store.id(doc as usize).to_string();
        if self.store.find(&id) == Some(doc) {
            self.store.forget(&id);
        }
    }

    /// Finish every file of the segment (commit `generation`); returns its manifest entry
    /// and, with [`PlaidSource::Train`], the codec trained on it.
    pub(crate) fn finish(
        self,
        plaid: PlaidSource<'_>,
        generation: u64,
        build: serde_json::Value,
    ) -> Result<(SegmentMeta, Option<CodecFiles>)> {
        let dir = self.dir.clone();
        // Seconds per part of the finish, kept in the segment's build record ("stages").
        let mut stages = Laps::start();
        let num_docs = self.store.num_docs();
        let num_vectors = self.store.num_vectors() as usize;
        let dim = self.store.dim();
        let ids_entry = write_id_order(&dir, &self.prefix, &self.store.id_list())?;
        let mut store_files = self.store.finish()?;
        store_files.texts = match self.texts {
            Some(w) => Some(w.finish()?),
            None => None,
        };
        let needs_reader = self.settings.muvera.is_some()
            || (self.settings.plaid.is_some() && self.copied_codes.is_none());
        let reader = if needs_reader {
            Some(TokenStore::open(
                &dir,
                &store_files,
                dim,
                num_docs,
                num_vectors,
                false,
            )?)
        } else {
            None
        };
        stages.lap("store");
        let mut trained = None;
        let plaid_files = match (self.copied_codes, &self.settings.plaid, plaid) {
            (Some(w), _, _) => {
                let (files, ivf) = w.finish_timed()?;
                stages.set("plaid_ivf", ivf);
                Some(files)
            }
            (None, Some(cfg), PlaidSource::Encode(codec)) => {
                let (files, t) = encode_segment(
                    &dir,
                    &self.prefix,
                    reader.as_ref().expect("opened"),
                    codec,
                    cfg.assign_probe,
                )?;
                stages.set("plaid_encode", t.encode);
                stages.set("plaid_ivf", t.ivf);
                Some(files)
            }
            (None, Some(cfg), PlaidSource::Train(codec_id)) => {
                let store = reader.as_ref().expect("opened");
                let train_started = Instant::now();
                let mut files = train_codec(&dir, codec_id, store, cfg, generation)?;
                stages.set("plaid_train", train_started.elapsed().as_secs_f64());
                let codec = PlaidCodec::open(&dir, &files, dim, false)?;
                let (seg, t) = encode_segment(&dir, &self.prefix, store, &codec, cfg.assign_probe)?;
                stages.set("plaid_encode", t.encode);
                stages.set("plaid_ivf", t.ivf);
                // Drift is measured against the vectors the codec was trained on, encoded
                // the same way later segments are (the held-out sample's norm, computed
                // at training, is kept in the build record).
                if let Some(n) = seg.mean_residual_norm {
                    files.build["heldout_residual_norm"] = files.mean_residual_norm.into();
                    files.mean_residual_norm = Some(n);
                }
                trained = Some(files);
                Some(seg)
            }
            (None, Some(_), PlaidSource::None) => {
                return Err(IndexError::InvalidArgument(
                    "the index has plaid but no codec was given for a new segment".into(),
                ))
            }
            (None, None, _) => None,
        };
        stages.restart();
        let muvera_files = match &self.settings.muvera {
            Some(cfg) => Some(muvera::build_segment(
                &dir,
                &self.prefix,
                reader.as_ref().expect("opened"),
                cfg,
            )?),
            None => None,
        };
        if muvera_files.is_some() {
            stages.lap("muvera");
        }
        // The f16 vectors were written for the codes and the graph; a compact store keeps
        // int8 rows made from them, or nothing.
        if self.settings.store != StoreKind::F16 {
            let f16_file = store_files
                .vectors
                .take()
                .expect("the writer wrote f16 rows");
            if self.settings.store == StoreKind::Int8 {
                let reader = match reader {
                    Some(r) => r,
                    None => TokenStore::open(
                        &dir,
                        &StoreFiles {
                            vectors: Some(f16_file.clone()),
                            ..store_files.clone()
                        },
                        dim,
                        num_docs,
                        num_vectors,
                        false,
                    )?,
                };
                store_files.vectors = Some(crate::store::write_int8(&dir, &self.prefix, &reader)?);
            } else {
                drop(reader);
            }
            store_files.kind = self.settings.store;
            std::fs::remove_file(dir.join(&f16_file.name))
                .map_err(|e| IndexError::io(dir.join(&f16_file.name), e))?;
        }
        if self.settings.store != StoreKind::F16 {
            stages.lap("compact_store");
        }
        stages.restart();
        let splade = match self.splade {
            Some(b) => Some(b.finish(&dir, &self.prefix)?),
            None => None,
        };
        if splade.is_some() {
            stages.lap("splade");
        }
        let bm25 = match self.bm25 {
            Some(b) => Some(b.finish(&dir)?),
            None => None,
        };
        if bm25.is_some() {
            stages.lap("bm25");
        }
        let fields = match self.fields {
            Some(b) => Some(b.finish(&dir)?),
            None => None,
        };
        let deletes = match self.deleted.is_empty() {
            true => None,
            false => Some(write_deletes(
                &dir,
                &deletes_name(self.id, generation),
                &self.deleted,
            )?),
        };
        let codec_id = trained.as_ref().map(|c| c.id).or(match plaid {
            PlaidSource::Encode(c) => Some(c.id()),
            _ => None,
        });
        let mut build = build;
        if let Some(obj) = build.as_object_mut() {
            obj.insert(
                "seconds".into(),
                self.started.elapsed().as_secs_f64().into(),
            );
            obj.insert("finish_seconds".into(), stages.map.into());
        }
        let meta = SegmentMeta {
            id: self.id,
            num_docs,
            num_vectors,
            codec: plaid_files.as_ref().and(codec_id),
            store: store_files,
            ids: Some(ids_entry),
            plaid: plaid_files,
            muvera: muvera_files,
            splade,
            bm25,
            fields,
            deletes,
            generation,
            build,
        };
        Ok((meta, trained))
    }
}
