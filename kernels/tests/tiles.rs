//! Every f32 micro-kernel variant this CPU can run, called directly (not through the
//! driver, which picks one tile height and one `K` slicing per shape): every tile height
//! `1..=MR`, column tails `1..=NR`, both accumulate flags, every epilogue, `A` read in
//! place or from a packed strip, and half-width panels where the kernel widens them.
//! Each result is checked against an f64 reference, and the scalar twin against the same
//! reference, with the f32 accumulation bound; cells outside the tile must stay untouched.

mod common;
use common::*;
use e5_kernels::f32gemm::{Fill, PanelPtr, Tile, TilePrefetch};
use e5_kernels::Kernels;
use proptest::prelude::*;

struct Case {
    mr: usize,
    nr: usize,
    k: usize,
    accumulate: bool,
    post: u8,
    packed_a: bool,
    half: u8,
    /// The prefetch instance: 0 none, 1 into L1, 2 into L2.
    prefetch: u8,
    seed: u64,
}

/// Runs one tile of `kern`'s f32 micro-kernel and checks it. `half`: 0 f32 panel, 1 f16,
/// 2 bf16 (only for kernels that widen in registers).
fn check_tile(kern: &Kernels, c: &Case) {
    let mk = kern.micro_kernels().0;
    let (mr_max, nr_max) = (mk.mr, mk.nr);
    let (mr, nr, k) = (c.mr.min(mr_max), c.nr.min(nr_max), c.k);
    let half = if mk.half_panels { c.half } else { 0 };
    // A: `mr_max` rows of `k` (rows past `mr` hold garbage the kernel must not use).
    let a_rows = rand_vec(c.seed, mr_max * k, 1.0);
    let a = if c.packed_a {
        (0..k).flat_map(|kk| (0..mr_max).map(move |r| (kk, r))).map(|(kk, r)| a_rows[r * k + kk]).collect()
    } else {
        a_rows.clone()
    };
    let (row_stride, k_stride) = if c.packed_a { (1, mr_max) } else { (k, 1) };
    // Panel: `k` rows of `NR` weights, rounded to the stored precision.
    let round = |v: f32| match half {
        1 => half::f16::from_f32(v).to_f32(),
        2 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    };
    let panel: Vec<f32> = rand_vec(c.seed + 1, k * nr_max, 0.5).into_iter().map(round).collect();
    let bits: Vec<u16> = match half {
        1 => panel.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect(),
        _ => panel.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect(),
    };
    let b = match half {
        0 => PanelPtr::F32(panel.as_ptr()),
        1 => PanelPtr::F16(bits.as_ptr()),
        _ => PanelPtr::Bf16(bits.as_ptr()),
    };
    // C: the partial sums to accumulate onto inside the tile, NaN sentinels outside it.
    let mut buffers = TileOutput::new(c.seed, (mr_max, nr_max), (mr, nr));
    let tile = Tile {
        k,
        a: a.as_ptr(),
        row_stride,
        k_stride,
        b,
        out: buffers.tile_out(c.accumulate, c.post),
        prefetch: TilePrefetch {
            at: panel.as_ptr().cast(),
            step: if c.prefetch == 0 { 0 } else { 64 },
            fill: if c.prefetch == 2 { Fill::L2 } else { Fill::L1 },
        },
    };
    // SAFETY: `kern` exists only for a supported ISA; every buffer covers the tile's reach.
    unsafe { (mk.run)(&tile) };
    let what = format!(
        "{} k={k} acc={} post={} packed_a={} half={half} prefetch={}",
        kern.isa, c.accumulate, c.post, c.packed_a, c.prefetch
    );
    buffers.check(&what, c.accumulate, |r, j, init, res| {
        let (mut s, mut mag) = (init, init.abs());
        for kk in 0..k {
            let p = a_rows[r * k + kk] as f64 * panel[kk * nr_max + j] as f64;
            s += p;
            mag += p.abs();
        }
        let want = match c.post {
            0 => s,
            1 => gelu_erf_f64(s),
            2 => gelu_tanh_f64(s),
            _ => s + res,
        };
        let tol = 2e-7 * (k as f64 + 2.0) * (mag + 1.0) + if c.post == 1 || c.post == 2 { 1e-6 } else { 0.0 };
        (want, tol + 1e-7 * want.abs())
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each case runs every tile height `1..=MR` of every variant, scalar twin included.
    #[test]
    fn every_tile_height_tail_flag_and_epilogue(
        nr in 1usize..=32, k in 1usize..300, accumulate in any::<bool>(), post in 0u8..4,
        packed_a in any::<bool>(), half in 0u8..3, prefetch in 0u8..3, seed in any::<u64>(),
    ) {
        for kern in Kernels::variants() {
            for mr in 1..=kern.micro_kernels().0.mr {
                check_tile(kern, &Case { mr, nr, k, accumulate, post, packed_a, half, prefetch, seed });
            }
        }
    }
}

#[test]
fn full_tiles_of_every_variant() {
    let names: Vec<String> =
        Kernels::variants().iter().map(|k| format!("{} (int8: {})", k.isa, k.int8_kernel())).collect();
    eprintln!("micro-kernel variants: {}", names.join(", "));
    for kern in Kernels::variants() {
        let (mr, nr) = kern.f32_tile();
        for ((accumulate, post), prefetch) in
            [(false, 0), (true, 1), (false, 2), (true, 3)].into_iter().zip([0, 1, 2, 1])
        {
            check_tile(kern, &Case { mr, nr, k: 257, accumulate, post, packed_a: false, half: 0, prefetch, seed: 9 });
        }
    }
}
