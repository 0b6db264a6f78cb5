//! The two parameterised ops of an encoder layer: a linear map and a LayerNorm.

use crate::error::Result;
use crate::weights::Checkpoint;
use e5_kernels::{Kernels, PackedF32, Post};

/// `y = x · Wᵀ + b` with `W` packed once at load.
pub(crate) struct Linear {
    weight: PackedF32,
}

impl Linear {
    /// Packs `names` (stacked along the output dimension, e.g. query/key/value into one
    /// `[3H, H]` map), each `[n_i, k]` with a bias `[n_i]`, then releases their pages.
    pub fn load(
        ck: &Checkpoint,
        kern: &Kernels,
        names: &[&str],
        n_each: usize,
        k: usize,
    ) -> Result<Self> {
        let (mut w, mut b) = (Vec::with_capacity(names.len() * n_each * k), Vec::new());
        for name in names {
            w.extend(ck.f32(&format!("{name}.weight"), &[n_each, k])?);
            b.extend(ck.f32(&format!("{name}.bias"), &[n_each])?);
        }
        let n = names.len() * n_each;
        let weight = PackedF32::from_rows(kern, &w, n, k, k, Some(&b));
        for name in names {
            ck.release(&format!("{name}.weight"));
        }
        Ok(Linear { weight })
    }

    /// `x`: `[t, k]` → `[t, n]`, with `post` fused into the GEMM's store.
    pub fn forward(&self, kern: &Kernels, x: &[f32], t: usize, post: Post<'_>) -> Vec<f32> {
        let mut y = vec![0.0; t * self.weight.n()];
        kern.gemm(x, t, &self.weight, post, &mut y);
        y
    }

    pub fn bytes(&self) -> usize {
        self.weight.bytes()
    }
}

/// LayerNorm over the hidden dimension.
pub(crate) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub fn load(ck: &Checkpoint, name: &str, width: usize, eps: f32) -> Result<Self> {
        Ok(Norm {
            gamma: ck.f32(&format!("{name}.weight"), &[width])?,
            beta: ck.f32(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }

    /// `x = LayerNorm(x)` for every row of `x`.
    pub fn forward(&self, kern: &Kernels, x: &mut [f32]) {
        kern.layernorm_rows(x, None, &self.gamma, &self.beta, self.eps);
    }

    pub fn bytes(&self) -> usize {
        (self.gamma.len() + self.beta.len()) * 4
    }
}
