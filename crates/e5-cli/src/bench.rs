//! `e5 bench`: latency and throughput on a frozen workload, as JSON.

use crate::io::read_all;
use crate::model_args::ModelArgs;
use anyhow::{ensure, Context, Result};
use clap::Args;
use e5::{memory, Input};
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL of {"text", "kind": "query"|"passage"} (default: benches/workload.jsonl).
    #[arg(long, default_value = "benches/workload.jsonl")]
    workload: String,
    /// Seconds spent in each measured phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Texts per call in the throughput phases.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

struct Workload {
    queries: Vec<String>,
    passages: Vec<String>,
}

fn read_workload(path: &str) -> Result<Workload> {
    let bytes = read_all(path)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{path}: invalid UTF-8"))?;
    let (mut queries, mut passages) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{path}: line {}: malformed JSON", i + 1))?;
        let t = v["text"].as_str().with_context(|| format!("{path}: line {}: no \"text\"", i + 1))?.to_string();
        match v["kind"].as_str() {
            Some("passage") => passages.push(t),
            _ => queries.push(t),
        }
    }
    ensure!(!queries.is_empty() && !passages.is_empty(), "{path}: the workload needs queries and passages");
    Ok(Workload { queries, passages })
}

/// Runs `f` over `items` round-robin until `seconds` have passed (at least once over all);
/// returns per-call seconds.
fn timed<T>(items: &[T], seconds: f64, mut f: impl FnMut(&T)) -> Vec<f64> {
    let (start, mut out) = (Instant::now(), Vec::new());
    let mut i = 0;
    while i < items.len() || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        f(&items[i % items.len()]);
        out.push(t.elapsed().as_secs_f64());
        i += 1;
    }
    out
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn run(a: BenchArgs) -> Result<()> {
    ensure!(a.batch_size > 0, "--batch-size must be positive");
    ensure!(a.seconds > 0.0 && a.seconds <= 3600.0, "--seconds {} must lie in (0, 3600]", a.seconds);
    let w = read_workload(&a.workload)?;
    let model = a.model.load(a.model.options())?;
    let info = model.info();
    let threads = a.model.threads.unwrap_or_else(rayon::current_num_threads);
    let queries: Vec<Input> = w.queries.iter().map(|t| Input::query(t.as_str())).collect();
    let passages: Vec<Input> = w.passages.iter().map(|t| Input::passage(t.as_str())).collect();
    let tokens = |inputs: &[Input]| -> Result<Vec<usize>> {
        inputs.iter().map(|x| Ok(model.tokenize(x)?.ids.len().min(info.max_tokens))).collect()
    };
    let (qt, pt) = (tokens(&queries)?, tokens(&passages)?);
    let flops = |lens: &[usize]| lens.iter().map(|&l| model.config().forward_flops(l)).sum::<f64>();
    let embed = |batch: &[Input]| {
        model.embed(batch).expect("embedding the workload");
    };
    // Warm-up: every code path and page once.
    embed(&queries[..queries.len().min(a.batch_size)]);
    embed(&passages[..passages.len().min(4)]);

    let mut lat = timed(&queries, a.seconds, |q| embed(std::slice::from_ref(q)));
    let q_b1_flops = flops(&qt) / qt.len() as f64;
    let (median, p90) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.9));

    let throughput = |inputs: &[Input], lens: &[usize]| {
        let batches: Vec<(&[Input], &[usize])> = inputs.chunks(a.batch_size).zip(lens.chunks(a.batch_size)).collect();
        let (mut texts, mut toks, mut fl, mut secs) = (0usize, 0usize, 0.0, 0.0);
        let times = timed(&batches, a.seconds, |(b, _)| embed(b));
        for (k, t) in times.iter().enumerate() {
            let (b, l) = batches[k % batches.len()];
            texts += b.len();
            toks += l.iter().sum::<usize>();
            fl += flops(l);
            secs += t;
        }
        (texts as f64 / secs, toks as f64 / secs, fl / secs / 1e9)
    };
    let (qps, q_tps, q_gflops) = throughput(&queries, &qt);
    let (pps, p_tps, p_gflops) = throughput(&passages, &pt);
    // Cold weights: the mapped table evicted before each query (as a pager would). Last, so
    // that no warm phase re-reads the evicted table pages from storage.
    let mut cold: Vec<f64> = queries
        .iter()
        .take(5)
        .map(|q| {
            model.evict_mapped_weights().expect("evicting the mapped weights");
            let t = Instant::now();
            embed(std::slice::from_ref(q));
            t.elapsed().as_secs_f64()
        })
        .collect();
    let cold_median = percentile(&mut cold, 0.5);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let kern = e5_kernels::Kernels::get(info.isa)?;
    let peak = pool.install(|| kern.fma_peak_gflops(threads, 0.5));
    let b1_gflops = q_b1_flops / median / 1e9;
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let pct = |g: f64| (g / peak * 1000.0).round() / 10.0;
    let mb = |b: Option<usize>| b.map(|b| b as f64 / (1 << 20) as f64);
    let out = serde_json::json!({
        "model": info.dir.display().to_string(),
        "precision": info.precision.name(),
        "int8_kernel": info.int8_kernel,
        "threads": threads,
        "isa": info.isa.to_string(),
        "dispatch": kern.dispatch_reason(),
        "load_ms": info.load_time.as_secs_f64() * 1e3,
        "query_latency_ms": { "median": median * 1e3, "p90": p90 * 1e3, "n": lat.len() },
        "cold_query_latency_ms": { "median": cold_median * 1e3, "n": cold.len(), "residency": a.model.residency_name() },
        "queries_per_s_batch32": qps,
        "passages_per_s_batch32": pps,
        "tokens_per_s": { "queries_batch32": q_tps, "passages_batch32": p_tps },
        "gflops": { "query_b1": b1_gflops, "queries_b32": q_gflops, "passages_b32": p_gflops },
        "fma_peak_gflops": peak,
        "percent_of_peak": { "query_b1": pct(b1_gflops), "queries_b32": pct(q_gflops), "passages_b32": pct(p_gflops) },
        "peak_rss_mb": mb(memory::peak_resident_bytes()),
        "rss_anon_mb": mb(memory::anonymous_resident_bytes()),
        "rss_file_mb": mb(memory::file_resident_bytes()),
        "rss_huge_pages_mb": mb(memory::huge_page_bytes()),
        "workload": { "queries": queries.len(), "passages": passages.len(), "mean_query_tokens": mean(&qt), "mean_passage_tokens": mean(&pt) },
    });
    crate::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&out)?))
}
