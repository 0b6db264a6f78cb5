//! AVX-512F row kernels (16 lanes). Tails use masked loads and stores.

use super::consts::*;
use super::VectorKernels;
use std::arch::x86_64::*;
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
    widen_f16: super::avx2::widen_f16,
    widen_bf16: super::avx2::widen_bf16,
    abs_max,
    quantize_i8,
    quantize_i8_cells,
    fma_probe,
    fma_probe_flops: 512,
};

const L: usize = 16;

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: f32) -> __m512 {
    _mm512_set1_ps(x)
}

/// Mask of the first `n < 16` lanes.
#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// # Safety
/// The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, splat(EXP_LO)), splat(EXP_HI));
    let ni = _mm512_cvtps_epi32(_mm512_mul_ps(x, splat(LOG2E)));
    let n = _mm512_cvtepi32_ps(ni);
    let r = _mm512_fnmadd_ps(n, splat(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, splat(LN2_LO), r);
    let mut p = splat(EXP_P[0]);
    for c in &EXP_P[1..] {
        p = _mm512_fmadd_ps(p, r, splat(*c));
    }
    let p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, splat(1.0)));
    let pow2 = _mm512_slli_epi32::<23>(_mm512_add_epi32(ni, _mm512_set1_epi32(127)));
    _mm512_mul_ps(p, _mm512_castsi512_ps(pow2))
}

/// GELU (erf) from the tabled `Q(a) = Φ(-a)` (`consts::GELU_Q`): each coefficient of the
/// lane's interval is one `vpermps` of a 16-float table row, then 7 FMAs in `u`. Scalar
/// twin: `scalar::gelu_erf_tabled_1`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn gelu_erf16(x: __m512) -> __m512 {
    let a = _mm512_abs_ps(x);
    // NaN lanes take the end here (`vminps` returns its second operand) and Q = 0 below.
    let am = _mm512_min_ps(a, splat(GELU_Q_END));
    let i = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_mul_ps(am, splat(2.0))), _mm512_set1_epi32(15));
    let u = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(i), splat(0.5), am);
    // SAFETY (loads): every row of the table holds 16 floats.
    let row = |j: usize| unsafe { _mm512_permutexvar_ps(i, _mm512_loadu_ps(GELU_Q[j].as_ptr())) };
    let mut q = row(7);
    for j in (0..7).rev() {
        q = _mm512_fmadd_ps(q, u, row(j));
    }
    let t = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, splat(GELU_Q_END)), x, q);
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
    _mm512_mask_blend_ps(negative, _mm512_sub_ps(x, t), t)
}

/// # Safety
/// The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn gelu_tanh16(x: __m512) -> __m512 {
    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    let u = _mm512_mul_ps(splat(TANH_C), _mm512_fmadd_ps(splat(TANH_C3), x3, x));
    let e = exp16(_mm512_mul_ps(u, splat(-2.0)));
    _mm512_div_ps(x, _mm512_add_ps(splat(1.0), e))
}

/// Applies `f` to every 16-lane group of `x`, the tail masked.
#[inline]
#[target_feature(enable = "avx512f")]
fn map16(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut i = 0;
    // SAFETY: every access stays within `x` (full groups, then a masked tail).
    unsafe {
        while i + L <= n {
            _mm512_storeu_ps(p.add(i), f(_mm512_loadu_ps(p.add(i))));
            i += L;
        }
        if i < n {
            let k = tail_mask(n - i);
            _mm512_mask_storeu_ps(p.add(i), k, f(_mm512_maskz_loadu_ps(k, p.add(i))));
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn gelu_erf(x: &mut [f32]) {
    map16(x, |v| gelu_erf16(v));
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn gelu_tanh(x: &mut [f32]) {
    map16(x, |v| gelu_tanh16(v));
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let n = x.len();
    let mut m = splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i + L <= n {
        m = _mm512_max_ps(m, _mm512_loadu_ps(x.as_ptr().add(i)));
        i += L;
    }
    if i < n {
        m = _mm512_mask_max_ps(m, tail_mask(n - i), m, _mm512_maskz_loadu_ps(tail_mask(n - i), x.as_ptr().add(i)));
    }
    _mm512_reduce_max_ps(m)
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f32 {
    let s = splat(shift);
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut sum = _mm512_setzero_ps();
    let mut i = 0;
    while i + L <= n {
        let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), s));
        _mm512_storeu_ps(p.add(i), e);
        sum = _mm512_add_ps(sum, e);
        i += L;
    }
    if i < n {
        let k = tail_mask(n - i);
        let e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), s)));
        _mm512_mask_storeu_ps(p.add(i), k, e);
        sum = _mm512_add_ps(sum, e);
    }
    _mm512_reduce_add_ps(sum)
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let sv = splat(s);
    map16(x, |v| _mm512_mul_ps(v, sv));
}

