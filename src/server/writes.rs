//! Writes over HTTP: add, upsert and delete documents.
//!
//! Each writable index has one writer thread owning its [`IndexWriter`] (and so the
//! index's writer lock, for as long as the server runs). Handlers validate and encode
//! documents on the blocking pool, then send them to the thread; the thread takes every
//! request that arrives within `group_window` of the first (group commit), applies them
//! in order, commits once, publishes the new snapshot, and only then answers each
//! request: a write returns once it is committed and visible to the next search. A
//! request is all or nothing: it is checked against the index and the batch before any
//! of its documents is applied. Searches never wait for a write or a merge: they use
//! the snapshot they started with.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tessera_index::{DocExtras, IndexWriter, SparseVector};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorCode};
use crate::search::Searcher;

/// Requests taken into one commit at most.
const MAX_GROUP: usize = 256;

/// A document ready for the writer: encoded, checked.
pub struct ReadyDoc {
    pub id: String,
    pub vectors: Vec<f32>,
    pub text: Option<String>,
    pub sparse: Option<SparseVector>,
    pub fields: tessera_index::FieldValues,
}

pub enum WriteOp {
    Put { docs: Vec<ReadyDoc>, upsert: bool },
    Delete { ids: Vec<String> },
}

/// What a write did, once committed.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WriteOutcome {
    /// The commit that made the write visible (unchanged if nothing changed).
    pub generation: u64,
    /// Documents added whose id was new.
    pub added: usize,
    /// Documents that replaced a live one with the same id (upsert).
    pub replaced: usize,
    pub deleted: usize,
    /// Ids of a delete that no live document has.
    pub not_found: Vec<String>,
    /// Requests committed together with this one (group commit), this one included.
    pub group: usize,
}

struct Job {
    op: WriteOp,
    reply: tokio::sync::oneshot::Sender<Result<WriteOutcome, ApiError>>,
}

/// Sends writes to an index's writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Open the index's writer (taking its lock) and start its thread; every commit's
    /// snapshot is published into `current`.
    pub fn spawn(
        name: &str,
        dir: PathBuf,
        current: Arc<RwLock<Searcher>>,
        group_window: Duration,
    ) -> crate::Result<WriterHandle> {
        let mut writer = IndexWriter::open(&dir)?;
        crate::cli::write::cap_merges(&mut writer, None);
        let (tx, rx) = mpsc::channel::<Job>();
        let name = name.to_string();
        std::thread::Builder::new()
            .name(format!("writer {name}"))
            .spawn(move || run(writer, dir, rx, current, group_window))
            .map_err(|e| crate::Error::Io {
                what: format!("starting the writer of {name}"),
                source: e,
            })?;
        Ok(WriterHandle { tx })
    }

    /// Hand `op` to the writer; resolves once it is committed (or refused).
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .map_err(|_| unavailable("the index's writer has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the index's writer stopped before answering"))?
    }
}

fn unavailable(why: &str) -> ApiError {
    ApiError::new(ErrorCode::WriterUnavailable, why.to_string())
}

fn run(
    mut writer: IndexWriter,
    dir: PathBuf,
    rx: mpsc::Receiver<Job>,
    current: Arc<RwLock<Searcher>>,
    group_window: Duration,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let until = Instant::now() + group_window;
        while jobs.len() < MAX_GROUP {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut outcomes: Vec<Result<WriteOutcome, ApiError>> =
            jobs.iter().map(|j| apply(&mut writer, &j.op)).collect();
        if writer.has_changes() {
            let committed = writer.commit(serde_json::json!({"by": "tessera serve"}));
            match committed {
                Ok(manifest) => {
                    if let Some(snapshot) = writer.snapshot() {
                        let mut cur = current.write().unwrap_or_else(|e| e.into_inner());
                        *cur = cur.with_index(snapshot.clone());
                    }
                    for o in outcomes.iter_mut().flatten() {
                        o.generation = manifest.generation;
                    }
                }
                Err(e) => {
                    let msg = format!("the commit failed, nothing of this write was kept: {e}");
                    eprintln!("error: {}: {msg}", dir.display());
                    for o in outcomes.iter_mut() {
                        if o.is_ok() {
                            *o = Err(ApiError::new(ErrorCode::Internal, msg.clone()));
                        }
                    }
                    // Start again from the last commit.
                    drop(writer);
                    writer = match IndexWriter::open(&dir) {
                        Ok(mut w) => {
                            crate::cli::write::cap_merges(&mut w, None);
                            w
                        }
                        Err(e) => {
                            eprintln!("error: {}: the writer cannot reopen: {e}", dir.display());
                            reply_all(jobs, outcomes);
                            return;
                        }
                    };
                }
            }
        } else {
            let generation = writer.committed().map_or(0, |m| m.generation);
            for o in outcomes.iter_mut().flatten() {
                o.generation = generation;
            }
        }
        reply_all(jobs, outcomes);
    }
}

