//! NEON dotprod int4 micro-kernel (4 × 16): nibbles widened to bytes with one AND and one
//! shift, then `sdot` by element (weights `q + 8` ≤ 15 are valid signed bytes; activations
//! are int8), `8·Σa` per group subtracted before the f32 fold.
//!
//! Per quad pair, 16 columns are one 64-byte block: four registers of 4 columns × 4 bytes,
//! each giving a low-nibble quad (`k`) and a high-nibble quad (`k + 4`). The 4-row strip
//! holds one quad of every row per register, so `sdot` picks a row by lane. Registers in
//! the inner loop: 16 accumulators + 8 widened weights + 2 activation quads + 1 mask.
//! `sdot` is `i8gemm::neon_dot`'s inline `asm!` (until `vdotq_laneq_s32` is stable).
//! f16 scales are widened per group with `fcvtl` (base NEON), likewise through `asm!` as
//! Rust has no stable f16 vector type yet.

use super::{I4MicroKernel, I4Tile, ScalePtr};
use crate::i8gemm::neon::post_store_row;
use crate::i8gemm::neon_dot::sdot;
use crate::tiling::by_rows;
use std::arch::aarch64::*;
use std::arch::asm;

const MR: usize = 4;
const NR: usize = 16;
pub const KERNEL: I4MicroKernel = I4MicroKernel { name: "neon-sdot", mr: MR, nr: NR, run: tile };

/// # Safety
/// NEON and dotprod must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile(t: &I4Tile) {
    match t.w_scales {
        ScalePtr::F32(s) => by_rows!(t, rows, [1, 2, 3, 4], false, s.cast()),
        ScalePtr::F16(s) => by_rows!(t, rows, [1, 2, 3, 4], true, s.cast()),
    }
}

/// 4 scales from element `i` (f32, or f16 widened exactly by `fcvtl` when `F16`).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn scales4<const F16: bool>(s: *const u8, i: usize) -> float32x4_t {
    if !F16 {
        return vld1q_f32(s.cast::<f32>().add(i));
    }
    let h = vld1_u16(s.cast::<u16>().add(i));
    let f: float32x4_t;
    asm!("fcvtl {f:v}.4s, {h:v}.4h", f = lateout(vreg) f, h = in(vreg) h, options(pure, nomem, nostack, preserves_flags));
    f
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn rows<const R: usize, const F16: bool>(t: &I4Tile, scales: *const u8) {
    let low = vdupq_n_u8(0x0F);
    let mut f = [[vdupq_n_f32(0.0); NR / 4]; MR];
    let (mut a, mut b) = (t.a, t.b);
    for g in 0..t.groups {
        let mut acc = [[vdupq_n_s32(0); NR / 4]; MR];
        for _ in 0..t.pairs_per_group {
            let raw = [vld1q_u8(b), vld1q_u8(b.add(16)), vld1q_u8(b.add(32)), vld1q_u8(b.add(48))];
            let lo = raw.map(|v| vreinterpretq_s8_u8(vandq_u8(v, low)));
            let hi = raw.map(|v| vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)));
            // Quads 2t and 2t + 1 of the 4 rows (strips are padded to MR rows).
            let (x0, x1) = (vld1q_s8(a), vld1q_s8(a.add(4 * MR)));
            // Written out per row: the lane must be a constant.
            macro_rules! row {
                ($($r:literal),+) => {$(
                    if $r < R {
                        for c in 0..NR / 4 {
                            acc[$r][c] = sdot::<$r>(sdot::<$r>(acc[$r][c], lo[c], x0), hi[c], x1);
                        }
                    }
                )+};
            }
            row!(0, 1, 2, 3);
            a = a.add(8 * MR);
            b = b.add(64);
        }
        for (r, (f, acc)) in f.iter_mut().zip(&acc).enumerate().take(R) {
            let shift = vdupq_n_s32(8 * *t.asum.add(g * MR + r));
            for (c, (f, &acc)) in f.iter_mut().zip(acc).enumerate() {
                let exact = vcvtq_f32_s32(vsubq_s32(acc, shift));
                *f = vfmaq_f32(*f, exact, scales4::<F16>(scales, g * NR + 4 * c));
            }
        }
    }
    for (r, f) in f.iter().enumerate().take(R) {
        let sa = vdupq_n_f32(*t.row_scales.add(r));
        let mut y = [vdupq_n_f32(0.0); NR / 4];
        for (c, (&f, y)) in f.iter().zip(&mut y).enumerate() {
            *y = vfmaq_f32(vld1q_f32(t.bias.add(4 * c)), f, sa);
        }
        post_store_row(t.post, r, t.c.add(r * t.ldc), t.nr, y);
    }
}
