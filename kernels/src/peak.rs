//! The machine's measured FMA throughput, the yardstick for "% of peak".

use crate::Kernels;
use rayon::prelude::*;
use std::time::Instant;

/// This ISA's FMA probe, calibrated to run about 10 ms per call on every thread at once:
/// [`Kernels::fma_peak_gflops`] takes the best of many calls; `gemm-isa` also runs it before
/// each round of GEMMs, so that a slow phase of a shared machine's FMA pipes lowers the
/// yardstick too. (Not among the GEMMs: a GEMM right after 10 ms of FMAs ran 4–19% slow.)
#[derive(Clone, Copy)]
pub struct FmaProbe {
    probe: unsafe fn(usize) -> f32,
    iters: usize,
    /// Floating-point operations per call, all threads together.
    pub flops: f64,
    threads: usize,
}

impl FmaProbe {
    /// Runs the probe once on `threads` threads (of the current rayon pool).
    pub fn run(&self) {
        (0..self.threads).into_par_iter().for_each(|_| {
            // SAFETY: the probe came from a table whose ISA is supported.
            std::hint::black_box(unsafe { (self.probe)(self.iters) });
        });
    }
}

impl Kernels {
    /// The FMA probe of this ISA on `threads` threads, calibrated to ~10 ms a call.
    pub fn fma_probe(&self, threads: usize) -> FmaProbe {
        let probe = self.vector.fma_probe;
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
        FmaProbe { probe, iters, flops: (threads * iters * self.vector.fma_probe_flops) as f64, threads }
    }

    /// Peak f32 GFLOP/s of this ISA's FMA units on `threads` threads (of the current
    /// rayon pool): the best of repeated probe calls over about `seconds`.
    pub fn fma_peak_gflops(&self, threads: usize, seconds: f64) -> f64 {
        let probe = self.fma_probe(threads);
        let rounds = ((seconds / 0.01) as usize).max(3);
        let mut best = 0.0f64;
        for _ in 0..rounds {
            let t = Instant::now();
            probe.run();
            best = best.max(probe.flops / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }
}
