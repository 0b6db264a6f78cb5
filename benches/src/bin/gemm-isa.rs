//! The packed f32 GEMM on every vector ISA this CPU has, on every `gemm-report` shape,
//! alternated: each round runs the ISAs call by call in turn for `seconds` each per shape
//! (median call), so a slow phase of a shared machine hits all of them alike. Per shape:
//! each ISA's median GFLOP/s over the rounds and its % of the FMA peak, then the
//! dispatched ISA against the fastest other one (median ratio, and the rounds it won). The
//! check behind "dispatch never picks a slower f32 path".
//!
//! Each round first runs the FMA probe, and the last columns give each variant's median %
//! of that round's probe ("% beside"): on a shared VM the FMA rate itself can drop for
//! minutes, which the best-of peak measured once at start-up cannot see. The GEMMs run
//! inside `with_hot_workers`, as the engine runs them whenever it splits a GEMM among
//! threads (otherwise each call would also pay a sleeping worker's wake-up).
//!
//! With `blocking=KCxMCxNCxPF,…` the variants are instead the dispatched ISA at its derived
//! blocking and at each listed one (`KC` any depth, `MC` a multiple of the tile height,
//! `NC` panels, `PF` an index into `Prefetch::ALL`: 0 none, 1 ahead, 2 next-panel shares,
//! 3 tall-strip shares),
//! alternated alike: the A/B behind the `Blocking::derive` rule, re-runnable on any CPU.
//!
//! `cargo run --release -p e5-benches --bin gemm-isa -- [threads] [seconds] [M|all] [rounds] [blocking=KCxMCxNCxPF,…]`

use e5_benches::*;
use e5_kernels::{with_hot_workers, Blocking, FmaProbe, Isa, Kernels, PackedF32, Post, Prefetch};

/// `"256x192x8x1,1024x192x4x0"` as blockings (the last number indexes `Prefetch::ALL`).
fn parse_blockings(list: &str) -> Vec<Blocking> {
    let parse = |item: &str| {
        let v: Vec<usize> = item.split('x').map(|s| s.parse().ok()).collect::<Option<_>>()?;
        let &[kc, mc, nc, pf] = v.as_slice() else { return None };
        let prefetch = Prefetch::ALL.get(pf).copied()?;
        Some(Blocking { kc, mc, nc, prefetch })
    };
    list.split(',').map(|item| parse(item).unwrap_or_else(|| panic!("blocking {item:?}: want KCxMCxNCxPF"))).collect()
}

