//! The 48 f32 GEMMs of e5-small's 12 layers (QKV, attention output, FFN up, FFN down;
//! distinct weights per layer, so they stream from L3 or DRAM as in the model) at `M`
//! rows, inside the model's hot workers, once per software-prefetch choice of the
//! dispatched ISA ([`Prefetch`]), alternated call by call (a call: all 48 GEMMs). Per
//! choice: the median time of a call over the rounds, and its median ratio to the
//! derived choice's. The check behind `Kernels::f32_blocking`'s prefetch rule at batch 1.
//!
//! `cargo run --release -p e5-benches --bin stream-gemm -- [M] [threads] [rounds] [seconds]`

use e5_benches::*;
use e5_kernels::{Blocking, Kernels, PackedF32, Post, Prefetch};

/// (K, N) of each layer's GEMMs.
const SHAPES: [(usize, usize); 4] = [(384, 1152), (384, 384), (384, 1536), (1536, 384)];

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: f64| args.next().map_or(default, |s| s.parse().expect("numeric argument"));
    let (m, threads, rounds, secs) = (next(17.0) as usize, next(2.0) as usize, next(7.0) as usize, next(0.3));
    let kern = Kernels::detect().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let layers: Vec<PackedF32> = (0..12u64)
        .flat_map(|l| SHAPES.map(|(k, n)| PackedF32::from_rows(kern, &rand_vec(l, n * k), n, k, k, None)))
        .collect();
    let derived = kern.f32_blocking();
    let mut variants = vec![(format!("{:?} (derived)", derived.prefetch), kern.clone())];
    for p in Prefetch::ALL.into_iter().filter(|&p| p != derived.prefetch) {
        variants.push((format!("{p:?}"), kern.with_f32_blocking(Blocking { prefetch: p, ..derived })));
    }
    let a = rand_vec(99, m * 1536);
    let mut outs = vec![vec![0.0f32; m * 1536]; variants.len()];
    let mut times = vec![Vec::new(); variants.len()];
    let (layers, a) = (&layers, &a);
    pool.install(|| {
        e5_kernels::with_hot_workers(|| {
            for _ in 0..rounds {
                let mut calls: Vec<_> = variants
                    .iter()
                    .zip(&mut outs)
                    .map(|((_, k), c)| {
                        move || layers.iter().for_each(|w| k.gemm(a, m, w, Post::None, &mut c[..m * w.n()]))
                    })
                    .collect();
                let mut fs: Vec<&mut (dyn FnMut() + Send)> = calls.iter_mut().map(|f| f as _).collect();
                times.iter_mut().zip(interleaved_median_secs(secs, &mut fs)).for_each(|(v, t)| v.push(t));
            }
        })
    });
    let flops = 12.0 * SHAPES.iter().map(|&(k, n)| 2.0 * (m * n * k) as f64).sum::<f64>();
    println!("{} | M {m} | threads {threads} | rounds {rounds}\n", kern.dispatch_reason());
    println!("| prefetch | ms per call (median) | GFLOP/s | time ÷ derived (median) |\n| --- | ---: | ---: | ---: |");
    for (i, (name, _)) in variants.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds).map(|r| times[i][r] / times[0][r]).collect();
        let t = median(&times[i]);
        println!("| {name} | {:.3} | {:.0} | {:.3} |", t * 1e3, flops / t / 1e9, median(&ratios));
    }
}
