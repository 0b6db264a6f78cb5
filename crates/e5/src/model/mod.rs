//! The encoder: embeddings → N × (attention, feed-forward) → token states.

mod embeddings;
mod layer;
mod linear;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::input::Precision;
use crate::weights::Checkpoint;
use e5_kernels::Kernels;
use embeddings::Embeddings;
use layer::Layer;
use linear::LinearFormat;
use std::collections::BTreeMap;

/// A point in the network whose activations a [`Tap`] can observe, `[T, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// Embeddings after their LayerNorm (`[T, H]`).
    Embeddings,
    /// Query | key | value projections of layer `i` (`[T, 3H]`).
    Qkv(usize),
    /// Attention context before the output projection (`[T, H]`).
    Attention(usize),
    /// Attention output projection plus the residual, before LayerNorm (`[T, H]`).
    AttnOut(usize),
    /// After the attention output projection, residual and LayerNorm (`[T, H]`).
    AttentionNorm(usize),
    /// Feed-forward up projection after GELU (`[T, I]`).
    FfnUp(usize),
    /// Feed-forward down projection plus the residual, before LayerNorm (`[T, H]`).
    FfnDown(usize),
    /// Layer output: feed-forward down, residual, LayerNorm (`[T, H]`).
    Output(usize),
}

/// Observer of intermediate activations (hidden states for parity tests and quantization
/// reports). The slice is row-major `[T, width]` over the whole packed batch.
pub type Tap<'a> = dyn FnMut(Site, &[f32]) + 'a;

/// The linear maps of a layer, as named in `keep_fp32` and quantization reports.
pub const SUB_LAYERS: [&str; 4] = ["qkv", "attn_out", "ffn_up", "ffn_down"];

pub(crate) struct Encoder {
    pub cfg: ModelConfig,
    pub embeddings: Embeddings,
    layers: Vec<Layer>,
    pub kern: &'static Kernels,
}

impl Encoder {
    /// Loads every layer in `precision`, except the sub-layers named in `keep_fp32`
    /// (`layer.{i}.{qkv|attn_out|ffn_up|ffn_down}`), which stay f32.
    pub fn load(
        ck: &Checkpoint,
        cfg: ModelConfig,
        kern: &'static Kernels,
        precision: Precision,
        keep_fp32: &[String],
        activation_scales: Option<&BTreeMap<String, f32>>,
    ) -> Result<Self> {
        let names: Vec<String> = (0..cfg.layers).flat_map(|i| SUB_LAYERS.map(|s| format!("layer.{i}.{s}"))).collect();
        let expected = format!("layer.N.{{{}}} with N < {}", SUB_LAYERS.join("|"), cfg.layers);
        if let Some(bad) = keep_fp32.iter().find(|k| !names.contains(k)) {
            return Err(Error::Options(format!("keep-fp32 {bad:?} names no sub-layer (expected {expected})")));
        }
        let scales = activation_scales.cloned().unwrap_or_default();
        if let Some(bad) = scales.keys().find(|k| !names.contains(k)) {
            return Err(Error::Options(format!(
                "activation scale for {bad:?} names no sub-layer (expected {expected})"
            )));
        }
        if !scales.is_empty() && precision != Precision::Int8 {
            return Err(Error::Options("activation scales (static int8) need int8 precision".into()));
        }
        let embeddings = Embeddings::load(ck, &cfg)?;
        let layers = (0..cfg.layers)
            .map(|i| {
                let format = |s: &str| {
                    let name = format!("layer.{i}.{s}");
                    match keep_fp32.contains(&name) {
                        true => LinearFormat { precision: Precision::Fp32, input_scale: None },
                        false => LinearFormat { precision, input_scale: scales.get(&name).copied() },
                    }
                };
                Layer::load(ck, kern, &cfg, i, &format)
            })
            .collect::<Result<_>>()?;
        Ok(Encoder { cfg, embeddings, layers, kern })
    }

    /// `ids`: `[T]`, `seqs`: `n + 1` prefix offsets → last hidden states `[T, H]`.
    pub fn forward(&self, ids: &[u32], seqs: &[usize], tap: &mut Tap<'_>) -> Vec<f32> {
        let mut x = self.embeddings.forward(self.kern, ids, seqs);
        tap(Site::Embeddings, &x);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(self.kern, x, seqs, i, tap);
        }
        x
    }

    /// Bytes held outside the mapped checkpoint (packed weights, norms, positions).
    pub fn owned_bytes(&self) -> usize {
        self.embeddings.owned_bytes() + self.layers.iter().map(|l| l.bytes()).sum::<usize>()
    }
}
