//! Data-parallel lanes: a large batch is split among the threads, and each thread runs the
//! whole encoder on its share alone, with single-threaded kernels.
//!
//! Why: splitting every GEMM among threads (what a lone text needs for latency) pays a
//! fork-join per operation and shares each tile's operands across cores. Measured on
//! e5-small's layer GEMMs at M = 600 with 2 threads, two independent threads sustain about
//! 30% more than the same work split cooperatively. Results are bit-identical either way:
//! a row's value never depends on its batch-mates or on which thread computes it.
//!
//! The same lanes serve any independent work: [`Lanes::map`] runs items side by side on
//! them (`e5 quant-eval` traces chunks of texts and evaluates candidate models this way).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Fewest tokens per lane worth a lane of its own: below this, batch-1-like work is
/// latency-bound and the cooperative split wins.
const MIN_TOKENS_PER_LANE: usize = 64;
/// Largest tolerated ratio of the busiest lane's cost to the mean.
const MAX_IMBALANCE: f64 = 1.15;

/// One single-threaded rayon pool per lane, so that every kernel a lane calls sees one
/// thread and runs sequentially on it.
pub struct Lanes {
    pools: Vec<rayon::ThreadPool>,
}

impl Lanes {
    /// `threads` lanes (at least one).
    pub fn new(threads: usize) -> Result<Lanes> {
        if threads == 0 {
            return Err(Error::Options("lanes need at least one thread".into()));
        }
        let pools = (0..threads)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("e5-lane-{i}"))
                    .build()
                    .map_err(|e| Error::Options(format!("lane thread pool: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Lanes { pools })
    }

    /// Number of lanes.
    pub fn count(&self) -> usize {
        self.pools.len()
    }

    /// Splits items of the given `tokens` and `costs` among the lanes (longest first onto
    /// the least-loaded lane), each group in ascending order; `None` when the batch is too
    /// small or too uneven for lanes to pay.
    pub(crate) fn split(&self, tokens: &[usize], costs: &[f64]) -> Option<Vec<Vec<usize>>> {
        let lanes = self.count().min(tokens.len());
        if lanes < 2 || tokens.iter().sum::<usize>() < MIN_TOKENS_PER_LANE * lanes {
            return None;
        }
        let mut order: Vec<usize> = (0..costs.len()).collect();
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
        let mut groups = vec![Vec::new(); lanes];
        let mut load = vec![0.0f64; lanes];
        for i in order {
            let lane = (0..lanes).min_by(|&a, &b| load[a].total_cmp(&load[b])).expect("lanes >= 2");
            groups[lane].push(i);
            load[lane] += costs[i];
        }
        let mean = load.iter().sum::<f64>() / lanes as f64;
        if load.iter().any(|&l| l > MAX_IMBALANCE * mean) {
            return None;
        }
        groups.iter_mut().for_each(|g| g.sort_unstable());
        Some(groups)
    }

    /// `f(group)` for every group, each on its own lane, all at once; results in group order.
    pub(crate) fn run<T: Send>(&self, groups: &[Vec<usize>], f: impl Fn(&[usize]) -> T + Sync) -> Vec<T> {
        let mut out: Vec<Option<T>> = groups.iter().map(|_| None).collect();
        rayon::scope(|s| {
            for ((group, slot), pool) in groups.iter().zip(out.iter_mut()).zip(&self.pools) {
                let f = &f;
                s.spawn(move |_| *slot = Some(pool.install(|| f(group))));
            }
        });
        out.into_iter().map(|r| r.expect("every lane ran")).collect()
    }

    /// `f(item)` for every item, side by side on the lanes (each lane takes the next item
    /// when it is free); results in item order.
    pub fn map<T: Send, R: Send>(&self, items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
        let n = items.len();
        let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
        let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let lane = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let item = queue[i].lock().unwrap_or_else(|e| e.into_inner()).take().expect("each item is taken once");
            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(f(item));
        };
        rayon::scope(|s| {
            for pool in self.pools.iter().take(n) {
                let lane = &lane;
                s.spawn(move |_| pool.install(lane));
            }
        });
        results
            .into_iter()
            .map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every item ran"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_balanced_batches_and_refuses_uneven_or_small_ones() {
        let lanes = Lanes::new(2).unwrap();
        let tokens = [20, 20, 20, 20, 20, 20, 20, 20];
        let costs: Vec<f64> = tokens.iter().map(|&t| t as f64).collect();
        let g = lanes.split(&tokens, &costs).unwrap();
        assert_eq!(g, vec![vec![0, 2, 4, 6], vec![1, 3, 5, 7]]);
        // One long text among short ones: the long one's lane would be 3× the mean.
        let (tokens, costs) = ([500, 20, 20, 20], [500.0, 20.0, 20.0, 20.0]);
        assert!(lanes.split(&tokens, &costs).is_none());
        // Too few tokens for two lanes.
        assert!(lanes.split(&[30, 30], &[30.0, 30.0]).is_none());
        assert!(lanes.split(&[200], &[200.0]).is_none());
        assert!(Lanes::new(0).is_err());
    }

    #[test]
    fn runs_each_group_on_a_single_threaded_lane() {
        let lanes = Lanes::new(2).unwrap();
        let groups = vec![vec![0, 1], vec![2]];
        let out = lanes.run(&groups, |g| (g.to_vec(), rayon::current_num_threads()));
        assert_eq!(out, vec![(vec![0, 1], 1), (vec![2], 1)]);
    }

    #[test]
    fn map_keeps_item_order_on_single_threaded_lanes() {
        let lanes = Lanes::new(3).unwrap();
        let out = lanes.map((0..10).collect(), |i: usize| (i * i, rayon::current_num_threads()));
        assert_eq!(out, (0..10).map(|i| (i * i, 1)).collect::<Vec<_>>());
        assert!(lanes.map(Vec::<u8>::new(), |b| b).is_empty());
    }
}
