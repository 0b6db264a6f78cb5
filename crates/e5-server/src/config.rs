//! What `e5 serve` is told: the models to load and the server's limits.

use e5::{InputKind, Precision, Residency};
use std::path::PathBuf;
use std::time::Duration;

/// One `--model [NAME=]DIR[:PRECISION]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The alias requests name in `model`; defaults to the directory's name.
    pub name: String,
    pub dir: PathBuf,
    pub precision: Precision,
}

impl ModelSpec {
    /// Parses `[NAME=]DIR[:PRECISION]`. A trailing `:x` that is not a precision is part of
    /// the path, so directories with colons still load.
    pub fn parse(spec: &str) -> Result<ModelSpec, String> {
        let (name, rest) = match spec.split_once('=') {
            Some((n, r)) if !n.is_empty() && !n.contains('/') => (Some(n.to_string()), r),
            _ => (None, spec),
        };
        let (dir, precision) = match rest.rsplit_once(':') {
            Some((d, p)) if Precision::parse(p).is_some() => (d, Precision::parse(p).unwrap_or_default()),
            _ => (rest, Precision::Fp32),
        };
        if dir.is_empty() {
            return Err(format!("--model {spec:?}: no directory (expected [NAME=]DIR[:PRECISION])"));
        }
        let dir = PathBuf::from(dir);
        let name = match name {
            Some(n) => n,
            None => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("--model {spec:?}: cannot name the model after {dir:?}; use NAME=DIR"))?,
        };
        Ok(ModelSpec { name, dir, precision })
    }
}

/// Limits and defaults shared by every route.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Encoder threads per model (`None`: all cores).
    pub threads: Option<usize>,
    /// Tokens merged into one encoder call.
    pub max_batch_tokens: usize,
    /// Inputs waiting or running per model before requests get 429.
    pub max_queue: usize,
    /// Inputs one request may carry (more: 422).
    pub max_client_batch: usize,
    /// Request body bytes (more: 413).
    pub payload_limit: usize,
    /// Prefix choice when a request does not say.
    /// `None`: the model's `default_prompt_name` when it declares one, else raw.
    pub default_kind: Option<InputKind>,
    /// Inputs over the model's limit are truncated and reported (`false`: 422).
    pub truncate: bool,
    /// Required `Authorization: Bearer KEY` on the model routes.
    pub api_key: Option<String>,
    /// A client whose request body takes longer to arrive gets 408 (the encoder's time is not counted).
    pub request_timeout: Duration,
    /// A client that has not sent its request headers by then is disconnected.
    pub header_timeout: Duration,
    /// Connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// How each model's embedding table is held. `Copy` by default: a long-lived server must
    /// survive its model file being truncated or rewritten in place (docs/robustness.md).
    pub residency: Residency,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            threads: None,
            max_batch_tokens: 2048,
            max_queue: 8192,
            max_client_batch: 2048,
            payload_limit: 8 << 20,
            default_kind: None,
            truncate: true,
            api_key: None,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            residency: Residency::Copy,
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch_tokens == 0 || self.max_client_batch == 0 || self.payload_limit == 0 {
            return Err("--max-batch-tokens, --max-client-batch and --payload-limit must be positive".into());
        }
        if self.max_queue < self.max_client_batch {
            return Err(format!(
                "--max-queue {} is smaller than --max-client-batch {}: the largest request could never be queued",
                self.max_queue, self.max_client_batch
            ));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be positive".into());
        }
        Ok(())
    }
}

pub fn kind_name(kind: &InputKind) -> &'static str {
    match kind {
        InputKind::Query => "query",
        InputKind::Passage => "passage",
        InputKind::Raw => "raw",
        InputKind::Prompt(_) => "prompt",
        InputKind::Prefix(_) => "prefix",
    }
}
