//! The GEMMs of e5-small's 12 layers (QKV, attention output, FFN up, FFN down; distinct
//! weights per layer, so they stream from L3/DRAM as in the model) at `M` tokens, run two
//! ways on `threads` threads, interleaved: every GEMM split among the threads
//! (cooperative), and each thread running the whole sequence alone on its own rows
//! (lanes, what the engine does for large batches). Best and median of the rounds, as
//! GFLOP/s and % of the FMA peak probed in the same rounds.
//!
//! `cargo run --release -p e5-benches --bin layer-gemm -- [M] [threads] [rounds]`

use e5_kernels::{Kernels, PackedF32, Post};
use std::time::Instant;

const SHAPES: [(usize, usize); 4] = [(384, 1152), (384, 384), (384, 1536), (1536, 384)]; // (K, N)

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("numeric argument"));
    let m = args.next().unwrap_or(600);
    let threads = args.next().unwrap_or(2);
    let rounds = args.next().unwrap_or(20);
    let kern = Kernels::detect().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let lanes: Vec<rayon::ThreadPool> =
        (0..threads).map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap()).collect();
    let layers: Vec<Vec<PackedF32>> = (0..12)
        .map(|l| {
            SHAPES
                .iter()
                .map(|&(k, n)| PackedF32::from_rows(kern, &e5_benches::rand_vec(l as u64, n * k), n, k, k, None))
                .collect()
        })
        .collect();
    let run = |a: &[f32], rows: usize, c: &mut [f32]| {
        for p in layers.iter().flatten() {
            kern.gemm(a, rows, p, Post::None, c);
        }
    };
    let per_lane = m.div_ceil(threads);
    let inputs: Vec<Vec<f32>> = (0..threads).map(|t| e5_benches::rand_vec(100 + t as u64, per_lane * 1536)).collect();
    let mut outputs: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0; per_lane * 1536]).collect();
    let a = e5_benches::rand_vec(99, m * 1536);
    let mut c = vec![0.0; m * 1536];
    let flops = |rows: usize| 12.0 * SHAPES.iter().map(|&(k, n)| 2.0 * (rows * n * k) as f64).sum::<f64>();
    let (mut coop, mut lane, mut peak) = (Vec::new(), Vec::new(), 0f64);
    for _ in 0..rounds {
        let t = Instant::now();
        pool.install(|| run(&a, m, &mut c));
        coop.push(flops(m) / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        std::thread::scope(|s| {
            for ((pool, a), c) in lanes.iter().zip(&inputs).zip(outputs.iter_mut()) {
                s.spawn(|| pool.install(|| run(a, per_lane, c)));
            }
        });
        lane.push(flops(per_lane * threads) / t.elapsed().as_secs_f64() / 1e9);
        peak = peak.max(pool.install(|| kern.fma_peak_gflops(threads, 0.05)));
    }
    println!("isa {} | M {m} | threads {threads} | rounds {rounds} | FMA peak {peak:.0} GFLOP/s", kern.isa);
    for (name, mut v) in [("cooperative", coop), ("lanes", lane)] {
        v.sort_by(f64::total_cmp);
        let (best, median) = (v[v.len() - 1], v[v.len() / 2]);
        println!(
            "{name:>12}: best {best:.0} GFLOP/s ({:.0}%), median {median:.0} GFLOP/s ({:.0}%)",
            100.0 * best / peak,
            100.0 * median / peak
        );
    }
}
