//! AVX2 + FMA micro-kernel: 6 × 16 tile, 12 accumulators + 2 panel loads + 1 broadcast.
//! Half-width panels are widened as they are loaded (`vcvtph2ps` for f16, a 16-bit shift
//! for bf16), so f16/bf16 weights stream at half the bytes with no buffer pass.

use super::{touch, Fill, MicroKernel, PanelPtr, Tile, TilePost, INTO_L1, INTO_L2};
use crate::tiling::by_rows;
use crate::vector::avx2::{gelu_erf8, gelu_tanh8, half8, store_partial, tail_mask};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 6;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 16, half_panels: true, run: tile };

/// Panel element types, as `rows`' const parameter.
const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

/// # Safety
/// AVX2, FMA and F16C must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile(t: &Tile) {
    match t.prefetch.fill {
        Fill::L1 => tile_into::<INTO_L1>(t),
        Fill::L2 => tile_into::<INTO_L2>(t),
    }
}

/// [`tile`] with its prefetch filling the level of `INTO`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_into<const INTO: u8>(t: &Tile) {
    match t.b {
        PanelPtr::F32(b) => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6], F32, INTO, b.cast()),
        PanelPtr::F16(b) => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6], F16, INTO, b.cast()),
        PanelPtr::Bf16(b) => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6], BF16, INTO, b.cast()),
    }
}

/// 8 panel values at element `i` of a panel of element type `S`, as f32 (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8<const S: u8>(b: *const u8, i: usize) -> __m256 {
    match S {
        F32 => _mm256_loadu_ps(b.cast::<f32>().add(i)),
        F16 => half8::<false>(b.cast::<u16>().add(i)),
        _ => half8::<true>(b.cast::<u16>().add(i)),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const R: usize, const S: u8, const INTO: u8>(t: &Tile, b: *const u8) {
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        *acc = if t.out.accumulate {
            load_row(t.out.c.add(r * t.out.ldc), t.out.nr)
        } else {
            [_mm256_loadu_ps(t.out.bias), _mm256_loadu_ps(t.out.bias.add(8))]
        };
    }
    let size = if S == F32 { 4 } else { 2 };
    // One pointer per row, each stepped by `k_stride`. Written as `a.add(r * row_stride)`
    // off one pointer, the row addresses compiled to a chain of 6 dependent `add`s per `k`
    // step, as long as the step's 12 FMAs take on 2 pipes; apart, the loop carries one
    // `add` (the rows read at base + index·{4, 8}; `objdump` shows it). Operands in L1, the
    // two loops alternated in a scratch harness: 1.05–1.10× the rate while the VM's other
    // load shares the core, 1.01× when quiet (Zen 3); `tools/ab-bench.sh` against the
    // commit before re-measures it end to end (`docs/cpu-analysis.md` §21).
    let (mut b, mut pf) = (b, t.prefetch.at);
    let mut a: [*const f32; R] = std::array::from_fn(|r| t.a.add(r * t.row_stride));
    for _ in 0..t.k {
        touch::<INTO>(pf);
        pf = pf.wrapping_add(t.prefetch.step);
        let w0 = load8::<S>(b, 0);
        let w1 = load8::<S>(b, 8);
        for (acc, a) in acc.iter_mut().zip(&mut a) {
            let x = _mm256_broadcast_ss(&**a);
            acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
            *a = a.add(t.k_stride);
        }
        b = b.add(16 * size);
    }
    for (r, v) in acc.iter().enumerate() {
        let v = match t.out.post {
            // GELU (tanh) runs on the stored tile, below.
            TilePost::None | TilePost::Gelu(GeluKind::Tanh) => *v,
            TilePost::Gelu(GeluKind::Erf) => [gelu_erf8(v[0]), gelu_erf8(v[1])],
            TilePost::Residual { r: res, ldr } => {
                let x = load_row(res.add(r * ldr), t.out.nr);
                [_mm256_add_ps(v[0], x[0]), _mm256_add_ps(v[1], x[1])]
            }
        };
        store_row(t.out.c.add(r * t.out.ldc), t.out.nr, v);
    }
    if let TilePost::Gelu(GeluKind::Tanh) = t.out.post {
        gelu_tanh_in_place::<R>(t.out.c, t.out.ldc, t.out.nr);
    }
}

/// GELU (tanh) of the `R × n` tile just stored at `c` (row stride `ldc`), out of line.
/// Inlined, `gelu_tanh8`'s `exp8` was left as a call inside the tile once attention and
/// `softmax_rows` changed the crate around it (LLVM's choice; reverting either half alone
/// did not undo it), the tile's registers saved around the call: what
/// `tools/check-spills.py` fails on. Erf, e5's GELU, stays inline.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_tanh_in_place<const R: usize>(c: *mut f32, ldc: usize, n: usize) {
    for r in 0..R {
        let [v0, v1] = load_row(c.add(r * ldc), n);
        store_row(c.add(r * ldc), n, [gelu_tanh8(v0), gelu_tanh8(v1)]);
    }
}

/// Columns `0..n` (≤ 16) of a row as two registers, zeros past `n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn load_row(p: *const f32, n: usize) -> [__m256; 2] {
    if n == 16 {
        return [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
    }
    [_mm256_maskload_ps(p, tail_mask(n.min(8))), _mm256_maskload_ps(p.add(8), tail_mask(n.saturating_sub(8)))]
}

/// Stores columns `0..n` (≤ 16) of `v`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn store_row(p: *mut f32, n: usize, v: [__m256; 2]) {
    if n == 16 {
        _mm256_storeu_ps(p, v[0]);
        _mm256_storeu_ps(p.add(8), v[1]);
        return;
    }
    if n >= 8 {
        _mm256_storeu_ps(p, v[0]);
        store_partial(p.add(8), n - 8, v[1]);
    } else {
        store_partial(p, n, v[0]);
    }
}
