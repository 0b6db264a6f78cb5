//! The seam between planning and running. `Model::load` picks one [`Backend`]; `Model`
//! never asks which one it holds.
//!
//! ```text
//! text ─▶ plan (tokenize, truncate / chunk, sub-batch) ─▶ backend (encoder ─▶ pool) ─▶ assemble
//!                                                          ├─ cpu:  CpuBackend (e5-kernels)
//!                                                          └─ cuda: CudaBackend (e5-cuda)
//! ```
//!
//! Each backend declares what it [`Supports`]; an option it cannot honour is an
//! [`Error::Unsupported`] at load, never a silent substitute.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::error::{Error, Result};
use crate::input::{Options, Precision, Residency};
use crate::model::Tap;
use crate::plan::Piece;

/// Runs packed sequences through an encoder and pools them.
pub(crate) trait Backend: Send + Sync {
    /// The model's output rows of `pieces` (pooled, through its Dense layers and, per the
    /// model, L2-normalized), `[pieces, width]` in order.
    fn run(&self, pieces: &[Piece]) -> Result<Vec<f32>>;

    /// Runs one padding-free batch (`ids`, `n + 1` offsets `seqs`, `skips[s]` leading tokens
    /// of sequence `s` left out of pooling), showing every intermediate activation and the
    /// output rows to `tap`.
    fn trace(&self, ids: &[u32], seqs: &[usize], skips: &[usize], tap: &mut Tap<'_>) -> Result<()>;

    /// Bytes of the embedding table read in place, and bytes the backend holds itself.
    fn memory(&self) -> Memory;

    /// Fails if a model file whose weights are read in place changed since loading.
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }

    /// Drops weights read in place from memory and the page cache, where there are any.
    fn evict(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    pub embedding_table_bytes: usize,
    pub owned_bytes: usize,
}

/// What a backend can honour of [`Options`].
pub(crate) struct Supports {
    /// Named in errors: "the CUDA backend".
    pub name: &'static str,
    pub precisions: &'static [Precision],
    /// `keep_fp32`: sub-layers left in f32 (mixed precision).
    pub keep_fp32: bool,
    /// Static int8 activation scales (and their smoothing factors).
    pub activation_scales: bool,
    /// `Residency::Prefetch` / `Lock` of a mapped embedding table.
    pub residency: bool,
}

impl Supports {
    /// `Error::Unsupported` naming the first option the backend cannot honour.
    pub fn check(&self, options: &Options) -> Result<()> {
        let unsupported = |option: String| Err(Error::Unsupported { backend: self.name.into(), option });
        if !self.precisions.contains(&options.precision) {
            let names: Vec<&str> = self.precisions.iter().map(|p| p.name()).collect();
            return unsupported(format!("precision {} (it runs {})", options.precision.name(), names.join(", ")));
        }
        if !self.keep_fp32 && !options.keep_fp32.is_empty() {
            return unsupported(format!("keep_fp32 {:?} (mixed precision)", options.keep_fp32));
        }
        if !self.activation_scales && (options.activation_scales.is_some() || options.smoothing.is_some()) {
            return unsupported("activation scales (static int8)".into());
        }
        if !self.residency && options.residency != Residency::Lazy {
            return unsupported(format!("residency {:?}", options.residency));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_a_backend_cannot_honour_is_named() {
        let gpu = Supports {
            name: "the CUDA backend",
            precisions: &[Precision::F16, Precision::Bf16],
            keep_fp32: false,
            activation_scales: false,
            residency: false,
        };
        let f16 = Options { precision: Precision::F16, ..Options::default() };
        assert!(gpu.check(&f16).is_ok());
        let err = |o: Options| gpu.check(&o).unwrap_err().to_string();
        let e = err(Options { precision: Precision::Int8, ..Options::default() });
        assert_eq!(e, "the CUDA backend does not support precision int8 (it runs f16, bf16)");
        assert!(err(Options::default()).contains("precision fp32"));
        assert!(err(Options { keep_fp32: vec!["layer.0.qkv".into()], ..f16.clone() }).contains("keep_fp32"));
        let scales = Some(std::sync::Arc::new(Default::default()));
        assert!(err(Options { activation_scales: scales, ..f16.clone() }).contains("activation scales"));
        assert!(err(Options { residency: Residency::Lock, ..f16 }).contains("residency Lock"));
    }
}
