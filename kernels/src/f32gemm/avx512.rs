//! AVX-512F micro-kernel: 12 × 32 tile, 24 accumulators + 2 panel loads + 1 broadcast.
//! Half-width panels are widened as they are loaded (`vcvtph2ps` for f16, a 16-bit shift
//! for bf16), so f16/bf16 weights stream at half the bytes with no buffer pass.

use super::{touch, MicroKernel, PanelPtr, Tile, TileOut, TilePost, INTO_L1, INTO_L2, NO_PREFETCH};
use crate::tiling::{by_rows, unrolled};
use crate::vector::avx512::{gelu_erf16, gelu_tanh16};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 12;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 32, half_panels: true, run: tile };

/// Panel element types, as `rows`' const parameter.
const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

/// # Safety
/// AVX-512F must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile(t: &Tile) {
    match t.b {
        PanelPtr::F32(b) => tile_of::<F32>(t, b.cast()),
        PanelPtr::F16(b) => tile_of::<F16>(t, b.cast()),
        PanelPtr::Bf16(b) => tile_of::<BF16>(t, b.cast()),
    }
}

/// [`tile`] on panels of element type `S`: the instance of each row count for its prefetch
/// ([`TilePrefetch::instance`](super::TilePrefetch::instance)).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile_of<const S: u8>(t: &Tile, b: *const u8) {
    match t.prefetch.instance() {
        NO_PREFETCH => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], S, NO_PREFETCH, b),
        INTO_L1 => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], S, INTO_L1, b),
        _ => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], S, INTO_L2, b),
    }
}

