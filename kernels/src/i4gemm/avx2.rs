//! AVX2 int4 micro-kernel (3 × 16): nibbles widened to bytes with one AND and one shift,
//! `vpmaddubsw` (unsigned weights `q + 8` ≤ 15 × signed activations: pair sums ≤ 3810,
//! so the saturating instruction is exact, and two of them still fit i16), then
//! `vpmaddwd` by ones into i32; `8·Σa` per group is subtracted before the f32 fold.
//! f16 scales are widened per group with `vcvtph2ps` (F16C, part of the AVX2 dispatch).

use super::{I4MicroKernel, I4Tile, ScalePtr};
use crate::f32gemm::avx2::{load_row, store_row};
use crate::f32gemm::TilePost;
use crate::tiling::{by_rows, unrolled};
use crate::vector::avx2::{gelu_erf8x, gelu_tanh8, half8};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 3;
pub const KERNEL: I4MicroKernel = I4MicroKernel { name: "avx2-maddubs", mr: MR, nr: 16, run: tile };

/// # Safety
/// AVX2, FMA and F16C must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile(t: &I4Tile) {
    match t.w_scales {
        ScalePtr::F32(s) => by_rows!(t, rows, [1, 2, 3], false, s.cast()),
        ScalePtr::F16(s) => by_rows!(t, rows, [1, 2, 3], true, s.cast()),
    }
}

/// 8 scales from element `i` (f32, or f16 widened exactly when `F16`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales8<const F16: bool>(s: *const u8, i: usize) -> __m256 {
    match F16 {
        true => half8::<false>(s.cast::<u16>().add(i)),
        false => _mm256_loadu_ps(s.cast::<f32>().add(i)),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const R: usize, const F16: bool>(t: &I4Tile, scales: *const u8) {
    let low = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut f = [[_mm256_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for g in 0..t.groups {
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for _ in 0..t.pairs_per_group {
            // Bytes 0..32 hold columns 0..8, bytes 32..64 columns 8..16. One half at a time,
            // so the 6 accumulators, both nibble blocks, the constants and the broadcasts fit
            // 16 registers (4 rows spilled: `tools/check-spills.py`); the halves are written
            // out, as a loop over them would index `acc` at run time and keep it on the stack.
            macro_rules! half {
                ($h:literal) => {
                    let raw = _mm256_loadu_si256(b.add(32 * $h).cast());
                    let lo = _mm256_and_si256(raw, low);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
                    unrolled!(R, |r| {
                        let x0 = _mm256_set1_epi32(a.add(4 * r).cast::<i32>().read_unaligned());
                        let x1 = _mm256_set1_epi32(a.add(4 * (MR + r)).cast::<i32>().read_unaligned());
                        let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1));
                        acc[r][$h] = _mm256_add_epi32(acc[r][$h], _mm256_madd_epi16(pairs, ones));
                    });
                };
            }
            half!(0);
            half!(1);
            a = a.add(8 * MR);
            b = b.add(64);
        }
        let s = [scales8::<F16>(scales, g * 16), scales8::<F16>(scales, g * 16 + 8)];
        unrolled!(R, |r| {
            let shift = _mm256_set1_epi32(8 * *t.asum.add(g * MR + r));
            for h in 0..2 {
                let exact = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], shift));
                f[r][h] = _mm256_fmadd_ps(exact, s[h], f[r][h]);
            }
        });
    }
    unrolled!(R, |r| { finish_row(t, r, f[r]) });
}

/// `y = fma(f, sa, bias)`, the epilogue, and a store of row `r`'s `t.nr` columns.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish_row(t: &I4Tile, r: usize, f: [__m256; 2]) {
    let sa = _mm256_set1_ps(*t.row_scales.add(r));
    let y =
        [_mm256_fmadd_ps(f[0], sa, _mm256_loadu_ps(t.bias)), _mm256_fmadd_ps(f[1], sa, _mm256_loadu_ps(t.bias.add(8)))];
    let y = match t.post {
        TilePost::None => y,
        TilePost::Gelu(GeluKind::Erf) => gelu_erf8x(y),
        TilePost::Gelu(GeluKind::Tanh) => [gelu_tanh8(y[0]), gelu_tanh8(y[1])],
        TilePost::Residual { r: res, ldr } => {
            let x = load_row(res.add(r * ldr), t.nr);
            [_mm256_add_ps(y[0], x[0]), _mm256_add_ps(y[1], x[1])]
        }
    };
    store_row(t.c.add(r * t.ldc), t.nr, y);
}
