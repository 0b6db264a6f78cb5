//! Scalar twins: the reference every SIMD row kernel is tested against.

use super::consts::*;
use super::VectorKernels;
use std::mem::MaybeUninit;

pub static KERNELS: VectorKernels = VectorKernels {
    gelu_erf,
    gelu_tanh,
    max,
    exp_shift_sum,
    scale,
    softmax_rows,
    axpy,
    sum_rows,
    dot,
    layernorm,
    widen_f16,
    widen_bf16,
    abs_max,
    quantize_i8,
    quantize_i8_cells,
    fma_probe,
    fma_probe_flops: 32,
};

/// `exp(x)` with the shared Cody–Waite reduction and polynomial.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = p * r + c;
    }
    let p = p * r * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erfc(z)` for `z ≥ 0` with the shared approximation.
#[inline(always)]
pub fn erfc(z: f32) -> f32 {
    let z = z.min(ERFC_ZMAX);
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = ERFC_P[0];
    for c in &ERFC_P[1..] {
        p = p * t + c;
    }
    t * exp(p - z * z)
}

#[inline(always)]
pub fn gelu_erf_1(x: f32) -> f32 {
    let hc = 0.5 * x * erfc(x.abs() * FRAC_1_SQRT_2);
    if x < 0.0 {
        hc
    } else {
        x - hc
    }
}

/// The scalar twin of AVX-512's tabled GELU (`avx512::gelu_erf16`), operation for
/// operation (see `consts::GELU_Q`), so the two agree bit for bit.
pub fn gelu_erf_tabled_1(x: f32) -> f32 {
    let a = x.abs();
    // `min` returns the end for NaN, as `vminps` does with the end second.
    let am = a.min(GELU_Q_END);
    let i = ((am * 2.0) as usize).min(15);
    let u = (-(i as f32)).mul_add(0.5, am);
    let mut q = GELU_Q[7][i];
    for c in GELU_Q[..7].iter().rev() {
        q = q.mul_add(u, c[i]);
    }
    let t = if a < GELU_Q_END { x * q } else { 0.0 };
    if x < 0.0 {
        t
    } else {
        x - t
    }
}

#[inline(always)]
pub fn gelu_tanh_1(x: f32) -> f32 {
    let u = TANH_C * (x + TANH_C3 * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn gelu_erf(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = gelu_erf_1(*v));
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn gelu_tanh(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = gelu_tanh_1(*v));
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn max(x: &[f32]) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f32 {
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = exp(*v - shift);
        sum += *v;
    }
    sum
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn scale(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v *= s);
}

/// One row after another (`super::softmax_row_by_row`).
///
/// # Safety
/// See [`VectorKernels::softmax_rows`].
pub unsafe fn softmax_rows(x: &mut [f32], rows: usize, len: usize, ld: usize) {
    super::softmax_row_by_row(&KERNELS, x, rows, len, ld)
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature. `out` non-empty, `x.len()` a
/// multiple of `out.len()`.
pub unsafe fn sum_rows(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks_exact(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn layernorm(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    if let Some(r) = residual {
        x.iter_mut().zip(r).for_each(|(x, r)| *x += r);
    }
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * rstd * g + b;
    }
}

/// Peak probe: 16 independent multiply-add chains; 32 flops per iteration.
///
/// # Safety
/// Always safe; `unsafe` only to share the table's signature.
pub unsafe fn fma_probe(iters: usize) -> f32 {
    let mut acc = [0.0f32; 16];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = std::hint::black_box(*v) * 0.999_999 + 1e-7;
        }
    }
    acc.iter().sum()
}

/// # Safety
/// Safe to call; `unsafe` only to share the table's signature.
pub unsafe fn widen_f16(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = half::f16::from_bits(s).to_f32());
}

/// # Safety
/// Safe to call; `unsafe` only to share the table's signature.
pub unsafe fn widen_bf16(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f32::from_bits(u32::from(s) << 16));
}

/// # Safety
/// Safe to call; `unsafe` only to share the table's signature.
pub unsafe fn abs_max(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// # Safety
/// Safe to call; `unsafe` only to share the table's signature.
pub unsafe fn quantize_i8(x: &[f32], inv: f32, q: &mut [i8]) {
    assert_eq!(x.len(), q.len());
    for (q, &v) in q.iter_mut().zip(x) {
        let p = v * inv;
        *q = if p.is_nan() { 0 } else { p.clamp(-127.0, 127.0).round_ties_even() as i8 };
    }
}

/// # Safety
/// Safe to call; `unsafe` only to share the table's signature.
pub unsafe fn quantize_i8_cells(x: &[f32], inv: f32, flip: u32, q: &mut [MaybeUninit<i8>], stride: usize) {
    super::check_cells(x.len(), q, stride);
    for (g, v) in x.chunks(4).enumerate() {
        let mut cell = [0i8; 4];
        quantize_i8(v, inv, &mut cell[..v.len()]);
        let bits = u32::from_ne_bytes(cell.map(|b| b as u8)) ^ flip;
        for (d, b) in q[g * stride..g * stride + 4].iter_mut().zip(bits.to_ne_bytes()) {
            d.write(b as i8);
        }
    }
}
