use std::collections::HashSet;
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
    ids: Vec<String>,
    seen: HashSet<String>,
    scratch: Vec<f16>,
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
            ids: Vec::new(),
            seen: HashSet::new(),
            scratch: Vec::new(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_docs(&self) -> usize {
        self.ids.len()
    }

    /// External ids added so far, in store order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Whether a document with this id was added (and not forgotten).
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Accept `id` again: its earlier document was tombstoned before the segment
    /// committed (an id upserted twice in one batch).
    pub fn forget(&mut self, id: &str) {
        self.seen.remove(id);
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
        if self.seen.contains(id) {
            return Err(IndexError::InvalidArgument(format!(
                "duplicate document id {id:?}"
            )));
        }
        Ok(())
    }

    fn push_doc(&mut self, id: &str, values: usize) {
        let end = self.num_vectors() + (values / self.dim) as u64;
        self.offsets.push(end);
        self.ids.push(id.to_string());
        self.seen.insert(id.to_string());
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
        let mut starts = Vec::with_capacity(self.ids.len() + 2);
        starts.push(self.ids.len() as u64);
        let mut at = 0u64;
        starts.push(0);
        for id in &self.ids {
            at += id.len() as u64;
            starts.push(at);
        }
        ids.write(bytemuck::cast_slice(&starts))?;
        for id in &self.ids {
            ids.write(id.as_bytes())?;
        }
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