/// The FMA probe's median rate over 3 calls, GFLOP/s.
fn probe_median_gflops(probe: &FmaProbe) -> f64 {
    let rates: Vec<f64> = (0..3)
        .map(|_| {
            let t = std::time::Instant::now();
            probe.run();
            probe.flops / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    median(&rates)
}

fn main() {
    let (threads, secs, filter, pool) = report_args();
    let rounds: usize = std::env::args().nth(4).map_or(5, |s| s.parse().expect("rounds"));
    let blockings = std::env::args().nth(5).map(|a| match a.strip_prefix("blocking=") {
        Some(list) => parse_blockings(list),
        None => panic!("5th argument {a:?}: want blocking=KCxMCxNCxPF,…"),
    });
    let default = Kernels::detect().unwrap();
    // (label, table), and which one is the default. Vector ISAs only: the scalar twin is a
    // reference, never a dispatch candidate.
    let (variants, d): (Vec<(String, Kernels)>, usize) = match &blockings {
        None => {
            let isas = Isa::available().into_iter().filter(|&i| i != Isa::Scalar);
            let v: Vec<_> = isas.map(|i| Kernels::get(i).unwrap()).map(|k| (k.isa.to_string(), k.clone())).collect();
            let d = v.iter().position(|(_, k)| k.isa == default.isa).unwrap();
            (v, d)
        }
        Some(list) => {
            let derived = default.f32_blocking();
            let label = |b: Blocking| format!("KC {} MC {} NC {} {:?}", b.kc, b.mc, b.nc, b.prefetch);
            let mut v = vec![(format!("derived {}", label(derived)), default.clone())];
            v.extend(list.iter().filter(|&&b| b != derived).map(|&b| (label(b), default.with_f32_blocking(b))));
            (v, 0)
        }
    };
    let peak = pool.install(|| default.fma_peak_gflops(threads, 0.5));
    let probe = pool.install(|| default.fma_probe(threads));
    println!(
        "default {} | threads {threads} | rounds {rounds} | FMA peak {peak:.1} GFLOP/s\n",
        default.dispatch_reason()
    );
    let names: Vec<String> = variants.iter().map(|(name, _)| name.clone()).collect();
    println!(
        "| M | K | N | {} | default ÷ best other | rounds won | {} |",
        names.join(" GFLOP/s (% peak) | ") + " GFLOP/s (% peak)",
        names.join(" % beside | ") + " % beside"
    );
    println!("|{}", " ---: |".repeat(5 + 2 * variants.len()));
    let (mut worst_big, mut worst_beside, mut losses) =
        (vec![f64::MAX; variants.len()], vec![f64::MAX; variants.len()], 0);
    for &(k, n) in &GEMM_KNS {
        let w = rand_vec(1, n * k);
        let bias = rand_vec(2, n);
        // One copy of the weights per ISA, shared by that ISA's blockings: separate copies
        // sit at different addresses and pages, which alone moved identical code by 10%.
        let mut packed: Vec<PackedF32> = Vec::new();
        for (_, kern) in &variants {
            if !packed.iter().any(|p| p.isa() == kern.isa) {
                packed.push(PackedF32::from_rows(kern, &w, n, k, k, Some(&bias)));
            }
        }
        let weights = |kern: &Kernels| packed.iter().find(|p| p.isa() == kern.isa).unwrap();
        for &m in GEMM_MS.iter().filter(|&&m| filter.is_none_or(|f| f == m)) {
            let a = rand_vec(3, m * k);
            let mut outs = vec![vec![0.0; m * n]; variants.len()];
            let flops = 2.0 * (m * n * k) as f64;
            // rates[isa][round], GFLOP/s; beside[isa][round], fraction of that round's probe
            let mut rates = vec![Vec::with_capacity(rounds); variants.len()];
            let mut beside = vec![Vec::with_capacity(rounds); variants.len()];
            for _ in 0..rounds {
                let mut calls: Vec<_> = variants
                    .iter()
                    .zip(&mut outs)
                    .map(|((_, kern), c)| || kern.gemm(&a, m, weights(kern), Post::None, c))
                    .collect();
                let mut fs: Vec<&mut (dyn FnMut() + Send)> = calls.iter_mut().map(|f| f as _).collect();
                // The probe runs before the GEMMs, not among them: a GEMM right after 10 ms
                // of back-to-back FMAs ran 4–19% slower (identical variants, the one after
                // the probe won 0 of 7 rounds on every shape).
                let probe_gflops = pool.install(|| probe_median_gflops(&probe));
                let times = pool.install(|| with_hot_workers(|| interleaved_median_secs(secs, &mut fs)));
                for ((r, b), t) in rates.iter_mut().zip(&mut beside).zip(times) {
                    r.push(flops / t / 1e9);
                    b.push(flops / t / 1e9 / probe_gflops);
                }
            }
            let medians: Vec<f64> = rates.iter().map(|r| median(r)).collect();
            let beside: Vec<f64> = beside.iter().map(|b| median(b)).collect();
            let cells: Vec<String> = medians.iter().map(|g| format!("{g:.1} ({:.0}%)", 100.0 * g / peak)).collect();
            let other = (0..variants.len()).filter(|&i| i != d).max_by(|&x, &y| medians[x].total_cmp(&medians[y]));
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
                for (w, b) in worst_beside.iter_mut().zip(&beside) {
                    *w = w.min(*b);
                }
            }
            let beside: Vec<String> = beside.iter().map(|b| format!("{:.0}%", 100.0 * b)).collect();
            println!("| {m} | {k} | {n} | {} | {ratio} | {won} | {} |", cells.join(" | "), beside.join(" | "));
        }
    }
    let worst = |v: &[f64]| -> String {
        let cell = |(name, &v): (&String, &f64)| match v {
            f64::MAX => format!("{name} n/a"),
            v => format!("{name} {:.0}%", 100.0 * v),
        };
        names.iter().zip(v).map(cell).collect::<Vec<_>>().join(", ")
    };
    println!(
        "\nworst % of peak at M ≥ 128: {}   of the probe beside it: {}   shapes where the default's median is below another ISA's: {losses}",
        worst(&worst_big),
        worst(&worst_beside)
    );
}
