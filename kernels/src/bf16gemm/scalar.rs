//! Scalar bf16-dot micro-kernel: the reference twin (4 × 8 tile). Same rounding of `A`
//! and `W`, same chain per element (`+ a₁·w₁` then `+ a₀·w₀` per pair, each product exact).

use super::{round_bf16, Bf16Kernel, Bf16Tile};
use crate::f32gemm::scalar::{finish, start};
use crate::Isa;

const MR: usize = 4;
const NR: usize = 8;
pub static KERNEL: Bf16Kernel = Bf16Kernel { isa: Isa::Scalar, name: "scalar", mr: MR, nr: NR, run: tile, round };

/// The two values of a lane, low (even `k`) first, widened exactly.
fn halves(lane: u32) -> [f32; 2] {
    [f32::from_bits(lane << 16), f32::from_bits(lane & 0xffff_0000)]
}

/// # Safety
/// `t` must describe in-bounds memory.
unsafe fn tile(t: &Bf16Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    start(&t.out, &mut acc);
    for kp in 0..t.pairs {
        let w = std::slice::from_raw_parts(t.b.add(kp * NR), NR);
        for (r, acc) in acc.iter_mut().enumerate().take(t.out.mr) {
            let [a0, a1] = halves(*t.a.add(kp * MR + r));
            for (c, &w) in acc.iter_mut().zip(w) {
                let [w0, w1] = halves(w);
                *c = (*c + a1 * w1) + a0 * w0;
            }
        }
    }
    finish(&t.out, &acc);
}

/// # Safety
/// None beyond equal lengths (checked by the caller).
unsafe fn round(x: &[f32], out: &mut [u16]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = round_bf16(v));
}
