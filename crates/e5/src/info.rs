//! What [`Model::info`](crate::Model::info) reports.

use crate::input::Precision;
use e5_kernels::Isa;
use std::path::PathBuf;
use std::time::Duration;

/// The model as loaded: its shape, the numeric formats and kernels it runs, its memory.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub dir: PathBuf,
    pub architecture: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab_size: usize,
    pub max_tokens: usize,
    pub parameters: usize,
    /// Checkpoint dtype (`float32`, `float16`, `bfloat16`).
    pub dtype: String,
    pub isa: Isa,
    /// The int8 micro-kernel in use (`avx512-vnni`, `avx2-madd16`, …).
    pub int8_kernel: &'static str,
    /// Which kernel path each family takes on this CPU, and why (f32 tile and blocking,
    /// int8, bf16-dot or widening): [`e5_kernels::Kernels::dispatch_reason`].
    pub dispatch: String,
    pub precision: Precision,
    /// Output width (after pooling and the Dense layers).
    pub dim: usize,
    pub pooling: e5_arch::Pooling,
    /// Dense layers after pooling.
    pub dense: usize,
    pub normalize: bool,
    /// Bytes of the memory-mapped checkpoint files.
    pub mapped_bytes: usize,
    /// Bytes of the word-embedding table, read in place from the map.
    pub embedding_table_bytes: usize,
    /// Bytes e5 holds itself (packed weights, norms, position table).
    pub owned_bytes: usize,
    pub load_time: Duration,
    /// The backend that runs the encoder: `cpu` or `cuda`.
    pub backend: &'static str,
}
