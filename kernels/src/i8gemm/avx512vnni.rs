//! AVX-512 VNNI int8 micro-kernel (12 × 32): `vpdpbusd` on unsigned activations
//! (`a + 128`), corrected by `128·Σw` per column.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::f32gemm::avx512::post_store16;
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
    unrolled!(R, |r| { finish_row(t, r, acc[r]) });
}

/// Row `r` of a finished tile: the `128·Σw` offset removed, dequantized
/// (`acc·(s_row·s_col) + bias`), the epilogue applied, the valid columns stored. Out of
/// line, as in the f32 tile: the row loop around it is unrolled, so the accumulators stay
/// in registers (a real loop over rows kept them in a stack array that every call of the
/// 11- and 12-row instances zeroed with a 1.5 KiB `memset`).
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn finish_row(t: &I8Tile, r: usize, acc: [__m512i; 2]) {
    let m = if t.nr >= 32 { u32::MAX } else { (1u32 << t.nr) - 1 };
    let k = [m as __mmask16, (m >> 16) as __mmask16];
    let sa = _mm512_set1_ps(*t.row_scales.add(r));
    let p = t.c.add(r * t.ldc);
    for h in 0..2 {
        let shift = _mm512_slli_epi32::<7>(_mm512_loadu_si512(t.colsum.add(16 * h).cast()));
        let exact = _mm512_sub_epi32(acc[h], shift);
        let scale = _mm512_mul_ps(sa, _mm512_loadu_ps(t.col_scales.add(16 * h)));
        let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, _mm512_loadu_ps(t.bias.add(16 * h)));
        post_store16(t.post, r, h, k[h], p.add(16 * h), v);
    }
}
