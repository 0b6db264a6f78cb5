//! Shared helpers for e5's benchmarks: timing by medians, random inputs, the `gemm` crate
//! reference call.

use std::time::Instant;

/// Deterministic pseudo-random floats in [-1, 1).
pub fn rand_vec(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A report binary's arguments `[threads] [seconds-per-case] [M]` (defaults 2, 0.3, every
/// M; `all` also means every M), with a pool of that many threads.
pub fn report_args() -> (usize, f64, Option<usize>, rayon::ThreadPool) {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(2);
    let secs: f64 = args.next().map(|s| s.parse().unwrap()).unwrap_or(0.3);
    let filter: Option<usize> = args.next().filter(|s| s != "all").map(|s| s.parse().unwrap());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    (threads, secs, filter, pool)
}

/// Median seconds of `f` over runs filling about `seconds` (at least 5 runs).
pub fn median_secs(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut t = Vec::new();
    while t.len() < 5 || start.elapsed().as_secs_f64() < seconds {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64());
    }
    median(&t)
}

/// Median seconds of each of `fs`, run call by call in turn (`f0, f1, …, f0, f1, …`) for
/// about `seconds` each (at least 5 calls each): a slow phase of a shared machine, seconds
/// or milliseconds long, falls on every variant alike, where back-to-back blocks of
/// `median_secs` let it fall on one.
pub fn interleaved_median_secs(seconds: f64, fs: &mut [&mut (dyn FnMut() + Send)]) -> Vec<f64> {
    fs.iter_mut().for_each(|f| f());
    let start = Instant::now();
    let mut t = vec![Vec::new(); fs.len()];
    while t[0].len() < 5 || start.elapsed().as_secs_f64() < seconds * fs.len() as f64 {
        for (f, t) in fs.iter_mut().zip(&mut t) {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64());
        }
    }
    t.iter().map(|t| median(t)).collect()
}

/// Median (the upper one of an even count) of a non-empty sample.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// `C[m, n] = A[m, k] · W[n, k]ᵀ + bias` with the `gemm` crate (bias pre-broadcast into C).
#[allow(clippy::too_many_arguments)] // the GEMM's operands and shape, as the crate takes them
pub fn gemm_crate(a: &[f32], w: &[f32], bias: &[f32], c: &mut [f32], m: usize, n: usize, k: usize, threads: usize) {
    for row in c.chunks_exact_mut(n) {
        row.copy_from_slice(bias);
    }
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: strides describe the row-major buffers above; Wᵀ is W read column-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The GEMM shapes the kernel issue benchmarks: M tokens × (K, N) of e5 small/base/large.
pub const GEMM_MS: [usize; 6] = [1, 8, 17, 32, 128, 512];
pub const GEMM_KNS: [(usize, usize); 9] = [
    (384, 384),
    (384, 1536),
    (1536, 384),
    (768, 768),
    (768, 3072),
    (3072, 768),
    (1024, 1024),
    (1024, 4096),
    (4096, 1024),
];
