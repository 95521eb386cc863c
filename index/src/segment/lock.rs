//! One writer per index directory: an exclusive OS file lock on `writer.lock`.
//!
//! The lock is `flock(2)` through `std::fs::File::try_lock` (no crate needed since Rust
//! 1.89): the kernel releases it when the holder exits, however it exits, so a killed
//! writer never leaves a stale lock. The holder writes its pid into the file right after
//! locking, so a second writer's error can name it. The file itself stays in the
//! directory (removing it would let two writers lock two different inodes); its content
//! only matters while someone holds the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{IndexError, Result};

/// Name of the lock file inside an index directory.
pub const LOCK_NAME: &str = "writer.lock";

/// Held while a writer works on an index directory; released on drop (or process exit).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    // Kept open: closing the file releases the lock.
    _file: File,
}

impl DirLock {
    /// Take the lock of `dir` (which must exist), or fail at once with
    /// [`IndexError::Locked`] naming the holder's pid.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| IndexError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(IndexError::Locked {
                    dir: dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(IndexError::io(&path, e)),
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| IndexError::io(&path, e))?;
        Ok(DirLock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
