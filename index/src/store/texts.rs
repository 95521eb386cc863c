//! Documents' texts, kept beside the vectors so results can show them.
//!
//! File `s<N>.texts` (kind `texts`): the UTF-8 texts back to back, zero padding to a
//! multiple of 8 bytes, then `num_docs + 1` u64 byte offsets, then `num_docs` as u64.
//! Offsets go last so texts stream to disk as they arrive.

use std::path::Path;

use crate::error::{IndexError, Result};
use crate::segment::{ComponentKind, FileEntry, FileWriter, MappedFile};

/// Streams texts into `g<N>.texts`.
pub struct TextsWriter {
    file: FileWriter,
    offsets: Vec<u64>,
}

impl TextsWriter {
    pub fn create(dir: &Path, prefix: &str) -> Result<Self> {
        Ok(TextsWriter {
            file: FileWriter::create(dir, &format!("{prefix}.texts"), ComponentKind::Texts)?,
            offsets: vec![0],
        })
    }

    pub fn add(&mut self, text: &str) -> Result<()> {
        self.file.write(text.as_bytes())?;
        self.offsets.push(self.file.len());
        Ok(())
    }

    pub fn finish(mut self) -> Result<FileEntry> {
        let pad = self.file.len().next_multiple_of(8) - self.file.len();
        self.file.write(&vec![0u8; pad as usize])?;
        self.file.write(bytemuck::cast_slice(&self.offsets))?;
        let count = (self.offsets.len() - 1) as u64;
        self.file.write(&count.to_le_bytes())?;
        self.file.finish()
    }
}

/// The texts file, mapped and validated at open.
pub struct DocTexts {
    file: MappedFile,
    offsets_at: usize,
    num_docs: usize,
}

impl DocTexts {
    pub fn open(dir: &Path, entry: &FileEntry, num_docs: usize, verify: bool) -> Result<Self> {
        let file = MappedFile::open(dir, entry, ComponentKind::Texts, verify)?;
        let p = file.payload();
        let bad = |reason: &str| Err(IndexError::corrupt(file.path(), reason.to_string()));
        let table = (num_docs + 2) * 8;
        if p.len() < table || p.len() % 8 != 0 {
            return bad("size does not fit the offset table");
        }
        let count = u64::from_le_bytes(p[p.len() - 8..].try_into().expect("8 bytes"));
        if count != num_docs as u64 {
            return bad("document count differs from the store's");
        }
        let offsets_at = p.len() - table;
        let offsets: &[u64] = bytemuck::try_cast_slice(&p[offsets_at..p.len() - 8])
            .map_err(|e| IndexError::corrupt(file.path(), format!("misaligned offsets: {e}")))?;
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[num_docs] as usize > offsets_at
        {
            return bad("text offsets are not monotone inside the file");
        }
        Ok(DocTexts {
            file,
            offsets_at,
            num_docs,
        })
    }

    /// Text of document `d` (`None` if out of range, or if the bytes are not UTF-8, which
    /// only a file damaged behind a disabled checksum can cause).
    pub fn get(&self, d: usize) -> Option<&str> {
        if d >= self.num_docs {
            return None;
        }
        let p = self.file.payload();
        let offsets: &[u64] = bytemuck::cast_slice(&p[self.offsets_at..p.len() - 8]);
        std::str::from_utf8(&p[offsets[d] as usize..offsets[d + 1] as usize]).ok()
    }
}
