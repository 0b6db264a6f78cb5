//! `e5 embed --resume`: the output is built from parts `OUTPUT.parts/part-NNNNNN.EXT`, each
//! holding the vectors of `part_records` consecutive input records and renamed into place only
//! when complete. A rerun skips the records of the complete parts and continues; when the
//! input ends, the parts are joined into OUTPUT and removed.

use crate::output::{AtomicFile, Output};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Parts {
    dir: PathBuf,
    ext: &'static str,
    /// Complete parts found when the run started.
    pub done: usize,
}

impl Parts {
    /// Opens (or starts) the parts of `output`. `job` describes the run (input, model, flags):
    /// a rerun with a different job is refused, since its parts would not fit together.
    pub fn open(output: &Path, ext: &'static str, job: &serde_json::Value) -> Result<Parts> {
        let name = output.file_name().with_context(|| format!("{}: not a file name", output.display()))?;
        let dir = output.with_file_name(format!("{}.parts", name.to_string_lossy()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let job_file = dir.join("job.json");
        let job_text = serde_json::to_string_pretty(job)?;
        match std::fs::read_to_string(&job_file) {
            Ok(old) if old == job_text => {}
            Ok(_) => bail!(
                "{} holds parts of a run with other inputs or flags (see its job.json); remove it to start over",
                dir.display()
            ),
            Err(_) => {
                std::fs::write(&job_file, &job_text).with_context(|| format!("writing {}", job_file.display()))?
            }
        }
        // Temporary files of a killed run are incomplete parts: drop them.
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().contains(".e5-tmp-")) {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        let mut parts = Parts { dir, ext, done: 0 };
        while parts.path(parts.done).exists() {
            parts.done += 1;
        }
        Ok(parts)
    }

    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("part-{i:06}.{}", self.ext))
    }

    /// Where part `i` is written; it appears under its name only when complete.
    pub fn output(&self, i: usize) -> Result<Output> {
        Ok(Output::File(AtomicFile::create(&self.path(i))?))
    }

    /// The complete parts, in order.
    pub fn all(&self) -> Vec<PathBuf> {
        (0..).map(|i| self.path(i)).take_while(|p| p.exists()).collect()
    }

    /// Joins byte-concatenable parts (JSONL, raw float32 rows) into `out` after `header`.
    pub fn concatenate(&self, out: &Path, header: &[u8]) -> Result<()> {
        let mut f = AtomicFile::create(out)?;
        f.file().write_all(header)?;
        for p in self.all() {
            let mut part = std::fs::File::open(&p).with_context(|| format!("reading {}", p.display()))?;
            std::io::copy(&mut part, f.file()).with_context(|| format!("copying {}", p.display()))?;
        }
        f.commit()
    }

    /// Total bytes of the complete parts.
    pub fn bytes(&self) -> Result<u64> {
        self.all().iter().map(|p| Ok(std::fs::metadata(p)?.len())).sum()
    }

    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
    }
}
