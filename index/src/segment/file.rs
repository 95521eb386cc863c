//! Writing one footed, checksummed component file, and mapping one back.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::footer::{ComponentKind, Footer};
use crate::error::{IndexError, Result};

/// Streams a payload to disk, hashing as it goes; `finish` appends the footer and fsyncs.
pub struct FileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    kind: ComponentKind,
    len: u64,
    crc: u32,
}

/// What the manifest records about a finished file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// File name inside the index directory.
    pub name: String,
    /// Total size in bytes, footer included.
    pub bytes: u64,
    /// CRC-32C of the payload (also in the footer).
    pub crc32c: u32,
}

impl FileWriter {
    pub fn create(dir: &Path, name: &str, kind: ComponentKind) -> Result<Self> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| IndexError::io(&path, e))?;
        Ok(FileWriter {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            kind,
            len: 0,
            crc: 0,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| IndexError::io(&self.path, e))
    }

    /// Bytes of payload written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(mut self) -> Result<FileEntry> {
        let footer = Footer::new(self.kind, self.len, self.crc);
        let path = self.path.clone();
        let io = |e| IndexError::io(&path, e);
        self.out.write_all(&footer.to_bytes()).map_err(io)?;
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(FileEntry {
            name: path
                .file_name()
                .expect("created from dir.join(name)")
                .to_string_lossy()
                .into_owned(),
            bytes: self.len + super::footer::FOOTER_LEN as u64,
            crc32c: self.crc,
        })
    }
}

/// A read-only memory map of one component file with its footer checked.
pub struct MappedFile {
    path: PathBuf,
    map: Option<Mmap>,
    payload_len: usize,
}

impl MappedFile {
    /// Map `dir/entry.name`, check the footer against `kind` and the manifest's entry.
    pub fn open(dir: &Path, entry: &FileEntry, kind: ComponentKind, verify: bool) -> Result<Self> {
        let path = dir.join(&entry.name);
        let file = File::open(&path).map_err(|e| IndexError::io(&path, e))?;
        let len = file.metadata().map_err(|e| IndexError::io(&path, e))?.len();
        if len != entry.bytes {
            return Err(IndexError::corrupt(
                &path,
                format!("file is {len} bytes, manifest says {}", entry.bytes),
            ));
        }
        // A zero-length file cannot be mapped; the footer check below reports it.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: index files are write-once: nothing writes to a file after the
            // manifest lists it, so the mapping's bytes do not change under us. A file
            // modified behind the index's back may show torn bytes, which the footer and
            // bounds checks turn into errors, never out-of-bounds reads.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(&path, e))?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let (payload, footer) = Footer::split(&path, bytes, kind, false)?;
        if verify {
            // The CRC in 64 MiB chunks, each dropped from the process once hashed: a
            // checked file never sits resident whole (a 15 GB store would otherwise
            // count 15 GB in the RSS of every open).
            const CHUNK: usize = 64 << 20;
            let mut found = 0u32;
            for (i, chunk) in payload.chunks(CHUNK).enumerate() {
                found = crc32c::crc32c_append(found, chunk);
                if let Some(m) = &map {
                    release_pages(m, i * CHUNK..i * CHUNK + chunk.len(), payload.len());
                }
            }
            if found != footer.crc32c {
                return Err(IndexError::ChecksumMismatch {
                    path: path.clone(),
                    expected: footer.crc32c,
                    found,
                });
            }
        }
        if footer.crc32c != entry.crc32c {
            return Err(IndexError::corrupt(
                &path,
                format!(
                    "footer checksum {:#010x} differs from the manifest's {:#010x} (file from another index?)",
                    footer.crc32c, entry.crc32c
                ),
            ));
        }
        let payload_len = payload.len();
        Ok(MappedFile {
            path,
            map,
            payload_len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drop the pages of payload bytes `range` from this process (they stay in the page
    /// cache and are read again on the next access): a pass over a file larger than
    /// memory keeps its resident memory bounded. Advice only; whole pages inside the
    /// range.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Some(m) = &self.map {
            release_pages(m, range, self.payload_len);
        }
    }

    /// The payload bytes (footer excluded). Page-aligned start.
    pub fn payload(&self) -> &[u8] {
        match &self.map {
            Some(m) => &m[..self.payload_len],
            None => &[],
        }
    }
}

/// Drop the whole pages of `range` (bytes, at most `limit`) of a read-only map from the
/// process: they stay in the page cache and are read again on the next access. Advice
/// only: a failure changes nothing.
fn release_pages(m: &Mmap, range: std::ops::Range<usize>, limit: usize) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = (range.end.min(limit) / PAGE) * PAGE;
        if end > start {
            // SAFETY: a read-only mapping of a write-once index file: after
            // MADV_DONTNEED a page is read again from the file with the same bytes, so
            // no reference into the map sees anything change.
            let _ = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (m, range, limit);
}

/// Size and CRC-32C of a whole file written by another library (hnsw_rs, tantivy), which
/// has no Tessera footer: the manifest's record is what guards it. `name` is relative to `dir`.
pub fn foreign_entry(dir: &Path, name: &str) -> Result<FileEntry> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| IndexError::Io {
        path: path.clone(),
        source: e,
    })?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(|e| IndexError::Io {
            path: path.clone(),
            source: e,
        })?;
    Ok(FileEntry {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
    })
}

/// Check a foreign file against its manifest entry: size always, CRC-32C when `verify`.
pub fn check_foreign(dir: &Path, entry: &FileEntry, verify: bool) -> Result<()> {
    let path = dir.join(&entry.name);
    let meta = std::fs::metadata(&path).map_err(|e| IndexError::Io {
        path: path.clone(),
        source: e,
    })?;
    if meta.len() != entry.bytes {
        return Err(IndexError::corrupt(
            &path,
            format!(
                "file is {} bytes, manifest says {}",
                meta.len(),
                entry.bytes
            ),
        ));
    }
    if verify {
        let bytes = std::fs::read(&path).map_err(|e| IndexError::Io {
            path: path.clone(),
            source: e,
        })?;
        let found = crc32c::crc32c(&bytes);
        if found != entry.crc32c {
            return Err(IndexError::ChecksumMismatch {
                path,
                expected: entry.crc32c,
                found,
            });
        }
    }
    Ok(())
}
