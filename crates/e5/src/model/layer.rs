//! One encoder layer: self-attention then feed-forward, each closed by residual + LayerNorm.

use super::linear::{Linear, LinearFormat, Norm};
use super::{Site, Tap};
use crate::error::Result;
use crate::weights::Checkpoint;
use e5_arch::names::NormId;
use e5_arch::{LinearId, ModelConfig, SubLayer};
use e5_kernels::{AttentionShape, Kernels, Post};

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

    /// `x`: `[T, H]` → `[T, H]`; `seqs` delimits the sequences of the batch.
    pub fn forward(&self, kern: &Kernels, x: Vec<f32>, seqs: &[usize], layer: usize, tap: &mut Tap<'_>) -> Vec<f32> {
        let t = *seqs.last().unwrap_or(&0);
        let qkv = self.qkv.forward(kern, &x, t, Post::None, tap);
        tap(Site::Qkv(layer), &qkv);
        let mut ctx = vec![0.0; t * self.shape.hidden];
        kern.attention(&qkv, seqs, self.shape, &mut ctx);
        tap(Site::Attention(layer), &ctx);
        let mut h = self.attn_out.forward(kern, &ctx, t, Post::Residual(&x), tap);
        tap(Site::AttnOut(layer), &h);
        self.attn_norm.forward(kern, &mut h);
        tap(Site::AttentionNorm(layer), &h);
        let up = self.ffn_up.forward(kern, &h, t, Post::Gelu(self.cfg_gelu), tap);
        tap(Site::FfnUp(layer), &up);
        let mut y = self.ffn_down.forward(kern, &up, t, Post::Residual(&h), tap);
        tap(Site::FfnDown(layer), &y);
        self.ffn_norm.forward(kern, &mut y);
        tap(Site::Output(layer), &y);
        y
    }

    pub fn bytes(&self) -> usize {
        [&self.qkv, &self.attn_out, &self.ffn_up, &self.ffn_down].iter().map(|l| l.bytes()).sum::<usize>()
            + self.attn_norm.bytes()
            + self.ffn_norm.bytes()
    }
}
