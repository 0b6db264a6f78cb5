//! Where `e5 quantize` writes: never over its source, never into a non-empty directory
//! unless asked, and through a temporary directory renamed into place, so that a failed or
//! interrupted run leaves the destination as it was.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// `dst` must not be `src`, contain it or lie inside it (even through symlinks); an
/// existing `dst` must be an empty directory unless `overwrite`.
pub(super) fn check_destination(src: &Path, dst: &Path, overwrite: bool) -> Result<()> {
    let refuse = |why: String| Err(Error::Options(format!("output {}: {why}", dst.display())));
    let src = std::fs::canonicalize(src).map_err(|e| Error::io(src, e))?;
    let resolved = resolve(dst)?;
    if resolved == src {
        return refuse("is the source model directory".into());
    }
    if src.starts_with(&resolved) {
        return refuse(format!("contains the source model directory {}", src.display()));
    }
    if resolved.starts_with(&src) {
        return refuse(format!("lies inside the source model directory {}", src.display()));
    }
    match std::fs::symlink_metadata(dst) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dst, e)),
        Ok(m) if m.is_dir() => {
            let empty = std::fs::read_dir(dst).map_err(|e| Error::io(dst, e))?.next().is_none();
            match empty || overwrite {
                true => Ok(()),
                false => refuse("is a non-empty directory (pass --force to replace it)".into()),
            }
        }
        Ok(_) if overwrite => Ok(()),
        Ok(_) => refuse("exists and is not a directory (pass --force to replace it)".into()),
    }
}

/// `path` made absolute with its symlinks resolved, for the part that exists.
fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(c) => return Ok(rest.iter().rev().fold(c, |p: PathBuf, r| p.join(r))),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(abs),
            },
        }
    }
}

/// A temporary directory beside the destination, renamed over it by [`Staging::commit`]
/// and removed if dropped uncommitted.
pub(super) struct Staging {
    tmp: PathBuf,
    dst: PathBuf,
    committed: bool,
}

impl Staging {
    pub fn new(dst: &Path) -> Result<Staging> {
        let dst = std::path::absolute(dst).map_err(|e| Error::io(dst, e))?;
        let (parent, name) = match (dst.parent(), dst.file_name()) {
            (Some(p), Some(n)) => (p, n.to_string_lossy()),
            _ => return Err(Error::Options(format!("output {}: not a directory name", dst.display()))),
        };
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let tmp = parent.join(format!(".{name}.e5-partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Staging { tmp, dst, committed: false })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished directory into place; an existing destination (checked by
    /// [`check_destination`]) is moved aside first and removed once the new one is in.
    pub fn commit(mut self) -> Result<()> {
        let old = self.tmp.with_extension("old");
        let had_old = match std::fs::symlink_metadata(&self.dst) {
            Ok(_) => {
                std::fs::rename(&self.dst, &old).map_err(|e| Error::io(&self.dst, e))?;
                true
            }
            Err(_) => false,
        };
        if let Err(e) = std::fs::rename(&self.tmp, &self.dst) {
            if had_old {
                let _ = std::fs::rename(&old, &self.dst);
            }
            return Err(Error::io(&self.dst, e));
        }
        self.committed = true;
        if had_old {
            let removed = match std::fs::symlink_metadata(&old) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&old),
                _ => std::fs::remove_file(&old),
            };
            removed.map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
