//! Keeping a rayon pool's workers awake through a run of short parallel regions, and handing
//! them the regions' tasks through one shared slot.
//!
//! A batch-1 forward is ~80 fork-joins of 5–150 µs each, separated by short serial steps
//! (activation quantization, LayerNorm). Between regions, an idle rayon worker yields,
//! then sleeps on a futex after ~30 µs; waking it costs tens of µs on a VM, so a region
//! that follows a longer serial step runs on one thread until the sleeper is back.
//! [`with_hot_workers`] parks the other workers in a spin loop for exactly as long as the
//! caller's closure runs.
//!
//! Inside that closure, [`for_each_index`] on the closure's thread (the *owner*) does not go
//! through rayon's join tree, whose deque pushes, steals and epoch pins cost several µs per
//! region on this scale (`benches/src/bin/fork-join.rs`): it offers a [`Job`] — `n`
//! indices and a closure — in the team's slot, and the owner and every spinning helper claim
//! indices (each its own contiguous range first, see [`Claims`]) until none is left.
//! Anywhere else (another thread, a task of a job, no hot region) the same job runs on
//! rayon: one spawned claimer per pool thread, no join tree. Which thread runs an index
//! never changes what the index computes.
//!
//! No deadlock: a serve loop is a rayon job that ends only with its region, and rayon runs
//! any queued job on a thread that waits (for a stolen half of a join, or for a scope) —
//! also a serve loop that the owner spawned and no helper has taken yet. Run there, inside
//! work that the region waits for, it would spin until a `done` that never comes (seen
//! under qemu in CI: a helper inside a task took one while its nested loop waited). So:
//! - a thread that owns a region, runs a job's indices, or runs what a serve loop found on
//!   rayon's queues is [`Busy`], and a serve loop that starts on a busy thread returns;
//! - work split inside a region goes through this module ([`for_each_index`],
//!   [`for_each_chunk_mut`]), whose tasks run busy, never through a rayon parallel
//!   iterator, whose halves an idle thread could steal and wait in, not busy.
//!
//! Serve loops are spawned, not broadcast to each thread: a broadcast copy must run on its
//! own thread, and an owner spinning on `inside` does not look for rayon work, so a second
//! caller's region that started inside one of this region's tasks would wait for it
//! forever (`concurrent_regions_on_one_pool_both_finish`).
//!
//! Lifetime protocol: the job lives in the owner's stack frame. A helper counts itself in
//! `inside` *before* it reads the offer; the owner withdraws the offer, then waits for
//! `inside` to reach 0, so no helper can still hold the job when its frame ends (all four
//! accesses are `SeqCst`: a helper that read the offer before the withdrawal was counted
//! before the owner's wait began).

use crate::sync_ptr::SyncPtr;
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Idle polls between OS yields, so that a spinning helper does not starve other
/// processes on an oversubscribed machine.
const POLLS_PER_OS_YIELD: u32 = 256;
/// Idle polls of the team's slot per look at rayon's queues (which pins an epoch and
/// scans every worker's deque): tasks that other code hands to rayon still run, a few
/// hundred ns later at most.
const POLLS_PER_RAYON_LOOK: u32 = 8;

thread_local! {
    /// The team this thread owns while its `with_hot_workers` closure runs; null while one
    /// of its jobs is on offer, so that a task's own parallel loops go to rayon.
    static OWNED: Cell<*const Team> = const { Cell::new(ptr::null()) };
    /// How many hot-region closures and job tasks this thread is inside (see [`Busy`]).
    static BUSY: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread busy while alive: it owns a hot region, runs a job's indices or runs
/// what a serve loop found on rayon's queues, and someone waits for it to come back. A
/// serve loop that rayon hands such a thread (while something in it waits) returns at
/// once, since it would not end before that region's owner sets `done`.
struct Busy;

impl Busy {
    fn enter() -> Self {
        BUSY.with(|b| b.set(b.get() + 1));
        Busy
    }

    fn is_set() -> bool {
        BUSY.with(Cell::get) > 0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(b.get() - 1));
    }
}

