//! The bf16-dot GEMM on every variant this CPU runs (scalar twin, AVX512-BF16): rounding
//! bit for bit, every tile height / column tail / odd `K` / accumulate flag / epilogue
//! against an f64 reference on the rounded operands, the twin against the SIMD kernel,
//! and the determinism contract (batch-mates, thread count).
//!
//! Tolerances follow from the arithmetic (see `bf16gemm`): products of two bf16 are exact
//! in f32, so an element is `init` plus `2·⌈K/2⌉` exact products summed by as many f32
//! additions, each rounded to nearest: |error| ≤ γₙ·(|init| + Σ|products|), γₙ = n·u/(1−n·u),
//! u = 2⁻²⁴, n the number of roundings (one more for a residual). GELU adds its own error
//! (< 1e-6) to a sum it amplifies by at most 1.13. The twin sums in the SIMD order, so the
//! two agree bit for bit unless a partial sum falls below 2⁻¹²⁶ (DAZ/FTZ), which these
//! inputs (multiples of 2⁻²⁴ before rounding) cannot reach; GELU differs by its FMAs.

mod common;
use common::*;
use e5_kernels::bf16gemm::{self, round_bf16, Bf16Kernel, Bf16Tile};
use e5_kernels::f32gemm::{Fill, TilePrefetch};
use e5_kernels::{Blocking, GeluKind, PackedBf16, Post, Prefetch};
use proptest::prelude::*;

fn variants() -> Vec<&'static Bf16Kernel> {
    let v = bf16gemm::variants();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("bf16-dot kernels: {:?}", v.iter().map(|k| k.name).collect::<Vec<_>>()));
    v
}

fn widen(h: u16) -> f64 {
    f32::from_bits((h as u32) << 16) as f64
}

/// γₙ with a margin for the f64 reference's own rounding.
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::powi(2.0, -24);
    nu / (1.0 - nu) * 1.0001
}

/// The f64 value of `post(init + Σ a·w)` on rounded operands, and its tolerance.
fn expect(init: f64, a: &[u16], w: &[u16], post: u8, res: f64) -> (f64, f64) {
    let (mut s, mut mag) = (init, init.abs());
    for (&a, &w) in a.iter().zip(w) {
        let p = widen(a) * widen(w);
        s += p;
        mag += p.abs();
    }
    let n = 2 * a.len().div_ceil(2);
    match post {
        0 => (s, gamma(n) * mag),
        1 => (gelu_erf_f64(s), 1.13 * gamma(n) * mag + 1e-6),
        2 => (gelu_tanh_f64(s), 1.13 * gamma(n) * mag + 1e-6),
        _ => (s + res, gamma(n + 1) * (mag + res.abs())),
    }
}

fn rounded(k: &Bf16Kernel, x: &[f32]) -> Vec<u16> {
    let mut out = vec![0; x.len()];
    k.round_row(x, &mut out);
    out
}

#[test]
fn rounding_is_nearest_even_with_subnormals_to_zero_on_every_variant() {
    let mut x: Vec<f32> = rand_vec(5, 4096, 1.0).iter().map(|v| f32::from_bits(v.to_bits().rotate_left(7))).collect();
    x.extend([0.0, -0.0, 1e-40, -1e-40, f32::MIN_POSITIVE, f32::MAX, -f32::MAX, f32::INFINITY, f32::NEG_INFINITY]);
    x.extend([f32::NAN, f32::from_bits(0x7f80_0001), 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -(1.0 + 1.0 / 256.0)]);
    for (i, &v) in x.iter().enumerate() {
        let h = round_bf16(v);
        if v.is_nan() {
            assert!(widen(h).is_nan(), "NaN {:#x} -> {h:#x}", v.to_bits());
        } else if v.is_subnormal() {
            assert_eq!(h, (v.to_bits() >> 16) as u16 & 0x8000, "subnormal at {i}");
        } else {
            assert_eq!(h, half::bf16::from_f32(v).to_bits(), "{v:e} at {i}");
        }
    }
    for k in variants() {
        for len in [0, 1, 15, 16, 17, 100, x.len()] {
            let got = rounded(k, &x[..len]);
            let want: Vec<u16> = x[..len].iter().map(|&v| round_bf16(v)).collect();
            assert_eq!(got, want, "{} length {len}", k.name);
        }
    }
}

struct Case {
    mr: usize,
    nr: usize,
    k: usize,
    accumulate: bool,
    post: u8,
    seed: u64,
}

