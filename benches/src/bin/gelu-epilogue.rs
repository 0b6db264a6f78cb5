//! What the GELU epilogue costs inside the tiles of e5-small's FFN-up GEMM (384 → 1536),
//! f32 and int8, on the detected ISA: the GEMM with `Post::Gelu(Erf)` and with
//! `Post::None`, alternated in one process (each call timed over a run of calls), median
//! of the rounds. The difference is GELU's cost per value there; compare it with the row
//! kernel's (`cargo bench -p e5-benches --bench kernels -- rows/gelu_erf`).
//!
//! `cargo run --release -p e5-benches --bin gelu-epilogue -- [M] [threads] [rounds]`
//! (M 17: batch 1 on two threads; 268: one lane's share of 32 queries, on one thread).

use e5_benches::{median, rand_vec};
use e5_kernels::{with_hot_workers, GeluKind, Kernels, PackedF32, PackedI8, Post};
use std::time::Instant;

const CALLS: usize = 200;

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("numeric argument"));
    let (m, threads, rounds) = (args.next().unwrap_or(17), args.next().unwrap_or(2), args.next().unwrap_or(15));
    let kern = Kernels::detect().unwrap();
    let (k, n) = (384, 1536);
    let (w, a) = (rand_vec(1, n * k), rand_vec(2, m * k));
    let (w32, w8) = (PackedF32::from_rows(kern, &w, n, k, k, None), PackedI8::quantize(kern, &w, n, k, None));
    let mut c = vec![0.0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let posts = [Post::None, Post::Gelu(GeluKind::Erf)];
    // µs per call: [f32 none, f32 gelu, int8 none, int8 gelu] × rounds.
    let mut times = vec![Vec::new(); 4];
    pool.install(|| {
        with_hot_workers(|| {
            for _ in 0..rounds {
                for (v, t) in times.iter_mut().enumerate() {
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        match v {
                            0 | 1 => kern.gemm(&a, m, &w32, posts[v % 2], &mut c),
                            _ => kern.gemm_i8(&a, m, &w8, posts[v % 2], &mut c),
                        }
                    }
                    t.push(start.elapsed().as_secs_f64() / CALLS as f64 * 1e6);
                }
            }
        })
    });
    let t: Vec<f64> = times.iter().map(|v| median(v)).collect();
    let per_value = |d: f64| d * 1e3 / (m * n) as f64 * threads as f64;
    println!("{} | FFN-up {m} × {k} → {n} | threads {threads} | rounds {rounds}\n", kern.dispatch_reason());
    println!("| GEMM | µs, no epilogue | µs, GELU | GELU µs | GELU ns per value per thread |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, (none, gelu)) in [("f32", (t[0], t[1])), ("int8", (t[2], t[3]))] {
        println!("| {name} | {none:.1} | {gelu:.1} | {:.1} | {:.2} |", gelu - none, per_value(gelu - none));
    }
}
