//! The encoder: embeddings → N × (attention, feed-forward) → token states.

mod embeddings;
mod layer;
mod linear;

use crate::error::{Error, Result};
use crate::input::Precision;
use crate::weights::Checkpoint;
use e5_arch::{LinearId, ModelConfig};
use e5_kernels::Kernels;
use embeddings::TokenEmbeddings;
use layer::{Layer, Scratch};
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
    /// The input rows of a linear map, as its GEMM reads them (`[T, k]`, see
    /// [`SubLayer::input_width`](e5_arch::SubLayer::input_width)).
    LinearInput(LinearId),
    /// The model's output rows of the sequences: pooled, through its Dense layers and, per
    /// the model, normalized (`[n, width]`).
    Pooled,
}

impl Site {
    /// Width of a row at this site.
    pub fn width(&self, cfg: &ModelConfig) -> usize {
        match self {
            Site::Qkv(_) => 3 * cfg.hidden,
            Site::FfnUp(_) => cfg.intermediate,
            Site::LinearInput(id) => id.sub.input_width(cfg),
            Site::Pooled => cfg.head.width(cfg.hidden),
            Site::Embeddings
            | Site::Attention(_)
            | Site::AttnOut(_)
            | Site::AttentionNorm(_)
            | Site::FfnDown(_)
            | Site::Output(_) => cfg.hidden,
        }
    }
}

/// Observer of intermediate activations (hidden states for parity tests and quantization
/// reports). The slice is row-major `[rows, width]` over the whole packed batch: `T` token
/// rows, or `n` sequence rows at [`Site::Pooled`].
pub type Tap<'a> = dyn FnMut(Site, &[f32]) + Send + 'a;

/// How the linear layers are stored: the options' precision, with the sub-layers kept in
/// f32, the static int8 input scales and the smoothing factors (from the options or a
/// quantized directory), all keyed `layer.{i}.{sub_layer}`.
pub(crate) struct LinearFormats<'a> {
    pub keep_fp32: &'a [String],
    pub activation_scales: Option<&'a BTreeMap<String, f32>>,
    pub smoothing: Option<&'a BTreeMap<String, Vec<f32>>>,
}

pub(crate) struct Encoder {
    pub cfg: ModelConfig,
    pub embeddings: TokenEmbeddings,
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
        formats: &LinearFormats<'_>,
    ) -> Result<Self> {
        let parse = |what: &str, name: &str| {
            LinearId::parse_in(name, cfg.layers).map_err(|e| Error::Options(format!("{what} {e}")))
        };
        let keep: Vec<LinearId> = formats.keep_fp32.iter().map(|k| parse("keep-fp32", k)).collect::<Result<_>>()?;
        let scales: BTreeMap<LinearId, f32> = formats
            .activation_scales
            .into_iter()
            .flatten()
            .map(|(k, &s)| Ok((parse("activation scale for", k)?, s)))
            .collect::<Result<_>>()?;
        let smoothing: BTreeMap<LinearId, &[f32]> = formats
            .smoothing
            .into_iter()
            .flatten()
            .map(|(k, s)| Ok((parse("smoothing for", k)?, s.as_slice())))
            .collect::<Result<_>>()?;
        if !scales.is_empty() && precision != Precision::Int8 {
            return Err(Error::Options("activation scales (static int8) need int8 precision".into()));
        }
        let embeddings = TokenEmbeddings::load(ck, &cfg)?;
        let layers = (0..cfg.layers)
            .map(|i| {
                let format = |id: LinearId| match keep.contains(&id) {
                    true => LinearFormat { precision: Precision::Fp32, input_scale: None, smoothing: None },
                    false => LinearFormat {
                        precision,
                        input_scale: scales.get(&id).copied(),
                        smoothing: smoothing.get(&id).copied(),
                    },
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
        let mut scratch = Scratch::default();
        for (i, layer) in self.layers.iter().enumerate() {
            layer.forward(self.kern, &mut x, seqs, i, tap, &mut scratch);
        }
        x
    }

    /// Bytes held outside the mapped checkpoint (packed weights, norms, positions).
    pub fn owned_bytes(&self) -> usize {
        self.embeddings.owned_bytes() + self.layers.iter().map(|l| l.bytes()).sum::<usize>()
    }
}
