//! AVX2 + FMA row kernels (8 lanes). Tails go through a zero-padded 8-lane buffer so every
//! element takes the vector path.

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
    widen_f16,
    widen_bf16,
    abs_max,
    quantize_i8,
    quantize_i8_cells,
    fma_probe,
    fma_probe_flops: 192,
};

const L: usize = 8;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat(x: f32) -> __m256 {
    _mm256_set1_ps(x)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp8(x: __m256) -> __m256 {
    let [y] = exp8x([x]);
    y
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn gelu_erf8(x: __m256) -> __m256 {
    let [y] = gelu_erf8x([x]);
    y
}

/// [`gelu_erf8`] of `N` registers at once, bit for bit: every step is issued for all `N`
/// before the next. One register's GELU is a chain of ~40 dependent operations (a
/// division, 9 FMAs for erfc's polynomial, 6 for exp's, ~120 cycles of latency); issued
/// one register at a time, the out-of-order window holds too few of them to fill the
/// pipes (Zen 3: ~54 cycles per 8 values in a row loop, against ~10 of issue).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn gelu_erf8x<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    // z = min(|x|/√2, ZMAX); t = 1/(1 + z/2)
    let z = x.map(|v| {
        _mm256_min_ps(_mm256_mul_ps(_mm256_andnot_ps(splat(-0.0), v), splat(FRAC_1_SQRT_2)), splat(ERFC_ZMAX))
    });
    let t = z.map(|z| _mm256_div_ps(splat(1.0), _mm256_fmadd_ps(z, splat(0.5), splat(1.0))));
    let mut p = [splat(ERFC_P[0]); N];
    for c in &ERFC_P[1..] {
        for i in 0..N {
            p[i] = _mm256_fmadd_ps(p[i], t[i], splat(*c));
        }
    }
    // erfc(z) = t·exp(-z² + P(t))
    let mut e = [splat(0.0); N];
    for i in 0..N {
        e[i] = _mm256_fnmadd_ps(z[i], z[i], p[i]);
    }
    let e = exp8x(e);
    let mut y = x;
    for i in 0..N {
        let hc = _mm256_mul_ps(_mm256_mul_ps(x[i], splat(0.5)), _mm256_mul_ps(t[i], e[i]));
        let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x[i], _mm256_setzero_ps());
        y[i] = _mm256_blendv_ps(_mm256_sub_ps(x[i], hc), hc, negative);
    }
    y
}

/// [`gelu_erf8`] of every register of `v`, three at a time: the most whose chains fit the
/// 16 registers (a row loop on Zen 3: 11.0 ns per 8 values at three, 13.4 at two, 13.0 at
/// four, which spills, 17.4 at one; `docs/cpu-analysis.md` §24). For a tile's values once
/// they are out of its accumulators: walking the accumulators themselves through a slice
/// kept them in memory inside the f32 tile's `k` loop (`tools/check-spills.py`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn gelu_erf8_each(v: &mut [__m256]) {
    let mut threes = v.chunks_exact_mut(3);
    for c in &mut threes {
        let y = gelu_erf8x([c[0], c[1], c[2]]);
        c.copy_from_slice(&y);
    }
    match threes.into_remainder() {
        [a] => *a = gelu_erf8(*a),
        [a, b] => [*a, *b] = gelu_erf8x([*a, *b]),
        _ => {}
    }
}

/// [`exp8`] of `N` registers, each step issued for all `N` (see [`gelu_erf8x`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8x<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let x = x.map(|v| _mm256_min_ps(_mm256_max_ps(v, splat(EXP_LO)), splat(EXP_HI)));
    let ni = x.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, splat(LOG2E))));
    let mut r = [splat(0.0); N];
    for i in 0..N {
        let n = _mm256_cvtepi32_ps(ni[i]);
        r[i] = _mm256_fnmadd_ps(n, splat(LN2_LO), _mm256_fnmadd_ps(n, splat(LN2_HI), x[i]));
    }
    let mut p = [splat(EXP_P[0]); N];
    for c in &EXP_P[1..] {
        for i in 0..N {
            p[i] = _mm256_fmadd_ps(p[i], r[i], splat(*c));
        }
    }
    for i in 0..N {
        let q = _mm256_fmadd_ps(_mm256_mul_ps(p[i], r[i]), r[i], _mm256_add_ps(r[i], splat(1.0)));
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(ni[i], _mm256_set1_epi32(127)));
        p[i] = _mm256_mul_ps(q, _mm256_castsi256_ps(pow2));
    }
    p
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn gelu_tanh8(x: __m256) -> __m256 {
    let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    let u = _mm256_mul_ps(splat(TANH_C), _mm256_fmadd_ps(splat(TANH_C3), x3, x));
    let e = exp8(_mm256_mul_ps(u, splat(-2.0)));
    _mm256_div_ps(x, _mm256_add_ps(splat(1.0), e))
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn hsum8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hmax8(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
}

/// Applies `f` to every 8-lane group of `x`, the tail through a zero-padded buffer.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn map8(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let mut chunks = x.chunks_exact_mut(L);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly 8 floats.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // SAFETY: both touch only the `tail.len()` floats of `tail`.
        unsafe { store_partial(tail.as_mut_ptr(), tail.len(), f(load_partial(tail))) };
    }
}

