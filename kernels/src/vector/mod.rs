//! Row kernels: activations, softmax pieces, LayerNorm, dot and axpy.
//!
//! One implementation per ISA (`scalar.rs` is the reference twin). All share the same
//! polynomials, so ISAs differ only by FMA rounding. Callers guarantee the table's ISA is
//! supported, which is what makes the `unsafe fn` pointers sound to call.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Constants shared by every ISA's `exp`, `erf` and GELU.
pub(crate) mod consts {
    /// exp: clamp range (no overflow to inf, results stay normal or zero).
    pub const EXP_HI: f32 = 88.0;
    pub const EXP_LO: f32 = -87.0;
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 split in two so `x - n·ln2` is exact for |n| ≤ 128 (Cody–Waite).
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Cephes expf minimax polynomial on [-ln2/2, ln2/2], highest degree first (its last
    /// coefficient, 5.0000001e-1, is 0.5 in f32).
    pub const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
    /// erfc(z) = t·exp(-z² + P(t)), t = 1/(1 + z/2), z ≥ 0 (Numerical Recipes `erfcc`,
    /// relative error < 1.2e-7), highest degree first. GELU built on erfc keeps its
    /// absolute error near one ulp: `x - (x/2)·erfc(x/√2)` for x ≥ 0, `(x/2)·erfc(|x|/√2)` below.
    pub const ERFC_P: [f32; 10] = [
        0.170_872_77,
        -0.822_152_23,
        1.488_515_9,
        -1.135_204,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_7,
        -1.265_512_2,
    ];
    /// Past this z, erfc underflows; clamping keeps exp's argument in range.
    pub const ERFC_ZMAX: f32 = 10.0;
    pub const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    /// gelu_tanh(x) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³).
    pub const TANH_C: f32 = 0.797_884_6;
    pub const TANH_C3: f32 = 0.044_715;
}

/// Which GELU a checkpoint's `hidden_act` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluKind {
    /// `0.5·x·(1 + erf(x/√2))`: HF `gelu`.
    Erf,
    /// `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`: HF `gelu_new`, `gelu_pytorch_tanh`.
    Tanh,
}

/// `x = LayerNorm(x + residual)·gamma + beta` over one row (see [`VectorKernels::layernorm`]).
pub type LayerNormFn = unsafe fn(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32);

/// One ISA's row kernels. Slices must satisfy the documented length relations.
pub struct VectorKernels {
    pub gelu_erf: unsafe fn(x: &mut [f32]),
    pub gelu_tanh: unsafe fn(x: &mut [f32]),
    /// `max(x)`; `-inf` for an empty slice.
    pub max: unsafe fn(x: &[f32]) -> f32,
    /// `x[i] = exp(x[i] - shift)`; returns `Σ x[i]` after the update.
    pub exp_shift_sum: unsafe fn(x: &mut [f32], shift: f32) -> f32,
    /// `x[i] *= s`.
    pub scale: unsafe fn(x: &mut [f32], s: f32),
    /// `y[i] += a·x[i]`, `x.len() == y.len()`.
    pub axpy: unsafe fn(y: &mut [f32], a: f32, x: &[f32]),
    /// `Σ a[i]·b[i]`, `a.len() == b.len()`.
    pub dot: unsafe fn(a: &[f32], b: &[f32]) -> f32,
    /// `x = LayerNorm(x + residual)·gamma + beta` over the row; all slices of one length.
    pub layernorm: LayerNormFn,
    /// `dst[i] = src[i]` for IEEE half bits (exact), `src.len() == dst.len()`.
    pub widen_f16: unsafe fn(src: &[u16], dst: &mut [f32]),
    /// `dst[i] = src[i]` for bfloat16 bits (exact: the high half of an f32).
    pub widen_bf16: unsafe fn(src: &[u16], dst: &mut [f32]),
    /// `max |x[i]|` over the non-NaN elements; 0 for an empty slice.
    pub abs_max: unsafe fn(x: &[f32]) -> f32,
    /// `q[i] = clamp(round_ties_even(x[i]·inv), -127, 127)`, NaN → 0; `x.len() == q.len()`.
    pub quantize_i8: unsafe fn(x: &[f32], inv: f32, q: &mut [i8]),
    /// Runs `iters` iterations of independent FMA chains (the throughput probe).
    pub fma_probe: unsafe fn(iters: usize) -> f32,
    /// Flops one `fma_probe` iteration performs.
    pub fma_probe_flops: usize,
}
