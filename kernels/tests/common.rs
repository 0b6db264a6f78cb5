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

/// What a directly called f32-output tile writes into: `C` rows of stride `ldc = NR + 3`
/// holding the partial sums `start` inside the `mr × nr` tile and NaN sentinels outside it,
/// plus a bias and a residual of the same shape.
pub struct TileOutput {
    pub bias: Vec<f32>,
    pub ldc: usize,
    pub res: Vec<f32>,
    pub start: Vec<f32>,
    pub out: Vec<f32>,
}

impl TileOutput {
    pub fn new(seed: u64, (mr_max, nr_max): (usize, usize), (mr, nr): (usize, usize)) -> Self {
        let bias = rand_vec(seed + 2, nr_max, 0.3);
        let ldc = nr_max + 3;
        let res = rand_vec(seed + 3, mr_max * ldc, 1.0);
        let start = rand_vec(seed + 4, mr_max * ldc, 1.0);
        let out = (0..mr_max * ldc).map(|i| if i / ldc < mr && i % ldc < nr { start[i] } else { f32::NAN }).collect();
        TileOutput { bias, ldc, res, start, out }
    }

    /// Epilogue `code`: 0 none, 1 GELU (erf), 2 GELU (tanh), else the residual.
    pub fn post(&self, code: u8) -> e5_kernels::f32gemm::TilePost {
        use e5_kernels::{f32gemm::TilePost, GeluKind};
        match code {
            0 => TilePost::None,
            1 => TilePost::Gelu(GeluKind::Erf),
            2 => TilePost::Gelu(GeluKind::Tanh),
            _ => TilePost::Residual { r: self.res.as_ptr(), ldr: self.ldc },
        }
    }
}
