//! The encoder: embeddings → N × (attention, feed-forward) → token states.

mod embeddings;
mod layer;
mod linear;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::weights::Checkpoint;
use e5_kernels::Kernels;
use embeddings::Embeddings;
use layer::Layer;

/// A point in the network whose activations a [`Tap`] can observe, `[T, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// Embeddings after their LayerNorm (`[T, H]`).
    Embeddings,
    /// Query | key | value projections of layer `i` (`[T, 3H]`).
    Qkv(usize),
    /// Attention context before the output projection (`[T, H]`).
    Attention(usize),
    /// After the attention output projection, residual and LayerNorm (`[T, H]`).
    AttentionNorm(usize),
    /// Feed-forward up projection after GELU (`[T, I]`).
    FfnUp(usize),
    /// Layer output: feed-forward down, residual, LayerNorm (`[T, H]`).
    Output(usize),
}

/// Observer of intermediate activations (hidden states for parity tests and quantization
/// reports). The slice is row-major `[T, width]` over the whole packed batch.
pub type Tap<'a> = dyn FnMut(Site, &[f32]) + 'a;

pub(crate) struct Encoder {
    pub cfg: ModelConfig,
    pub embeddings: Embeddings,
    layers: Vec<Layer>,
    pub kern: &'static Kernels,
}

impl Encoder {
    pub fn load(ck: &Checkpoint, cfg: ModelConfig, kern: &'static Kernels) -> Result<Self> {
        let embeddings = Embeddings::load(ck, &cfg)?;
        let layers = (0..cfg.layers)
            .map(|i| Layer::load(ck, kern, &cfg, i))
            .collect::<Result<_>>()?;
        Ok(Encoder {
            cfg,
            embeddings,
            layers,
            kern,
        })
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
