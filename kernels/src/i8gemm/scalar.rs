//! Scalar int8 micro-kernel: the exact reference twin (4 × 8 tile).

use super::{I8MicroKernel, I8Tile, Layout};
use crate::f32gemm::TilePost;
use crate::vector::scalar::{gelu_erf_1, gelu_tanh_1};
use crate::vector::GeluKind;

const MR: usize = 4;
const NR: usize = 8;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "scalar", mr: MR, nr: NR, unsigned_a: false, layout: Layout::Quads, run: tile };

/// # Safety
/// `t` must describe in-bounds memory.
pub unsafe fn tile(t: &I8Tile) {
    let mut acc = [[0i32; NR]; MR];
    for g in 0..t.groups {
        for (r, acc) in acc.iter_mut().enumerate().take(t.mr) {
            let a = t.a.add((g * MR + r) * 4);
            for (j, acc) in acc.iter_mut().enumerate() {
                let b = t.b.add((g * NR + j) * 4);
                *acc += (0..4).map(|i| *a.add(i) as i32 * *b.add(i) as i32).sum::<i32>();
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(t.mr) {
        let sa = *t.row_scales.add(r);
        for (j, &v) in acc.iter().enumerate().take(t.nr) {
            let y = v as f32 * (sa * *t.col_scales.add(j)) + *t.bias.add(j);
            *t.c.add(r * t.ldc + j) = match t.post {
                TilePost::None => y,
                TilePost::Gelu(GeluKind::Erf) => gelu_erf_1(y),
                TilePost::Gelu(GeluKind::Tanh) => gelu_tanh_1(y),
                TilePost::Residual { r: res, ldr } => y + *res.add(r * ldr + j),
            };
        }
    }
}
