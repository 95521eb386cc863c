//! Token-vector store: every document's token vectors as one flat f16 matrix plus
//! per-document offsets, and the external document ids beside it. Written once by
//! [`StoreWriter`], read through memory maps by [`TokenStore`]. Layout in `README.md`.

mod ids;
mod reader;
mod texts;
mod writer;

pub use ids::{write_id_order, IdOrder};
pub(crate) use reader::int8_scales_at;
pub use reader::{DocRows, TokenStore};
pub use texts::{DocTexts, TextsWriter};
/// The store's int8 quantiser, the reference `maxsim::int8::quantize_rows` is tested
/// against.
#[cfg(test)]
pub(crate) use writer::quantize_int8;
pub(crate) use writer::write_int8;
pub use writer::StoreWriter;

/// A borrowed multi-vector: `len()` rows of `dim` values, row-major, no copy.
#[derive(Debug, Clone, Copy)]
pub struct MultiVectorRef<'a, T> {
    data: &'a [T],
    dim: usize,
}

impl<'a, T> MultiVectorRef<'a, T> {
    /// `data.len()` must be a multiple of `dim` (and `dim > 0`).
    pub fn new(data: &'a [T], dim: usize) -> Self {
        assert!(dim > 0, "dim must be positive");
        assert_eq!(
            data.len() % dim,
            0,
            "multi-vector of {} values is not a whole number of {dim}-d rows",
            data.len()
        );
        MultiVectorRef { data, dim }
    }

    /// Number of vectors (tokens).
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The flat row-major values.
    pub fn as_slice(&self) -> &'a [T] {
        self.data
    }

    pub fn row(&self, i: usize) -> &'a [T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn rows(&self) -> impl Iterator<Item = &'a [T]> + 'a {
        self.data.chunks_exact(self.dim)
    }
}

/// An owned multi-vector: one flat row-major buffer of `len() * dim` values.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiVector {
    data: Vec<f32>,
    dim: usize,
}

impl MultiVector {
    /// `data.len()` must be a multiple of `dim` (and `dim > 0`).
    pub fn new(data: Vec<f32>, dim: usize) -> Self {
        MultiVectorRef::new(&data, dim);
        MultiVector { data, dim }
    }

    pub fn view(&self) -> MultiVectorRef<'_, f32> {
        MultiVectorRef::new(&self.data, self.dim)
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}
