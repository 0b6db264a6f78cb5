//! NEON int8 micro-kernel (4 × 8): `smull` of 4-byte groups, pairwise-added into i32.
//! Products are at most 127² and fit int16 exactly.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::f32gemm::TilePost;
use crate::tiling::by_rows;
use crate::vector::neon::{gelu_erf4, gelu_tanh4};
use crate::vector::GeluKind;
use std::arch::aarch64::*;

const MR: usize = 4;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "neon-smull", mr: MR, nr: 8, unsigned_a: false, layout: Layout::Quads, run: tile };

/// # Safety
/// NEON must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "neon")]
pub unsafe fn tile(t: &I8Tile) {
    by_rows!(t, rows, [1, 2, 3, 4])
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn rows<const R: usize>(t: &I8Tile) {
    // acc[r][q]: q = 0..4 covers column pairs (0,1), (2,3), (4,5), (6,7), two lanes each.
    let mut acc = [[vdupq_n_s32(0); 4]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        let w = [vld1q_s8(b), vld1q_s8(b.add(16))];
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = vreinterpretq_s8_s32(vdupq_n_s32(a.add(4 * r).cast::<i32>().read_unaligned()));
            for (h, w) in w.iter().enumerate() {
                acc[2 * h] = vpadalq_s16(acc[2 * h], vmull_s8(vget_low_s8(x), vget_low_s8(*w)));
                acc[2 * h + 1] = vpadalq_s16(acc[2 * h + 1], vmull_s8(vget_high_s8(x), vget_high_s8(*w)));
            }
        }
        a = a.add(4 * MR);
        b = b.add(32);
    }
    for (r, acc) in acc.iter().enumerate() {
        let sa = vdupq_n_f32(*t.row_scales.add(r));
        let mut buf = [0.0f32; 8];
        for h in 0..2 {
            let sums = vpaddq_s32(acc[2 * h], acc[2 * h + 1]);
            let cs = vld1q_f32(t.col_scales.add(4 * h));
            let v = vfmaq_f32(vld1q_f32(t.bias.add(4 * h)), vcvtq_f32_s32(sums), vmulq_f32(sa, cs));
            let v = match t.post {
                TilePost::Gelu(GeluKind::Erf) => gelu_erf4(v),
                TilePost::Gelu(GeluKind::Tanh) => gelu_tanh4(v),
                _ => v,
            };
            vst1q_f32(buf.as_mut_ptr().add(4 * h), v);
        }
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
