//! The machine's measured FMA throughput, the yardstick for "% of peak".

use crate::Kernels;
use rayon::prelude::*;
use std::time::Instant;

impl Kernels {
    /// Peak f32 GFLOP/s of this ISA's FMA units on `threads` threads (of the current
    /// rayon pool), measured for about `seconds`.
    pub fn fma_peak_gflops(&self, threads: usize, seconds: f64) -> f64 {
        let (probe, flops) = (self.vector.fma_probe, self.vector.fma_probe_flops);
        // Calibrate a run of ~10 ms, then time repeated runs on every thread at once.
        let mut iters = 1 << 16;
        loop {
            let t = Instant::now();
            // SAFETY: the table's ISA is supported.
            std::hint::black_box(unsafe { probe(iters) });
            if t.elapsed().as_secs_f64() > 0.01 {
                break;
            }
            iters *= 2;
        }
        let rounds = ((seconds / 0.01) as usize).max(3);
        let mut best = 0.0f64;
        for _ in 0..rounds {
            let t = Instant::now();
            (0..threads).into_par_iter().for_each(|_| {
                // SAFETY: the table's ISA is supported.
                std::hint::black_box(unsafe { probe(iters) });
            });
            best = best.max((threads * iters * flops) as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }
}
