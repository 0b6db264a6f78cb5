//! Independent pieces of work (chunks of texts, candidate configurations) side by side: one
//! worker per thread, each running its items with single-threaded kernels (like the
//! engine's lanes), which beats splitting every kernel among the threads. Results never
//! depend on this: every embedding is bit-identical whatever the thread layout.

use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f(item)` for every item on `workers` threads (items taken in order as workers free
/// up); results in item order. The first error wins.
pub fn map<T: Send, R: Send>(items: Vec<T>, workers: usize, f: impl Fn(T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let n = items.len();
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<R>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            s.spawn(|| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let item = queue[i].lock().unwrap().take().expect("each item is taken once");
                    let r = match &pool {
                        Ok(p) => p.install(|| f(item)),
                        Err(e) => Err(anyhow!("worker thread pool: {e}")),
                    };
                    *results[i].lock().unwrap() = Some(r);
                }
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().unwrap().expect("every item ran")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_runs_single_threaded_and_reports_errors() {
        let out = map((0..10).collect(), 3, |i| Ok((i * i, rayon::current_num_threads()))).unwrap();
        assert_eq!(out, (0..10).map(|i| (i * i, 1)).collect::<Vec<_>>());
        let err = map(vec![1, 2, 3], 2, |i| if i == 2 { Err(anyhow!("bad {i}")) } else { Ok(i) });
        assert_eq!(err.unwrap_err().to_string(), "bad 2");
        assert!(map(Vec::<u8>::new(), 2, Ok).unwrap().is_empty());
    }
}
