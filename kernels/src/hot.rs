//! Keeping a rayon pool's workers awake through a run of short parallel regions.
//!
//! A batch-1 forward is ~80 fork-joins of 5–150 µs each, separated by short serial steps
//! (activation quantization, LayerNorm). Between regions, an idle rayon worker yields,
//! then sleeps on a futex after ~30 µs; waking it costs tens of µs on a VM, so a region
//! that follows a longer serial step runs on one thread until the sleeper is back.
//! [`with_hot_workers`] parks the other workers in a spin loop that steals the regions'
//! tasks as soon as they appear, for exactly as long as the caller's closure runs.

use std::sync::atomic::{AtomicBool, Ordering};

/// Idle polls between OS yields, so that a spinning helper does not starve other
/// processes on an oversubscribed machine.
const POLLS_PER_OS_YIELD: u32 = 256;

/// Runs `f` on a worker of the current rayon pool while the pool's other workers spin,
/// taking its parallel tasks without sleeping in between. Results are those of `f` alone:
/// helpers only run tasks that `f` spawns (or that others queue on the same pool).
pub fn with_hot_workers<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return f();
    }
    let done = AtomicBool::new(false);
    let mut out = None;
    rayon::scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| spin_until(&done));
        }
        // Set on drop, so that helpers also stop when `f` panics (else the scope, which
        // waits for them before passing the panic on, would never end).
        let _release = Release(&done);
        out = Some(f());
    });
    out.expect("the scope ran f")
}

struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Executes pending pool tasks until `done` is set.
fn spin_until(done: &AtomicBool) {
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle.is_multiple_of(POLLS_PER_OS_YIELD) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn returns_the_closures_result_and_helpers_run_its_tasks() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (sum, workers) = pool.install(|| {
            with_hot_workers(|| {
                let ids: Vec<usize> = (0..64)
                    .into_par_iter()
                    .map(|i| {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        i + 1000 * rayon::current_thread_index().unwrap()
                    })
                    .collect();
                let sum: usize = ids.iter().map(|v| v % 1000).sum();
                let mut workers: Vec<usize> = ids.iter().map(|v| v / 1000).collect();
                workers.sort_unstable();
                workers.dedup();
                (sum, workers.len())
            })
        });
        assert_eq!(sum, (0..64).sum::<usize>());
        assert!(workers > 1, "helpers took no task");
    }

    #[test]
    fn a_panic_in_the_closure_reaches_the_caller_and_frees_the_helpers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let r = pool.install(|| std::panic::catch_unwind(|| with_hot_workers(|| panic!("boom"))));
        assert!(r.is_err());
        // The pool is usable again: no helper is still spinning on the old call.
        assert_eq!(pool.install(|| with_hot_workers(|| (0..100).into_par_iter().sum::<i32>())), 4950);
    }

    #[test]
    fn one_thread_runs_the_closure_directly() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| with_hot_workers(rayon::current_num_threads)), 1);
    }
}
