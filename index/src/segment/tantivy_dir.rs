//! A component kept as a tantivy index in its own directory inside the Tessera index
//! (BM25's `s<N>.bm25/`, the fields' `s<N>.fields/`): created fresh, committed once with
//! every file listed (size + CRC-32C) for the manifest, opened with those files checked.

use std::path::{Path, PathBuf};

use tantivy::schema::Schema;
use tantivy::{IndexReader, ReloadPolicy};

use crate::error::{IndexError, Result};
use crate::segment::{check_foreign, foreign_entry, FileEntry, TantivyFiles};

/// Tantivy's error, as corruption of `path`.
pub(crate) fn tantivy_err(path: &Path, e: impl std::fmt::Display) -> IndexError {
    IndexError::corrupt(path, format!("tantivy: {e}"))
}

/// A new, empty tantivy index in `index_dir/name` (a directory left there by an
/// interrupted write, never listed by a manifest, is removed first) and its writer with
/// one indexing thread, so tantivy's documents keep the order they were added in.
pub(crate) fn create(
    index_dir: &Path,
    name: &str,
    schema: Schema,
    heap_bytes: usize,
    prepare: impl FnOnce(&tantivy::Index),
) -> Result<(PathBuf, tantivy::IndexWriter)> {
    let dir = index_dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| IndexError::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| IndexError::io(&dir, e))?;
    let index = tantivy::Index::create_in_dir(&dir, schema).map_err(|e| tantivy_err(&dir, e))?;
    prepare(&index);
    let writer = index
        .writer_with_num_threads(1, heap_bytes)
        .map_err(|e| tantivy_err(&dir, e))?;
    Ok((dir, writer))
}

/// Commit `writer`'s index in `dir` (named `name` inside `index_dir`), wait for its
/// merges, and list every file it holds, the directory synced.
pub(crate) fn commit(
    mut writer: tantivy::IndexWriter,
    index_dir: &Path,
    dir: &Path,
    name: &str,
) -> Result<Vec<FileEntry>> {
    writer.commit().map_err(|e| tantivy_err(dir, e))?;
    writer
        .wait_merging_threads()
        .map_err(|e| tantivy_err(dir, e))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| IndexError::io(dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Lock files belong to a live writer, not to the index.
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    let files = names
        .iter()
        .map(|n| foreign_entry(index_dir, &format!("{name}/{n}")))
        .collect::<Result<Vec<_>>>()?;
    crate::segment::manifest::sync_dir(dir)?;
    Ok(files)
}

/// Open the tantivy index `files` lists (each file's size checked, and its CRC with
/// `verify`) with a reader that never reloads (segment files are write-once).
pub(crate) fn open(
    index_dir: &Path,
    files: &TantivyFiles,
    verify: bool,
) -> Result<(PathBuf, tantivy::Index, IndexReader)> {
    for f in &files.files {
        check_foreign(index_dir, f, verify)?;
    }
    let dir = index_dir.join(&files.dir);
    let index = tantivy::Index::open_in_dir(&dir).map_err(|e| tantivy_err(&dir, e))?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|e| tantivy_err(&dir, e))?;
    Ok((dir, index, reader))
}