/// Lanes `0..n` set (`n ≤ 8`): the mask of a tail for `vmaskmovps` loads, which neither
/// read nor fault on the other lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tail_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Stores lanes `0..n` (`n < 8`) of `v`. Not `vmaskmovps`: its store form is microcoded
/// on AMD Zen (it made attention at L = 190 20% slower than a buffer and `memcpy`).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn store_partial(mut p: *mut f32, n: usize, v: __m256) {
    let mut x = _mm256_castps256_ps128(v);
    if n & 4 != 0 {
        _mm_storeu_ps(p, x);
        x = _mm256_extractf128_ps::<1>(v);
        p = p.add(4);
    }
    if n & 2 != 0 {
        _mm_store_sd(p.cast(), _mm_castps_pd(x));
        x = _mm_movehl_ps(x, x);
        p = p.add(2);
    }
    if n & 1 != 0 {
        _mm_store_ss(p, x);
    }
}

/// Loads up to 8 floats, zero-filling the rest.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_partial(x: &[f32]) -> __m256 {
    // SAFETY: masked lanes stay inside `x`.
    unsafe { _mm256_maskload_ps(x.as_ptr(), tail_mask(x.len().min(L))) }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_erf(x: &mut [f32]) {
    // Three registers per step (see `gelu_erf8x`), what is left one at a time.
    let mut threes = x.chunks_exact_mut(3 * L);
    for c in &mut threes {
        let p = c.as_mut_ptr();
        // SAFETY: `c` holds exactly 24 floats.
        let y = gelu_erf8x([0, 1, 2].map(|i| unsafe { _mm256_loadu_ps(p.add(i * L)) }));
        for (i, y) in y.into_iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(p.add(i * L), y) };
        }
    }
    map8(threes.into_remainder(), |v| gelu_erf8(v));
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_tanh(x: &mut [f32]) {
    map8(x, |v| gelu_tanh8(v));
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn max(x: &[f32]) -> f32 {
    let mut m = splat(f32::NEG_INFINITY);
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder();
    for c in chunks {
        m = _mm256_max_ps(m, _mm256_loadu_ps(c.as_ptr()));
    }
    tail.iter().copied().fold(hmax8(m), f32::max)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shift_sum(x: &mut [f32], shift: f32) -> f32 {
    let s = splat(shift);
    let mut sum = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact_mut(L);
    for c in &mut chunks {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), s));
        _mm256_storeu_ps(c.as_mut_ptr(), e);
        sum = _mm256_add_ps(sum, e);
    }
    let mut total = hsum8(sum);
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        store_partial(tail.as_mut_ptr(), tail.len(), exp8(_mm256_sub_ps(load_partial(tail), s)));
        total += tail.iter().sum::<f32>();
    }
    total
}

/// # Safety
/// The CPU must support AVX2 and FMA; see [`VectorKernels::softmax_rows`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn softmax_rows(x: &mut [f32], rows: usize, len: usize, ld: usize) {
    super::check_rows(x.len(), rows, len, ld);
    if len == 0 {
        return;
    }
    // Three rows at a time, as GELU runs three registers (`gelu_erf8x`): one short row's
    // max → exp → sum → 1/sum → scale is a chain of ~150 cycles with little beside it.
    let p = x.as_mut_ptr();
    let mut r = 0;
    while r + 3 <= rows {
        softmax_lockstep::<3>(p.add(r * ld), len, ld);
        r += 3;
    }
    if r < rows {
        super::softmax_row_by_row(&KERNELS, &mut x[r * ld..], rows - r, len, ld);
    }
}

