//! aarch64 NEON row kernels (4 lanes). Tails go through a zero-padded 4-lane buffer.

use super::consts::*;
use super::VectorKernels;
use std::arch::aarch64::*;

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
    widen_f16: super::scalar::widen_f16,
    widen_bf16: super::scalar::widen_bf16,
    abs_max: super::scalar::abs_max,
    quantize_i8: super::scalar::quantize_i8,
    quantize_i8_cells: super::scalar::quantize_i8_cells,
    fma_probe,
    fma_probe_flops: 128,
};

const L: usize = 4;

#[inline]
#[target_feature(enable = "neon")]
fn splat(x: f32) -> float32x4_t {
    vdupq_n_f32(x)
}

/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
pub fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vmaxq_f32(x, splat(EXP_LO)), splat(EXP_HI));
    let ni = vcvtnq_s32_f32(vmulq_f32(x, splat(LOG2E)));
    let n = vcvtq_f32_s32(ni);
    let r = vfmsq_f32(x, n, splat(LN2_HI));
    let r = vfmsq_f32(r, n, splat(LN2_LO));
    let mut p = splat(EXP_P[0]);
    for c in &EXP_P[1..] {
        p = vfmaq_f32(splat(*c), p, r);
    }
    let p = vfmaq_f32(vaddq_f32(r, splat(1.0)), vmulq_f32(p, r), r);
    let pow2 = vshlq_n_s32::<23>(vaddq_s32(ni, vdupq_n_s32(127)));
    vmulq_f32(p, vreinterpretq_f32_s32(pow2))
}

/// `erfc(z)` for `z ≥ 0`.
///
/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
pub fn erfc4(z: float32x4_t) -> float32x4_t {
    let z = vminq_f32(z, splat(ERFC_ZMAX));
    let t = vdivq_f32(splat(1.0), vfmaq_f32(splat(1.0), z, splat(0.5)));
    let mut p = splat(ERFC_P[0]);
    for c in &ERFC_P[1..] {
        p = vfmaq_f32(splat(*c), p, t);
    }
    vmulq_f32(t, exp4(vfmsq_f32(p, z, z)))
}

/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
pub fn gelu_erf4(x: float32x4_t) -> float32x4_t {
    let hc = vmulq_f32(vmulq_f32(x, splat(0.5)), erfc4(vmulq_f32(vabsq_f32(x), splat(FRAC_1_SQRT_2))));
    vbslq_f32(vcltq_f32(x, splat(0.0)), hc, vsubq_f32(x, hc))
}

/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
pub fn gelu_tanh4(x: float32x4_t) -> float32x4_t {
    let x3 = vmulq_f32(vmulq_f32(x, x), x);
    let u = vmulq_f32(splat(TANH_C), vfmaq_f32(x, splat(TANH_C3), x3));
    let e = exp4(vmulq_f32(u, splat(-2.0)));
    vdivq_f32(x, vaddq_f32(splat(1.0), e))
}

