use std::path::Path;

use half::f16;

use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileWriter, StoreFiles};

/// Streams documents' token vectors into the store files of one segment.
/// Vectors go to disk as they arrive; only offsets and ids stay in memory.
pub struct StoreWriter {
    dim: usize,
    vectors: FileWriter,
    offsets_name: String,
    ids_name: String,
    dir: std::path::PathBuf,
    offsets: Vec<u64>,
    ids: IdTable,
    scratch: Vec<f16>,
}

/// A segment's ids in store order, in one byte buffer, and a hash table from each live
/// id to its document number. Per document: the id's bytes, 8 bytes of end offset and
/// about 5 of table. (Before, three `String` copies per document and a clone at finish
/// took 2.3 GB to build a 10 M-document segment.)
#[derive(Default)]
struct IdTable {
    bytes: String,
    ends: Vec<u64>,
    live: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

fn id_at<'a>(bytes: &'a str, ends: &[u64], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &bytes[start..ends[i] as usize]
}

impl IdTable {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &str {
        id_at(&self.bytes, &self.ends, i)
    }

    fn find(&self, id: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.live
            .find(self.hasher.hash_one(id), |&d| {
                id_at(bytes, ends, d as usize) == id
            })
            .copied()
    }

    /// Append `id` as the next document, live.
    fn push(&mut self, id: &str) {
        use std::hash::BuildHasher;
        let doc = self.ends.len() as u32;
        self.bytes.push_str(id);
        self.ends.push(self.bytes.len() as u64);
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        self.live.insert_unique(hasher.hash_one(id), doc, |&d| {
            hasher.hash_one(id_at(bytes, ends, d as usize))
        });
    }

    fn forget(&mut self, id: &str) {
        use std::hash::BuildHasher;
        let (bytes, ends) = (&self.bytes, &self.ends);
        if let Ok(e) = self.live.find_entry(self.hasher.hash_one(id), |&d| {
            id_at(bytes, ends, d as usize) == id
        }) {
            e.remove();
        }
    }
}

impl StoreWriter {
    /// Start the store files `<prefix>.vectors.f16` etc. in `dir`.
    pub fn create(dir: &Path, prefix: &str, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(IndexError::InvalidArgument("dim must be positive".into()));
        }
        let vectors = FileWriter::create(
            dir,
            &format!("{prefix}.vectors.f16"),
            ComponentKind::Vectors,
        )?;
        Ok(StoreWriter {
            dim,
            vectors,
            offsets_name: format!("{prefix}.offsets.u64"),
            ids_name: format!("{prefix}.doc_ids.bin"),
            dir: dir.to_path_buf(),
            offsets: vec![0],
            ids: IdTable::default(),
            scratch: Vec::new(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_docs(&self) -> usize {
        self.ids.len()
    }

    /// The external id of document `i` (store order).
    pub fn id(&self, i: usize) -> &str {
        self.ids.get(i)
    }

    /// Every external id added so far, in store order.
    pub fn id_list(&self) -> Vec<&str> {
        (0..self.ids.len()).map(|i| self.ids.get(i)).collect()
    }

    /// The document with this id, when it was added and not forgotten.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.ids.find(id)
    }

    /// Whether a document with this id was added (and not forgotten).
    pub fn contains(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// Accept `id` again: its earlier document was tombstoned before the segment
    /// committed (an id upserted twice in one batch).
    pub fn forget(&mut self, id: &str) {
        self.ids.forget(id);
    }

    pub fn num_vectors(&self) -> u64 {
        *self.offsets.last().expect("offsets start with 0")
    }

    /// Append one document: `vectors` holds its token vectors row-major (`n * dim` values, n ≥ 1).
    pub fn add(&mut self, id: &str, vectors: &[f32]) -> Result<()> {
        self.check_doc(id, vectors.len())?;
        self.check_f32(id, vectors)?;
        self.scratch.clear();
        self.scratch
            .extend(vectors.iter().map(|&v| f16::from_f32(v)));
        let bytes: &[u8] = bytemuck::cast_slice(&self.scratch);
        self.vectors.write(bytes)?;
        self.push_doc(id, vectors.len());
        Ok(())
    }

    /// Append one document whose vectors are already f16.
    pub fn add_f16(&mut self, id: &str, vectors: &[f16]) -> Result<()> {
        self.check_doc(id, vectors.len())?;
        self.check_f16(id, vectors)?;
        self.vectors.write(bytemuck::cast_slice(vectors))?;
        self.push_doc(id, vectors.len());
        Ok(())
    }

    /// Whether `vectors` can be stored: a positive whole number of rows, every value a
    /// finite f16 (at most 65504 in magnitude: anything larger, or NaN, would be stored as
    /// inf/NaN and make every score of the document meaningless).
    pub fn check_f32(&self, id: &str, vectors: &[f32]) -> Result<()> {
        self.check_shape(id, vectors.len())?;
        if let Some(v) = vectors.iter().find(|v| !v.is_finite() || v.abs() > 65504.0) {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: vector value {v} is not a finite f16"
            )));
        }
        Ok(())
    }

