//! Garbage collection: removing index files no committed manifest lists.
//!
//! Run by the writer, under its lock, after each commit and when it starts: at those
//! moments any entry of the index's naming scheme (`g<N>.*`, `s<N>.*`, `c<N>.*`) that the
//! committed manifest does not list is either replaced by that commit, or was left by a
//! writer that died; no other writer can be working. An entry an open reader of this
//! process still uses is kept for a later collection (readers in other processes keep
//! deleted files readable through their open maps). Nothing outside the scheme is ever
//! touched.

use std::collections::HashSet;
use std::path::Path;

use crate::segment::registry::{in_use, top_level};
use crate::segment::{is_index_entry, Manifest};

/// The top-level entries `manifest` lists (a tantivy directory counts as one).
fn listed(manifest: &Manifest) -> HashSet<String> {
    let mut keep: HashSet<String> = manifest
        .file_names()
        .into_iter()
        .map(|n| top_level(n).to_string())
        .collect();
    for s in &manifest.segments {
        for b in s.tantivy_dirs() {
            keep.insert(b.dir.clone());
        }
    }
    keep
}

/// Remove every entry of the naming scheme that `manifest` (or, with `None`, nothing)
/// lists and no reader of this process uses. Best effort: what cannot be removed now
/// is tried again by the next collection.
pub(crate) fn collect(dir: &Path, manifest: Option<&Manifest>) -> usize {
    let keep = manifest.map(listed).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_index_entry(name) || keep.contains(name) || in_use(dir, name) {
            continue;
        }
        let path = entry.path();
        let ok = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if ok.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Remove the entries of the naming scheme numbered `floor` or above (what a writer that
/// never committed made, in a directory whose manifest it could not use).
pub(crate) fn collect_from(dir: &Path, floor: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let number = name
            .get(1..)
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        if is_index_entry(name) && number.is_some_and(|n| n >= floor) && !in_use(dir, name) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
