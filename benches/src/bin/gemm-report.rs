//! Packed f32 GEMM against the `gemm` crate on every benchmark shape, interleaved in one
//! run, with GFLOP/s and % of the FMA peak measured by the throughput probe.
//!
//! `cargo run --release -p e5-benches --bin gemm-report -- [threads] [seconds-per-case]`

use e5_benches::*;
use e5_kernels::{Kernels, PackedF32, PackedI4, PackedI8, Post};

fn main() {
    let (threads, secs, filter, pool) = report_args();
    let kern = Kernels::detect().unwrap();
    let peak = pool.install(|| kern.fma_peak_gflops(threads, 0.5));
    println!("isa {} | threads {threads} | FMA peak {peak:.1} GFLOP/s\n", kern.dispatch_reason());
    println!("| M | K | N | e5 GFLOP/s | % peak | gemm crate GFLOP/s | e5 / gemm | e5 int8 GOP/s | int8 / f32 | e5 int4 GOP/s (g32) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let (mut worst_big, mut worst_small) = (f64::MAX, f64::MAX);
    for &(k, n) in &GEMM_KNS {
        let w = rand_vec(1, n * k);
        let bias = rand_vec(2, n);
        let packed = PackedF32::from_rows(kern, &w, n, k, k, Some(&bias));
        let packed_i8 = PackedI8::quantize(kern, &w, n, k, Some(&bias));
        let packed_i4 = PackedI4::quantize(kern, &w, n, k, 32, Some(&bias));
        for &m in GEMM_MS.iter().filter(|&&m| filter.is_none_or(|f| f == m)) {
            let a = rand_vec(3, m * k);
            let mut c = vec![0.0; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let ours = pool.install(|| median_secs(secs, || kern.gemm(&a, m, &packed, Post::None, &mut c)));
            let theirs = median_secs(secs, || gemm_crate(&a, &w, &bias, &mut c, m, n, k, threads));
            let int8 = pool.install(|| median_secs(secs, || kern.gemm_i8(&a, m, &packed_i8, Post::None, &mut c)));
            let int4 = pool.install(|| median_secs(secs, || kern.gemm_i4(&a, m, &packed_i4, Post::None, &mut c)));
            let (g_ours, g_theirs) = (flops / ours / 1e9, flops / theirs / 1e9);
            if m >= 128 {
                worst_big = worst_big.min(g_ours / peak);
            } else if m <= 32 {
                worst_small = worst_small.min(g_ours / g_theirs);
            }
            println!(
                "| {m} | {k} | {n} | {g_ours:.1} | {:.0}% | {g_theirs:.1} | {:.2}× | {:.1} | {:.2}× | {:.1} |",
                100.0 * g_ours / peak,
                g_ours / g_theirs,
                flops / int8 / 1e9,
                ours / int8,
                flops / int4 / 1e9
            );
        }
    }
    let show = |v: f64, f: &dyn Fn(f64) -> String| if v == f64::MAX { "n/a".to_string() } else { f(v) };
    println!(
        "\nworst % of peak at M ≥ 128: {}   worst e5/gemm at M ≤ 32: {}",
        show(worst_big, &|v| format!("{:.0}%", 100.0 * v)),
        show(worst_small, &|v| format!("{v:.2}×"))
    );
}