/// Softmax of `N` rows of `len` floats at `p`, `ld` apart, each step issued for all `N`:
/// per row, the operations of `max`, `exp_shift_sum` and `scale` in the same order.
///
/// # Safety
/// The `N` rows must be valid for reads and writes.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_lockstep<const N: usize>(p: *mut f32, len: usize, ld: usize) {
    // SAFETY: the caller's rows, disjoint (`len ≤ ld`).
    let rows: [&mut [f32]; N] = std::array::from_fn(|i| unsafe { std::slice::from_raw_parts_mut(p.add(i * ld), len) });
    let (body, tail) = (len - len % L, len % L);
    let mut m = [splat(f32::NEG_INFINITY); N];
    for c in (0..body).step_by(L) {
        for (m, row) in m.iter_mut().zip(&rows) {
            *m = _mm256_max_ps(*m, _mm256_loadu_ps(row[c..].as_ptr()));
        }
    }
    let shift: [__m256; N] =
        std::array::from_fn(|i| splat(rows[i][body..].iter().copied().fold(hmax8(m[i]), f32::max)));
    let mut sum = [_mm256_setzero_ps(); N];
    for c in (0..body).step_by(L) {
        let e: [_; N] = exp8x(std::array::from_fn(|i| _mm256_sub_ps(_mm256_loadu_ps(rows[i][c..].as_ptr()), shift[i])));
        for i in 0..N {
            _mm256_storeu_ps(rows[i][c..].as_mut_ptr(), e[i]);
            sum[i] = _mm256_add_ps(sum[i], e[i]);
        }
    }
    let mut total = sum.map(|s| hsum8(s));
    // The tail stays in its register for the scaling: `scale` would reload it with a masked
    // load, which waits for the partial store before it to complete.
    let mut e_tail = [_mm256_setzero_ps(); N];
    if tail > 0 {
        e_tail = exp8x(std::array::from_fn(|i| _mm256_sub_ps(load_partial(&rows[i][body..]), shift[i])));
        for i in 0..N {
            store_partial(rows[i][body..].as_mut_ptr(), tail, e_tail[i]);
            total[i] += rows[i][body..].iter().sum::<f32>();
        }
    }
    for i in 0..N {
        let s = splat(1.0 / total[i]);
        for c in (0..body).step_by(L) {
            let v = rows[i][c..].as_mut_ptr();
            _mm256_storeu_ps(v, _mm256_mul_ps(_mm256_loadu_ps(v), s));
        }
        if tail > 0 {
            store_partial(rows[i][body..].as_mut_ptr(), tail, _mm256_mul_ps(e_tail[i], s));
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scale(x: &mut [f32], s: f32) {
    let sv = splat(s);
    map8(x, |v| _mm256_mul_ps(v, sv));
}

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let av = splat(a);
    let n = y.len().min(x.len());
    let body = n - n % L;
    for i in (0..body).step_by(L) {
        let yp = y.as_mut_ptr().add(i);
        _mm256_storeu_ps(yp, _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(yp)));
    }
    for i in body..n {
        y[i] = a.mul_add(x[i], y[i]);
    }
}

/// Column sums over the rows of `x` (see `VectorKernels::sum_rows`): blocks of 32 columns
/// summed down the rows in four registers, then 8 at a time, the last columns one by one.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `out` non-empty, `x.len()` a multiple of `out.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_rows(x: &[f32], out: &mut [f32]) {
    let w = out.len();
    let rows = x.len() / w;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let mut c = 0;
    while c + 4 * L <= w {
        let (mut s0, mut s1, mut s2, mut s3) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for r in 0..rows {
            let p = xp.add(r * w + c);
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p.add(L)));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p.add(2 * L)));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p.add(3 * L)));
        }
        _mm256_storeu_ps(op.add(c), s0);
        _mm256_storeu_ps(op.add(c + L), s1);
        _mm256_storeu_ps(op.add(c + 2 * L), s2);
        _mm256_storeu_ps(op.add(c + 3 * L), s3);
        c += 4 * L;
    }
    while c + L <= w {
        let mut s = _mm256_setzero_ps();
        for r in 0..rows {
            s = _mm256_add_ps(s, _mm256_loadu_ps(xp.add(r * w + c)));
        }
        _mm256_storeu_ps(op.add(c), s);
        c += L;
    }
    for j in c..w {
        *op.add(j) = (0..rows).fold(0.0, |s, r| s + *xp.add(r * w + j));
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let body = n - n % L;
    let mut acc = _mm256_setzero_ps();
    for i in (0..body).step_by(L) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), acc);
    }
    if body < n {
        acc = _mm256_fmadd_ps(load_partial(&a[body..n]), load_partial(&b[body..n]), acc);
    }
    hsum8(acc)
}

/// # Safety
/// The CPU must support AVX2 and FMA; all slices of one length.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn layernorm(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    let body = n - n % L;
    if let Some(r) = residual {
        axpy(x, 1.0, r);
    }
    let mut sum = _mm256_setzero_ps();
    for i in (0..body).step_by(L) {
        sum = _mm256_add_ps(sum, _mm256_loadu_ps(x.as_ptr().add(i)));
    }
    let mean = (hsum8(sum) + x[body..].iter().sum::<f32>()) / n as f32;
    let mv = splat(mean);
    let mut sq = _mm256_setzero_ps();
    for i in (0..body).step_by(L) {
        let d = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv);
        sq = _mm256_fmadd_ps(d, d, sq);
    }
    let tail_sq: f32 = x[body..].iter().map(|v| (v - mean) * (v - mean)).sum();
    let rstd = 1.0 / ((hsum8(sq) + tail_sq) / n as f32 + eps).sqrt();
    let rv = splat(rstd);
    for i in (0..body).step_by(L) {
        let p = x.as_mut_ptr().add(i);
        let d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p), mv), rv);
        let y = _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma.as_ptr().add(i)), _mm256_loadu_ps(beta.as_ptr().add(i)));
        _mm256_storeu_ps(p, y);
    }
    for i in body..n {
        x[i] = ((x[i] - mean) * rstd).mul_add(gamma[i], beta[i]);
    }
}

