//! The two parameterised ops of an encoder layer: a linear map and a LayerNorm.

use super::{Site, Tap};
use crate::error::{Error, Result};
use crate::input::Precision;
use crate::weights::{check_scales, Checkpoint, FloatType};
use e5_arch::names::{self, NormId};
use e5_arch::{LinearId, ModelConfig};
use e5_kernels::{ActQuant, Kernels, PackedBf16, PackedF32, PackedI4, PackedI8, Post, Storage};

/// Packed weights in the layer's precision.
enum Weights {
    /// f32 arithmetic on f32, f16 or bf16 storage.
    Float(PackedF32),
    /// bf16 weights and activations, f32 accumulation (`vdpbf16ps`).
    Bf16Dot(PackedBf16),
    Int8(PackedI8),
    /// Group-wise int4, int8 activations per token.
    Int4(PackedI4),
}

impl Weights {
    /// The same weights on 2 MiB pages: a forward at batch 1 streams all of them once, and
    /// on 4 KiB pages every 4 KiB of that stream costs a TLB miss (see
    /// `kernels/src/pages.rs`; results are unchanged).
    fn into_huge_pages(self) -> Self {
        match self {
            Weights::Float(w) => Weights::Float(w.into_huge_pages()),
            Weights::Bf16Dot(w) => Weights::Bf16Dot(w.into_huge_pages()),
            Weights::Int8(w) => Weights::Int8(w.into_huge_pages()),
            Weights::Int4(w) => Weights::Int4(w.into_huge_pages()),
        }
    }
}

/// `y = x · Wᵀ + b` with `W` packed once at load.
pub(crate) struct Linear {
    id: LinearId,
    weight: Weights,
    /// Calibrated input scale (static int8); `None`: per-token scales at run time.
    input_scale: Option<f32>,
    /// Smoothed static int8: `1 / (s[j]·input_scale)` per input channel (`[k]`); the
    /// weights' input columns were multiplied by `s` before quantization.
    smoothed_inv: Option<Vec<f32>>,
}

/// How one linear map is stored and run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LinearFormat<'a> {
    pub precision: Precision,
    pub input_scale: Option<f32>,
    /// Per-input-channel smoothing factors `s` (`[k]`, static int8 only): `x·Wᵀ` runs as
    /// `(x / s)·(W·diag(s))ᵀ`, which moves activation outliers into the weights.
    pub smoothing: Option<&'a [f32]>,
}

impl Linear {
    /// Packs the HF modules of `id` (stacked along the output dimension, e.g. query/key/value
    /// into one `[3H, H]` map), each `[n_each, k]` with a bias `[n_each]`, onto huge pages,
    /// then releases their pages in the checkpoint.
    pub fn load(
        ck: &Checkpoint,
        kern: &Kernels,
        id: LinearId,
        cfg: &ModelConfig,
        format: LinearFormat<'_>,
    ) -> Result<Self> {
        let linear = Self::pack(ck, kern, id, cfg, format)?;
        Ok(Linear { weight: linear.weight.into_huge_pages(), ..linear })
    }