fn reply_all(jobs: Vec<Job>, outcomes: Vec<Result<WriteOutcome, ApiError>>) {
    let group = jobs.len();
    for (job, mut outcome) in jobs.into_iter().zip(outcomes) {
        if let Ok(o) = &mut outcome {
            o.group = group;
        }
        let _ = job.reply.send(outcome);
    }
}

/// Apply one request to the batch, all or nothing: every check first.
fn apply(writer: &mut IndexWriter, op: &WriteOp) -> Result<WriteOutcome, ApiError> {
    match op {
        WriteOp::Put { docs, upsert } => {
            let mut seen = std::collections::HashSet::new();
            let mut replaced = 0;
            for d in docs {
                if !seen.insert(d.id.as_str()) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidDocument,
                        format!("document {:?} appears twice in the request", d.id),
                    ));
                }
                if writer.contains(&d.id) {
                    if !upsert {
                        return Err(ApiError::new(
                            ErrorCode::DocumentExists,
                            format!(
                                "document {:?} is already in the index; send \"upsert\": true to replace it",
                                d.id
                            ),
                        ));
                    }
                    replaced += 1;
                }
            }
            for d in docs {
                let extras = DocExtras {
                    text: d.text.as_deref(),
                    sparse: d.sparse.as_ref(),
                    fields: Some(&d.fields),
                };
                let r = if *upsert {
                    writer.upsert_with(&d.id, &d.vectors, extras)
                } else {
                    writer.add_with(&d.id, &d.vectors, extras)
                };
                r.map_err(|e| {
                    ApiError::new(
                        ErrorCode::InvalidDocument,
                        format!("document {:?}: {e}", d.id),
                    )
                })?;
            }
            Ok(WriteOutcome {
                added: docs.len() - replaced,
                replaced,
                ..WriteOutcome::default()
            })
        }
        WriteOp::Delete { ids } => {
            let report = writer.delete(ids);
            Ok(WriteOutcome {
                deleted: report.deleted,
                not_found: report.not_found,
                ..WriteOutcome::default()
            })
        }
    }
}

/// `POST /indexes/{name}/documents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentsRequest {
    /// The documents, up to `--max-write-docs`.
    #[serde(deserialize_with = "super::error::objects")]
    pub documents: Vec<NewDocument>,
    /// Replace live documents with the same ids (otherwise such an id is an error).
    #[serde(default)]
    pub upsert: bool,
}

/// One document to write: its text (encoded by the index's models), or pre-encoded
/// token vectors (rows of the index's dimension), or both (the text is then kept and
/// used by bm25/splade, the vectors by MaxSim).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    pub id: String,
    pub text: Option<String>,
    pub vectors: Option<Vec<Vec<f32>>>,
    /// Metadata field values (an object; keys are the index's declared fields, values
    /// of their types or lists of them; dates as RFC 3339 strings).
    #[schema(value_type = Option<Object>)]
    pub fields: Option<tessera_index::FieldValues>,
}

/// `POST /indexes/{name}/documents/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WriteResponse {
    pub index: String,
    #[serde(flatten)]
    pub outcome: WriteOutcome,
    /// Server time: validation, encoding, waiting for the commit.
    pub took_ms: f64,
}
