//! Where a model lives: a directory, or a Hugging Face name found in the local HF cache.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Resolves `spec`: an existing directory is used as is; `ORG/NAME` is looked up in the
/// local Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`), at the snapshot `refs/main` names (or the only one).
/// Nothing is downloaded.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let not_found = |reason: String| Error::ModelNotFound { name: spec.to_string(), reason };
    let (org, name) = spec
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/') && !spec.starts_with('.'))
        .ok_or_else(|| not_found("not a directory, and not an ORG/NAME Hugging Face model id".into()))?;
    let hub = hub_cache().ok_or_else(|| not_found("no Hugging Face cache directory (set HF_HOME)".into()))?;
    let repo = hub.join(format!("models--{org}--{name}"));
    let snapshots = repo.join("snapshots");
    if !snapshots.is_dir() {
        return Err(not_found(format!(
            "not a directory and not in the Hugging Face cache ({} does not exist); e5 never downloads",
            snapshots.display()
        )));
    }
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        // A revision is one plain name: `refs/main` holding `../../x` or an absolute path
        // must not lead outside the cache.
        let rev = rev.trim();
        let plain =
            !rev.is_empty() && rev.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !plain || rev.starts_with('.') {
            return Err(not_found(format!("{}: {rev:?} is not a revision name", repo.join("refs/main").display())));
        }
        let dir = snapshots.join(rev);
        if dir.join("config.json").exists() {
            return Ok(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|e| Error::io(&snapshots, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").exists())
        .collect();
    match dirs.len() {
        1 => Ok(dirs.remove(0)),
        0 => Err(not_found(format!("no snapshot with a config.json under {}", snapshots.display()))),
        _ => Err(not_found(format!(
            "several snapshots under {} and no refs/main; pass the snapshot directory",
            snapshots.display()
        ))),
    }
}

fn hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(p.into());
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("huggingface").join("hub"))
}