    /// [`Linear::load`] with the weights left on the heap.
    fn pack(
        ck: &Checkpoint,
        kern: &Kernels,
        id: LinearId,
        cfg: &ModelConfig,
        format: LinearFormat<'_>,
    ) -> Result<Self> {
        let (precision, input_scale) = (format.precision, format.input_scale);
        let modules = names::linear(id);
        let (n_each, k) = id.sub.shape(cfg);
        if let Some(s) = input_scale {
            crate::validate::check_input_scale(&id.to_string(), s)?;
        }
        let smoothed_inv = match (format.smoothing, input_scale) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::Options(format!("smoothing for {id} needs its static int8 input scale")))
            }
            (Some(s), Some(scale)) => {
                crate::validate::check_smoothing(&id.to_string(), s, k)?;
                Some(s.iter().map(|s| 1.0 / (s * scale)).collect::<Vec<f32>>())
            }
        };
        let n = modules.len() * n_each;
        let mut b = Vec::with_capacity(n);
        for m in &modules {
            b.extend(ck.f32(&m.bias, &[n_each])?);
        }
        if ck.dtype(&modules[0].weight) == Some(FloatType::I8) {
            // Written by `e5 quantize`: int8 per output channel, used without re-quantization
            // (smoothed there when the file stores smoothing factors).
            let (mut q, mut scales) = (Vec::with_capacity(n * k), Vec::with_capacity(n));
            for m in &modules {
                q.extend(ck.i8(&m.weight, &[n_each, k])?);
                let s = ck.f32(&m.weight_scale(), &[n_each])?;
                check_scales(&m.weight_scale(), &s)?;
                scales.extend(s);
            }
            if q.contains(&i8::MIN) {
                return Err(Error::Quantized(format!(
                    "{} holds -128; int8 weights must lie in [-127, 127]",
                    modules[0].weight
                )));
            }
            return Ok(Linear {
                id,
                weight: Weights::Int8(PackedI8::from_quantized(kern, &q, &scales, n, k, Some(&b))),
                input_scale,
                smoothed_inv,
            });
        }
        if ck.dtype(&modules[0].weight) == Some(FloatType::U8) {
            // Written by `e5 quantize --precision int4-g*`: the levels and scales the in-memory
            // int4 path computes, packed without the scale search.
            let group = precision.int4_group().ok_or_else(|| {
                let w = &modules[0].weight;
                Error::Quantized(format!("{w} holds packed int4 levels (U8), but the model does not run as int4"))
            })?;
            let (q, scales) = crate::quantize::int4::read(ck, &modules, n_each, k, group)?;
            return Ok(Linear {
                id,
                weight: Weights::Int4(PackedI4::from_quantized(kern, &q, &scales, n, k, group, Some(&b))),
                input_scale,
                smoothed_inv,
            });
        }
        let mut w = Vec::with_capacity(n * k);
        for m in &modules {
            w.extend(ck.f32(&m.weight, &[n_each, k])?);
        }
        if let Some(s) = format.smoothing {
            crate::quantize::smooth::scale_columns(&mut w, s);
        }
        let float = |s: Storage| Weights::Float(PackedF32::from_rows(kern, &w, n, k, k, Some(&b)).stored_as(s));
        let weight = match precision {
            Precision::Fp32 => float(Storage::F32),
            Precision::F16 => float(Storage::F16),
            Precision::Bf16 => match kern.bf16_dot()? {
                Some(dot) => Weights::Bf16Dot(PackedBf16::from_rows(dot, &w, n, k, k, Some(&b))),
                None => float(Storage::Bf16),
            },
            Precision::Int8 => Weights::Int8(PackedI8::quantize(kern, &w, n, k, Some(&b))),
            Precision::Int4G32 | Precision::Int4G64 | Precision::Int4G128 => {
                let group = precision.int4_group().expect("an int4 precision");
                Weights::Int4(PackedI4::quantize(kern, &w, n, k, group, Some(&b)))
            }
        };
        for m in &modules {
            ck.release(&m.weight);
        }
        Ok(Linear { id, weight, input_scale, smoothed_inv })
    }

    /// How the int8 GEMM quantizes this map's input.
    fn activations(&self) -> ActQuant<'_> {
        match (self.input_scale, &self.smoothed_inv) {
            (Some(scale), Some(inv)) => ActQuant::Smoothed { scale, inv },
            (Some(scale), None) => ActQuant::Static(scale),
            (None, _) => ActQuant::Dynamic,
        }
    }

    /// `x`: `[t, k]` → `y`: `[t, n]`, with `post` fused into the GEMM's store; `tap` sees
    /// `x`. `y` is resized to `[t, n]`, and every element overwritten.
    pub fn forward(&self, kern: &Kernels, x: &[f32], t: usize, post: Post<'_>, tap: &mut Tap<'_>, y: &mut Vec<f32>) {
        tap(Site::LinearInput(self.id), x);
        y.resize(t * self.n(), 0.0);
        match &self.weight {
            Weights::Float(w) => kern.gemm(x, t, w, post, y),
            Weights::Bf16Dot(w) => w.gemm(x, t, post, y),
            Weights::Int8(w) => kern.gemm_i8_quantized(x, t, w, self.activations(), post, y),
            Weights::Int4(w) => kern.gemm_i4(x, t, w, post, y),
        }
    }

    /// Output width.
    fn n(&self) -> usize {
        match &self.weight {
            Weights::Float(w) => w.n(),
            Weights::Bf16Dot(w) => w.n(),
            Weights::Int8(w) => w.n(),
            Weights::Int4(w) => w.n(),
        }
    }

    pub fn bytes(&self) -> usize {
        match &self.weight {
            Weights::Float(w) => w.bytes(),
            Weights::Bf16Dot(w) => w.bytes(),
            Weights::Int8(w) => w.bytes(),
            Weights::Int4(w) => w.bytes(),
        }
    }
}

/// LayerNorm over the hidden dimension.
pub(crate) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub fn load(ck: &Checkpoint, id: NormId, width: usize, eps: f32) -> Result<Self> {
        Ok(Norm { gamma: ck.f32(&id.weight(), &[width])?, beta: ck.f32(&id.bias(), &[width])?, eps })
    }

    /// `x = LayerNorm(x)` for every row of `x`.
    pub fn forward(&self, kern: &Kernels, x: &mut [f32]) {
        kern.layernorm_rows(x, None, &self.gamma, &self.beta, self.eps);
    }

    pub fn bytes(&self) -> usize {
        (self.gamma.len() + self.beta.len()) * 4
    }
}