/// Runs `task(i)` for every `i` in `0..n`, in parallel on the current rayon pool. On the
/// owner thread of a hot region the owner and its helpers share the indices (see the module
/// docs); elsewhere up to one claimer per pool thread does. A panic in a task reaches the
/// caller.
pub fn for_each_index(n: usize, task: impl Fn(usize) + Sync) {
    let team = OWNED.with(|o| o.replace(ptr::null()));
    if team.is_null() {
        let threads = rayon::current_num_threads().min(n);
        if threads <= 1 {
            return (0..n).for_each(task);
        }
        let job = Job::new(n, threads, &task);
        rayon::scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| {
                    job.work();
                });
            }
            job.work();
        });
        return job.finish();
    }
    let _back = Owner(team);
    // SAFETY: `OWNED` points at the team of the `with_hot_workers` call whose closure is
    // running on this thread; the team outlives that closure.
    unsafe { &*team }.run(n, &task);
}

/// Runs `f(i, chunk)` for each `width`-long chunk `data[i * width..][..width]`, in parallel
/// through [`for_each_index`]: as many tasks as hold `min_chunks` chunks each, in runs of
/// adjacent chunks that differ by at most one (a trailing partial chunk is left out, as
/// `chunks_exact_mut` leaves it; width 0: no chunk). Inside a hot region this is how to
/// split a slice, not `par_chunks_mut` (see the module docs).
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    width: usize,
    min_chunks: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if width == 0 {
        return;
    }
    let chunks = data.len() / width;
    let tasks = chunks / min_chunks.max(1);
    if tasks <= 1 {
        return data.chunks_exact_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    }
    let base = SyncPtr(data.as_mut_ptr());
    for_each_index(tasks, |t| {
        for i in t * chunks / tasks..(t + 1) * chunks / tasks {
            // SAFETY: chunk `i` lies inside `data` (i < chunks), and each `i` belongs to one
            // task, so no two `&mut` overlap.
            f(i, unsafe { std::slice::from_raw_parts_mut(base.get().add(i * width), width) });
        }
    });
}

/// Runs `f` on a worker of the current rayon pool while the pool's other workers spin,
/// running the tasks of its parallel regions without sleeping in between. Results are those
/// of `f` alone: helpers only run tasks that `f` offers (or that others queue on the pool).
pub fn with_hot_workers<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return f();
    }
    let team =
        Team { offer: AtomicPtr::new(ptr::null_mut()), inside: AtomicUsize::new(0), done: AtomicBool::new(false) };
    let mut out = None;
    rayon::scope(|s| {
        let _busy = Busy::enter();
        for _ in 0..helpers {
            s.spawn(|_| team.serve());
        }
        // Set on drop, so that helpers also stop when `f` panics (else the scope, which
        // waits for them before passing the panic on, would never end).
        let _release = Release(&team.done);
        let _owner = Owner(OWNED.with(|o| o.replace(&team)));
        out = Some(f());
    });
    out.expect("the scope ran f")
}

/// Puts a previous `OWNED` value back on drop (also when a task or `f` panics).
struct Owner(*const Team);

impl Drop for Owner {
    fn drop(&mut self) {
        OWNED.with(|o| o.set(self.0));
    }
}

struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What a hot region's owner shares with its helpers.
struct Team {
    /// The job on offer (in the owner's stack frame), or null.
    offer: AtomicPtr<Job<'static>>,
    /// Helpers between counting themselves in and leaving a job (see the module docs).
    inside: AtomicUsize,
    /// Set when the owner's closure has returned: helpers go back to rayon.
    done: AtomicBool,
}

