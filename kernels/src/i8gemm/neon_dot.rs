//! NEON dotprod int8 micro-kernel (8 × 12): `sdot` by element, signed × signed, so
//! activations need no `+128` shift and no column-sum correction.
//!
//! Per group of 4 `K` values the 8-row strip is two registers (`[r][4 bytes]`, rows 0–3 and
//! 4–7) and the 12-column panel three (`[j][4 bytes]`); each `sdot` multiplies 4 columns
//! by the 4 bytes of one row, picked by lane. Registers: 8 × 3 = 24 accumulators + 2 for
//! `A` + 3 for `W` = 29 of the 32, so nothing spills, and the 24 `sdot`s per 5 loads are
//! the best compute-to-load ratio that fits (8 × 8 needs 4 loads per 16, 4 × 16 5 per 16).
//! The f32 epilogue is [`super::neon::store`]. Sums are exact i32 (|a·w| ≤ 127²).
//!
//! `vdotq_laneq_s32` is still unstable in Rust 1.95 (`stdarch_neon_dotprod`,
//! rust-lang/rust#117224), so the one instruction is inline `asm!`; registers stay with
//! the compiler. Swap in the intrinsic once it is stable.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::tiling::by_rows;
use std::arch::aarch64::*;
use std::arch::asm;

const MR: usize = 8;
const NR: usize = 12;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "neon-sdot", mr: MR, nr: NR, unsigned_a: false, layout: Layout::Quads, run: tile };

/// # Safety
/// NEON and dotprod must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile(t: &I8Tile) {
    by_rows!(t, rows, [1, 2, 3, 4, 5, 6, 7, 8])
}

/// `sdot acc.4s, w.16b, x.4b[L]` (`vdotq_laneq_s32::<L>`): each i32 lane of `acc` gains
/// the dot product of its column's 4 bytes of `w` with the 4 bytes of row `L` of `x`.
/// Shared with the int4 kernel.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn sdot<const L: usize>(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
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
unsafe fn rows<const R: usize>(t: &I8Tile) {
    // Rows past `R` stay zero and are optimized away.
    let mut acc = [[vdupq_n_s32(0); NR / 4]; MR];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        let w = [vld1q_s8(b), vld1q_s8(b.add(16)), vld1q_s8(b.add(32))];
        // Strips are padded to MR rows, so the second load stays in bounds.
        let x = [vld1q_s8(a), if R > 4 { vld1q_s8(a.add(16)) } else { vdupq_n_s8(0) }];
        // Written out per row: the lane must be a constant, and a row loop over inline asm
        // is past LLVM's full-unroll budget for R > 4 (accumulators would spill).
        macro_rules! row {
            ($($r:literal),+) => {$(
                if $r < R {
                    for (acc, &w) in acc[$r].iter_mut().zip(&w) {
                        *acc = sdot::<{ $r % 4 }>(*acc, w, x[$r / 4]);
                    }
                }
            )+};
        }
        row!(0, 1, 2, 3, 4, 5, 6, 7);
        a = a.add(4 * MR);
        b = b.add(4 * NR);
    }
    super::neon::store::<R, { NR / 4 }>(t, acc.first_chunk().unwrap());
}
