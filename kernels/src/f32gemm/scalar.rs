//! Scalar micro-kernel: the reference twin (4 × 8 tile; plain multiply-add).

use super::{MicroKernel, Tile, TilePost};
use crate::vector::scalar::{gelu_erf_1, gelu_tanh_1};
use crate::vector::GeluKind;

const MR: usize = 4;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 8, half_panels: false, run: tile };
const NR: usize = 8;

/// # Safety
/// `t` must describe in-bounds memory.
pub unsafe fn tile(t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for (r, acc) in acc.iter_mut().enumerate().take(t.mr) {
        for (j, v) in acc.iter_mut().enumerate() {
            *v = if !t.accumulate {
                *t.bias.add(j)
            } else if j < t.nr {
                *t.c.add(r * t.ldc + j)
            } else {
                0.0
            };
        }
    }
    let b = t.b.f32();
    for kk in 0..t.k {
        let w = std::slice::from_raw_parts(b.add(kk * NR), NR);
        for (r, acc) in acc.iter_mut().enumerate().take(t.mr) {
            let a = *t.a.add(kk * t.k_stride + r * t.row_stride);
            for (c, w) in acc.iter_mut().zip(w) {
                *c += a * w;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(t.mr) {
        for (j, &v) in acc.iter().enumerate().take(t.nr) {
            *t.c.add(r * t.ldc + j) = post_1(t.post, r, j, v);
        }
    }
}

/// The epilogue of the scalar float tiles (f32, bf16-dot) on element `(r, j)` of a tile.
///
/// # Safety
/// A residual pointer must cover `(r, j)`.
pub(crate) unsafe fn post_1(post: TilePost, r: usize, j: usize, v: f32) -> f32 {
    match post {
        TilePost::None => v,
        TilePost::Gelu(GeluKind::Erf) => gelu_erf_1(v),
        TilePost::Gelu(GeluKind::Tanh) => gelu_tanh_1(v),
        TilePost::Residual { r: res, ldr } => v + *res.add(r * ldr + j),
    }
}
