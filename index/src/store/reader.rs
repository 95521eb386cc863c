use std::path::Path;

use half::f16;

use super::MultiVectorRef;
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, MappedFile, StoreFiles};

/// Read side of the token store, straight off memory maps. Every offset is checked once
/// at open, so `doc(i)` for `i < num_docs()` never fails and never copies.
pub struct TokenStore {
    dim: usize,
    num_docs: usize,
    vectors: MappedFile,
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
        let vectors = MappedFile::open(
            dir,
            &files.vectors,
            ComponentKind::Vectors,
            verify_checksums,
        )?;
        let offsets = MappedFile::open(
            dir,
            &files.offsets,
            ComponentKind::Offsets,
            verify_checksums,
        )?;
        let ids = MappedFile::open(dir, &files.doc_ids, ComponentKind::DocIds, verify_checksums)?;

        let expect_vec_bytes = num_vectors
            .checked_mul(dim)
            .and_then(|v| v.checked_mul(2))
            .ok_or_else(|| IndexError::corrupt(vectors.path(), "vector count overflows"))?;
        if vectors.payload().len() != expect_vec_bytes {
            return Err(IndexError::corrupt(
                vectors.path(),
                format!(
                    "holds {} bytes, expected {num_vectors} vectors x {dim} dims x 2 = {expect_vec_bytes}",
                    vectors.payload().len()
                ),
            ));
        }
        cast_f16(vectors.path(), vectors.payload())?;

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
        self.vectors.payload().len() / (2 * self.dim)
    }

    /// The whole f16 matrix, `num_vectors() * dim()` values.
    pub fn all_vectors(&self) -> &[f16] {
        // Alignment and length were checked at open.
        bytemuck::cast_slice(self.vectors.payload())
    }

    fn offsets(&self) -> &[u64] {
        bytemuck::cast_slice(self.offsets.payload())
    }

    /// Document `i`'s token vectors. Panics if `i >= num_docs()`.
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
