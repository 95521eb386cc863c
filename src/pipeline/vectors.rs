//! Pre-encoded vectors in: `tessera index --vectors DIR`. DIR holds `vectors.npy` (f16
//! or f32, `[n_tokens, dim]`, C order), `offsets.npy` (int64, `[n_docs + 1]`, from 0 to
//! n_tokens, increasing), `ids.txt` (one id per line) and optionally `texts.jsonl`
//! (`{"id", "text"}`, for results and bm25). The rows stream from the file one document
//! at a time, so memory holds the offsets and ids, not the vectors.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use tessera_index::{DocExtras, IndexWriter};

use crate::{Error, Result};

/// One document's rows as vectors.npy holds them.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    F16(&'a [half::f16]),
    F32(&'a [f32]),
}

/// The files of a vectors directory, checked against each other (not yet the rows).
pub struct VectorsDir {
    dir: PathBuf,
    pub dim: usize,
    pub offsets: Vec<u64>,
    pub ids: Vec<String>,
    pub texts: Option<HashMap<String, String>>,
    f16: bool,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{}: {reason}", path.display()))
}

fn open_npy(path: &Path) -> Result<npyz::NpyFile<BufReader<File>>> {
    let file = File::open(path).map_err(|e| Error::Io {
        what: format!("opening {}", path.display()),
        source: e,
    })?;
    npyz::NpyFile::new(BufReader::new(file)).map_err(|e| bad(path, format!("not a .npy file: {e}")))
}

/// Whether a C-order matrix file holds f16 (else f32); any other dtype or Fortran order
/// is an error naming the file.
fn is_f16_matrix(path: &Path, npy: &npyz::NpyFile<BufReader<File>>) -> Result<bool> {
    if npy.order() != npyz::Order::C {
        return Err(bad(
            path,
            "Fortran order: write it in C order (np.ascontiguousarray)",
        ));
    }
    let descr = npy.dtype().descr();
    match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f2" => Ok(true),
        "<f4" => Ok(false),
        other => Err(bad(
            path,
            format!("dtype {other}: expected little-endian f16 (<f2) or f32 (<f4)"),
        )),
    }
}

impl VectorsDir {
    /// Read and check the offsets, ids and texts; `dim` is the model's (or the index's)
    /// dimension, `None` to take vectors.npy's (an index without a model).
    pub fn open(dir: &Path, dim: Option<usize>) -> Result<Self> {
        let vpath = dir.join("vectors.npy");
        let npy = open_npy(&vpath)?;
        let f16 = is_f16_matrix(&vpath, &npy)?;
        let shape = npy.shape().to_vec();
        let dim = match (shape.len(), dim) {
            (2, Some(d)) if shape[1] as usize == d => d,
            (2, None) if shape[1] > 0 => shape[1] as usize,
            (_, Some(d)) => {
                return Err(bad(
                    &vpath,
                    format!("shape {shape:?}: expected [n_tokens, {d}] (the model's dimension)"),
                ))
            }
            (_, None) => {
                return Err(bad(
                    &vpath,
                    format!("shape {shape:?}: expected [n_tokens, dim]"),
                ))
            }
        };
        let n_tokens = shape[0];

        let opath = dir.join("offsets.npy");
        let onpy = open_npy(&opath)?;
        if onpy.shape().len() != 1 {
            return Err(bad(
                &opath,
                format!("shape {:?}: expected [n_docs + 1]", onpy.shape()),
            ));
        }
        let offsets: Vec<i64> = onpy
            .into_vec()
            .map_err(|e| bad(&opath, format!("expected int64 values: {e}")))?;
        if offsets.len() < 2 || offsets[0] != 0 || *offsets.last().unwrap() as u64 != n_tokens {
            return Err(bad(
                &opath,
                format!(
                    "offsets must run from 0 to the {n_tokens} rows of vectors.npy, with at least one document; found {} values from {:?} to {:?}",
                    offsets.len(),
                    offsets.first(),
                    offsets.last()
                ),
            ));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] <= w[0]) {
            return Err(bad(
                &opath,
                format!("document {i} has no rows (offsets must increase)"),
            ));
        }
        let offsets: Vec<u64> = offsets.into_iter().map(|o| o as u64).collect();

        let ipath = dir.join("ids.txt");
        let text = std::fs::read_to_string(&ipath).map_err(|e| Error::Io {
            what: format!("reading {}", ipath.display()),
            source: e,
        })?;
        let ids: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        if ids.len() != offsets.len() - 1 {
            return Err(bad(
                &ipath,
                format!(
                    "{} ids for the {} documents of offsets.npy",
                    ids.len(),
                    offsets.len() - 1
                ),
            ));
        }
        if let Some(i) = ids.iter().position(|id| id.is_empty()) {
            return Err(bad(&ipath, format!("line {}: empty id", i + 1)));
        }

