//! AVX-512F micro-kernel: 12 × 32 tile, 24 accumulators + 2 panel loads + 1 broadcast.

use super::{MicroKernel, Tile, TilePost};
use crate::tiling::{by_rows, unrolled};
use crate::vector::avx512::{gelu_erf16, gelu_tanh16};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 12;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 32, half_panels: false, run: tile };

/// # Safety
/// AVX-512F must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile(t: &Tile) {
    by_rows!(t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
}

/// Lane masks of the two 16-float halves of a row of `n ≤ 32` valid columns.
#[inline]
fn masks(n: usize) -> [__mmask16; 2] {
    let m = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    [m as __mmask16, (m >> 16) as __mmask16]
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows<const R: usize>(t: &Tile) {
    let k = masks(t.nr);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    unrolled!(R, |r| {
        acc[r] = if t.accumulate {
            let p = t.c.add(r * t.ldc);
            [_mm512_maskz_loadu_ps(k[0], p), _mm512_maskz_loadu_ps(k[1], p.add(16))]
        } else {
            [_mm512_loadu_ps(t.bias), _mm512_loadu_ps(t.bias.add(16))]
        };
    });
    let (mut a, mut b) = (t.a, t.b.f32());
    for _ in 0..t.k {
        let w0 = _mm512_loadu_ps(b);
        let w1 = _mm512_loadu_ps(b.add(16));
        unrolled!(R, |r| {
            let x = _mm512_set1_ps(*a.add(r * t.row_stride));
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
        });
        a = a.add(t.k_stride);
        b = b.add(32);
    }
    unrolled!(R, |r| { finish_row(t, r, acc[r], k) });
}

/// Applies the epilogue to row `r` of a finished tile and stores its `t.nr` columns.
/// Out of line: the row loop around it is unrolled so the accumulators stay in registers,
/// and one call per row costs nothing beside the `k` loop.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn finish_row(t: &Tile, r: usize, v: [__m512; 2], k: [__mmask16; 2]) {
    let v = match t.post {
        TilePost::None => v,
        TilePost::Gelu(GeluKind::Erf) => [gelu_erf16(v[0]), gelu_erf16(v[1])],
        TilePost::Gelu(GeluKind::Tanh) => [gelu_tanh16(v[0]), gelu_tanh16(v[1])],
        TilePost::Residual { r: res, ldr } => {
            let p = res.add(r * ldr);
            [
                _mm512_add_ps(v[0], _mm512_maskz_loadu_ps(k[0], p)),
                _mm512_add_ps(v[1], _mm512_maskz_loadu_ps(k[1], p.add(16))),
            ]
        }
    };
    let p = t.c.add(r * t.ldc);
    _mm512_mask_storeu_ps(p, k[0], v[0]);
    _mm512_mask_storeu_ps(p.add(16), k[1], v[1]);
}