/// `n` indices, each run once by whichever thread claims it.
struct Job<'a> {
    claims: Claims,
    /// Threads that have joined the job so far (the owner first): a thread's arrival order
    /// is the range it starts on.
    joined: AtomicUsize,
    task: &'a (dyn Fn(usize) + Sync),
    /// The first panic of a task, for the owner to pass on.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl<'a> Job<'a> {
    /// `n` indices cut into ranges for `threads` threads.
    fn new(n: usize, threads: usize, task: &'a (dyn Fn(usize) + Sync)) -> Self {
        Job { claims: Claims::new(n, threads), joined: AtomicUsize::new(0), task, panic: Mutex::new(None) }
    }

    /// After every thread has left the job: passes its first panic on.
    fn finish(self) {
        if let Some(p) = self.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
            resume_unwind(p);
        }
    }

    /// Claims and runs indices until none is left; a panic is kept for the owner and ends
    /// the job for everyone. Returns whether this thread ran an index.
    fn work(&self) -> bool {
        let _busy = Busy::enter();
        let me = self.joined.fetch_add(1, Ordering::Relaxed);
        let mut ran = false;
        let claimed = catch_unwind(AssertUnwindSafe(|| {
            while let Some(i) = self.claims.claim(me) {
                ran = true;
                (self.task)(i);
            }
        }));
        if let Err(p) = claimed {
            self.claims.cancel();
            self.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(p);
        }
        ran
    }
}

/// The indices `0..n` cut into one contiguous range per thread of the team. A thread runs
/// its own range front to back, then takes the last index of another's range, one at a
/// time, until none is left.
///
/// Why not one shared counter: the GEMM drivers give each index a run of adjacent weight
/// panels, and a tile prefetches a fixed distance ahead in the panel it streams. A thread
/// that runs adjacent indices streams one contiguous run of weights, and each index's
/// prefetch warms the next one's first panel; with a shared counter two threads take
/// alternate indices, and every index starts on a cold panel.
struct Claims {
    /// Per range: `start` in the low 32 bits, `end` in the high 32 bits (`start ≥ end`:
    /// empty). Owners advance `start`, others lower `end`, both by compare-and-swap.
    ranges: Vec<AtomicU64>,
}

impl Claims {
    fn new(n: usize, threads: usize) -> Self {
        let n = u32::try_from(n).expect("a job of more than 2^32 indices") as u64;
        let threads = threads.max(1) as u64;
        let ranges =
            (0..threads).map(|t| AtomicU64::new((t * n / threads) | (((t + 1) * n / threads) << 32))).collect();
        Claims { ranges }
    }

    /// The next index for the thread that joined `me`-th: the front of its own range (a late
    /// thread beyond the ranges has none), else the back of the next non-empty one.
    fn claim(&self, me: usize) -> Option<usize> {
        let t = self.ranges.len();
        if let Some(own) = self.ranges.get(me) {
            if let Some(i) = Self::take(own, true) {
                return Some(i);
            }
        }
        (1..t + usize::from(me >= t)).map(|d| &self.ranges[(me + d) % t]).find_map(|r| Self::take(r, false))
    }

