//! AVX2 int8 micro-kernel (6 × 16): `vpmaddwd` on int16 pairs. Each group of 4 `K` is two
//! pair blocks; a block's 16 weight columns × 2 bytes are sign-extended in registers
//! (`vpmovsxbw`) and multiplied by the broadcast i16 pair of each activation row.
//! Products (≤ 127²) and pair sums (≤ 32 258) land in i32: nothing can saturate.
//!
//! Why not `vpmaddubsw`: it needs an unsigned operand, so exact signed int8 costs
//! `vpsignb` on both factors; with `vpmaddwd` by ones to widen, that is 7 multiply-pipe
//! µops per 64 multiply-adds against 4 here (Zen 3 runs all of them on 2 pipes, as it
//! runs 2 FMAs), and the 6-row tile fits in 15 registers where the 4-row one did.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::f32gemm::avx2::{load_row, store_row};
use crate::f32gemm::TilePost;
use crate::tiling::by_rows;
use crate::vector::avx2::{gelu_erf8_each, gelu_tanh8};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 6;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "avx2-madd16", mr: MR, nr: 16, unsigned_a: false, layout: Layout::Pairs, run: tile };

/// # Safety
/// AVX2 and FMA must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile(t: &I8Tile) {
    by_rows!(t, rows, [1, 2, 3, 4, 5, 6])
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const R: usize>(t: &I8Tile) {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut b) = (t.a.cast::<i16>(), t.b);
    for _ in 0..t.groups {
        // Weights stream from L3 / memory when M is small: fetch 8 groups (8 lines) ahead
        // (batch-1 latency 2–4% lower than without; 16 ahead no better).
        _mm_prefetch::<_MM_HINT_T0>(b.add(512).cast());
        for h in 0..2 {
            // [16 columns][2 k] i8 → two registers of [8 columns][2 k] i16.
            let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(32 * h).cast()));
            let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(32 * h + 16).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(a.add(4 * r + 2 * h).cast::<i32>().read_unaligned());
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, w0));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, w1));
            }
        }
        a = a.add(4 * MR);
        b = b.add(64);
    }
    store(t, &acc);
}

/// The shared f32 epilogue of the 16-wide AVX2-class int8 kernels.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store<const R: usize>(t: &I8Tile, acc: &[[__m256i; 2]; R]) {
    let cs = [_mm256_loadu_ps(t.col_scales), _mm256_loadu_ps(t.col_scales.add(8))];
    let bias = [_mm256_loadu_ps(t.bias), _mm256_loadu_ps(t.bias.add(8))];
    let mut v = [[_mm256_setzero_ps(); 2]; R];
    for (r, (v, acc)) in v.iter_mut().zip(acc).enumerate() {
        let sa = _mm256_set1_ps(*t.row_scales.add(r));
        for h in 0..2 {
            v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]), _mm256_mul_ps(sa, cs[h]), bias[h]);
        }
    }
    if let TilePost::Gelu(GeluKind::Erf) = t.post {
        // The whole tile at once, three registers at a time (`gelu_erf8_each`).
        gelu_erf8_each(v.as_flattened_mut());
    }
    for (r, mut v) in v.into_iter().enumerate() {
        match t.post {
            TilePost::None | TilePost::Gelu(GeluKind::Erf) => {}
            TilePost::Gelu(GeluKind::Tanh) => v = [gelu_tanh8(v[0]), gelu_tanh8(v[1])],
            TilePost::Residual { r: res, ldr } => {
                let x = load_row(res.add(r * ldr), t.nr);
                v = [_mm256_add_ps(v[0], x[0]), _mm256_add_ps(v[1], x[1])];
            }
        }
        store_row(t.c.add(r * t.ldc), t.nr, v);
    }
}