        let tpath = dir.join("texts.jsonl");
        let texts = if tpath.exists() {
            let f = File::open(&tpath).map_err(|e| Error::Io {
                what: format!("opening {}", tpath.display()),
                source: e,
            })?;
            let mut map = HashMap::new();
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| bad(&tpath, format!("line {}: {e}", i + 1)))?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| bad(&tpath, format!("line {}: {e}", i + 1)))?;
                match (v["id"].as_str(), v["text"].as_str()) {
                    (Some(id), Some(t)) => {
                        map.insert(id.to_string(), t.to_string());
                    }
                    _ => {
                        return Err(bad(
                            &tpath,
                            format!(
                                "line {}: expected {{\"id\": string, \"text\": string}}",
                                i + 1
                            ),
                        ))
                    }
                }
            }
            if let Some(id) = ids.iter().find(|id| !map.contains_key(*id)) {
                return Err(bad(&tpath, format!("no text for id {id:?}")));
            }
            Some(map)
        } else {
            None
        };
        Ok(VectorsDir {
            dir: dir.to_path_buf(),
            dim,
            offsets,
            ids,
            texts,
            f16,
        })
    }

    /// Add (or with `upsert`, upsert) every document to `writer`, rows streamed from
    /// vectors.npy; returns the number of vectors and of documents that replaced a live one.
    pub fn feed(&self, writer: &mut IndexWriter, upsert: bool) -> Result<(usize, usize)> {
        let settings = writer.settings();
        if settings.splade.is_some() {
            return Err(Error::Usage(
                "--vectors: this index has splade, which needs each document's SPLADE vector; \
                 add these documents from a corpus"
                    .into(),
            ));
        }
        if (settings.store_text || settings.bm25) && self.texts.is_none() {
            return Err(bad(
                &self.dir,
                "this index keeps texts (or has bm25): add texts.jsonl ({\"id\", \"text\"} per line)",
            ));
        }
        let mut replaced = 0;
        let vpath = self.dir.join("vectors.npy");
        self.each_doc(|_, id, row| {
            let extras = DocExtras {
                text: self.texts.as_ref().map(|t| t[id].as_str()),
                ..Default::default()
            };
            if upsert {
                replaced += usize::from(writer.contains(id));
            }
            let put = match (row, upsert) {
                (Rows::F16(h), true) => writer.upsert_f16_with(id, h, extras),
                (Rows::F16(h), false) => writer.add_f16_with(id, h, extras),
                (Rows::F32(s), true) => writer.upsert_with(id, s, extras),
                (Rows::F32(s), false) => writer.add_with(id, s, extras),
            };
            put.map_err(|e| bad(&vpath, format!("document {id:?}: {e}")))
        })?;
        Ok((*self.offsets.last().unwrap() as usize, replaced))
    }

    /// Every document in order, its rows (`[n, dim]` row-major, as the file holds
    /// them) read from vectors.npy in bulk: `f(number, id, rows)`. A value that is not
    /// finite is an error naming the row. (npyz reads the header; the payload, checked
    /// at `open` to be little-endian f16 or f32 in C order, is read whole rows at a time:
    /// npyz's element iterator took ~30 ns a value, which at 20 M x 384 was minutes.)
    pub fn each_doc(&self, mut f: impl FnMut(usize, &str, Rows<'_>) -> Result<()>) -> Result<()> {
        use std::io::Read;
        let vpath = self.dir.join("vectors.npy");
        let file = File::open(&vpath).map_err(|e| Error::Io {
            what: format!("opening {}", vpath.display()),
            source: e,
        })?;
        let mut r = BufReader::with_capacity(1 << 22, file);
        npyz::NpyHeader::from_reader(&mut r)
            .map_err(|e| bad(&vpath, format!("not a .npy file: {e}")))?;
        let (mut h, mut s): (Vec<half::f16>, Vec<f32>) = (Vec::new(), Vec::new());
        for (d, id) in self.ids.iter().enumerate() {
            let n = (self.offsets[d + 1] - self.offsets[d]) as usize * self.dim;
            let read = |r: &mut BufReader<File>, bytes: &mut [u8]| {
                r.read_exact(bytes).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => bad(&vpath, "ends before the last offset"),
                    _ => bad(&vpath, e),
                })
            };
            let bad_value = |i: usize, v: f32| {
                bad(
                    &vpath,
                    format!(
                        "row {} of document {id:?} holds {v}",
                        self.offsets[d] as usize + i / self.dim
                    ),
                )
            };
            if self.f16 {
                h.resize(n, half::f16::ZERO);
                read(&mut r, bytemuck::cast_slice_mut(&mut h))?;
                if let Some(i) = h.iter().position(|v| !v.is_finite()) {
                    return Err(bad_value(i, h[i].to_f32()));
                }
                f(d, id, Rows::F16(&h))?;
            } else {
                s.resize(n, 0.0);
                read(&mut r, bytemuck::cast_slice_mut(&mut s))?;
                if let Some(i) = s.iter().position(|v| !v.is_finite()) {
                    return Err(bad_value(i, s[i]));
                }
                f(d, id, Rows::F32(&s))?;
            }
        }
        Ok(())
    }

    /// Every document's rows in memory (query sets: `eval --query-vectors`).
    pub fn read_all(&self) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(self.ids.len());
        self.each_doc(|_, _, rows| {
            out.push(match rows {
                Rows::F16(h) => h.iter().map(|x| x.to_f32()).collect(),
                Rows::F32(s) => s.to_vec(),
            });
            Ok(())
        })?;
        Ok(out)
    }
}

/// A `[n, dim]` f16 or f32 `.npy` matrix as f32 rows (`tessera search --query-vectors`).
pub fn read_matrix(path: &Path, dim: usize) -> Result<Vec<f32>> {
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 || shape[1] as usize != dim || shape[0] == 0 {
        return Err(bad(
            path,
            format!("shape {shape:?}: expected [n_tokens >= 1, {dim}] (the index's dimension)"),
        ));
    }
    let values: Vec<f32> = if is_f16_matrix(path, &npy)? {
        npy.into_vec::<half::f16>()
            .map_err(|e| bad(path, e))?
            .into_iter()
            .map(|v| v.to_f32())
            .collect()
    } else {
        npy.into_vec::<f32>().map_err(|e| bad(path, e))?
    };
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(bad(path, format!("holds {v}")));
    }
    Ok(values)
}