/// Peak probe: 12 independent FMA chains of 8 lanes; 192 flops per iteration.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn fma_probe(iters: usize) -> f32 {
    let (a, b) = (splat(0.999_999), splat(1e-7));
    let mut acc = [_mm256_setzero_ps(); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| hsum8(v)).sum()
}

/// 8 half-width floats at `p` as f32, exactly: IEEE half through F16C (`vcvtph2ps`), or
/// bfloat16 (`BF16`) shifted into the high half of each f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn half8<const BF16: bool>(p: *const u16) -> __m256 {
    let h = _mm_loadu_si128(p.cast());
    if BF16 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    } else {
        _mm256_cvtph_ps(h)
    }
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn widen<const BF16: bool>(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    let body = src.len() / L * L;
    for i in (0..body).step_by(L) {
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), half8::<BF16>(src.as_ptr().add(i)));
    }
    let tail = if BF16 { super::scalar::widen_bf16 } else { super::scalar::widen_f16 };
    tail(&src[body..], &mut dst[body..]);
}

/// # Safety
/// AVX2 and F16C must be available.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn widen_f16(src: &[u16], dst: &mut [f32]) {
    widen::<false>(src, dst)
}

/// # Safety
/// AVX2 and F16C must be available.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn widen_bf16(src: &[u16], dst: &mut [f32]) {
    widen::<true>(src, dst)
}

/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub unsafe fn abs_max(x: &[f32]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
    let mut m = _mm256_setzero_ps();
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder();
    for c in chunks {
        // `max(v, m)` returns `m` when `v` is NaN: NaNs are skipped, as in the scalar twin.
        m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(c.as_ptr()), abs), m);
    }
    tail.iter().fold(hmax8(m), |m, v| m.max(v.abs()))
}

/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize_i8(x: &[f32], inv: f32, q: &mut [i8]) {
    assert_eq!(x.len(), q.len());
    let body = x.len() / 32 * 32;
    for i in (0..body).step_by(32) {
        _mm256_storeu_si256(q.as_mut_ptr().add(i).cast(), quantize32(x.as_ptr().add(i), inv));
    }
    super::scalar::quantize_i8(&x[body..], inv, &mut q[body..]);
}

/// `x[0..32]` quantized as in [`quantize_i8`], in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn quantize32(p: *const f32, inv: f32) -> __m256i {
    let (s, lo, hi) = (_mm256_set1_ps(inv), _mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    // Clamp, zero NaNs, then round to nearest even (the default MXCSR mode) in `cvtps`.
    let one = |p: *const f32| {
        let v = _mm256_mul_ps(_mm256_loadu_ps(p), s);
        let c = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        _mm256_cvtps_epi32(_mm256_and_ps(c, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v)))
    };
    // packs work per 128-bit lane: bytes come out as 0-3 8-11 16-19 24-27 4-7 ...
    let w01 = _mm256_packs_epi32(one(p), one(p.add(8)));
    let w23 = _mm256_packs_epi32(one(p.add(16)), one(p.add(24)));
    let b = _mm256_packs_epi16(w01, w23);
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize_i8_cells(x: &[f32], inv: f32, flip: u32, q: &mut [MaybeUninit<i8>], stride: usize) {
    super::check_cells(x.len(), q, stride);
    let body = x.len() / 32 * 32;
    let f = _mm256_set1_epi32(flip as i32);
    let mut cells = [0u32; 8];
    for i in (0..body).step_by(32) {
        let b = _mm256_xor_si256(quantize32(x.as_ptr().add(i), inv), f);
        _mm256_storeu_si256(cells.as_mut_ptr().cast(), b);
        let out = q.as_mut_ptr().add(i / 4 * stride);
        for (c, v) in cells.iter().enumerate() {
            // SAFETY: cell `i/4 + c` is inside `q` (checked above); the write is unaligned.
            out.add(c * stride).cast::<u32>().write_unaligned(*v);
        }
    }
    let rest = (body / 4 * stride).min(q.len());
    super::scalar::quantize_i8_cells(&x[body..], inv, flip, &mut q[rest..], stride);
}
