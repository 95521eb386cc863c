use std::path::Path;

use half::f16;

use super::MultiVectorRef;
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, MappedFile, StoreFiles, StoreKind};

/// The vectors file of a store, as its kind says.
enum Rows {
    F16(MappedFile),
    /// int8 values, then (from byte `scales_at`) one f32 scale per vector.
    Int8 {
        file: MappedFile,
        scales_at: usize,
    },
    None,
}

/// One document's vectors as the store keeps them.
#[derive(Clone, Copy)]
pub enum DocRows<'a> {
    F16(MultiVectorRef<'a, f16>),
    /// Row `r` is `values.row(r) * scales[r]`.
    Int8 {
        values: MultiVectorRef<'a, i8>,
        scales: &'a [f32],
    },
    /// Not kept (`StoreKind::None`): the document has this many vectors.
    Missing {
        len: usize,
    },
}

impl DocRows<'_> {
    pub fn len(&self) -> usize {
        match self {
            DocRows::F16(m) => m.len(),
            DocRows::Int8 { values, .. } => values.len(),
            DocRows::Missing { len } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as f32 into `out` (cleared first); false when they are not kept.
    pub fn to_f32(&self, out: &mut Vec<f32>) -> bool {
        out.clear();
        match self {
            DocRows::F16(m) => out.extend(m.as_slice().iter().map(|v| v.to_f32())),
            DocRows::Int8 { values, scales } => {
                for (row, &s) in values.rows().zip(scales.iter()) {
                    out.extend(row.iter().map(|&v| f32::from(v) * s));
                }
            }
            DocRows::Missing { .. } => return false,
        }
        true
    }
}

/// Byte where an int8 vectors payload's scales start: after the values, padded to 4.
pub(crate) fn int8_scales_at(num_vectors: usize, dim: usize) -> usize {
    (num_vectors * dim).div_ceil(4) * 4
}

/// Read side of the token store, straight off memory maps. Every offset is checked once
/// at open, so `doc(i)` for `i < num_docs()` never fails and never copies.
pub struct TokenStore {
    dim: usize,
    num_docs: usize,
    num_vectors: usize,
    vectors: Rows,
    offsets: MappedFile,
    ids: MappedFile,
    /// Byte ranges of the ids inside the ids payload start at `ids_base`.
    ids_base: usize,
    texts: Option<super::DocTexts>,
}

impl TokenStore {
    /// Map and validate the store files listed in a manifest.
    pub fn open(
        dir: &Path,
        files: &StoreFiles,
        dim: usize,
        num_docs: usize,
        num_vectors: usize,
        verify_checksums: bool,
    ) -> Result<Self> {
        let vectors = match (files.kind, &files.vectors) {
            (StoreKind::None, _) => Rows::None,
            (kind, None) => {
                return Err(IndexError::corrupt(
                    dir,
                    format!(
                        "the manifest lists no vectors file for a {} store",
                        kind.as_str()
                    ),
                ))
            }
            (StoreKind::F16, Some(entry)) => {
                let file = MappedFile::open(dir, entry, ComponentKind::Vectors, verify_checksums)?;
                let expect = num_vectors
                    .checked_mul(dim)
                    .and_then(|v| v.checked_mul(2))
                    .ok_or_else(|| IndexError::corrupt(file.path(), "vector count overflows"))?;
                if file.payload().len() != expect {
                    return Err(IndexError::corrupt(
                        file.path(),
                        format!(
                            "holds {} bytes, expected {num_vectors} vectors x {dim} dims x 2 = {expect}",
                            file.payload().len()
                        ),
                    ));
                }
                cast_f16(file.path(), file.payload())?;
                Rows::F16(file)
            }
            (StoreKind::Int8, Some(entry)) => {
                let file =
                    MappedFile::open(dir, entry, ComponentKind::VectorsI8, verify_checksums)?;
                let scales_at = int8_scales_at(num_vectors, dim);
                let expect = scales_at + 4 * num_vectors;
                if file.payload().len() != expect {
                    return Err(IndexError::corrupt(
                        file.path(),
                        format!(
                            "holds {} bytes, expected {num_vectors} int8 vectors x {dim} dims \
                             plus padding and {num_vectors} f32 scales = {expect}",
                            file.payload().len()
                        ),
                    ));
                }
                let scales: &[f32] = bytemuck::try_cast_slice(&file.payload()[scales_at..])
                    .map_err(|e| IndexError::corrupt(file.path(), format!("scales: {e}")))?;
                if let Some(i) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
                    return Err(IndexError::corrupt(
                        file.path(),
                        format!("vector {i} has scale {}", scales[i]),
                    ));
                }
                Rows::Int8 { file, scales_at }
            }
        };
        let offsets = MappedFile::open(
            dir,
            &files.offsets,
            ComponentKind::Offsets,
            verify_checksums,
        )?;
        let ids = MappedFile::open(dir, &files.doc_ids, ComponentKind::DocIds, verify_checksums)?;

        let offs = cast_u64(offsets.path(), offsets.payload())?;
        if offs.len() != num_docs + 1 {
            return Err(IndexError::corrupt(
                offsets.path(),
                format!("holds {} offsets, expected {}", offs.len(), num_docs + 1),
            ));
        }
        if offs[0] != 0 || offs[num_docs] != num_vectors as u64 {
            return Err(IndexError::corrupt(
                offsets.path(),
                format!(
                    "offsets must run from 0 to {num_vectors}, found {}..{}",
                    offs[0], offs[num_docs]
                ),
            ));
        }
        if let Some(i) = offs.windows(2).position(|w| w[0] >= w[1]) {
            return Err(IndexError::corrupt(
                offsets.path(),
                format!("document {i} has no vectors or offsets decrease"),
            ));
        }

        let ids_base = validate_ids(ids.path(), ids.payload(), num_docs)?;
        let texts = match &files.texts {
            Some(entry) => Some(super::DocTexts::open(
                dir,
                entry,
                num_docs,
                verify_checksums,
            )?),
            None => None,
        };
        Ok(TokenStore {
            dim,
            num_docs,
            num_vectors,
            vectors,
            offsets,
            ids,
            ids_base,
            texts,
        })
    }

    /// Whether the index keeps documents' texts.
    pub fn has_texts(&self) -> bool {
        self.texts.is_some()
    }

    /// Document `d`'s text, if the index keeps texts.
    pub fn text(&self, d: usize) -> Option<&str> {
        self.texts.as_ref().and_then(|t| t.get(d))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_docs(&self) -> usize {
        self.num_docs
    }

    pub fn num_vectors(&self) -> usize {
        self.num_vectors
    }

    /// How the vectors are kept.
    pub fn kind(&self) -> StoreKind {
        match self.vectors {
            Rows::F16(_) => StoreKind::F16,
            Rows::Int8 { .. } => StoreKind::Int8,
            Rows::None => StoreKind::None,
        }
    }

    /// Whether the exact f16 vectors are kept (exact MaxSim, explanations).
    pub fn is_exact(&self) -> bool {
        matches!(self.vectors, Rows::F16(_))
    }

    /// Whether any vectors are kept (f16 or int8): MaxSim can be computed from the store.
    pub fn has_vectors(&self) -> bool {
        !matches!(self.vectors, Rows::None)
    }

    /// The whole f16 matrix, `num_vectors() * dim()` values. Panics unless the store
    /// keeps f16 vectors.
    /// Drop vectors `range` (vector numbers) of an f16 store from this process's
    /// resident memory ([`MappedFile::release`]); other kinds: nothing.
    pub fn release_vectors(&self, range: std::ops::Range<usize>) {
        if let Rows::F16(f) = &self.vectors {
            let row = self.dim * 2;
            f.release(range.start * row..range.end * row);
        }
    }

    /// Drop every vector of an f16 store from this process's resident memory.
    pub fn release_all_vectors(&self) {
        self.release_vectors(0..self.num_vectors);
    }

    pub fn all_vectors(&self) -> &[f16] {
        match &self.vectors {
            // Alignment and length were checked at open.
            Rows::F16(f) => bytemuck::cast_slice(f.payload()),
            _ => panic!("the store keeps {} vectors, not f16", self.kind().as_str()),
        }
    }

    /// Document `i`'s vectors as kept. Panics if `i >= num_docs()`.
    pub fn rows(&self, i: usize) -> DocRows<'_> {
        let offs = self.offsets();
        let (start, end) = (offs[i] as usize, offs[i + 1] as usize);
        let d = self.dim;
        match &self.vectors {
            Rows::F16(_) => DocRows::F16(self.doc(i)),
            Rows::Int8 { file, scales_at } => {
                let p = file.payload();
                let values: &[i8] = bytemuck::cast_slice(&p[start * d..end * d]);
                let scales: &[f32] = bytemuck::cast_slice(&p[*scales_at..]);
                DocRows::Int8 {
                    values: MultiVectorRef::new(values, d),
                    scales: &scales[start..end],
                }
            }
            Rows::None => DocRows::Missing { len: end - start },
        }
    }

    fn offsets(&self) -> &[u64] {
        bytemuck::cast_slice(self.offsets.payload())
    }

    /// Document `i`'s f16 token vectors. Panics if `i >= num_docs()` or the store does
    /// not keep f16 vectors (see [`TokenStore::rows`]).
    pub fn doc(&self, i: usize) -> MultiVectorRef<'_, f16> {
        let offs = self.offsets();
        let (start, end) = (offs[i] as usize, offs[i + 1] as usize);
        MultiVectorRef::new(
            &self.all_vectors()[start * self.dim..end * self.dim],
            self.dim,
        )
    }

    /// Index of document `i`'s first vector in the flat matrix.
    pub fn doc_offset(&self, i: usize) -> usize {
        self.offsets()[i] as usize
    }

    /// Number of token vectors of document `i`.
    pub fn doc_len(&self, i: usize) -> usize {
        let offs = self.offsets();
        (offs[i + 1] - offs[i]) as usize
    }

    /// External id of document `i`. Panics if `i >= num_docs()`.
    pub fn doc_id(&self, i: usize) -> &str {
        let p = self.ids.payload();
        let starts: &[u64] = bytemuck::cast_slice(&p[8..self.ids_base]);
        let bytes = &p[self.ids_base..];
        let s = &bytes[starts[i] as usize..starts[i + 1] as usize];
        std::str::from_utf8(s).expect("ids validated as UTF-8 at open")
    }
}

