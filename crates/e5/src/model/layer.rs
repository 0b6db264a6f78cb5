//! One encoder layer: self-attention then feed-forward, each closed by residual + LayerNorm.

use super::linear::{Linear, LinearFormat, Norm};
use super::{Site, Tap};
use crate::error::Result;
use crate::weights::Checkpoint;
use e5_arch::names::NormId;
use e5_arch::{LinearId, ModelConfig, SubLayer};
use e5_kernels::{AttentionShape, Kernels, Post};

/// A layer's intermediate activations, kept by one forward from layer to layer: every layer
/// needs the same shapes. Fresh buffers of these sizes (`[T, I]` is 24 MiB for 32 passages
/// of 128 tokens) often come from the OS as untouched pages, each a page fault on its first
/// write, once per layer; reused, once per forward (`docs/cpu-analysis.md` §31).
#[derive(Default)]
pub(crate) struct Scratch {
    /// `[T, 3H]`
    qkv: Vec<f32>,
    /// `[T, H]`
    ctx: Vec<f32>,
    /// `[T, H]`
    h: Vec<f32>,
    /// `[T, I]`
    up: Vec<f32>,
}

pub(crate) struct Layer {
    /// Query, key and value stacked: `[3H, H]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_up: Linear,
    ffn_down: Linear,
    ffn_norm: Norm,
    shape: AttentionShape,
    cfg_gelu: e5_kernels::GeluKind,
}

impl Layer {
    /// `format(id)` gives each linear map's format.
    pub fn load<'a>(
        ck: &Checkpoint,
        kern: &Kernels,
        cfg: &ModelConfig,
        i: usize,
        format: &dyn Fn(LinearId) -> LinearFormat<'a>,
    ) -> Result<Self> {
        let (h, eps) = (cfg.hidden, cfg.layer_norm_eps);
        let linear = |sub| {
            let id = LinearId::new(i, sub);
            Linear::load(ck, kern, id, cfg, format(id))
        };
        Ok(Layer {
            qkv: linear(SubLayer::Qkv)?,
            attn_out: linear(SubLayer::AttnOut)?,
            attn_norm: Norm::load(ck, NormId::Attention(i), h, eps)?,
            ffn_up: linear(SubLayer::FfnUp)?,
            ffn_down: linear(SubLayer::FfnDown)?,
            ffn_norm: Norm::load(ck, NormId::Output(i), h, eps)?,
            shape: AttentionShape { hidden: h, heads: cfg.heads },
            cfg_gelu: cfg.gelu,
        })
    }

    /// `x`: `[T, H]` → `[T, H]` in place; `seqs` delimits the sequences of the batch.
    pub fn forward(
        &self,
        kern: &Kernels,
        x: &mut Vec<f32>,
        seqs: &[usize],
        layer: usize,
        tap: &mut Tap<'_>,
        scratch: &mut Scratch,
    ) {
        let t = *seqs.last().unwrap_or(&0);
        let Scratch { qkv, ctx, h, up } = scratch;
        self.qkv.forward(kern, x, t, Post::None, tap, qkv);
        tap(Site::Qkv(layer), qkv);
        // Every element is written: the heads tile the columns, the sequences the rows.
        ctx.resize(t * self.shape.hidden, 0.0);
        kern.attention(qkv, seqs, self.shape, ctx);
        tap(Site::Attention(layer), ctx);
        self.attn_out.forward(kern, ctx, t, Post::Residual(x), tap, h);
        tap(Site::AttnOut(layer), h);
        self.attn_norm.forward(kern, h);
        tap(Site::AttentionNorm(layer), h);
        self.ffn_up.forward(kern, h, t, Post::Gelu(self.cfg_gelu), tap, up);
        tap(Site::FfnUp(layer), up);
        // `x` is read for the last time above (the attention residual): the output goes there.
        self.ffn_down.forward(kern, up, t, Post::Residual(h), tap, x);
        tap(Site::FfnDown(layer), x);
        self.ffn_norm.forward(kern, x);
        tap(Site::Output(layer), x);
    }

    pub fn bytes(&self) -> usize {
        [&self.qkv, &self.attn_out, &self.ffn_up, &self.ffn_down].iter().map(|l| l.bytes()).sum::<usize>()
            + self.attn_norm.bytes()
            + self.ffn_norm.bytes()
    }
}
