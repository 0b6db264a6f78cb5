//! Row kernels: activations, softmax pieces, LayerNorm, dot, axpy and column sums.
//!
//! One implementation per ISA (`scalar.rs` is the reference twin). All share the same
//! polynomials, so ISAs differ only by FMA rounding, with one exception: AVX-512's erf GELU
//! reads its polynomial from a 16-interval table (`consts::GELU_Q`, one `vpermps` per
//! coefficient), ~2× the speed of the erfc formula the others run; its scalar twin is
//! `scalar::gelu_erf_tabled_1`. Callers guarantee the table's ISA is
//! supported, which is what makes the `unsafe fn` pointers sound to call.

pub mod scalar;

use std::mem::MaybeUninit;

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
    /// Tabled GELU (AVX-512): `Q(a) = Φ(-a) = erfc(a/√2)/2` on `[0, GELU_Q_END)` as 16
    /// polynomials of degree 7 in `u = a - i/2 ∈ [0, 1/2)`, interval `i = ⌊2a⌋`;
    /// `GELU_Q[j][i]` is the coefficient of `u^j` in interval `i` (one row per `vpermps`).
    /// Then `gelu(x) = x - x·Q(|x|)` for `x ≥ 0`, `x·Q(|x|)` below, and `Q = 0` past the
    /// end (`Q(8) = 6e-16`). Fitted by `tools/fit_gelu_table.py` (relative least squares on
    /// Chebyshev nodes): in f32 with FMAs, within 1.12 ulp of the exact GELU for `x ≥ 0`
    /// and 2.2e-8 absolute below (the erfc formula: 4.3 ulp and 6e-8).
    pub const GELU_Q_END: f32 = 8.0;
    #[rustfmt::skip]
    pub const GELU_Q: [[f32; 16]; 8] = [
        [0.5, 0.30853754, 0.15865526, 0.0668072, 0.022750132, 0.0062096654, 0.001349898, 2.3262909e-04, 3.167124e-05, 3.3976723e-06, 2.8665139e-07, 1.898953e-08, 9.865839e-10, 4.0159695e-11, 1.2797935e-12, 3.1908067e-14],
        [-0.3989423, -0.35206562, -0.24197087, -0.1295177, -0.053990956, -0.01752831, -0.004431851, -8.726831e-04, -1.3382988e-04, -1.5983598e-05, -1.4866843e-06, -1.0769177e-07, -6.075227e-09, -2.6690264e-10, -9.13159e-12, -2.432958e-13],
        [2.6976338e-07, 0.08802257, 0.120988175, 0.09714021, 0.053990703, 0.021910599, 0.006647848, 0.0015272023, 2.6764945e-04, 3.595861e-05, 3.7156144e-06, 2.95977e-07, 1.820646e-08, 8.659238e-10, 3.1874076e-11, 9.087041e-13],
        [0.066486016, 0.043948382, -2.491866e-05, -0.026998766, -0.026992716, -0.01533972, -0.0059101097, -0.0016363559, -3.3443008e-04, -5.121579e-05, -5.930833e-06, -5.2246526e-07, -3.5161953e-08, -1.813287e-09, -7.181598e-11, -2.1882353e-12],
        [3.3355667e-05, -0.019867443, -0.020050127, -0.006010734, 0.0044831685, 0.00594869, 0.003330557, 0.0011776638, 2.8897726e-04, 5.1242467e-05, 6.7024016e-06, 6.5481754e-07, 4.819069e-08, 2.686694e-09, 1.1395165e-10, 3.688698e-12],
        [-0.01010769, -0.0054446133, 0.0037505797, 0.005772878, 0.0023055696, -7.163169e-04, -0.0011338984, -5.8038405e-04, -1.7803164e-04, -3.7053673e-05, -5.4810926e-06, -5.9092156e-07, -4.716433e-08, -2.8142293e-09, -1.2643146e-10, -4.299317e-12],
        [2.8291863e-04, 0.004431854, 0.0023838289, -6.7569735e-04, -0.001469639, -4.170204e-04, 1.6927978e-04, 1.8537628e-04, 7.4466996e-05, 1.8210827e-05, 3.0103683e-06, 3.5255024e-07, 3.0024502e-08, 1.8873971e-09, 8.849837e-11, 3.1186158e-12],
        [9.244497e-04, -7.752916e-04, -0.0010075009, -3.325298e-04, 2.7403003e-04, 1.677595e-04, 1.1221712e-05, -3.0194571e-05, -1.6430618e-05, -4.629928e-06, -8.3483883e-07, -1.0387769e-07, -9.260402e-09, -6.0325483e-10, -2.9106516e-11, -1.0499843e-12],
    ];

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

