//! AVX-VNNI int8 micro-kernel (4 × 16): 256-bit `vpdpbusd` on unsigned activations
//! (`a + 128`), corrected by `128·Σw` per column before the shared AVX2 epilogue.

use super::{I8MicroKernel, I8Tile, Layout};
use crate::tiling::by_rows;
use std::arch::x86_64::*;

const MR: usize = 4;
pub const KERNEL: I8MicroKernel =
    I8MicroKernel { name: "avx-vnni", mr: MR, nr: 16, unsigned_a: true, layout: Layout::Quads, run: tile };

/// # Safety
/// AVX2, FMA and AVX-VNNI must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub unsafe fn tile(t: &I8Tile) {
    by_rows!(t, rows, [1, 2, 3, 4])
}

#[inline]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn rows<const R: usize>(t: &I8Tile) {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        let w0 = _mm256_loadu_si256(b.cast());
        let w1 = _mm256_loadu_si256(b.add(32).cast());
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_epi32(a.add(4 * r).cast::<i32>().read_unaligned());
            acc[0] = _mm256_dpbusd_avx_epi32(acc[0], x, w0);
            acc[1] = _mm256_dpbusd_avx_epi32(acc[1], x, w1);
        }
        a = a.add(4 * MR);
        b = b.add(64);
    }
    let shift = [
        _mm256_slli_epi32::<7>(_mm256_loadu_si256(t.colsum.cast())),
        _mm256_slli_epi32::<7>(_mm256_loadu_si256(t.colsum.add(8).cast())),
    ];
    for acc in acc.iter_mut() {
        acc[0] = _mm256_sub_epi32(acc[0], shift[0]);
        acc[1] = _mm256_sub_epi32(acc[1], shift[1]);
    }
    super::avx2::store(t, &acc);
}
