//! Which index files open readers in this process use, so a writer's garbage collection
//! never deletes one of them (tantivy's `ManagedDirectory` keeps the same kind of list).
//!
//! Readers in other processes are protected differently: on POSIX systems a file deleted
//! while mapped or open stays readable until its last user closes it, and a reader that
//! finds a listed file gone re-reads the manifest (`Index::open`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

static IN_USE: LazyLock<Mutex<HashMap<PathBuf, usize>>> = LazyLock::new(Default::default);

/// The top-level entry a listed name lives in (`s3.bm25/meta.json` -> `s3.bm25`).
pub fn top_level(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// Holds entries of an index directory in use until dropped.
#[derive(Debug)]
pub struct FileLease {
    paths: Vec<PathBuf>,
}

impl FileLease {
    /// Mark `names` (relative to `dir`, reduced to their top-level entry) in use.
    pub fn take<'a>(dir: &Path, names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut paths: Vec<PathBuf> = names.into_iter().map(|n| dir.join(top_level(n))).collect();
        paths.sort();
        paths.dedup();
        let mut map = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        for p in &paths {
            *map.entry(p.clone()).or_insert(0) += 1;
        }
        FileLease { paths }
    }
}

impl Drop for FileLease {
    fn drop(&mut self) {
        let mut map = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.paths {
            if let Some(n) = map.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    map.remove(p);
                }
            }
        }
    }
}

/// Whether an open reader of this process uses `dir/entry`.
pub fn in_use(dir: &Path, entry: &str) -> bool {
    let map = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    map.contains_key(&dir.join(entry))
}