fn cast_u64<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u64]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| IndexError::corrupt(path, format!("not a u64 array: {e}")))
}

fn cast_f16<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [f16]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| IndexError::corrupt(path, format!("not an f16 array: {e}")))
}

/// Check the ids payload; return where the UTF-8 bytes start.
fn validate_ids(path: &Path, p: &[u8], num_docs: usize) -> Result<usize> {
    if p.len() < 8 {
        return Err(IndexError::corrupt(
            path,
            "ids payload shorter than its count",
        ));
    }
    let count = u64::from_le_bytes(p[0..8].try_into().expect("8 bytes"));
    if count != num_docs as u64 {
        return Err(IndexError::corrupt(
            path,
            format!("holds {count} ids, manifest says {num_docs} documents"),
        ));
    }
    let base = 8 + (num_docs + 1) * 8;
    if p.len() < base {
        return Err(IndexError::corrupt(path, "ids offset table is truncated"));
    }
    let starts = cast_u64(path, &p[8..base])?;
    let bytes = &p[base..];
    if starts[0] != 0 || starts[num_docs] != bytes.len() as u64 {
        return Err(IndexError::corrupt(
            path,
            "ids offsets do not span the id bytes",
        ));
    }
    for (i, w) in starts.windows(2).enumerate() {
        if w[0] > w[1] {
            return Err(IndexError::corrupt(
                path,
                format!("id {i}: offsets decrease"),
            ));
        }
        if std::str::from_utf8(&bytes[w[0] as usize..w[1] as usize]).is_err() {
            return Err(IndexError::corrupt(path, format!("id {i} is not UTF-8")));
        }
    }
    Ok(base)
}
