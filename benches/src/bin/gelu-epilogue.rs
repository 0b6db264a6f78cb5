//! What the GELU epilogue costs inside the tiles of e5-small's FFN-up GEMM (384 → 1536),
//! f32 and int8, on the detected ISA: the GEMM with `Post::Gelu(Erf)` and with
//! `Post::None`, alternated call by call (`interleaved_median_secs`), median of the rounds'
//! medians. The difference is GELU's cost per value there; compare it with the row
//! kernel's (`cargo bench -p e5-benches --bench kernels -- rows/gelu_erf`).
//!
//! `cargo run --release -p e5-benches --bin gelu-epilogue -- [M] [threads] [rounds] [seconds]`
//! (M 17: batch 1 on two threads; 268: one lane's share of 32 queries, on one thread).

use e5_benches::{interleaved_median_secs, median, rand_vec};
use e5_kernels::{with_hot_workers, GeluKind, Kernels, PackedF32, PackedI8, Post};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: f64| args.next().map_or(default, |s| s.parse().expect("numeric argument"));
    let (m, threads, rounds, secs) = (next(17.0) as usize, next(2.0) as usize, next(7.0) as usize, next(0.3));
    let kern = Kernels::detect().unwrap();
    let (k, n) = (384, 1536);
    let (w, a) = (rand_vec(1, n * k), rand_vec(2, m * k));
    let (w32, w8) = (PackedF32::from_rows(kern, &w, n, k, k, None), PackedI8::quantize(kern, &w, n, k, None));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let posts = [Post::None, Post::Gelu(GeluKind::Erf)];
    // Variants: [f32 none, f32 gelu, int8 none, int8 gelu], each into its own output.
    let mut outs = vec![vec![0.0f32; m * n]; 4];
    let mut times = vec![Vec::new(); 4];
    let (a, w32, w8) = (&a, &w32, &w8);
    pool.install(|| {
        with_hot_workers(|| {
            for _ in 0..rounds {
                let mut calls: Vec<_> = outs
                    .iter_mut()
                    .enumerate()
                    .map(|(v, c)| {
                        move || match v {
                            0 | 1 => kern.gemm(a, m, w32, posts[v % 2], c),
                            _ => kern.gemm_i8(a, m, w8, posts[v % 2], c),
                        }
                    })
                    .collect();
                let mut fs: Vec<&mut (dyn FnMut() + Send)> = calls.iter_mut().map(|f| f as _).collect();
                times.iter_mut().zip(interleaved_median_secs(secs, &mut fs)).for_each(|(v, t)| v.push(t * 1e6));
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
