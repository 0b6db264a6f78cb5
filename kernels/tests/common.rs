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
