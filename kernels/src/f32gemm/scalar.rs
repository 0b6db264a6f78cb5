//! Scalar micro-kernel: the reference twin (4 × 8 tile; plain multiply-add).

use super::{MicroKernel, Tile, TileOut, TilePost};
use crate::vector::scalar::{gelu_erf_1, gelu_tanh_1};
use crate::vector::GeluKind;

const MR: usize = 4;
pub const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: 8, half_panels: false, run: tile };
const NR: usize = 8;

/// # Safety
/// `t` must describe in-bounds memory.
pub unsafe fn tile(t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    start(&t.out, &mut acc);
    let b = t.b.f32();
    for kk in 0..t.k {
        let w = std::slice::from_raw_parts(b.add(kk * NR), NR);
        for (r, acc) in acc.iter_mut().enumerate().take(t.out.mr) {
            let a = *t.a.add(kk * t.k_stride + r * t.row_stride);
            for (c, w) in acc.iter_mut().zip(w) {
                *c += a * w;
            }
        }
    }
    finish(&t.out, &acc);
}

/// The starting accumulators of the scalar float tiles (f32, bf16-dot): the tile's valid
/// cells of `C` when `accumulate` (zeros past `nr`), else the bias.
///
/// # Safety
/// `out` must describe in-bounds memory for `acc`'s columns.
pub(crate) unsafe fn start<const NR: usize>(out: &TileOut, acc: &mut [[f32; NR]]) {
    for (r, acc) in acc.iter_mut().enumerate().take(out.mr) {
        for (j, v) in acc.iter_mut().enumerate() {
            *v = if !out.accumulate {
                *out.bias.add(j)
            } else if j < out.nr {
                *out.c.add(r * out.ldc + j)
            } else {
                0.0
            };
        }
    }
}

/// The epilogue and store of the scalar float tiles' valid cells.
///
/// # Safety
/// `out` must describe in-bounds memory.
pub(crate) unsafe fn finish<const NR: usize>(out: &TileOut, acc: &[[f32; NR]]) {
    for (r, acc) in acc.iter().enumerate().take(out.mr) {
        for (j, &v) in acc.iter().enumerate().take(out.nr) {
            *out.c.add(r * out.ldc + j) = post_1(out.post, r, j, v);
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
