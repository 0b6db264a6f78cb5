//! NEON micro-kernel: 8 × 8 tile, 16 accumulators + 2 panel loads + 1 broadcast.

use super::{MicroKernel, Tile, TilePost};
use crate::tiling::by_rows;
use crate::vector::neon::{gelu_erf4, gelu_tanh4};
use crate::vector::GeluKind;
use std::arch::aarch64::*;

const MR: usize = 8;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 8, half_panels: false, run: tile };

/// # Safety
/// NEON must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "neon")]
pub unsafe fn tile(t: &Tile) {
    by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8])
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn rows<const R: usize>(t: &Tile) {
    let mut acc = [[vdupq_n_f32(0.0); 2]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        *acc = if t.out.accumulate {
            load_row(t.out.c.add(r * t.out.ldc), t.out.nr)
        } else {
            [vld1q_f32(t.out.bias), vld1q_f32(t.out.bias.add(4))]
        };
    }
    let (mut a, mut b) = (t.a, t.b.f32());
    for _ in 0..t.k {
        let w0 = vld1q_f32(b);
        let w1 = vld1q_f32(b.add(4));
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = vdupq_n_f32(*a.add(r * t.row_stride));
            acc[0] = vfmaq_f32(acc[0], x, w0);
            acc[1] = vfmaq_f32(acc[1], x, w1);
        }
        a = a.add(t.k_stride);
        b = b.add(8);
    }
    for (r, v) in acc.iter().enumerate() {
        let v = match t.out.post {
            TilePost::None => *v,
            TilePost::Gelu(GeluKind::Erf) => [gelu_erf4(v[0]), gelu_erf4(v[1])],
            TilePost::Gelu(GeluKind::Tanh) => [gelu_tanh4(v[0]), gelu_tanh4(v[1])],
            TilePost::Residual { r: res, ldr } => {
                let x = load_row(res.add(r * ldr), t.out.nr);
                [vaddq_f32(v[0], x[0]), vaddq_f32(v[1], x[1])]
            }
        };
        let mut buf = [0.0f32; 8];
        vst1q_f32(buf.as_mut_ptr(), v[0]);
        vst1q_f32(buf.as_mut_ptr().add(4), v[1]);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), t.out.c.add(r * t.out.ldc), t.out.nr);
    }
}

/// Loads up to 8 floats of a row, zero-filling the rest.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_row(p: *const f32, n: usize) -> [float32x4_t; 2] {
    let mut buf = [0.0f32; 8];
    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
    [vld1q_f32(buf.as_ptr()), vld1q_f32(buf.as_ptr().add(4))]
}
