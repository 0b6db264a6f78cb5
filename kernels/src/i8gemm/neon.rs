//! NEON int8 micro-kernel (4 × 8): `smull` of 4-byte groups, pairwise-added into i32.
//! Products are at most 127² and fit int16 exactly. The fallback for cores without
//! dotprod (see [`super::neon_dot`]); its f32 epilogue [`store`] is shared with that kernel.

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
    let sums = acc.map(|acc| [vpaddq_s32(acc[0], acc[1]), vpaddq_s32(acc[2], acc[3])]);
    store(t, &sums);
}

/// The shared f32 epilogue of the NEON int8 kernels: `acc[r][q]` holds the i32 sums of
/// row `r`, columns `4q..4q+4`; writes the first `t.nr` of the `4·Q` columns.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn store<const R: usize, const Q: usize>(t: &I8Tile, acc: &[[int32x4_t; Q]; R]) {
    for (r, acc) in acc.iter().enumerate() {
        let sa = vdupq_n_f32(*t.row_scales.add(r));
        let mut y = [vdupq_n_f32(0.0); Q];
        for (q, (&sums, y)) in acc.iter().zip(&mut y).enumerate() {
            let cs = vld1q_f32(t.col_scales.add(4 * q));
            *y = vfmaq_f32(vld1q_f32(t.bias.add(4 * q)), vcvtq_f32_s32(sums), vmulq_f32(sa, cs));
        }
        post_store_row(t.post, r, t.c.add(r * t.ldc), t.nr, y);
    }
}

/// The epilogue of the NEON int8 and int4 tiles on one row: `post` applied to the `4·Q`
/// values `y` of row `r`, the first `nr` stored at `c`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn post_store_row<const Q: usize>(
    post: TilePost,
    r: usize,
    c: *mut f32,
    nr: usize,
    y: [float32x4_t; Q],
) {
    let mut buf = [[0.0f32; 4]; Q];
    for (&v, buf) in y.iter().zip(&mut buf) {
        let v = match post {
            TilePost::Gelu(GeluKind::Erf) => gelu_erf4(v),
            TilePost::Gelu(GeluKind::Tanh) => gelu_tanh4(v),
            _ => v,
        };
        vst1q_f32(buf.as_mut_ptr(), v);
    }
    let buf = buf.as_flattened();
    let out = std::slice::from_raw_parts_mut(c, nr);
    match post {
        TilePost::Residual { r: res, ldr } => {
            let res = std::slice::from_raw_parts(res.add(r * ldr), nr);
            out.iter_mut().zip(buf).zip(res).for_each(|((o, v), x)| *o = v + x);
        }
        _ => out.copy_from_slice(&buf[..nr]),
    }
}