/// 16 panel values at element `i` of a panel of element type `S`, as f32 (exact).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load16<const S: u8>(b: *const u8, i: usize) -> __m512 {
    match S {
        F32 => _mm512_loadu_ps(b.cast::<f32>().add(i)),
        F16 => _mm512_cvtph_ps(_mm256_loadu_si256(b.cast::<u16>().add(i).cast())),
        _ => {
            let h = _mm256_loadu_si256(b.cast::<u16>().add(i).cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
}

/// Lane masks of the two 16-float halves of a row of `n ≤ 32` valid columns.
#[inline]
pub(crate) fn masks(n: usize) -> [__mmask16; 2] {
    let m = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    [m as __mmask16, (m >> 16) as __mmask16]
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows<const R: usize, const S: u8, const PREFETCH: u8>(t: &Tile, b: *const u8) {
    let k = masks(t.out.nr);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    unrolled!(R, |r| { acc[r] = start_row(&t.out, r, k) });
    let size = if S == F32 { 4 } else { 2 };
    // Software prefetch when the driver asks for it (`Blocking::prefetch`): per `k` step,
    // the two halves of the step's bytes, so both lines of a 128-byte f32 panel row (a
    // half-width row or a strip's share of the next panel is one line, touched twice).
    // Without it, the loop is the one measured on Zen 4. Separate instances, not a test in
    // the loop: with the test, codegen stored an accumulator to the stack every step in the
    // 7- and 8-row instances.
    let (mut a, mut b, mut pf, step) = (t.a, b, t.prefetch.at, t.prefetch.step);
    for _ in 0..t.k {
        if PREFETCH != NO_PREFETCH {
            touch::<PREFETCH>(pf);
            touch::<PREFETCH>(pf.wrapping_add(step / 2));
            pf = pf.wrapping_add(step);
        }
        let w0 = load16::<S>(b, 0);
        let w1 = load16::<S>(b, 16);
        unrolled!(R, |r| {
            let x = _mm512_set1_ps(*a.add(r * t.row_stride));
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
        });
        a = a.add(t.k_stride);
        b = b.add(32 * size);
    }
    finish_tile!(R, &t.out, acc, k);
}

/// Stores a finished tile — `$acc: [[__m512; 2]; R]` under the masks `$k` — to `$out.c`
/// with its epilogue. Plain and residual stores are inline: a call per row, which passes
/// the row's two accumulators through the stack, made e5-small's GEMMs without an epilogue
/// (`K` 384 and 1536, one thread, inline and out of line alternated 41 times) 1.024–1.039×
/// slower, and its four layer GEMMs with their epilogues 1.010–1.026× (int8 1.017–1.038×).
/// GELU, a long polynomial, stays out of line in [`finish_row`], so that the `k` loop keeps
/// its registers. A macro, not a function taking `&acc`: that moved the accumulators to the
/// stack and cut the GEMM rate to a third. Shared by the f32 and bf16-dot tiles. (The A/B
/// used a temporary switch; end to end, `tools/ab-bench.sh 4920c17 fp32|int8` re-runs it.)
macro_rules! finish_tile {
    ($R:ident, $out:expr, $acc:ident, $k:ident) => {
        let out: &$crate::f32gemm::TileOut = $out;
        let row = |r: usize| out.c.add(r * out.ldc);
        match out.post {
            $crate::f32gemm::TilePost::None => {
                $crate::tiling::unrolled!($R, |r| { $crate::f32gemm::avx512::store32(row(r), $acc[r], $k, None) });
            }
            $crate::f32gemm::TilePost::Residual { r: res, ldr } => {
                $crate::tiling::unrolled!($R, |r| {
                    $crate::f32gemm::avx512::store32(row(r), $acc[r], $k, Some(res.add(r * ldr)))
                });
            }
            $crate::f32gemm::TilePost::Gelu(_) => {
                $crate::tiling::unrolled!($R, |r| { $crate::f32gemm::avx512::finish_row(out, r, $acc[r], $k) });
            }
        }
    };
}
pub(crate) use finish_tile;

/// 32 columns `v` stored at `c` under the masks `k`, after adding the 32 at `res` (the
/// residual's row) when given: the same arithmetic as [`post_store16`]'s residual arm.
/// The inline epilogue of the f32, bf16-dot and int8 tiles.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store32(c: *mut f32, v: [__m512; 2], k: [__mmask16; 2], res: Option<*const f32>) {
    for h in 0..2 {
        let v = match res {
            Some(q) => _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(k[h], q.add(16 * h))),
            None => v[h],
        };
        _mm512_mask_storeu_ps(c.add(16 * h), k[h], v);
    }
}

/// Row `r`'s starting accumulators of a 32-column tile: its partial sums in `C` (valid
/// columns `k`) when `accumulate`, else the bias. Shared by the f32 and bf16-dot tiles.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn start_row(out: &TileOut, r: usize, k: [__mmask16; 2]) -> [__m512; 2] {
    if out.accumulate {
        let p = out.c.add(r * out.ldc);
        [_mm512_maskz_loadu_ps(k[0], p), _mm512_maskz_loadu_ps(k[1], p.add(16))]
    } else {
        [_mm512_loadu_ps(out.bias), _mm512_loadu_ps(out.bias.add(16))]
    }
}

/// Applies the epilogue to row `r` of a finished 32-column tile and stores its valid
/// columns (masks `k`) to `C`. Out of line, for GELU (see [`finish_tile`]): the row loop
/// around it is unrolled so the accumulators stay in registers.
#[inline(never)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn finish_row(out: &TileOut, r: usize, v: [__m512; 2], k: [__mmask16; 2]) {
    let p = out.c.add(r * out.ldc);
    post_store16(out.post, r, 0, k[0], p, v[0]);
    post_store16(out.post, r, 1, k[1], p.add(16), v[1]);
}

/// The epilogue of every AVX-512 tile (f32, int8, int4), on 16 columns: `post` applied to
/// `v`, half `h` of row `r`, then stored to `c` under the mask `k` of valid columns.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn post_store16(post: TilePost, r: usize, h: usize, k: __mmask16, c: *mut f32, v: __m512) {
    let v = match post {
        TilePost::None => v,
        TilePost::Gelu(GeluKind::Erf) => gelu_erf16(v),
        TilePost::Gelu(GeluKind::Tanh) => gelu_tanh16(v),
        TilePost::Residual { r: res, ldr } => _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res.add(r * ldr + 16 * h))),
    };
    _mm512_mask_storeu_ps(c, k, v);
}
