//! The model file a table is read from in place, watched for changes.
//!
//! A mapped file that another process truncates or rewrites in place (`cp` over it) changes
//! under the map: pages past the new end raise SIGBUS on access, and rewritten pages give
//! other numbers. e5's design (docs/robustness.md): with `Residency::Copy` nothing of the
//! file is used after loading; with the mapped residencies the open file is checked (size,
//! modification time, inode, through the descriptor) before and after every call, so a
//! change fails the call cleanly instead of answering from mixed weights. Replacing the
//! file by atomic rename leaves the mapped inode untouched and keeps working.

use crate::error::{Error, Result};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

pub(crate) struct WatchedFile {
    file: std::fs::File,
    path: PathBuf,
    stamp: Stamp,
}

#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp { len: meta.len(), ino: meta.ino(), mtime: (meta.mtime(), meta.mtime_nsec()) }
}

impl WatchedFile {
    pub fn new(file: std::fs::File, path: &Path) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        Ok(WatchedFile { stamp: stamp(&meta), file, path: path.to_path_buf() })
    }

    /// Fails if the file changed since it was opened.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        if stamp(&meta) == self.stamp {
            return Ok(());
        }
        Err(Error::io(
            &self.path,
            std::io::Error::other(format!(
                "changed on disk since the model was loaded ({} bytes then, {} now); reload the model, and replace model files by atomic rename (or load with residency copy)",
                self.stamp.len,
                meta.len()
            )),
        ))
    }

    /// `len` bytes at `offset`, read (not mapped) into private memory: a file truncated
    /// meanwhile gives an error, not SIGBUS.
    pub fn read_at(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset as u64).map_err(|e| Error::io(&self.path, e))?;
        self.check_unchanged()?;
        Ok(buf)
    }
}
