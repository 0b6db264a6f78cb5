//! AVX2 int8 micro-kernel (4 × 16): `vpmaddubsw(|a|, sign(w, a))` then `vpmaddwd` by ones.
//! Both factors lie in [-127, 127], so every int16 pair sum is at most 2·127² = 32 258:
//! no saturation, exact i32 results.

use super::{I8MicroKernel, I8Tile};
use crate::f32gemm::TilePost;
use crate::tiling::by_rows;
use crate::vector::avx2::{gelu_erf8, gelu_tanh8};
use crate::vector::GeluKind;
use std::arch::x86_64::*;

const MR: usize = 4;
pub const KERNEL: I8MicroKernel = I8MicroKernel { name: "avx2-maddubs", mr: MR, nr: 16, unsigned_a: false, run: tile };

/// # Safety
/// AVX2 and FMA must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile(t: &I8Tile) {
    by_rows!(t, rows, [1, 2, 3, 4])
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const R: usize>(t: &I8Tile) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        let w0 = _mm256_loadu_si256(b.cast());
        let w1 = _mm256_loadu_si256(b.add(32).cast());
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_epi32(a.add(4 * r).cast::<i32>().read_unaligned());
            let ax = _mm256_sign_epi8(x, x);
            acc[0] =
                _mm256_add_epi32(acc[0], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x)), ones));
            acc[1] =
                _mm256_add_epi32(acc[1], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x)), ones));
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
    for (r, acc) in acc.iter().enumerate() {
        let sa = _mm256_set1_ps(*t.row_scales.add(r));
        let mut v = [_mm256_setzero_ps(); 2];
        for h in 0..2 {
            v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]), _mm256_mul_ps(sa, cs[h]), bias[h]);
            v[h] = match t.post {
                TilePost::None => v[h],
                TilePost::Gelu(GeluKind::Erf) => gelu_erf8(v[h]),
                TilePost::Gelu(GeluKind::Tanh) => gelu_tanh8(v[h]),
                TilePost::Residual { .. } => v[h],
            };
        }
        let mut buf = [0.0f32; 16];
        _mm256_storeu_ps(buf.as_mut_ptr(), v[0]);
        _mm256_storeu_ps(buf.as_mut_ptr().add(8), v[1]);
        let out = std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.nr);
        match t.post {
            TilePost::Residual { r: res, ldr } => {
                let res = std::slice::from_raw_parts(res.add(r * ldr), t.nr);
                out.iter_mut().zip(&buf).zip(res).for_each(|((o, v), x)| *o = v + x);
            }
            _ => out.copy_from_slice(&buf[..t.nr]),
        }
    }
}
