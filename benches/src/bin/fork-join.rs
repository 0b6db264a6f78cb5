//! Cost of a fork-join after a serial step: with rayon's idle policy; with the other
//! workers kept spinning by `e5_kernels::with_hot_workers` but the region a rayon parallel
//! loop; and with the region handed to them by `e5_kernels::for_each_index` (what a
//! cooperative forward does). Each region is 16 tasks of `task` µs after `gap` µs of serial
//! work; the overhead is the time per region beyond `gap + 16·task / threads`, median of the
//! rounds.
//!
//! `cargo run --release -p e5-benches --bin fork-join -- [threads] [rounds]`

use rayon::prelude::*;
use std::time::{Duration, Instant};

const TASKS: usize = 16;
const REGIONS: usize = 200;

fn spin(us: f64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs_f64(us * 1e-6) {
        std::hint::spin_loop();
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("numeric argument"));
    let threads = args.next().unwrap_or(2);
    let rounds = args.next().unwrap_or(5);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    println!("threads {threads} | {TASKS} tasks per region | overhead per region, µs (median of {rounds} rounds)");
    println!("| gap µs | task µs | rayon idle policy | hot workers, rayon loop | hot workers, for_each_index |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (gap, task) in [(0.0, 5.0), (10.0, 5.0), (30.0, 5.0), (100.0, 5.0), (10.0, 2.0)] {
        // A run of regions, each a rayon loop or a `for_each_index` job.
        let regions = |team: bool| {
            for _ in 0..REGIONS {
                spin(gap);
                match team {
                    true => e5_kernels::for_each_index(TASKS, |_| spin(task)),
                    false => (0..TASKS).into_par_iter().for_each(|_| spin(task)),
                }
            }
        };
        let ideal = gap + TASKS.div_ceil(threads) as f64 * task;
        let (mut plain, mut hot, mut team) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (way, out) in [(0, &mut plain), (1, &mut hot), (2, &mut team)] {
                let t = Instant::now();
                pool.install(|| match way {
                    0 => regions(false),
                    1 => e5_kernels::with_hot_workers(|| regions(false)),
                    _ => e5_kernels::with_hot_workers(|| regions(true)),
                });
                out.push(t.elapsed().as_secs_f64() * 1e6 / REGIONS as f64 - ideal);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!("| {gap} | {task} | {:.1} | {:.1} | {:.1} |", median(&mut plain), median(&mut hot), median(&mut team));
    }
}