/// One row after another (`super::softmax_row_by_row`).
///
/// # Safety
/// See [`VectorKernels::softmax_rows`].
pub unsafe fn softmax_rows(x: &mut [f32], rows: usize, len: usize, ld: usize) {
    super::softmax_row_by_row(&KERNELS, x, rows, len, ld)
}

/// # Safety
/// The CPU must support AVX-512F; `x.len() == y.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let av = splat(a);
    let n = y.len().min(x.len());
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i + L <= n {
        _mm512_storeu_ps(yp.add(i), _mm512_fmadd_ps(av, _mm512_loadu_ps(xp.add(i)), _mm512_loadu_ps(yp.add(i))));
        i += L;
    }
    if i < n {
        let k = tail_mask(n - i);
        let v = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(k, xp.add(i)), _mm512_maskz_loadu_ps(k, yp.add(i)));
        _mm512_mask_storeu_ps(yp.add(i), k, v);
    }
}

/// Column sums over the rows of `x` (see `VectorKernels::sum_rows`). Each sum stays in a
/// register until its block of columns is done: an `axpy` per row instead stores and
/// reloads every sum per row, and ran 0.69–0.78× the AVX2 pooling (`rows-isa`, mean pool
/// of 186 and 512 rows of 384, Intel Xeon).
///
/// Full-width loads only where every row starts on a 64-byte boundary: this kernel streams
/// memory, and a 64-byte load at a 16- or 32-byte offset spans two cache lines. Pooling 512
/// rows of 384 took 7.0 µs aligned and 13.2 µs at those offsets, against AVX2's 9.9–15.7
/// (a scratch harness, offsets alternated call by call, Intel Xeon). Elsewhere the AVX2
/// kernel runs (same sums, same order, same bits). Aligned, blocks of 8 vectors: a block's
/// sums are chains of dependent adds, one per row, and 8 chains keep both add pipes busy.
///
/// # Safety
/// The CPU must support AVX-512F; `out` non-empty, `x.len()` a multiple of `out.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn sum_rows(x: &[f32], out: &mut [f32]) {
    let w = out.len();
    let xp = x.as_ptr();
    if !w.is_multiple_of(L) || !(xp as usize).is_multiple_of(64) {
        return super::avx2::sum_rows(x, out);
    }
    let (rows, op) = (x.len() / w, out.as_mut_ptr());
    let mut c = 0;
    while c + 8 * L <= w {
        sum_column_block::<8>(xp, w, rows, c, op);
        c += 8 * L;
    }
    while c < w {
        sum_column_block::<1>(xp, w, rows, c, op);
        c += L;
    }
}

/// `out[c..c+16·V]` = the sums of those columns over the `rows` rows of width `w` at `xp`
/// (64-byte aligned, as the caller checked).
///
/// # Safety
/// The CPU must support AVX-512F; columns `c..c+16·V` lie within every row and `out`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn sum_column_block<const V: usize>(xp: *const f32, w: usize, rows: usize, c: usize, op: *mut f32) {
    let mut s = [_mm512_setzero_ps(); V];
    for r in 0..rows {
        let p = xp.add(r * w + c);
        for (j, s) in s.iter_mut().enumerate() {
            *s = _mm512_add_ps(*s, _mm512_load_ps(p.add(j * L)));
        }
    }
    for (j, s) in s.iter().enumerate() {
        _mm512_storeu_ps(op.add(c + j * L), *s);
    }
}

/// # Safety
/// The CPU must support AVX-512F; `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i + L <= n {
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a.as_ptr().add(i)), _mm512_loadu_ps(b.as_ptr().add(i)), acc);
        i += L;
    }
    if i < n {
        let k = tail_mask(n - i);
        acc = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(k, a.as_ptr().add(i)),
            _mm512_maskz_loadu_ps(k, b.as_ptr().add(i)),
            acc,
        );
    }
    _mm512_reduce_add_ps(acc)
}

