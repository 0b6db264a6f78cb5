//! Where `e5 embed` writes: stdout, or a file that appears only when complete (written to a
//! temporary file beside it and renamed on success, so a failed run leaves no partial output).

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file under construction at `.NAME.e5-tmp-PID` beside `path`; removed unless committed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let name = path.file_name().with_context(|| format!("{}: not a file name", path.display()))?;
        let tmp = path.with_file_name(format!(".{}.e5-tmp-{}", name.to_string_lossy(), std::process::id()));
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(AtomicFile { path: path.to_path_buf(), tmp, file: Some(BufWriter::new(file)) })
    }

    pub fn file(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("an AtomicFile is used only before commit")
    }

    /// Flushes to disk and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("commit once");
        let file =
            file.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", self.tmp.display()))?;
        file.sync_all().with_context(|| format!("writing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path).with_context(|| format!("renaming into {}", self.path.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// stdout (`-`), or an [`AtomicFile`].
pub enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(AtomicFile),
}

impl Output {
    pub fn open(path: &str) -> Result<Self> {
        Ok(if path == "-" {
            Output::Stdout(BufWriter::new(std::io::stdout()))
        } else {
            Output::File(AtomicFile::create(Path::new(path))?)
        })
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File(f) => f.file(),
        }
    }

    /// Rewrites the first bytes (a header whose size is fixed); files only.
    pub fn rewrite_start(&mut self, bytes: &[u8]) -> Result<()> {
        let Output::File(f) = self else { anyhow::bail!("cannot rewrite the start of stdout") };
        let w = f.file();
        w.seek(SeekFrom::Start(0))?;
        w.write_all(bytes)?;
        w.seek(SeekFrom::End(0))?;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("writing to stdout"),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut f = AtomicFile::create(&path).unwrap();
        f.file().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no output, no temp file");
        let mut f = AtomicFile::create(&path).unwrap();
        f.file().write_all(b"whole").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
