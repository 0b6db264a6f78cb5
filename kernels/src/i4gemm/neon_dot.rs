//! NEON dotprod int4 micro-kernel (4 × 16): nibbles widened to bytes with one AND and one
//! shift, then `sdot` by element (weights `q + 8` ≤ 15 are valid signed bytes; activations
//! are int8), `8·Σa` per group subtracted before the f32 fold.
//!
//! Per quad pair, 16 columns are one 64-byte block: four registers of 4 columns × 4 bytes,
//! each giving a low-nibble quad (`k`) and a high-nibble quad (`k + 4`). The 4-row strip
//! holds one quad of every row per register, so `sdot` picks a row by lane. Registers in
//! the inner loop: 16 accumulators + 8 widened weights + 2 activation quads + 1 mask.
//! As in `i8gemm::neon_dot`, `sdot` is inline `asm!` until `vdotq_laneq_s32` is stable.

use super::{I4MicroKernel, I4Tile};
use crate::f32gemm::TilePost;
use crate::tiling::by_rows;
use crate::vector::neon::{gelu_erf4, gelu_tanh4};
use crate::vector::GeluKind;
use std::arch::aarch64::*;
use std::arch::asm;

const MR: usize = 4;
const NR: usize = 16;
pub const KERNEL: I4MicroKernel = I4MicroKernel { name: "neon-sdot", mr: MR, nr: NR, run: tile };

/// # Safety
/// NEON and dotprod must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile(t: &I4Tile) {
    by_rows!(t, rows, [1, 2, 3, 4])
}

/// `sdot acc.4s, w.16b, x.4b[L]`: each i32 lane of `acc` gains the dot product of its
/// column's 4 bytes of `w` with the 4 bytes of row `L` of `x`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot<const L: usize>(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: dotprod is enabled; the instruction only reads and writes these registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{l}]",
            acc = inout(vreg) acc, w = in(vreg) w, x = in(vreg) x, l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn rows<const R: usize>(t: &I4Tile) {
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
                *f = vfmaq_f32(*f, exact, vld1q_f32(t.w_scales.add(g * NR + 4 * c)));
            }
        }
    }
    for (r, f) in f.iter().enumerate().take(R) {
        let sa = vdupq_n_f32(*t.row_scales.add(r));
        let mut buf = [[0.0f32; 4]; NR / 4];
        for (c, (&f, buf)) in f.iter().zip(&mut buf).enumerate() {
            let v = vfmaq_f32(vld1q_f32(t.bias.add(4 * c)), f, sa);
            let v = match t.post {
                TilePost::Gelu(GeluKind::Erf) => gelu_erf4(v),
                TilePost::Gelu(GeluKind::Tanh) => gelu_tanh4(v),
                _ => v,
            };
            vst1q_f32(buf.as_mut_ptr(), v);
        }
        let buf = buf.as_flattened();
        let out = std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.nr);
        match t.post {
            TilePost::Residual { r: res, ldr } => {
                let res = std::slice::from_raw_parts(res.add(r * ldr), t.nr);
                out.iter_mut().zip(buf).zip(res).for_each(|((o, v), x)| *o = v + x);
            }
            _ => out.copy_from_slice(&buf[..t.nr]),
        }
    }
}
