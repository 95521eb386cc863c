//! A segment's external ids in sorted order, for lookups by id without a hash map.
//!
//! File `s<N>.ids` (kind `id_order`): `count` as u64, then `count` u32 document numbers
//! ordered by their external id (bytewise). The ids themselves are the store's
//! `doc_ids` file; this is the permutation that sorts them, 4 bytes per document, so a
//! lookup is a binary search over the memory map. Segments written before the live
//! index (format 1 and 2) have no such file: the permutation is computed at open.
//!
//! The inverse permutation (each document's rank among the segment's ids) is kept in
//! memory: it breaks score ties by external id inside a segment, so a ranking does not
//! depend on how documents are spread over segments.

use std::path::Path;

use super::TokenStore;
use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileEntry, FileWriter, MappedFile};

/// Document numbers of `ids` sorted by id, then by document number (an id repeats only
/// when all but its last copy are tombstoned: upserted twice before one commit).
fn sorted_order(ids: &[&str]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| ids[a as usize].cmp(ids[b as usize]).then(a.cmp(&b)));
    order
}

/// Write `<prefix>.ids` for a segment whose documents have these ids (in store order).
pub fn write_id_order(dir: &Path, prefix: &str, ids: &[&str]) -> Result<FileEntry> {
    let order = sorted_order(ids);
    let mut w = FileWriter::create(dir, &format!("{prefix}.ids"), ComponentKind::IdOrder)?;
    w.write(&(order.len() as u64).to_le_bytes())?;
    w.write(bytemuck::cast_slice(&order))?;
    w.finish()
}

enum Order {
    Mapped(MappedFile),
    Computed(Vec<u32>),
}

/// A segment's ids in sorted order, and each document's rank in it.
pub struct IdOrder {
    order: Order,
    ranks: Vec<u32>,
}

impl IdOrder {
    /// Open `entry` and check it against the store: a permutation of its documents
    /// ordered by (id, document number).
    pub fn open(dir: &Path, entry: &FileEntry, store: &TokenStore, verify: bool) -> Result<Self> {
        let file = MappedFile::open(dir, entry, ComponentKind::IdOrder, verify)?;
        let n = store.num_docs();
        let p = file.payload();
        let bad = |reason: &str| IndexError::corrupt(file.path(), reason.to_string());
        if p.len() != 8 + 4 * n
            || u64::from_le_bytes(p[..8].try_into().expect("8 bytes")) != n as u64
        {
            return Err(bad("size does not match the store's document count"));
        }
        let order: &[u32] = bytemuck::try_cast_slice(&p[8..])
            .map_err(|e| IndexError::corrupt(file.path(), format!("misaligned: {e}")))?;
        let ranks = ranks_of(order, store)
            .ok_or_else(|| bad("not the sorted order of the segment's ids"))?;
        Ok(IdOrder {
            order: Order::Mapped(file),
            ranks,
        })
    }

    /// Compute the order of a segment that has no id file (written before format 3,
    /// whose ids are unique).
    pub fn compute(store: &TokenStore, what: &Path) -> Result<Self> {
        let ids: Vec<&str> = (0..store.num_docs()).map(|d| store.doc_id(d)).collect();
        let order = sorted_order(&ids);
        let ranks = ranks_of(&order, store)
            .ok_or_else(|| IndexError::corrupt(what, "document ids are not a permutation"))?;
        Ok(IdOrder {
            order: Order::Computed(order),
            ranks,
        })
    }

    fn order(&self) -> &[u32] {
        match &self.order {
            Order::Mapped(f) => bytemuck::cast_slice(&f.payload()[8..]),
            Order::Computed(v) => v,
        }
    }

    /// The documents whose external id is `id` (at most one of them live), in
    /// increasing document number.
    pub fn find(&self, store: &TokenStore, id: &str) -> &[u32] {
        let order = self.order();
        let start = order.partition_point(|&d| store.doc_id(d as usize) < id);
        let end = start + order[start..].partition_point(|&d| store.doc_id(d as usize) == id);
        &order[start..end]
    }

    /// Rank of document `doc`'s id among the segment's ids (0 = smallest).
    pub fn rank(&self, doc: u32) -> u32 {
        self.ranks[doc as usize]
    }

    pub fn ranks(&self) -> &[u32] {
        &self.ranks
    }
}

/// The inverse of `order` if it is a permutation of the store's documents that sorts
/// them by (id, document number).
fn ranks_of(order: &[u32], store: &TokenStore) -> Option<Vec<u32>> {
    let n = store.num_docs();
    if order.len() != n {
        return None;
    }
    let mut ranks = vec![u32::MAX; n];
    for (r, &d) in order.iter().enumerate() {
        let slot = ranks.get_mut(d as usize)?;
        if *slot != u32::MAX {
            return None;
        }
        *slot = r as u32;
    }
    let key = |d: u32| (store.doc_id(d as usize), d);
    if order.windows(2).any(|w| key(w[0]) >= key(w[1])) {
        return None;
    }
    Some(ranks)
}
