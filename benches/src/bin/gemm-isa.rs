//! The packed f32 GEMM on every vector ISA this CPU has, on every `gemm-report` shape,
//! alternated: each round runs each ISA once per shape (`seconds` each, median call), so a
//! slow phase of a shared machine hits all of them alike. Per shape: each ISA's median
//! GFLOP/s over the rounds and its % of the FMA peak, then the dispatched ISA against the
//! fastest other one (median ratio, and the rounds it won). The check behind "dispatch
//! never picks a slower f32 path".
//!
//! `cargo run --release -p e5-benches --bin gemm-isa -- [threads] [seconds] [M|all] [rounds]`

use e5_benches::*;
use e5_kernels::{Isa, Kernels, PackedF32, Post};

fn main() {
    let (threads, secs, filter, pool) = report_args();
    let rounds: usize = std::env::args().nth(4).map_or(5, |s| s.parse().expect("rounds"));
    let default = Kernels::detect().unwrap();
    // Vector ISAs only: the scalar twin is a reference, never a dispatch candidate.
    let isas: Vec<&Kernels> =
        Isa::available().into_iter().filter(|&i| i != Isa::Scalar).map(|i| Kernels::get(i).unwrap()).collect();
    let peak = pool.install(|| default.fma_peak_gflops(threads, 0.5));
    println!("default {} | threads {threads} | rounds {rounds} | FMA peak {peak:.1} GFLOP/s\n", default.isa);
    let names: Vec<String> = isas.iter().map(|k| k.isa.to_string()).collect();
    println!(
        "| M | K | N | {} | default ÷ best other | rounds won |",
        names.join(" GFLOP/s (% peak) | ") + " GFLOP/s (% peak)"
    );
    println!("|{}", " ---: |".repeat(5 + isas.len()));
    let (mut worst_big, mut losses) = (vec![f64::MAX; isas.len()], 0);
    for &(k, n) in &GEMM_KNS {
        let w = rand_vec(1, n * k);
        let bias = rand_vec(2, n);
        let packed: Vec<PackedF32> =
            isas.iter().map(|kern| PackedF32::from_rows(kern, &w, n, k, k, Some(&bias))).collect();
        for &m in GEMM_MS.iter().filter(|&&m| filter.is_none_or(|f| f == m)) {
            let a = rand_vec(3, m * k);
            let mut c = vec![0.0; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            // rates[isa][round], GFLOP/s
            let mut rates = vec![Vec::with_capacity(rounds); isas.len()];
            for _ in 0..rounds {
                for (i, kern) in isas.iter().enumerate() {
                    let t = pool.install(|| median_secs(secs, || kern.gemm(&a, m, &packed[i], Post::None, &mut c)));
                    rates[i].push(flops / t / 1e9);
                }
            }
            let d = isas.iter().position(|kern| kern.isa == default.isa).unwrap();
            let medians: Vec<f64> = rates.iter().map(|r| median(r)).collect();
            let cells: Vec<String> = medians.iter().map(|g| format!("{g:.1} ({:.0}%)", 100.0 * g / peak)).collect();
            let other = (0..isas.len()).filter(|&i| i != d).max_by(|&x, &y| medians[x].total_cmp(&medians[y]));
            let (ratio, won) = match other {
                Some(o) => {
                    let ratios: Vec<f64> = (0..rounds).map(|r| rates[d][r] / rates[o][r]).collect();
                    let won = ratios.iter().filter(|&&q| q > 1.0).count();
                    (format!("{:.3}×", median(&ratios)), format!("{won}/{rounds}"))
                }
                None => ("–".into(), "–".into()),
            };
            if other.is_some_and(|o| medians[d] < medians[o]) {
                losses += 1;
            }
            if m >= 128 {
                for (w, g) in worst_big.iter_mut().zip(&medians) {
                    *w = w.min(g / peak);
                }
            }
            println!("| {m} | {k} | {n} | {} | {ratio} | {won} |", cells.join(" | "));
        }
    }
    let worst: Vec<String> = names
        .iter()
        .zip(&worst_big)
        .map(|(name, &v)| if v == f64::MAX { format!("{name} n/a") } else { format!("{name} {:.0}%", 100.0 * v) })
        .collect();
    println!(
        "\nworst % of peak at M ≥ 128: {}   shapes where the default's median is below another ISA's: {losses}",
        worst.join(", ")
    );
}