    /// Takes the front (`front`) or back index of a range, if any is left.
    fn take(range: &AtomicU64, front: bool) -> Option<usize> {
        let mut cur = range.load(Ordering::Relaxed);
        loop {
            let (start, end) = (cur & 0xffff_ffff, cur >> 32);
            if start >= end {
                return None;
            }
            let (next, i) = if front { (cur + 1, start) } else { (cur - (1 << 32), end - 1) };
            match range.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(i as usize),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Empties every range: no index is claimed after this.
    fn cancel(&self) {
        self.ranges.iter().for_each(|r| r.store(0, Ordering::Relaxed));
    }
}

impl Team {
    /// The owner's side: offer the job, work on it, withdraw it, wait for the helpers.
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        let job = Job::new(n, rayon::current_num_threads(), task);
        // The lifetime is erased: the offer is withdrawn, and every helper out of it,
        // before `job` leaves this frame.
        self.offer.store(ptr::from_ref(&job).cast_mut().cast(), Ordering::SeqCst);
        job.work();
        self.offer.store(ptr::null_mut(), Ordering::SeqCst);
        while self.inside.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        job.finish();
    }

    /// A helper's poll of the slot: runs indices of the job on offer, if any. Returns
    /// whether it ran one.
    fn help(&self) -> bool {
        if self.offer.load(Ordering::Relaxed).is_null() {
            return false;
        }
        self.inside.fetch_add(1, Ordering::SeqCst);
        let job = self.offer.load(Ordering::SeqCst);
        // SAFETY: while `inside` counts this helper, the owner keeps an offered job alive.
        let ran = !job.is_null() && unsafe { &*job }.work();
        self.inside.fetch_sub(1, Ordering::SeqCst);
        ran
    }

    /// Runs one job from rayon's queues, busy (see the module docs); whether there was one.
    fn run_queued() -> bool {
        let _busy = Busy::enter();
        rayon::yield_now() == Some(rayon::Yield::Executed)
    }

    /// A helper's loop until the owner's closure returns: the team's jobs first, rayon's
    /// queued tasks every few polls. Returns at once on a busy thread.
    fn serve(&self) {
        if Busy::is_set() {
            return;
        }
        let mut idle = 0u32;
        while !self.done.load(Ordering::Acquire) {
            if self.help() || (idle.is_multiple_of(POLLS_PER_RAYON_LOOK) && Self::run_queued()) {
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
}
#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Helpers also run what the owner hands to rayon itself (here a scope's spawns, each a
    /// leaf: no rayon parallel iterator inside a region, see the module docs).
    #[test]
    fn returns_the_closures_result_and_helpers_run_its_tasks() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (sum, workers) = pool.install(|| {
            with_hot_workers(|| {
                let ids: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
                rayon::scope(|s| {
                    for (i, id) in ids.iter().enumerate() {
                        s.spawn(move |_| {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                            id.store(i + 1000 * rayon::current_thread_index().unwrap(), Ordering::Relaxed);
                        });
                    }
                });
                let ids: Vec<usize> = ids.into_iter().map(AtomicUsize::into_inner).collect();
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

    /// Every whole chunk once, with its index, in blocks of `min_chunks`, inside a region
    /// and outside one; the partial tail is left alone.
    #[test]
    fn chunks_are_each_visited_once_with_their_index() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (len, width, min_chunks) in [(0, 3, 1), (7, 0, 1), (30, 3, 1), (31, 3, 4), (300, 5, 16), (12, 4, 100)] {
            let fill = |data: &mut [usize]| {
                for_each_chunk_mut(data, width, min_chunks, |i, c| {
                    assert_eq!(c.len(), width);
                    c.iter_mut().for_each(|v| *v += i + 1);
                })
            };
            let want: Vec<usize> =
                (0..len).map(|j| if width > 0 && j < len / width * width { j / width + 1 } else { 0 }).collect();
            for hot in [false, true] {
                let mut data = vec![0; len];
                pool.install(|| if hot { with_hot_workers(|| fill(&mut data)) } else { fill(&mut data) });
                assert_eq!(data, want, "len {len}, width {width}, min {min_chunks}, hot {hot}");
            }
        }
    }

    #[test]
    fn a_panic_in_the_closure_reaches_the_caller_and_frees_the_helpers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let r = pool.install(|| std::panic::catch_unwind(|| with_hot_workers(|| panic!("boom"))));
        assert!(r.is_err());
        // The pool is usable again: no helper is still spinning on the old call.
        assert_eq!(pool.install(|| with_hot_workers(|| (0..100).into_par_iter().sum::<i32>())), 4950);
    }

    /// Per index: how many times it ran, and the pool thread that ran it.
    fn run_indices(n: usize, nested: usize) -> (Vec<usize>, Vec<usize>) {
        let runs: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let who: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(usize::MAX)).collect();
        for_each_index(n, |i| {
            std::thread::sleep(std::time::Duration::from_micros(200));
            // A task's own parallel loop (rayon, since the owner's job is on offer).
            let inner = AtomicUsize::new(0);
            for_each_index(nested, |_| {
                inner.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(inner.into_inner(), nested);
            runs[i].fetch_add(1, Ordering::Relaxed);
            who[i].store(rayon::current_thread_index().unwrap_or(usize::MAX), Ordering::Relaxed);
        });
        (
            runs.into_iter().map(AtomicUsize::into_inner).collect(),
            who.into_iter().map(AtomicUsize::into_inner).collect(),
        )
    }

    #[test]
    fn the_team_runs_every_index_once_and_helpers_share_them() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for nested in [0, 5] {
            let (runs, mut who) = pool.install(|| with_hot_workers(|| run_indices(48, nested)));
            assert!(runs.iter().all(|&r| r == 1), "{runs:?}");
            who.sort_unstable();
            who.dedup();
            assert!(who.len() > 1, "helpers took no index: {who:?}");
        }
        // Successive jobs of one region, then an empty one.
        let (a, b) = pool.install(|| with_hot_workers(|| (run_indices(7, 0).0, run_indices(0, 0).0)));
        assert_eq!((a, b), (vec![1; 7], vec![]));
    }

    #[test]
    fn outside_a_hot_region_it_is_a_rayon_loop() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert_eq!(pool.install(|| run_indices(16, 3)).0, vec![1; 16]);
        assert_eq!(run_indices(4, 2).0, vec![1; 4]);
    }

    #[test]
    fn a_panicking_index_reaches_the_owner_and_frees_the_team() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for bad in [0, 31] {
            let r = pool.install(|| {
                std::panic::catch_unwind(|| {
                    with_hot_workers(|| {
                        for_each_index(32, |i| {
                            std::thread::sleep(std::time::Duration::from_micros(100));
                            assert!(i != bad, "index {bad}");
                        })
                    })
                })
            });
            let msg = r.expect_err("the panic was lost");
            assert_eq!(msg.downcast_ref::<String>().map(String::as_str), Some(format!("index {bad}").as_str()));
            assert_eq!(pool.install(|| with_hot_workers(|| run_indices(9, 0).0)), vec![1; 9]);
        }
    }

    /// Runs `f` on a thread of its own and fails if it has not finished after `secs`
    /// seconds, so that a deadlock fails the test instead of stalling the suite.
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(secs)).expect("deadlocked")
    }

    /// A region whose tasks each run a nested parallel loop of 1 ms steps; its step count.
    fn nested_region() -> usize {
        let steps = AtomicUsize::new(0);
        for_each_index(16, |_| {
            for_each_index(4, |_| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                steps.fetch_add(1, Ordering::Relaxed);
            });
        });
        steps.into_inner()
    }

