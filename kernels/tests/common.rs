//! Shared helpers: every ISA this CPU has, and f64 references.
#![allow(dead_code)]

use e5_kernels::{Isa, Kernels};

/// Every table this CPU can run, scalar included: each micro-kernel variant, not only the
/// ones dispatch picks (`Kernels::variants`). Prints the list, with each table's int8
/// kernel, once so a log shows what ran.
pub fn tables() -> Vec<&'static Kernels> {
    let tables = Kernels::variants();
    assert_eq!(
        tables.len(),
        tables.iter().map(|k| (k.isa, k.int8_kernel())).collect::<std::collections::HashSet<_>>().len()
    );
    assert!(Isa::available().iter().all(|isa| tables.iter().any(|k| k.isa == *isa)), "a supported ISA has no table");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let names: Vec<String> = tables.iter().map(|k| format!("{} (int8: {})", k.isa, k.int8_kernel())).collect();
        eprintln!("testing ISAs: {}", names.join(", "))
    });
    tables
}

/// Deterministic pseudo-random floats in [-scale, scale).
pub fn rand_vec(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub fn gelu_erf_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

pub fn gelu_tanh_f64(x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max)
}

/// `|got − want| ≤ tol`, or a panic naming the case (`what`) and the element.
pub fn assert_close(got: f32, want: f64, tol: f64, what: impl std::fmt::Display) {
    assert!((got as f64 - want).abs() <= tol, "{what}: {got} vs {want} (tol {tol:e})");
}

/// The batch-mates check: rows `start..start + len` of a pseudo-random `[m, k]` input
/// (from `seed`), computed alone by `gemm(rows, count) -> [count, n]`, are bit-identical
/// to the same rows computed in the whole batch. `len` follows from `seed`.
pub fn assert_rows_alone_match_batch(
    (m, n, k): (usize, usize, usize),
    start: usize,
    seed: u64,
    what: &str,
    gemm: impl Fn(&[f32], usize) -> Vec<f32>,
) {
    let start = start % m;
    let len = 1 + (seed as usize) % (m - start);
    let a = rand_vec(seed, m * k, 1.0);
    let full = gemm(&a, m);
    let part = gemm(&a[start * k..(start + len) * k], len);
    assert_eq!(&full[start * n..(start + len) * n], &part[..], "{what}: rows {start}..+{len} of {m}");
}

/// `run` gives the same bits on pools of 1, 2 and 3 threads.
pub fn assert_same_on_any_thread_count(what: &str, run: impl Fn() -> Vec<f32> + Sync) {
    let on = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(&run);
    let one = on(1);
    assert_eq!(one, on(2), "{what}: 1 vs 2 threads");
    assert_eq!(one, on(3), "{what}: 1 vs 3 threads");
}

/// What a directly called f32-output tile writes into: `C` rows of stride `ldc = NR + 3`
/// holding the partial sums `start` inside the `mr × nr` tile and NaN sentinels outside it,
/// plus a bias and a residual of the same shape.
pub struct TileOutput {
    pub bias: Vec<f32>,
    pub ldc: usize,
    pub res: Vec<f32>,
    pub start: Vec<f32>,
    pub out: Vec<f32>,
    /// `MR × NR` of the kernel, and the valid `mr × nr` of this tile.
    pub max: (usize, usize),
    pub valid: (usize, usize),
}

impl TileOutput {
    pub fn new(seed: u64, (mr_max, nr_max): (usize, usize), (mr, nr): (usize, usize)) -> Self {
        let bias = rand_vec(seed + 2, nr_max, 0.3);
        let ldc = nr_max + 3;
        let res = rand_vec(seed + 3, mr_max * ldc, 1.0);
        let start = rand_vec(seed + 4, mr_max * ldc, 1.0);
        let out = (0..mr_max * ldc).map(|i| if i / ldc < mr && i % ldc < nr { start[i] } else { f32::NAN }).collect();
        TileOutput { bias, ldc, res, start, out, max: (mr_max, nr_max), valid: (mr, nr) }
    }

    /// The tile's output side: onto the partial sums (`accumulate`) or the bias, then the
    /// epilogue `post`: 0 none, 1 GELU (erf), 2 GELU (tanh), else the residual.
    pub fn tile_out(&mut self, accumulate: bool, post: u8) -> e5_kernels::f32gemm::TileOut {
        use e5_kernels::{f32gemm::TilePost, GeluKind};
        let post = match post {
            0 => TilePost::None,
            1 => TilePost::Gelu(GeluKind::Erf),
            2 => TilePost::Gelu(GeluKind::Tanh),
            _ => TilePost::Residual { r: self.res.as_ptr(), ldr: self.ldc },
        };
        let (mr, nr) = self.valid;
        e5_kernels::f32gemm::TileOut {
            bias: self.bias.as_ptr(),
            c: self.out.as_mut_ptr(),
            ldc: self.ldc,
            mr,
            nr,
            accumulate,
            post,
        }
    }

    /// Checks the tile after its run: the sentinels outside it untouched, and each cell
    /// `(r, j)` within `expect(r, j, init, residual) = (value, tolerance)`, where `init` is
    /// its partial sum (`accumulate`) or bias.
    pub fn check(&self, what: &str, accumulate: bool, expect: impl Fn(usize, usize, f64, f64) -> (f64, f64)) {
        let ((mr_max, _), (mr, nr), ldc) = (self.max, self.valid, self.ldc);
        for r in 0..mr_max {
            for j in 0..ldc {
                let got = self.out[r * ldc + j];
                if r >= mr || j >= nr {
                    assert!(got.is_nan(), "{what} {mr}x{nr} wrote outside the tile at ({r}, {j})");
                    continue;
                }
                let init = if accumulate { self.start[r * ldc + j] } else { self.bias[j] } as f64;
                let (want, tol) = expect(r, j, init, self.res[r * ldc + j] as f64);
                assert_close(got, want, tol, format_args!("{what} tile {mr}x{nr} at ({r}, {j})"));
            }
        }
    }
}

/// The bit patterns of `x`, to compare results bit for bit (NaNs and signed zeros included).
pub fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}
