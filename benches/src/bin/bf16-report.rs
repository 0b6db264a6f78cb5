//! The two ways `--precision bf16` runs, on every benchmark shape, beside fp32: the
//! bf16-dot kernel (`vdpbf16ps`, activations rounded to bf16) and bf16 weights widened to
//! f32 for the f32 GEMM. GFLOP/s and % of the FMA peak (the dot kernel's own peak is twice
//! that where `vdpbf16ps` issues at the FMA rate), the three timed back to back per shape.
//!
//! `cargo run --release -p e5-benches --bin bf16-report -- [threads] [seconds-per-case] [M]`

use e5_benches::*;
use e5_kernels::{Kernels, PackedBf16, PackedF32, Post, Storage};

fn main() {
    let (threads, secs, filter, pool) = report_args();
    let kern = Kernels::detect().unwrap();
    let Some(dot) = kern.bf16_dot().unwrap() else {
        println!("no bf16-dot kernel on this table: {}", kern.dispatch_reason());
        return;
    };
    let peak = pool.install(|| kern.fma_peak_gflops(threads, 0.5));
    println!("isa {} | threads {threads} | FMA peak {peak:.1} GFLOP/s\n", kern.dispatch_reason());
    println!("| M | K | N | fp32 GFLOP/s | bf16 widen | bf16 dot | % FMA peak (dot) | dot / widen | dot / fp32 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &(k, n) in &GEMM_KNS {
        let w = rand_vec(1, n * k);
        let bias = rand_vec(2, n);
        let f32w = PackedF32::from_rows(kern, &w, n, k, k, Some(&bias));
        let widen = f32w.clone().stored_as(Storage::Bf16);
        let dotw = PackedBf16::from_rows(dot, &w, n, k, k, Some(&bias));
        for &m in GEMM_MS.iter().filter(|&&m| filter.is_none_or(|f| f == m)) {
            let a = rand_vec(3, m * k);
            let mut c = vec![0.0; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let t32 = pool.install(|| median_secs(secs, || kern.gemm(&a, m, &f32w, Post::None, &mut c)));
            let tw = pool.install(|| median_secs(secs, || kern.gemm(&a, m, &widen, Post::None, &mut c)));
            let td = pool.install(|| median_secs(secs, || dotw.gemm(&a, m, Post::None, &mut c)));
            let g = |t: f64| flops / t / 1e9;
            println!(
                "| {m} | {k} | {n} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.2}× | {:.2}× |",
                g(t32),
                g(tw),
                g(td),
                100.0 * g(td) / peak,
                tw / td,
                t32 / td
            );
        }
    }
}