/// Applies `f` to every 4-lane group of `x`, the tail through a zero-padded buffer.
#[inline]
#[target_feature(enable = "neon")]
fn map4(x: &mut [f32], f: impl Fn(float32x4_t) -> float32x4_t) {
    let mut chunks = x.chunks_exact_mut(L);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly 4 floats.
        unsafe { vst1q_f32(c.as_mut_ptr(), f(vld1q_f32(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0.0f32; L];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds exactly 4 floats.
        unsafe { vst1q_f32(buf.as_mut_ptr(), f(vld1q_f32(buf.as_ptr()))) };
        tail.copy_from_slice(&buf[..tail.len()]);
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn load_partial(x: &[f32]) -> float32x4_t {
    let mut buf = [0.0f32; L];
    buf[..x.len()].copy_from_slice(x);
    // SAFETY: `buf` holds exactly 4 floats.
    unsafe { vld1q_f32(buf.as_ptr()) }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn gelu_erf(x: &mut [f32]) {
    map4(x, |v| gelu_erf4(v));
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn gelu_tanh(x: &mut [f32]) {
    map4(x, |v| gelu_tanh4(v));
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let mut m = splat(f32::NEG_INFINITY);
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder();
    for c in chunks {
        m = vmaxq_f32(m, vld1q_f32(c.as_ptr()));
    }
    tail.iter().copied().fold(vmaxvq_f32(m), f32::max)
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f32 {
    let s = splat(shift);
    let mut sum = splat(0.0);
    let mut chunks = x.chunks_exact_mut(L);
    for c in &mut chunks {
        let e = exp4(vsubq_f32(vld1q_f32(c.as_ptr()), s));
        vst1q_f32(c.as_mut_ptr(), e);
        sum = vaddq_f32(sum, e);
    }
    let mut total = vaddvq_f32(sum);
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0.0f32; L];
        vst1q_f32(buf.as_mut_ptr(), exp4(vsubq_f32(load_partial(tail), s)));
        tail.copy_from_slice(&buf[..tail.len()]);
        total += tail.iter().sum::<f32>();
    }
    total
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let sv = splat(s);
    map4(x, |v| vmulq_f32(v, sv));
}

/// One row after another (`super::softmax_row_by_row`).
///
/// # Safety
/// See [`VectorKernels::softmax_rows`].
pub unsafe fn softmax_rows(x: &mut [f32], rows: usize, len: usize, ld: usize) {
    super::softmax_row_by_row(&KERNELS, x, rows, len, ld)
}

/// # Safety
/// The CPU must support NEON; `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let av = splat(a);
    let n = y.len().min(x.len());
    let body = n - n % L;
    for i in (0..body).step_by(L) {
        let yp = y.as_mut_ptr().add(i);
        vst1q_f32(yp, vfmaq_f32(vld1q_f32(yp), av, vld1q_f32(x.as_ptr().add(i))));
    }
    for i in body..n {
        y[i] = a.mul_add(x[i], y[i]);
    }
}

/// Column sums over the rows of `x` (see `VectorKernels::sum_rows`): blocks of 16 columns
/// summed down the rows in four registers, then 4 at a time, the last columns one by one.
///
/// # Safety
/// The CPU must support NEON; `out` non-empty, `x.len()` a multiple of `out.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn sum_rows(x: &[f32], out: &mut [f32]) {
    let w = out.len();
    let rows = x.len() / w;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let mut c = 0;
    while c + 4 * L <= w {
        let (mut s0, mut s1, mut s2, mut s3) = (splat(0.0), splat(0.0), splat(0.0), splat(0.0));
        for r in 0..rows {
            let p = xp.add(r * w + c);
            s0 = vaddq_f32(s0, vld1q_f32(p));
            s1 = vaddq_f32(s1, vld1q_f32(p.add(L)));
            s2 = vaddq_f32(s2, vld1q_f32(p.add(2 * L)));
            s3 = vaddq_f32(s3, vld1q_f32(p.add(3 * L)));
        }
        vst1q_f32(op.add(c), s0);
        vst1q_f32(op.add(c + L), s1);
        vst1q_f32(op.add(c + 2 * L), s2);
        vst1q_f32(op.add(c + 3 * L), s3);
        c += 4 * L;
    }
    while c + L <= w {
        let mut s = splat(0.0);
        for r in 0..rows {
            s = vaddq_f32(s, vld1q_f32(xp.add(r * w + c)));
        }
        vst1q_f32(op.add(c), s);
        c += L;
    }
    for j in c..w {
        *op.add(j) = (0..rows).fold(0.0, |s, r| s + *xp.add(r * w + j));
    }
}

/// # Safety
/// The CPU must support NEON; `a.len() == b.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let body = n - n % L;
    let mut acc = splat(0.0);
    for i in (0..body).step_by(L) {
        acc = vfmaq_f32(acc, vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i)));
    }
    if body < n {
        acc = vfmaq_f32(acc, load_partial(&a[body..n]), load_partial(&b[body..n]));
    }
    vaddvq_f32(acc)
}

/// # Safety
/// The CPU must support NEON; all slices of one length.
#[target_feature(enable = "neon")]
pub unsafe fn layernorm(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    let body = n - n % L;
    if let Some(r) = residual {
        axpy(x, 1.0, r);
    }
    let mut sum = splat(0.0);
    for i in (0..body).step_by(L) {
        sum = vaddq_f32(sum, vld1q_f32(x.as_ptr().add(i)));
    }
    let mean = (vaddvq_f32(sum) + x[body..].iter().sum::<f32>()) / n as f32;
    let mv = splat(mean);
    let mut sq = splat(0.0);
    for i in (0..body).step_by(L) {
        let d = vsubq_f32(vld1q_f32(x.as_ptr().add(i)), mv);
        sq = vfmaq_f32(sq, d, d);
    }
    let tail_sq: f32 = x[body..].iter().map(|v| (v - mean) * (v - mean)).sum();
    let rstd = 1.0 / ((vaddvq_f32(sq) + tail_sq) / n as f32 + eps).sqrt();
    let rv = splat(rstd);
    for i in (0..body).step_by(L) {
        let p = x.as_mut_ptr().add(i);
        let d = vmulq_f32(vsubq_f32(vld1q_f32(p), mv), rv);
        vst1q_f32(p, vfmaq_f32(vld1q_f32(beta.as_ptr().add(i)), d, vld1q_f32(gamma.as_ptr().add(i))));
    }
    for i in body..n {
        x[i] = ((x[i] - mean) * rstd).mul_add(gamma[i], beta[i]);
    }
}

/// Peak probe: 16 independent FMA chains of 4 lanes; 128 flops per iteration.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn fma_probe(iters: usize) -> f32 {
    let (a, b) = (splat(0.999_999), splat(1e-7));
    let mut acc = [splat(0.0); 16];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = vfmaq_f32(b, *v, a);
        }
    }
    acc.iter().map(|&v| vaddvq_f32(v)).sum()
}