/// One tile of `kern` called directly: `mr` rows of a strip packed by hand, a panel slice
/// of `⌈k/2⌉` pairs, NaN sentinels outside the tile.
fn check_tile(kern: &Bf16Kernel, c: &Case) {
    let (mr_max, nr_max) = (kern.mr, kern.nr);
    let (mr, nr, k, pairs) = (c.mr.min(mr_max), c.nr.min(nr_max), c.k, c.k.div_ceil(2));
    let pad = |mut v: Vec<u16>| {
        v.resize(2 * pairs, 0);
        v
    };
    let a: Vec<Vec<u16>> = (0..mr_max).map(|r| pad(rounded(kern, &rand_vec(c.seed + r as u64, k, 1.0)))).collect();
    let w: Vec<Vec<u16>> = (0..nr_max).map(|j| pad(rounded(kern, &rand_vec(c.seed + 99 + j as u64, k, 0.5)))).collect();
    let lane = |v: &[u16], kp: usize| v[2 * kp] as u32 | (v[2 * kp + 1] as u32) << 16;
    let strip: Vec<u32> = (0..pairs).flat_map(|kp| a.iter().map(move |r| lane(r, kp))).collect();
    let panel: Vec<u32> = (0..pairs).flat_map(|kp| w.iter().map(move |col| lane(col, kp))).collect();
    // Every instance: without software prefetch, and touching the panel 128 bytes a pair
    // into L1 and into L2.
    let at = panel.as_ptr().cast();
    let instances =
        [(0, Fill::L1), (128, Fill::L1), (128, Fill::L2)].map(|(step, fill)| TilePrefetch { at, step, fill });
    for prefetch in instances {
        // C: the partial sums to accumulate onto inside the tile, NaN sentinels outside it.
        let mut buffers = TileOutput::new(c.seed, (mr_max, nr_max), (mr, nr));
        let out = buffers.tile_out(c.accumulate, c.post);
        let tile = Bf16Tile { pairs, a: strip.as_ptr(), b: panel.as_ptr(), out, prefetch };
        // SAFETY: every buffer covers an `MR × NR` tile of `pairs` pairs.
        unsafe { kern.tile(&tile) };
        let what = format!("{} k={k} acc={} post={} {prefetch:?}", kern.name, c.accumulate, c.post);
        buffers.check(&what, c.accumulate, |r, j, init, res| expect(init, &a[r], &w[j], c.post, res));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Each case runs every tile height `1..=MR` of every variant; odd `k` pads the last pair.
    #[test]
    fn every_tile_height_tail_flag_and_epilogue(
        nr in 1usize..=32, k in 1usize..300, accumulate in any::<bool>(), post in 0u8..4, seed in any::<u64>(),
    ) {
        for kern in variants() {
            for mr in 1..=kern.mr {
                check_tile(kern, &Case { mr, nr, k, accumulate, post, seed });
            }
        }
    }
}

/// The driver on every variant against the f64 reference; every SIMD result against the
/// twin's, bit for bit where no GELU is fused.
fn check_gemm(m: usize, n: usize, k: usize, post: u8, seed: u64) {
    let a = rand_vec(seed, m * k, 1.0);
    let w = rand_vec(seed + 1, n * k, 0.5);
    let bias = rand_vec(seed + 2, n, 0.3);
    let res = rand_vec(seed + 3, m * n, 1.0);
    let p = match post {
        0 => Post::None,
        1 => Post::Gelu(GeluKind::Erf),
        2 => Post::Gelu(GeluKind::Tanh),
        _ => Post::Residual(&res),
    };
    let twin = &bf16gemm::scalar::KERNEL;
    let (ar, wr) = (rounded(twin, &a), rounded(twin, &w));
    let mut reference: Option<Vec<f32>> = None;
    for kern in variants() {
        let packed = PackedBf16::from_rows(kern, &w, n, k, k, Some(&bias));
        let c = packed.gemm_to_vec(&a, m, p);
        let mut c2 = vec![f32::NAN; m * n];
        packed.gemm(&a, m, p, &mut c2);
        assert!(c.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()), "{} gemm vs gemm_to_vec", kern.name);
        for i in 0..m {
            for j in 0..n {
                let row = &ar[i * k..(i + 1) * k];
                let (want, tol) = expect(bias[j] as f64, row, &wr[j * k..(j + 1) * k], post, res[i * n + j] as f64);
                assert_close(
                    c[i * n + j],
                    want,
                    tol,
                    format_args!("{} m={m} n={n} k={k} post={post} ({i}, {j})", kern.name),
                );
            }
        }
        match &reference {
            None => reference = Some(c),
            Some(twin) if post == 1 || post == 2 => {
                let d = twin.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                assert!(d <= 2e-6, "{} vs twin: GELU differs by {d}", kern.name);
            }
            Some(twin) => assert_eq!(twin, &c, "{} vs twin m={m} n={n} k={k} post={post}", kern.name),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemm_matches_f64_and_the_twin(m in 1usize..40, n in 1usize..80, k in 1usize..600, post in 0u8..4, seed in any::<u64>()) {
        check_gemm(m, n, k, post, seed);
    }

    /// Any subset of rows, computed alone, is bit-identical to the same rows in the full
    /// batch: large batches take strip-outer order, small ones panel-outer (`K` slices:
    /// `sliced_rows_do_not_depend_on_batch_mates`).
    #[test]
    fn rows_do_not_depend_on_batch_mates(m in 2usize..160, n in 1usize..70, k in 1usize..1100, start in 0usize..59, seed in any::<u64>()) {
        let w = rand_vec(seed + 1, n * k, 1.0);
        for kern in variants() {
            let packed = PackedBf16::from_rows(kern, &w, n, k, k, None);
            assert_rows_alone_match_batch((m, n, k), start, seed, kern.name, |a, m| {
                packed.gemm_to_vec(a, m, Post::Gelu(GeluKind::Erf))
            });
        }
    }
}

#[test]
fn shapes_of_real_models() {
    // e5-small's maps at a query-sized and a batch-sized M, and an odd K = 2601 at M > 4
    // strips: several `K` slices of whole pairs, partial sums round-tripping through `C`.
    for (m, n, k) in [(17, 384, 384), (17, 1536, 384), (130, 384, 1536), (3, 1152, 384), (61, 33, 1001), (70, 40, 2601)]
    {
        check_gemm(m, n, k, (m % 4) as u8, m as u64);
    }
}

#[test]
fn sliced_rows_do_not_depend_on_batch_mates() {
    // 120 rows take several `K` slices at K = 2300; 10 of them computed alone take one.
    let (m, n, k) = (120, 40, 2300);
    let w = rand_vec(5, n * k, 1.0);
    for kern in variants() {
        let packed = PackedBf16::from_rows(kern, &w, n, k, k, None);
        for start in [0, 13, 58] {
            assert_rows_alone_match_batch((m, n, k), start, 9, kern.name, |a, m| {
                packed.gemm_to_vec(a, m, Post::Gelu(GeluKind::Erf))
            });
        }
    }
}

#[test]
fn results_do_not_depend_on_the_blocking() {
    // Every `Prefetch` in both orders (few strips run panel-outer, with next-panel shares;
    // many run strip-outer), shallow and deep slices, one-panel chunks: the same bits as
    // the kernel's own blocking, with every epilogue.
    let (n, k) = (200, 1001);
    let (w, r) = (rand_vec(20, n * k, 1.0), rand_vec(21, 150 * n, 1.0));
    for kern in variants() {
        let packed = PackedBf16::from_rows(kern, &w, n, k, k, Some(&rand_vec(22, n, 1.0)));
        let own = kern.blocking();
        for m in [1, 17, 150] {
            let a = rand_vec(23, m * k, 1.0);
            for post in [Post::None, Post::Gelu(GeluKind::Erf), Post::Residual(&r[..m * n])] {
                let want = packed.gemm_to_vec(&a, m, post);
                for prefetch in Prefetch::ALL {
                    for (kc, nc) in [(own.kc, own.nc), (64, 1)] {
                        let blocking = Blocking { kc, nc, prefetch, ..own };
                        let mut got = vec![f32::NAN; m * n];
                        packed.gemm_blocked(blocking, &a, m, post, &mut got);
                        let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{} M {m} KC {kc} NC {nc} {prefetch:?} {post:?}", kern.name);
                    }
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let (m, n, k) = (203, 389, 901);
    let a = rand_vec(7, m * k, 1.0);
    let w = rand_vec(8, n * k, 1.0);
    for kern in variants() {
        let packed = PackedBf16::from_rows(kern, &w, n, k, k, None);
        assert_same_on_any_thread_count(kern.name, || packed.gemm_to_vec(&a, m, Post::None));
    }
}

#[test]
fn packed_weights_take_half_the_bytes() {
    let w = rand_vec(3, 64 * 384, 1.0);
    for kern in variants() {
        let p = PackedBf16::from_rows(kern, &w, 64, 384, 384, None);
        assert_eq!(p.bytes(), 64 * 384 * 2 + 64 * 4, "{}", kern.name);
    }
}
