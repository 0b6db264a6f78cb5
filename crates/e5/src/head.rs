//! The model's head on the CPU: token states `[T, H]` → pooled `[n, modes·H]` → Dense
//! layers → optional L2 normalization, as sentence-transformers computes it.
//!
//! Tokens a sequence excludes from pooling (`skip`: its prompt under `include_prompt:
//! false`, leading special token included) are masked out as sentence-transformers masks
//! them: positions still count from the sequence start (weighted mean), CLS is the first
//! counted token, and a sequence with no counted token pools to zeros.

use crate::error::{Error, Result};
use e5_arch::{Activation, DenseSpec, Head, ModelConfig, PoolingMode};
use e5_kernels::Kernels;
use std::path::Path;

struct Dense {
    spec: DenseSpec,
    /// `[out, in]`.
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

pub(crate) struct OutputHead {
    head: Head,
    dense: Vec<Dense>,
    hidden: usize,
    normalize: bool,
}

impl OutputHead {
    /// Reads the Dense weights (`{module}/model.safetensors`).
    pub fn load(dir: &Path, cfg: &ModelConfig, normalize: bool) -> Result<OutputHead> {
        let dense = cfg.head.dense.iter().map(|spec| load_dense(dir, spec)).collect::<Result<_>>()?;
        Ok(OutputHead { head: cfg.head.clone(), dense, hidden: cfg.hidden, normalize })
    }

    /// Output width.
    pub fn width(&self) -> usize {
        self.head.width(self.hidden)
    }

    /// `hidden`: `[T, H]`; `seqs`: `n + 1` offsets; `skips[s]`: leading tokens of sequence
    /// `s` left out of pooling; `out`: `[n, width]`.
    pub fn apply(&self, kern: &Kernels, hidden: &[f32], seqs: &[usize], skips: &[usize], out: &mut [f32]) {
        let (h, width) = (self.hidden, self.width());
        if let (Some(mode), true) = (self.head.pooling.fused(), self.dense.is_empty() && skips.iter().all(|&s| s == 0))
        {
            return kern.pool(hidden, h, seqs, mode, self.normalize, out);
        }
        e5_kernels::for_each_chunk_mut(out, width, 1, |s, o| {
            let (a, b) = (seqs[s], seqs[s + 1]);
            let tokens = &hidden[a * h..b * h];
            let mut pooled = vec![0.0; self.head.pooling.modes.len() * h];
            for (mode, p) in self.head.pooling.modes.iter().zip(pooled.chunks_exact_mut(h)) {
                pool(kern, *mode, tokens, h, skips[s].min(b - a), p);
            }
            for d in &self.dense {
                pooled = d.forward(kern, &pooled);
            }
            o.copy_from_slice(&pooled);
            if self.normalize {
                let norm = kern.dot(o, o).sqrt();
                kern.scale(o, 1.0 / norm.max(1e-12));
            }
        });
    }
}

/// One mode over `tokens` (`[L, h]`), the first `skip` masked out, into `out` (`[h]`).
fn pool(kern: &Kernels, mode: PoolingMode, tokens: &[f32], h: usize, skip: usize, out: &mut [f32]) {
    let rows: Vec<&[f32]> = tokens.chunks_exact(h).collect();
    let counted = &rows[skip..];
    out.fill(0.0);
    let Some((first, last)) = counted.first().zip(counted.last()) else {
        if let (PoolingMode::Cls, Some(r)) = (mode, rows.first()) {
            // sentence-transformers' argmax over an all-zero mask picks position 0.
            out.copy_from_slice(r);
        }
        return;
    };
    let sum = |out: &mut [f32]| counted.iter().for_each(|r| kern.axpy(out, 1.0, r));
    match mode {
        PoolingMode::Cls => out.copy_from_slice(first),
        PoolingMode::LastToken => out.copy_from_slice(last),
        PoolingMode::Max => {
            out.copy_from_slice(first);
            for r in &counted[1..] {
                out.iter_mut().zip(*r).for_each(|(o, &x)| *o = o.max(x));
            }
        }
        PoolingMode::Mean => {
            sum(out);
            kern.scale(out, 1.0 / counted.len() as f32);
        }
        PoolingMode::MeanSqrtLen => {
            sum(out);
            kern.scale(out, 1.0 / (counted.len() as f32).sqrt());
        }
        PoolingMode::WeightedMean => {
            let mut total = 0.0;
            for (i, r) in counted.iter().enumerate() {
                let w = (skip + i + 1) as f32;
                kern.axpy(out, w, r);
                total += w;
            }
            kern.scale(out, 1.0 / total);
        }
    }
}

impl Dense {
    fn forward(&self, kern: &Kernels, x: &[f32]) -> Vec<f32> {
        let n = self.spec.in_features;
        let mut y: Vec<f32> = self.weight.chunks_exact(n).map(|w| kern.dot(w, x)).collect();
        if let Some(b) = &self.bias {
            y.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        y.iter_mut().for_each(|v| *v = activate(self.spec.activation, *v));
        y
    }
}

fn activate(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Identity => x,
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2)),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Silu => x / (1.0 + (-x).exp()),
    }
}

fn load_dense(dir: &Path, spec: &DenseSpec) -> Result<Dense> {
    let module = dir.join(&spec.path);
    let path = module.join("model.safetensors");
    if !path.exists() {
        let msg = "no model.safetensors (a pytorch_model.bin Dense must be converted to safetensors)";
        return Err(Error::config(&module, msg));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Safetensors { path: path.clone(), message: e.to_string() })?;
    let weight = crate::weights::f32_tensor(&st, &path, "linear.weight", &[spec.out_features, spec.in_features])?;
    let bias = match spec.bias {
        true => Some(crate::weights::f32_tensor(&st, &path, "linear.bias", &[spec.out_features])?),
        false => None,
    };
    Ok(Dense { spec: spec.clone(), weight, bias })
}