    /// A helper busy elsewhere when the region starts: a helper whose nested loop it robs
    /// then waits inside a task, and must not pick up a serve loop while it does.
    #[test]
    fn a_helper_waiting_inside_a_task_never_serves() {
        for _ in 0..20 {
            let steps = within(60, || {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
                pool.install(|| {
                    rayon::spawn(|| std::thread::sleep(std::time::Duration::from_millis(10)));
                    with_hot_workers(nested_region)
                })
            });
            assert_eq!(steps, 64);
        }
    }

    /// Two callers' hot regions at once on one pool: neither owner serves the other's team.
    #[test]
    fn concurrent_regions_on_one_pool_both_finish() {
        let pool = std::sync::Arc::new(rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap());
        for _ in 0..20 {
            let pool = pool.clone();
            let steps = within(60, move || {
                std::thread::scope(|s| {
                    let callers: Vec<_> =
                        (0..2).map(|_| s.spawn(|| pool.install(|| with_hot_workers(nested_region)))).collect();
                    callers.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
                })
            });
            assert_eq!(steps, [64, 64]);
        }
    }

    /// Each thread runs its own range front to back, then the back of the others'.
    #[test]
    fn claims_run_own_range_in_order_then_steal_from_the_back() {
        let c = Claims::new(10, 3); // ranges 0..3, 3..6, 6..10
        let take = |me: usize, k: usize| (0..k).map(|_| c.claim(me)).collect::<Vec<_>>();
        assert_eq!(take(1, 3), [Some(3), Some(4), Some(5)]);
        assert_eq!(take(1, 2), [Some(9), Some(8)]); // range 1 empty: the back of range 2
        assert_eq!(take(0, 1), [Some(0)]);
        assert_eq!(take(5, 1), [Some(2)]); // a late thread has no range of its own
        assert_eq!(take(2, 3), [Some(6), Some(7), Some(1)]);
        assert_eq!(take(0, 1), [None]);
        let fresh = Claims::new(4, 2);
        assert_eq!(fresh.claim(0), Some(0));
        fresh.cancel();
        assert_eq!((fresh.claim(0), fresh.claim(1)), (None, None));
    }

    #[test]
    fn one_thread_runs_the_closure_directly() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| with_hot_workers(rayon::current_num_threads)), 1);
    }
}
