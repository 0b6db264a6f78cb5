//! Scalar int4 micro-kernel: the exact reference twin (4 × 16 tile).

use super::{I4MicroKernel, I4Tile};
use crate::f32gemm::TilePost;
use crate::vector::scalar::{gelu_erf_1, gelu_tanh_1};
use crate::vector::GeluKind;

const MR: usize = 4;
const NR: usize = 16;
pub const KERNEL: I4MicroKernel = I4MicroKernel { name: "scalar", mr: MR, nr: NR, run: tile };

/// The unsigned weight `u = q + 8` of column `j`, value `kk` (0..8) of quad pair `pair`.
///
/// # Safety
/// `b` must point at the panel (see the module docs for the layout).
#[inline]
unsafe fn weight(b: *const u8, pair: usize, j: usize, kk: usize) -> i32 {
    let byte = *b.add((pair * (NR / 16) + j / 16) * 64 + (j % 16) * 4 + kk % 4);
    (if kk < 4 { byte & 0x0F } else { byte >> 4 }) as i32
}

/// # Safety
/// `t` must describe in-bounds memory.
pub unsafe fn tile(t: &I4Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for g in 0..t.groups {
        for (r, acc) in acc.iter_mut().enumerate().take(t.mr) {
            let shift = 8 * *t.asum.add(g * MR + r);
            for (j, acc) in acc.iter_mut().enumerate() {
                let mut dot = 0i32;
                for pp in 0..t.pairs_per_group {
                    let pair = g * t.pairs_per_group + pp;
                    for kk in 0..8 {
                        let a = *t.a.add(((2 * pair + kk / 4) * MR + r) * 4 + kk % 4) as i32;
                        dot += weight(t.b, pair, j, kk) * a;
                    }
                }
                *acc = ((dot - shift) as f32).mul_add(t.w_scales.get(g * NR + j), *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(t.mr) {
        let sa = *t.row_scales.add(r);
        for (j, &f) in acc.iter().enumerate().take(t.nr) {
            let y = f.mul_add(sa, *t.bias.add(j));
            *t.c.add(r * t.ldc + j) = match t.post {
                TilePost::None => y,
                TilePost::Gelu(GeluKind::Erf) => gelu_erf_1(y),
                TilePost::Gelu(GeluKind::Tanh) => gelu_tanh_1(y),
                TilePost::Residual { r: res, ldr } => y + *res.add(r * ldr + j),
            };
        }
    }
}