/// # Safety
/// The CPU must support AVX-512F; all slices of one length.
#[target_feature(enable = "avx512f")]
pub unsafe fn layernorm(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    if let Some(r) = residual {
        axpy(x, 1.0, r);
    }
    let p = x.as_mut_ptr();
    let mut sum = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(k, p.add(i)));
        i += L;
    }
    let mean = _mm512_reduce_add_ps(sum) / n as f32;
    let mv = splat(mean);
    let mut sq = _mm512_setzero_ps();
    i = 0;
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        let d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, p.add(i)), mv);
        sq = _mm512_fmadd_ps(d, d, sq);
        i += L;
    }
    let rv = splat(1.0 / (_mm512_reduce_add_ps(sq) / n as f32 + eps).sqrt());
    i = 0;
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        let d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), mv), rv);
        let g = _mm512_maskz_loadu_ps(k, gamma.as_ptr().add(i));
        let b = _mm512_maskz_loadu_ps(k, beta.as_ptr().add(i));
        _mm512_mask_storeu_ps(p.add(i), k, _mm512_fmadd_ps(d, g, b));
        i += L;
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn abs_max(x: &[f32]) -> f32 {
    // Four chains, for `vmaxps` latency. `max(|v|, m)` returns `m` when `v` is NaN: NaNs are
    // skipped, as in the scalar twin; the masked tail reads zeros, which cannot raise a max
    // that starts at 0. A max is exact, so the chains' order does not change the result.
    let (n, p) = (x.len(), x.as_ptr());
    let mut m = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * L <= n {
        for (j, m) in m.iter_mut().enumerate() {
            *m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(p.add(i + j * L))), *m);
        }
        i += 4 * L;
    }
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        m[0] = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(k, p.add(i))), m[0]);
        i += L;
    }
    _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])))
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn quantize_i8(x: &[f32], inv: f32, q: &mut [i8]) {
    assert_eq!(x.len(), q.len());
    let (n, p, out) = (x.len(), x.as_ptr(), q.as_mut_ptr());
    let mut i = 0;
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        _mm512_mask_cvtsepi32_storeu_epi8(out.add(i).cast(), k, quantize16(p.add(i), k, inv));
        i += L;
    }
}

/// The lanes `k` of `x[0..16]` quantized as in [`quantize_i8`], as i32 (other lanes 0).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn quantize16(p: *const f32, k: __mmask16, inv: f32) -> __m512i {
    let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p), splat(inv));
    // Clamp (a NaN lane comes out as -127), then round to nearest even with NaN lanes
    // zeroed in one convert; the values fit i8, so narrowing them is exact.
    let c = _mm512_min_ps(_mm512_max_ps(v, splat(-127.0)), splat(127.0));
    let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
    _mm512_maskz_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(ordered, c)
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn quantize_i8_cells(x: &[f32], inv: f32, flip: u32, q: &mut [MaybeUninit<i8>], stride: usize) {
    super::check_cells(x.len(), q, stride);
    let (n, p, f) = (x.len(), x.as_ptr(), _mm_set1_epi32(flip as i32));
    let mut i = 0;
    while i < n {
        let k = if i + L <= n { !0 } else { tail_mask(n - i) };
        // Four cells: lanes past `n` read 0, as the cells' padding wants.
        let b = _mm_xor_si128(_mm512_cvtepi32_epi8(quantize16(p.add(i), k, inv)), f);
        let out = q.as_mut_ptr().add(i / 4 * stride).cast::<i32>();
        let cells = (n - i).min(L).div_ceil(4);
        // SAFETY (each write): the cell is inside `q` (checked above); unaligned.
        out.write_unaligned(_mm_cvtsi128_si32(b));
        if cells > 1 {
            out.byte_add(stride).write_unaligned(_mm_extract_epi32::<1>(b));
        }
        if cells > 2 {
            out.byte_add(2 * stride).write_unaligned(_mm_extract_epi32::<2>(b));
        }
        if cells > 3 {
            out.byte_add(3 * stride).write_unaligned(_mm_extract_epi32::<3>(b));
        }
        i += L;
    }
}

/// Peak probe: 16 independent FMA chains of 16 lanes; 512 flops per iteration.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn fma_probe(iters: usize) -> f32 {
    let (a, b) = (splat(0.999_999), splat(1e-7));
    let mut acc = [_mm512_setzero_ps(); 16];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}
