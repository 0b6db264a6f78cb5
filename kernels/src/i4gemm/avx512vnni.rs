//! AVX-512 VNNI int4 micro-kernel (4 × 32): nibbles widened to bytes with one AND and one
//! shift, then `vpdpbusd` with the weights as the unsigned operand (`q + 8`) and the int8
//! activations as the signed one; `8·Σa` per group is subtracted before the f32 fold.
//! f16 scales are widened per group with `vcvtph2ps`.

use super::{I4MicroKernel, I4Tile, ScalePtr};
use crate::f32gemm::avx512::post_store16;
use crate::tiling::{by_rows, unrolled};
use std::arch::x86_64::*;

const MR: usize = 4;
pub const KERNEL: I4MicroKernel = I4MicroKernel { name: "avx512-vnni", mr: MR, nr: 32, run: tile };

/// # Safety
/// AVX-512F/BW and AVX512-VNNI must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile(t: &I4Tile) {
    // A prefetching instance and a plain one, as in the int8 tile (no test in the loop).
    match (t.w_scales, t.prefetch > 0) {
        (ScalePtr::F32(s), false) => by_rows!(@rows t.mr; t, rows, [1, 2, 3, 4], false, false, s.cast()),
        (ScalePtr::F32(s), true) => by_rows!(@rows t.mr; t, rows, [1, 2, 3, 4], false, true, s.cast()),
        (ScalePtr::F16(s), false) => by_rows!(@rows t.mr; t, rows, [1, 2, 3, 4], true, false, s.cast()),
        (ScalePtr::F16(s), true) => by_rows!(@rows t.mr; t, rows, [1, 2, 3, 4], true, true, s.cast()),
    }
}

/// 16 scales from element `i` (f32, or f16 widened exactly when `F16`).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scales16<const F16: bool>(s: *const u8, i: usize) -> __m512 {
    match F16 {
        true => _mm512_cvtph_ps(_mm256_loadu_si256(s.cast::<u16>().add(i).cast())),
        false => _mm512_loadu_ps(s.cast::<f32>().add(i)),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows<const R: usize, const F16: bool, const PREFETCH: bool>(t: &I4Tile, scales: *const u8) {
    let low = _mm512_set1_epi8(0x0F);
    // f32 sums over the finished groups, two 16-column halves per row.
    let mut f = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for g in 0..t.groups {
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        for _ in 0..t.pairs_per_group {
            if PREFETCH {
                // Both lines `prefetch` bytes on (past the panel's end: the next panel's;
                // prefetches never fault).
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(t.prefetch).cast());
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(t.prefetch + 64).cast());
            }
            // 64 bytes per 16 columns: low nibbles are quad 2t, high nibbles quad 2t + 1.
            let raw = [_mm512_loadu_si512(b.cast()), _mm512_loadu_si512(b.add(64).cast())];
            let lo = [_mm512_and_si512(raw[0], low), _mm512_and_si512(raw[1], low)];
            let hi = [
                _mm512_and_si512(_mm512_srli_epi16::<4>(raw[0]), low),
                _mm512_and_si512(_mm512_srli_epi16::<4>(raw[1]), low),
            ];
            unrolled!(R, |r| {
                let x0 = _mm512_set1_epi32(a.add(4 * r).cast::<i32>().read_unaligned());
                let x1 = _mm512_set1_epi32(a.add(4 * (MR + r)).cast::<i32>().read_unaligned());
                acc[r][0] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[r][0], lo[0], x0), hi[0], x1);
                acc[r][1] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[r][1], lo[1], x0), hi[1], x1);
            });
            a = a.add(8 * MR);
            b = b.add(128);
        }
        let s = [scales16::<F16>(scales, g * 32), scales16::<F16>(scales, g * 32 + 16)];
        unrolled!(R, |r| {
            let shift = _mm512_set1_epi32(8 * *t.asum.add(g * MR + r));
            for h in 0..2 {
                let exact = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][h], shift));
                f[r][h] = _mm512_fmadd_ps(exact, s[h], f[r][h]);
            }
        });
    }
    unrolled!(R, |r| { finish_row(t, r, f[r]) });
}

/// `y = fma(f, sa, bias)`, the epilogue, and a masked store of row `r`'s `t.nr` columns.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn finish_row(t: &I4Tile, r: usize, f: [__m512; 2]) {
    let m = if t.nr >= 32 { u32::MAX } else { (1u32 << t.nr) - 1 };
    let k = [m as __mmask16, (m >> 16) as __mmask16];
    let sa = _mm512_set1_ps(*t.row_scales.add(r));
    let p = t.c.add(r * t.ldc);
    for h in 0..2 {
        let v = _mm512_fmadd_ps(f[h], sa, _mm512_loadu_ps(t.bias.add(16 * h)));
        post_store16(t.post, r, h, k[h], p.add(16 * h), v);
    }
}