/// `softmax_rows` (see [`VectorKernels::softmax_rows`]).
pub type SoftmaxRowsFn = unsafe fn(x: &mut [f32], rows: usize, len: usize, ld: usize);

/// Checks the rows `softmax_rows` touches lie inside `x`. Every ISA's kernel calls it.
pub(crate) fn check_rows(x_len: usize, rows: usize, len: usize, ld: usize) {
    assert!(
        rows == 0 || len <= ld && x_len >= (rows - 1) * ld + len,
        "{rows} rows of {len}, {ld} apart, overrun {x_len}"
    );
}

/// [`VectorKernels::softmax_rows`] one row after another, from `k`'s one-row kernels: the
/// scalar twin, and the kernel of ISAs with no multi-row form.
///
/// # Safety
/// `k`'s ISA must be available.
pub(crate) unsafe fn softmax_row_by_row(k: &VectorKernels, x: &mut [f32], rows: usize, len: usize, ld: usize) {
    check_rows(x.len(), rows, len, ld);
    if len == 0 {
        return;
    }
    for r in 0..rows {
        let row = &mut x[r * ld..][..len];
        let sum = (k.exp_shift_sum)(row, (k.max)(row));
        (k.scale)(row, 1.0 / sum);
    }
}

/// `quantize_i8` into strided cells (see [`VectorKernels::quantize_i8_cells`]).
pub type QuantizeCellsFn = unsafe fn(x: &[f32], inv: f32, flip: u32, q: &mut [MaybeUninit<i8>], stride: usize);

/// Checks the shape `quantize_i8_cells` writes for `n` values: `stride ≥ 4`, and `q` holds
/// every cell. Every ISA's kernel calls it: the table's pointers are called directly.
pub(crate) fn check_cells<T>(n: usize, q: &[T], stride: usize) {
    assert!(stride >= 4, "cell stride {stride} < 4");
    let cells = n.div_ceil(4);
    assert!(cells == 0 || q.len() >= (cells - 1) * stride + 4, "{cells} cells of stride {stride} overrun {}", q.len());
}

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
    /// Softmax of `rows` rows of `len` floats, `ld` apart (`x.len() ≥ (rows − 1)·ld + len`),
    /// bit for bit `max`, `exp_shift_sum` and `scale` by `1 / sum` row by row
    /// (`softmax_row_by_row`); SIMD ISAs may issue several rows' chains at once.
    pub softmax_rows: SoftmaxRowsFn,
    /// `y[i] += a·x[i]`, `x.len() == y.len()`.
    pub axpy: unsafe fn(y: &mut [f32], a: f32, x: &[f32]),
    /// Column sums: `out[j] = Σ_r x[r·w + j]` over the `x.len() / w` rows of `x`, `w =
    /// out.len() > 0`, `x.len()` a multiple of `w`. Each column is summed in row order from
    /// `+0.0`, so every ISA gives the scalar twin's bits (and `axpy(out, 1.0, row)` row by
    /// row gives the same ones: an FMA by 1 is the add).
    pub sum_rows: unsafe fn(x: &[f32], out: &mut [f32]),
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
    /// [`quantize_i8`](Self::quantize_i8) written in cells of 4 values at a stride: cell `g`
    /// (`x[4g..4g+4]`, zeros past the end) goes to `q[g·stride..g·stride+4]`, each 32-bit
    /// cell XORed with `flip` (`0x8080_8080` stores `q + 128` as unsigned bytes). Bytes
    /// between cells are left alone; `stride ≥ 4` and `q` holds every cell. One row of an
    /// int8 activation strip, written in the pass that quantizes it (so `q` may start
    /// uninitialized).
    pub quantize_i8_cells: QuantizeCellsFn,
    /// Runs `iters` iterations of independent FMA chains (the throughput probe).
    pub fma_probe: unsafe fn(iters: usize) -> f32,
    /// Flops one `fma_probe` iteration performs.
    pub fma_probe_flops: usize,
}
