//! Which documents of one segment a search may return: those not tombstoned and, when
//! the query carries a filter, those the filter admits. Every first stage takes one and
//! never returns a document outside it; a filter adds its own set here.

use std::sync::Arc;

use roaring::RoaringBitmap;

/// The documents of one segment a search may return. Cheap to clone (shared sets), and
/// `'static`, so it can travel into tantivy's collectors.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    /// Tombstoned documents (none if `None`).
    deleted: Option<Arc<RoaringBitmap>>,
    /// When set, only these documents (a filter's result).
    only: Option<Arc<RoaringBitmap>>,
}

impl Allow {
    /// Every document.
    pub fn all() -> Self {
        Allow::default()
    }

    /// Every document but the tombstoned ones.
    pub fn alive(deleted: &Arc<RoaringBitmap>) -> Self {
        Allow {
            deleted: (!deleted.is_empty()).then(|| deleted.clone()),
            only: None,
        }
    }

    /// Also restricted to `only`.
    pub fn restricted_to(self, only: Arc<RoaringBitmap>) -> Self {
        Allow {
            only: Some(only),
            ..self
        }
    }

    /// Whether a filter restricts the set (beyond tombstones).
    pub fn is_filtered(&self) -> bool {
        self.only.is_some()
    }

    /// Whether a filter leaves nothing (a segment to skip).
    pub fn is_none_allowed(&self) -> bool {
        self.only.as_ref().is_some_and(|o| o.is_empty())
    }

    /// Whether nothing is excluded (the fast path of every scan).
    pub fn is_all(&self) -> bool {
        self.deleted.is_none() && self.only.is_none()
    }

    pub fn contains(&self, doc: u32) -> bool {
        self.deleted.as_ref().is_none_or(|d| !d.contains(doc))
            && self.only.as_ref().is_none_or(|o| o.contains(doc))
    }

    /// How many of a segment's `num_docs` documents are allowed.
    pub fn count(&self, num_docs: usize) -> usize {
        match (&self.deleted, &self.only) {
            (None, None) => num_docs,
            (Some(d), None) => num_docs - d.len() as usize,
            (None, Some(o)) => o.len() as usize,
            (Some(d), Some(o)) => (o.as_ref() - d.as_ref()).len() as usize,
        }
    }
}
