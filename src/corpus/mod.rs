//! Document readers. A corpus is JSONL: BEIR's `corpus.jsonl` (`_id`, `title`, `text`) or
//! any JSONL whose id and text fields are named by a [`CorpusFormat`]. A BEIR dataset
//! directory is accepted in place of its `corpus.jsonl`.
//!
//! Malformed lines are never dropped silently: with [`OnMalformed::Fail`] the first one
//! stops the read with its line number; with [`OnMalformed::Skip`] each is reported to
//! the caller (who prints it) and reading goes on.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The UTF-8 byte-order mark, accepted (and dropped) at the start of a corpus.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One document: external id and the text to encode (text fields joined by a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub text: String,
    /// Metadata field values (those the format declares), checked.
    pub fields: tessera_index::FieldValues,
    /// 1-based line number in the corpus file.
    pub line: usize,
}

/// Which JSON fields hold the id and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFormat {
    pub id_field: String,
    /// Joined in this order with single spaces, skipping missing or empty ones.
    pub text_fields: Vec<String>,
    /// Metadata fields read from each record's top-level keys or its `metadata` object
    /// (BEIR); a value of the wrong type makes the line malformed.
    pub fields: tessera_index::FieldSchema,
}

impl Default for CorpusFormat {
    /// BEIR: `_id`, then `title` + `text`.
    fn default() -> Self {
        CorpusFormat {
            id_field: "_id".into(),
            text_fields: vec!["title".into(), "text".into()],
            fields: Default::default(),
        }
    }
}

/// What to do with a line that is not a valid document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMalformed {
    #[default]
    Fail,
    Skip,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: not a JSONL file nor a directory with corpus.jsonl")]
    NotFound { path: PathBuf },
}

/// A skipped line, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// Resolve a corpus argument: a JSONL file, or a BEIR directory holding `corpus.jsonl`.
pub fn resolve_corpus_path(path: &Path) -> Result<PathBuf, CorpusError> {
    if path.is_dir() {
        let p = path.join("corpus.jsonl");
        if p.is_file() {
            return Ok(p);
        }
    } else if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(CorpusError::NotFound {
        path: path.to_path_buf(),
    })
}

/// Count lines (for a progress bar's length) without parsing them.
pub fn count_lines(path: &Path) -> Result<usize, CorpusError> {
    let io = |e| CorpusError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let mut n = 0;
    loop {
        let buf = r.fill_buf().map_err(io)?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += buf.iter().filter(|&&b| b == b'\n').count();
        let len = buf.len();
        r.consume(len);
    }
}

/// Streams documents from a JSONL file.
pub struct JsonlReader {
    path: PathBuf,
    reader: BufReader<File>,
    format: CorpusFormat,
    policy: OnMalformed,
    line: usize,
    buf: Vec<u8>,
    seen: HashSet<String>,
    skipped: Vec<Skipped>,
    failed: bool,
}

impl JsonlReader {
    pub fn open(
        path: &Path,
        format: CorpusFormat,
        policy: OnMalformed,
    ) -> Result<Self, CorpusError> {
        let file = File::open(path).map_err(|e| CorpusError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(JsonlReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            format,
            policy,
            line: 0,
            buf: Vec::new(),
            seen: HashSet::new(),
            skipped: Vec::new(),
            failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines skipped so far (only with [`OnMalformed::Skip`]).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Take the skipped lines reported since the last call.
    pub fn drain_skipped(&mut self) -> Vec<Skipped> {
        std::mem::take(&mut self.skipped)
    }

    fn parse(&mut self) -> Result<Document, String> {
        let text = std::str::from_utf8(&self.buf).map_err(|e| format!("invalid UTF-8: {e}"))?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())?;
        let id = match obj.get(&self.format.id_field) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(_)) => {
                return Err(format!("field {:?} is empty", self.format.id_field))
            }
            Some(_) => {
                return Err(format!(
                    "field {:?} must be a string or number",
                    self.format.id_field
                ))
            }
            None => return Err(format!("missing id field {:?}", self.format.id_field)),
        };
        let mut parts = Vec::new();
        let mut present = 0;
        for field in &self.format.text_fields {
            match obj.get(field) {
                Some(Value::String(s)) => {
                    present += 1;
                    if !s.trim().is_empty() {
                        parts.push(s.trim());
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => return Err(format!("field {field:?} must be a string")),
            }
        }
        if present == 0 {
            return Err(format!(
                "none of the text fields {:?} is present",
                self.format.text_fields
            ));
        }
        let fields = self.format.fields.check(&self.format.fields.extract(obj))?;
        if !self.seen.insert(id.clone()) {
            return Err(format!("duplicate document id {id:?}"));
        }
        Ok(Document {
            id,
            text: parts.join(" "),
            fields,
            line: self.line,
        })
    }
}

impl Iterator for JsonlReader {
    type Item = Result<Document, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(CorpusError::Io {
                        path: self.path.clone(),
                        source: e,
                    }));
                }
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            // Editors (Notepad, Excel's "UTF-8" export) start files with a byte-order mark.
            if self.line == 1 && self.buf.starts_with(UTF8_BOM) {
                self.buf.drain(..UTF8_BOM.len());
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue; // blank lines separate nothing in JSONL; not an error
            }
            match self.parse() {
                Ok(doc) => return Some(Ok(doc)),
                Err(reason) => match self.policy {
                    OnMalformed::Skip => self.skipped.push(Skipped {
                        line: self.line,
                        reason,
                    }),
                    OnMalformed::Fail => {
                        self.failed = true;
                        return Some(Err(CorpusError::Malformed {
                            path: self.path.clone(),
                            line: self.line,
                            reason,
                        }));
                    }
                },
            }
        }
    }
}