    /// [`StoreWriter::check_f32`] for f16 values.
    pub fn check_f16(&self, id: &str, vectors: &[f16]) -> Result<()> {
        self.check_shape(id, vectors.len())?;
        if vectors.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: a vector value is not finite"
            )));
        }
        Ok(())
    }

    fn check_shape(&self, id: &str, values: usize) -> Result<()> {
        if values == 0 || !values.is_multiple_of(self.dim) {
            return Err(IndexError::InvalidArgument(format!(
                "document {id:?}: {values} values is not a positive whole number of {}-d vectors",
                self.dim
            )));
        }
        Ok(())
    }

    fn check_doc(&self, id: &str, values: usize) -> Result<()> {
        self.check_shape(id, values)?;
        if self.contains(id) {
            return Err(IndexError::InvalidArgument(format!(
                "duplicate document id {id:?}"
            )));
        }
        Ok(())
    }

    fn push_doc(&mut self, id: &str, values: usize) {
        let end = self.num_vectors() + (values / self.dim) as u64;
        self.offsets.push(end);
        self.ids.push(id);
    }

    /// Write offsets and ids, footer and fsync every file; the caller commits the manifest.
    pub fn finish(self) -> Result<StoreFiles> {
        let vectors = self.vectors.finish()?;

        let mut offsets =
            FileWriter::create(&self.dir, &self.offsets_name, ComponentKind::Offsets)?;
        offsets.write(bytemuck::cast_slice(&self.offsets))?;
        let offsets = offsets.finish()?;

        // doc_ids payload: count u64, (count + 1) u64 byte offsets, UTF-8 bytes.
        let mut ids = FileWriter::create(&self.dir, &self.ids_name, ComponentKind::DocIds)?;
        ids.write(&(self.ids.len() as u64).to_le_bytes())?;
        ids.write(&0u64.to_le_bytes())?;
        ids.write(bytemuck::cast_slice(&self.ids.ends))?;
        ids.write(self.ids.bytes.as_bytes())?;
        let doc_ids = ids.finish()?;
        Ok(StoreFiles {
            vectors: Some(vectors),
            kind: crate::segment::StoreKind::F16,
            offsets,
            doc_ids,
            texts: None,
        })
    }
}

/// Quantise one vector to int8 with a symmetric scale (max |x| / 127); returns the scale.
pub(crate) fn quantize_int8(row: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out.extend(row.iter().map(|_| 0i8));
        return 0.0;
    }
    let scale = max / 127.0;
    // A division, as the format defines it (a multiply by 1/scale rounds differently
    // at .5 boundaries).
    out.extend(
        row.iter()
            .map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// Write `store`'s vectors (f16 or int8) as the int8 file `<prefix>.vectors.i8`: the
/// values row after row, zero padding to a multiple of 4 bytes, then one f32 scale per
/// vector (`README.md`).
pub(crate) fn write_int8(
    dir: &Path,
    prefix: &str,
    store: &super::TokenStore,
) -> Result<crate::segment::FileEntry> {
    let mut file = FileWriter::create(
        dir,
        &format!("{prefix}.vectors.i8"),
        ComponentKind::VectorsI8,
    )?;
    let dim = store.dim();
    let mut scales = Vec::with_capacity(store.num_vectors());
    let (mut row, mut bytes) = (Vec::new(), Vec::new());
    for d in 0..store.num_docs() {
        if !store.rows(d).to_f32(&mut row) {
            return Err(IndexError::InvalidArgument(
                "an int8 store is made from kept vectors".into(),
            ));
        }
        bytes.clear();
        for r in row.chunks_exact(dim) {
            scales.push(quantize_int8(r, &mut bytes));
        }
        file.write(bytemuck::cast_slice(&bytes))?;
    }
    let written = store.num_vectors() * dim;
    let pad = super::int8_scales_at(store.num_vectors(), dim) - written;
    file.write(&[0u8; 4][..pad])?;
    file.write(bytemuck::cast_slice(&scales))?;
    file.finish()
}
