//! AVX512-BF16 micro-kernel (12 × 32): `vdpbf16ps`, 24 accumulators + 2 panel loads +
//! 1 broadcast of 32 zmm. Each `K` pair costs 24 `vdpbf16ps` (768 multiply-adds) for 2
//! panel loads of 64 bytes and 12 broadcasts: twice the multiply-adds of the f32 tile's
//! 24 FMAs per `k`, from half the weight bytes.

use super::{round_bf16, Bf16Kernel, Bf16Tile};
use crate::f32gemm::avx512::{finish_tile, masks, start_row};
use crate::f32gemm::{touch, INTO_L1, INTO_L2, NO_PREFETCH};
use crate::tiling::{by_rows, unrolled};
use crate::Isa;
use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;
pub static KERNEL: Bf16Kernel = Bf16Kernel { isa: Isa::Avx512, name: "avx512-bf16", mr: MR, nr: NR, run: tile, round };

/// Whether this CPU runs the kernel (AVX-512F/BW/VL and AVX512-BF16: Zen 4, Sapphire Rapids).
pub fn supported() -> bool {
    Isa::Avx512.is_supported() && is_x86_feature_detected!("avx512bf16")
}

/// # Safety
/// AVX-512F and AVX512-BF16 must be available and `t` must describe in-bounds memory.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(t: &Bf16Tile) {
    match t.prefetch.instance() {
        NO_PREFETCH => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], NO_PREFETCH),
        INTO_L1 => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], INTO_L1),
        _ => by_rows!(@rows t.out.mr; t, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], INTO_L2),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn rows<const R: usize, const PREFETCH: u8>(t: &Bf16Tile) {
    let k = masks(t.out.nr);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    unrolled!(R, |r| { acc[r] = start_row(&t.out, r, k) });
    // Software prefetch as in the f32 tile: both halves of the step's bytes per pair, in
    // a separate instance (a test in the loop can cost the accumulators their registers).
    let (mut a, mut b, mut pf, step) = (t.a, t.b, t.prefetch.at, t.prefetch.step);
    for _ in 0..t.pairs {
        if PREFETCH != NO_PREFETCH {
            touch::<PREFETCH>(pf);
            touch::<PREFETCH>(pf.wrapping_add(step / 2));
            pf = pf.wrapping_add(step);
        }
        let w0 = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.cast()));
        let w1 = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(16).cast()));
        unrolled!(R, |r| {
            let x = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(r) as i32));
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, w0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, w1);
        });
        a = a.add(MR);
        b = b.add(NR);
    }
    finish_tile!(R, &t.out, acc, k);
}

/// `vcvtneps2bf16` on 16 floats at a time, the scalar twin on the tail (the same bits).
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be available; `x` and `out` have equal lengths.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round(x: &[f32], out: &mut [u16]) {
    let whole = x.len() / 16 * 16;
    for (x, o) in x[..whole].chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr()));
        _mm256_storeu_si256(o.as_mut_ptr().cast(), std::mem::transmute::<__m256bh, __m256i>(h));
    }
    out[whole..].iter_mut().zip(&x[whole..]).for_each(|(o, &v)| *o = round_bf16(v));
}
