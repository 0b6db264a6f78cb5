//! AVX-512 VNNI int8 micro-kernel (12 × 32): `vpdpbusd` on unsigned activations
//! (`a + 128`), corrected by `128·Σw` per column.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::f32gemm::avx512::{masks, post_store16, store32};
use crate::f32gemm::TilePost;
use crate::tiling::{by_rows, unrolled};
use std::arch::x86_64::*;

const MR: usize = 12;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "avx512-vnni", mr: MR, nr: 32, unsigned_a: true, layout: Layout::Quads, run: tile };

/// # Safety
/// AVX-512F/BW and AVX512-VNNI must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile(t: &I8Tile) {
    // A prefetching instance and a plain one, as in the f32 tile (no test in the loop).
    if t.prefetch == 0 {
        by_rows!(t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], false, 0)
    } else {
        by_rows!(t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], true, t.prefetch)
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows<const R: usize, const PREFETCH: bool>(t: &I8Tile, ahead: usize) {
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        if PREFETCH {
            // Both lines of the group `ahead` bytes on (past the panel's end: the next
            // panel's; prefetches never fault).
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(ahead).cast());
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(ahead + 64).cast());
        }
        let w0 = _mm512_loadu_si512(b.cast());
        let w1 = _mm512_loadu_si512(b.add(64).cast());
        unrolled!(R, |r| {
            let x = _mm512_set1_epi32(a.add(4 * r).cast::<i32>().read_unaligned());
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, w0);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, w1);
        });
        a = a.add(4 * MR);
        b = b.add(128);
    }
    // The epilogue: plain and residual stores inline, with the panel's column terms loaded
    // once; GELU out of line (see the f32 tile's `finish_tile`).
    let res = match t.post {
        TilePost::Gelu(_) => {
            unrolled!(R, |r| { finish_row(t, r, acc[r]) });
            return;
        }
        TilePost::Residual { r, ldr } => Some((r, ldr)),
        TilePost::None => None,
    };
    let cols = Columns::of(t);
    unrolled!(R, |r| {
        let v = cols.dequantize(t, r, acc[r]);
        store32(t.c.add(r * t.ldc), v, cols.k, res.map(|(q, ldr)| q.add(r * ldr)));
    });
}

/// A panel's per-column terms of the dequantization, per 16-column half, and the masks of
/// its valid columns.
#[derive(Clone, Copy)]
struct Columns {
    /// `128·Σw`: what the unsigned activations (`a + 128`) added to each column's sum.
    shift: [__m512i; 2],
    scale: [__m512; 2],
    bias: [__m512; 2],
    k: [__mmask16; 2],
}

impl Columns {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn of(t: &I8Tile) -> Columns {
        let half = |h: usize| {
            (
                _mm512_slli_epi32::<7>(_mm512_loadu_si512(t.colsum.add(16 * h).cast())),
                _mm512_loadu_ps(t.col_scales.add(16 * h)),
                _mm512_loadu_ps(t.bias.add(16 * h)),
            )
        };
        let (h0, h1) = (half(0), half(1));
        Columns { shift: [h0.0, h1.0], scale: [h0.1, h1.1], bias: [h0.2, h1.2], k: masks(t.nr) }
    }

    /// Row `r` dequantized: `(acc − 128·Σw)·(s_row·s_col) + bias`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn dequantize(&self, t: &I8Tile, r: usize, acc: [__m512i; 2]) -> [__m512; 2] {
        let sa = _mm512_set1_ps(*t.row_scales.add(r));
        let half = |h: usize| {
            let exact = _mm512_sub_epi32(acc[h], self.shift[h]);
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(sa, self.scale[h]), self.bias[h])
        };
        [half(0), half(1)]
    }
}

/// Row `r` of a finished tile dequantized, with the epilogue applied, stored to its valid
/// columns. Out of line, for GELU: the row loop around it is unrolled, so the
/// accumulators stay in registers (a real loop over rows kept them in a stack array that
/// every call of the 11- and 12-row instances zeroed with a 1.5 KiB `memset`).
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn finish_row(t: &I8Tile, r: usize, acc: [__m512i; 2]) {
    let cols = Columns::of(t);
    let v = cols.dequantize(t, r, acc);
    let p = t.c.add(r * t.ldc);
    for (h, v) in v.into_iter().enumerate() {
        post_store16(t.post, r, h, cols.k[h], p.add(16 * h), v);
    }
}
