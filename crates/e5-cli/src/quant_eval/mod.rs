//! `e5 quant-eval`: what each precision (f16, bf16, dynamic and static int8, mixed int8/f32)
//! does to the activations of every sub-layer and to the final embeddings, measured against
//! fp32 on real multilingual text; plus cross-lingual retrieval, speed, and a mixed-precision
//! search. Writes report.json, report.md and PNG plots.

mod calibrate;
pub mod metrics;
mod plots;
mod report;
mod retrieval;
mod workers;

use anyhow::{bail, ensure, Context, Result};
use calibrate::Method;
use clap::Args;
use e5::{Input, Model, Options, Precision, Site};
use metrics::{cosine, percentile, ErrAcc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub const DEFAULT_PRECISIONS: &str =
    "fp32,f16,bf16,int8,int8-static-minmax,int8-static-p99.9,int8-static-p99.99,int8-static-mse";

#[derive(Args)]
pub struct QuantEvalArgs {
    /// Model directory (HF layout, fp32 weights).
    #[arg(long, short)]
    model: String,
    /// Precisions to compare with fp32: fp32, f16, bf16, int8 (dynamic), int8-static-<minmax|pN|mse>.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PRECISIONS)]
    precisions: Vec<String>,
    /// JSONL texts {"text", "lang", "kind"} (repeat or comma-separate for several files). kind
    /// query/short → embedded as a query, anything else as a passage.
    #[arg(long, value_delimiter = ',', required = true)]
    texts: Vec<String>,
    /// Parallel retrieval set: JSONL {"query", "passage", "lang"}.
    #[arg(long)]
    pairs: Option<String>,
    /// Output directory (report.json, report.md, *.png).
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Texts used to calibrate static int8 scales (evenly spaced over the inputs, then left out
    /// of the evaluation; all texts, overlapping, when there are no more than this).
    #[arg(long, default_value_t = 64)]
    calibration_texts: usize,
    /// Largest number of sub-layers kept in f32 in the mixed-precision search (0: no search).
    #[arg(long, default_value_t = 4)]
    mixed_k: usize,
    /// The int8 precision the mixed-precision search starts from.
    #[arg(long, default_value = "int8")]
    mixed_base: String,
    /// Evaluated texts whose per-layer activations are compared (evenly spaced subset).
    #[arg(long, default_value_t = 128)]
    layer_texts: usize,
    /// Evaluated texts used to rank sub-layer sensitivity (evenly spaced subset).
    #[arg(long, default_value_t = 16)]
    sensitivity_texts: usize,
    /// Evaluated texts on which each mixed configuration's final cosine is measured.
    #[arg(long, default_value_t = 64)]
    mixed_eval_texts: usize,
    /// Evaluated texts (evenly spaced) whose batch-32 throughput is measured.
    #[arg(long, default_value_t = 64)]
    speed_texts: usize,
    /// Seconds of batch-32 throughput measurement per configuration, split over interleaved
    /// rounds of whole passes (at least one pass each; 0: skip speed).
    #[arg(long, default_value_t = 1.0)]
    bench_seconds: f64,
}

#[derive(Clone, Debug)]
enum Spec {
    Plain(Precision),
    Static(Method),
}

fn valid_names() -> String {
    format!("{DEFAULT_PRECISIONS} (static percentiles: int8-static-p<N>, 0 < N <= 100)")
}

fn parse_spec(name: &str) -> Result<Spec> {
    if let Some(m) = name.strip_prefix("int8-static-") {
        if let Some(m) = Method::parse(m) {
            return Ok(Spec::Static(m));
        }
    } else if let Some(p) = Precision::parse(name) {
        return Ok(Spec::Plain(p));
    }
    bail!("unknown precision {name:?}; valid: {}", valid_names())
}

struct Text {
    text: String,
    lang: String,
    query: bool,
}

impl Text {
    fn input(&self) -> Input<'_> {
        if self.query {
            Input::query(self.text.as_str())
        } else {
            Input::passage(self.text.as_str())
        }
    }
}

/// "zh_Hans" → "Hans"; a language without a script subtag is its own group.
fn script(lang: &str) -> String {
    lang.split_once('_').map(|(_, s)| s.to_string()).unwrap_or_else(|| lang.to_string())
}

fn read_texts(path: &str) -> Result<Vec<Text>> {
    let mut out = Vec::new();
    for (n, v) in crate::io::read_jsonl(path, "texts")? {
        let text = match &v {
            Value::String(s) => s.clone(),
            _ => v
                .get("text")
                .and_then(|t| t.as_str())
                .with_context(|| format!("{path}: line {n}: expected a \"text\" string"))?
                .to_string(),
        };
        let lang = v.get("lang").and_then(|l| l.as_str()).unwrap_or("unknown").to_string();
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        out.push(Text { text, lang, query: matches!(kind, "query" | "short") });
    }
    Ok(out)
}

/// `k` indices spread evenly over `0..n` (all of them if k >= n).
fn spread(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    (0..k).map(|i| i * n / k).collect()
}

/// Consecutive ranges of at most 32 texts and `max_tokens` tokens.
fn chunks(tokens: &[usize], max_tokens: usize) -> Vec<std::ops::Range<usize>> {
    let (mut out, mut start, mut sum) = (Vec::new(), 0, 0);
    for (i, &t) in tokens.iter().enumerate() {
        if i > start && (i - start >= 32 || sum + t > max_tokens) {
            out.push(start..i);
            start = i;
            sum = 0;
        }
        sum += t;
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

/// Per-layer sites, in depth order: the embeddings, then 9 per layer.
pub const LAYER_SITES: [&str; 9] = ["q", "k", "v", "attn_ctx", "attn_out", "attn_norm", "ffn_up", "ffn_down", "output"];

fn site_names(layers: usize) -> Vec<String> {
    let mut v = vec!["embeddings".to_string()];
    for i in 0..layers {
        v.extend(LAYER_SITES.iter().map(|s| format!("layer.{i}.{s}")));
    }
    v
}

/// (site index, column range) for each part of a tapped activation of width `w`.
fn site_parts(site: Site, w: usize) -> Vec<(usize, std::ops::Range<usize>)> {
    let base = |i: usize| 1 + 9 * i;
    match site {
        Site::Embeddings => vec![(0, 0..w)],
        Site::Qkv(i) => {
            let h = w / 3;
            vec![(base(i), 0..h), (base(i) + 1, h..2 * h), (base(i) + 2, 2 * h..w)]
        }
        Site::Attention(i) => vec![(base(i) + 3, 0..w)],
        Site::AttnOut(i) => vec![(base(i) + 4, 0..w)],
        Site::AttentionNorm(i) => vec![(base(i) + 5, 0..w)],
        Site::FfnUp(i) => vec![(base(i) + 6, 0..w)],
        Site::FfnDown(i) => vec![(base(i) + 7, 0..w)],
        Site::Output(i) => vec![(base(i) + 8, 0..w)],
    }
}

struct Config {
    name: String,
    model: Model,
}

fn load(
    dir: &str,
    spec: &Spec,
    keep: Vec<String>,
    scales: &BTreeMap<String, Arc<BTreeMap<String, f32>>>,
    threads: Option<usize>,
    name: &str,
) -> Result<Model> {
    let mut o = Options { threads, keep_fp32: keep, ..Options::default() };
    match spec {
        Spec::Plain(p) => o.precision = *p,
        Spec::Static(_) => {
            o.precision = Precision::Int8;
            o.activation_scales = Some(scales.get(name).context("internal: no calibration")?.clone());
        }
    }
    Model::load(dir, o).with_context(|| format!("loading {dir} as {name}"))
}

/// Texts per `embed` call: enough for the engine to balance its per-thread lanes.
const EMBED_CHUNK: usize = 256;

fn embed_all(model: &Model, inputs: &[Input<'_>]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for c in inputs.chunks(EMBED_CHUNK) {
        let e = model.embed(c)?;
        ensure!(e.len() == c.len(), "expected one vector per input");
        out.extend(e.vectors().map(|v| v.to_vec()));
    }
    Ok(out)
}

/// Interleaved rounds of the speed measurement (best of).
const SPEED_ROUNDS: usize = 2;

/// Batch-32 throughput (texts/s, tokens/s) over `inputs` for about `seconds`: whole passes
/// over its batches, at least one. Every configuration sees the same batches in the same
/// order, and has already embedded texts (no cold first call).
fn throughput(model: &Model, inputs: &[Input<'_>], tokens: &[usize], seconds: f64) -> Result<(f64, f64)> {
    let batches: Vec<(&[Input], usize)> =
        inputs.chunks(32).zip(tokens.chunks(32)).map(|(b, t)| (b, t.iter().sum::<usize>())).collect();
    let start = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || start.elapsed().as_secs_f64() < seconds {
        for (b, _) in &batches {
            model.embed(b)?;
        }
        passes += 1;
    }
    let s = start.elapsed().as_secs_f64();
    let toks: usize = batches.iter().map(|(_, t)| t).sum();
    Ok(((passes * inputs.len()) as f64 / s, (passes * toks) as f64 / s))
}

fn cos_summary(c: &[f64]) -> Value {
    let mean = c.iter().sum::<f64>() / c.len().max(1) as f64;
    json!({ "min": percentile(c, 0.0), "p1": percentile(c, 1.0), "p50": percentile(c, 50.0), "mean": mean, "n": c.len() })
}

/// Site statistics; SQNR is "inf" for identical tensors, and everything is null without tokens.
fn acc_json(a: &ErrAcc) -> Value {
    if a.n == 0 {
        return json!({ "cos_mean": null, "cos_min": null, "rel_l2": null, "sqnr_db": null, "tokens": 0 });
    }
    let db = a.sqnr_db();
    let db = if db == f64::INFINITY { json!("inf") } else { finite(db) };
    json!({ "cos_mean": a.cos_mean(), "cos_min": a.cos_min, "rel_l2": a.rel_l2(), "sqnr_db": db, "tokens": a.n })
}

/// JSON has no NaN or infinity: null.
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

pub fn run(a: QuantEvalArgs) -> Result<()> {
    let t_start = Instant::now();
    // Validate everything cheap before loading anything.
    let mut specs: Vec<(String, Spec)> = Vec::new();
    for n in &a.precisions {
        let n = n.trim().to_ascii_lowercase();
        if !specs.iter().any(|(m, _)| *m == n) {
            specs.push((n.clone(), parse_spec(&n)?));
        }
    }
    if !specs.iter().any(|(n, _)| n == "fp32") {
        specs.insert(0, ("fp32".into(), Spec::Plain(Precision::Fp32)));
    }
    let mixed_base = a.mixed_base.trim().to_ascii_lowercase();
    let base_spec = parse_spec(&mixed_base)?;
    ensure!(
        matches!(base_spec, Spec::Static(_) | Spec::Plain(Precision::Int8)),
        "--mixed-base must be an int8 precision, not {mixed_base:?}"
    );
    let pairs = match &a.pairs {
        Some(p) => Some(retrieval::read_pairs(p)?),
        None => None,
    };
    let mut texts = Vec::new();
    for f in &a.texts {
        texts.extend(read_texts(f)?);
    }
    ensure!(!texts.is_empty(), "no texts in {}", a.texts.join(", "));
    if let Some(n) = a.threads {
        ensure!(n > 0, "--threads must be positive");
        // trace() runs on rayon's global pool.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let log = |m: String| eprintln!("[{:>6.1}s] {m}", t_start.elapsed().as_secs_f64());
    let workers = a.threads.unwrap_or_else(rayon::current_num_threads);

    let reference = Model::load(&a.model, Options { threads: a.threads, ..Options::default() })
        .with_context(|| format!("loading {}", a.model))?;
    let cfg = reference.config().clone();
    let max_tokens = reference.info().max_tokens;
    let inputs: Vec<Input> = texts.iter().map(|t| t.input()).collect();
    let tokens: Vec<usize> =
        inputs.iter().map(|x| Ok(reference.tokenize(x)?.ids.len().min(max_tokens))).collect::<Result<_>>()?;

    // Calibration / evaluation split.
    let n = texts.len();
    let (calib, eval, overlap): (Vec<usize>, Vec<usize>, bool) = if a.calibration_texts == 0 {
        (vec![], (0..n).collect(), false)
    } else if n > a.calibration_texts {
        let c = spread(n, a.calibration_texts);
        let e = (0..n).filter(|i| !c.contains(i)).collect();
        (c, e, false)
    } else {
        ((0..n).collect(), (0..n).collect(), true)
    };
    let needs_calib = specs.iter().any(|(_, s)| matches!(s, Spec::Static(_)))
        || (a.mixed_k > 0 && matches!(base_spec, Spec::Static(_)));
    let mut scales: BTreeMap<String, Arc<BTreeMap<String, f32>>> = BTreeMap::new();
    let mut calib_json = Map::new();
    if needs_calib {
        ensure!(!calib.is_empty(), "static int8 needs --calibration-texts > 0");
        let ci: Vec<Input> = calib.iter().map(|&i| inputs[i].clone()).collect();
        let ct: Vec<usize> = calib.iter().map(|&i| tokens[i]).collect();
        let stats = calibrate::collect(&reference, &ci, &chunks(&ct, 4096))?;
        let mut names: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
        names.push(&mixed_base);
        for name in names {
            if let Ok(Spec::Static(m)) = parse_spec(name) {
                let s = stats.scales(m);
                calib_json.insert(name.to_string(), json!(s));
                scales.insert(name.to_string(), Arc::new(s));
            }
        }
        calib_json.insert(
            "max_abs".into(),
            json!(stats.names.iter().cloned().zip(stats.max.iter().copied()).collect::<BTreeMap<_, _>>()),
        );
        log(format!("calibrated on {} texts ({} tokens)", calib.len(), stats.tokens));
    }

    let configs: Vec<Config> = specs
        .iter()
        .map(|(name, spec)| {
            Ok(Config { name: name.clone(), model: load(&a.model, spec, vec![], &scales, a.threads, name)? })
        })
        .collect::<Result<_>>()?;
    log(format!("loaded {} configurations", configs.len()));

    let e_inputs: Vec<Input> = eval.iter().map(|&i| inputs[i].clone()).collect();
    let e_tokens: Vec<usize> = eval.iter().map(|&i| tokens[i]).collect();
    let e_script: Vec<String> = eval.iter().map(|&i| script(&texts[i].lang)).collect();
    let scripts: Vec<String> = {
        let mut s: Vec<String> = e_script.clone();
        s.sort();
        s.dedup();
        s
    };

    // Per-layer comparison on a subset.
    let layer_idx = spread(eval.len(), a.layer_texts);
    let names = site_names(cfg.layers);
    let groups = scripts.len() + 1;
    let mut accs: Vec<Vec<Vec<ErrAcc>>> = vec![vec![vec![ErrAcc::default(); groups]; names.len()]; configs.len()];
    let l_inputs: Vec<Input> = layer_idx.iter().map(|&i| e_inputs[i].clone()).collect();
    let l_tokens: Vec<usize> = layer_idx.iter().map(|&i| e_tokens[i]).collect();
    let info = reference.info();
    let last_layer = cfg.layers - 1;
    let pool = |x: &[f32], seqs: &[usize]| -> Vec<Vec<f32>> {
        let h = cfg.hidden;
        (0..seqs.len() - 1)
            .map(|s| {
                let rows = seqs[s]..if info.pooling == e5::Pooling::Cls { seqs[s] + 1 } else { seqs[s + 1] };
                let n = rows.len() as f32;
                let mut v = vec![0f32; h];
                for r in rows {
                    v.iter_mut().zip(&x[r * h..(r + 1) * h]).for_each(|(a, b)| *a += b);
                }
                v.iter_mut().for_each(|a| *a /= n);
                if info.normalize {
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|a| *a /= norm);
                }
                v
            })
            .collect()
    };
    // Final embeddings: the per-layer subset's come from its traces (pooled here as the model
    // pools), the other evaluated texts are embedded.
    let mut finals: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); eval.len()]; configs.len()];
    let l_group: Vec<usize> =
        layer_idx.iter().map(|&i| 1 + scripts.iter().position(|s| *s == e_script[i]).unwrap()).collect();
    // Chunks of texts side by side, one per worker (each holds every site's fp32 activations
    // of its chunk, so the chunk shrinks with the worker count to keep memory flat).
    let per_config = || vec![vec![ErrAcc::default(); groups]; names.len()];
    let parts = workers::map(chunks(&l_tokens, 2048 / workers.max(1)), workers, |r| {
        let batch = &l_inputs[r.clone()];
        let mut acc: Vec<Vec<Vec<ErrAcc>>> = (0..configs.len()).map(|_| per_config()).collect();
        let mut pooled_by_config: Vec<Vec<Vec<f32>>> = vec![Vec::new(); configs.len()];
        let mut refs: BTreeMap<usize, (usize, Vec<f32>)> = BTreeMap::new(); // site index → (width, data)
        let (_, seqs) = reference.trace(batch, &mut |site, x| {
            let w = width(&site, &cfg);
            let rows = x.len() / w;
            for (k, cols) in site_parts(site, w) {
                let mut v = Vec::with_capacity(rows * cols.len());
                for row in 0..rows {
                    v.extend_from_slice(&x[row * w + cols.start..row * w + cols.end]);
                }
                refs.insert(k, (cols.len(), v));
            }
        })?;
        if let Some((_, v)) = refs.get(&(1 + 9 * last_layer + 8)) {
            pooled_by_config[0] = pool(v, &seqs);
        }
        let tok_group: Vec<usize> = (0..seqs.len() - 1)
            .flat_map(|s| std::iter::repeat_n(l_group[r.start + s], seqs[s + 1] - seqs[s]))
            .collect();
        for (ci, c) in configs.iter().enumerate().skip(1) {
            let acc = &mut acc[ci];
            let pooled = &mut pooled_by_config[ci];
            c.model.trace(batch, &mut |site, x| {
                if site == Site::Output(last_layer) {
                    *pooled = pool(x, &seqs);
                }
                let w = width(&site, &cfg);
                for (k, cols) in site_parts(site, w) {
                    let (rw, rv) = &refs[&k];
                    for (row, &g) in tok_group.iter().enumerate() {
                        let xs = &x[row * w + cols.start..row * w + cols.end];
                        acc[k][g].add_row(metrics::row_stats(xs, &rv[row * rw..(row + 1) * rw]));
                    }
                }
            })?;
        }
        // fp32 against itself (exactly 0 error) keeps the report uniform.
        for (k, (rw, rv)) in &refs {
            for (row, &g) in tok_group.iter().enumerate() {
                let rs = &rv[row * rw..(row + 1) * rw];
                acc[0][*k][g].add(rs, rs);
            }
        }
        Ok((r, acc, pooled_by_config))
    })?;
    for (r, acc, pooled_by_config) in parts {
        for (ci, (acc, pooled)) in acc.into_iter().zip(pooled_by_config).enumerate() {
            for (total, part) in accs[ci].iter_mut().flatten().zip(acc.iter().flatten()) {
                total.merge(part);
            }
            for (s, v) in pooled.into_iter().enumerate() {
                finals[ci][layer_idx[r.start + s]] = v;
            }
        }
    }
    for acc in accs.iter_mut() {
        for site in acc.iter_mut() {
            let mut all = ErrAcc::default();
            for g in &site[1..] {
                all.merge(g);
            }
            site[0] = all;
        }
    }
    log(format!("per-layer comparison on {} texts ({} tokens)", layer_idx.len(), l_tokens.iter().sum::<usize>()));
    let rest: Vec<usize> = (0..eval.len()).filter(|i| finals[0][*i].is_empty()).collect();
    let r_inputs: Vec<Input> = rest.iter().map(|&i| e_inputs[i].clone()).collect();
    for (ci, c) in configs.iter().enumerate() {
        for (i, v) in rest.iter().zip(embed_all(&c.model, &r_inputs)?) {
            finals[ci][*i] = v;
        }
    }
    // Trace pooling and embed() agree (checked on a few texts).
    let check: Vec<usize> = layer_idx.iter().copied().take(4).collect();
    let c_in: Vec<Input> = check.iter().map(|&i| e_inputs[i].clone()).collect();
    let trace_vs_embed = embed_all(&reference, &c_in)?
        .iter()
        .zip(&check)
        .map(|(v, &i)| v.iter().zip(&finals[0][i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max))
        .fold(0f32, f32::max);
    ensure!(trace_vs_embed < 1e-3, "internal: pooled trace differs from embed() by {trace_vs_embed}");
    log(format!(
        "final embeddings of {} texts × {} precisions ({} embedded, the rest from the traces)",
        eval.len(),
        configs.len(),
        rest.len()
    ));
    let mut final_json = Map::new();
    for (k, c) in configs.iter().enumerate() {
        let cos: Vec<f64> = (0..eval.len()).map(|i| cosine(&finals[k][i], &finals[0][i])).collect();
        let mut by = Map::new();
        for s in &scripts {
            let v: Vec<f64> = (0..eval.len()).filter(|&i| e_script[i] == *s).map(|i| cos[i]).collect();
            by.insert(s.clone(), cos_summary(&v));
        }
        let mut j = cos_summary(&cos);
        j["by_script"] = Value::Object(by);
        final_json.insert(c.name.clone(), j);
    }

    let mut layers_json = Map::new();
    for (ci, c) in configs.iter().enumerate() {
        let mut m = Map::new();
        for (k, name) in names.iter().enumerate() {
            let mut j = acc_json(&accs[ci][k][0]);
            let by: Map<String, Value> =
                scripts.iter().enumerate().map(|(g, s)| (s.clone(), acc_json(&accs[ci][k][g + 1]))).collect();
            j["by_script"] = Value::Object(by);
            m.insert(name.clone(), j);
        }
        layers_json.insert(c.name.clone(), Value::Object(m));
    }

    // Retrieval.
    let mut retrieval_json = Map::new();
    if let Some(pairs) = &pairs {
        let mut uq: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
        uq.sort();
        uq.dedup();
        let q_inputs: Vec<Input> = uq.iter().map(|q| Input::query(*q)).collect();
        let p_inputs: Vec<Input> = pairs.iter().map(|p| Input::passage(p.passage.as_str())).collect();
        let mut sims: Vec<Vec<Vec<f64>>> = Vec::new();
        for c in &configs {
            let q = embed_all(&c.model, &q_inputs)?;
            let p = embed_all(&c.model, &p_inputs)?;
            let s: Vec<Vec<f64>> = pairs
                .iter()
                .map(|pr| {
                    let qi = uq.binary_search(&pr.query.as_str()).unwrap();
                    p.iter().map(|pv| pv.iter().zip(&q[qi]).map(|(a, b)| (*a as f64) * (*b as f64)).sum()).collect()
                })
                .collect();
            sims.push(s);
        }
        for (ci, c) in configs.iter().enumerate() {
            let r = retrieval::evaluate(pairs, &sims[ci], &sims[0]);
            let sj = |s: &retrieval::Scores| json!({ "acc1": s.acc1, "ndcg10": s.ndcg10, "tau": s.tau, "n": s.n });
            let mut j = sj(&r.overall);
            j["by_lang"] = Value::Object(r.by_lang.iter().map(|(l, s)| (l.clone(), sj(s))).collect());
            retrieval_json.insert(c.name.clone(), j);
        }
        log(format!("retrieval on {} pairs ({} distinct queries)", pairs.len(), uq.len()));
    }

    // Speed, on an evenly spaced subset of the evaluated texts (whole batches of 32).
    let speed_idx = spread(eval.len(), a.speed_texts);
    let sp_inputs: Vec<Input> = speed_idx.iter().map(|&i| e_inputs[i].clone()).collect();
    let sp_tokens: Vec<usize> = speed_idx.iter().map(|&i| e_tokens[i]).collect();
    let mut speed_json = Map::new();
    if a.bench_seconds > 0.0 {
        // Configurations take turns, SPEED_ROUNDS times, and keep their best round: the
        // machine's speed drifts over seconds, and turns expose them all to the same drift.
        let mut best = vec![(0.0f64, 0.0f64); configs.len()];
        for _ in 0..SPEED_ROUNDS {
            for (c, best) in configs.iter().zip(best.iter_mut()) {
                let r = throughput(&c.model, &sp_inputs, &sp_tokens, a.bench_seconds / SPEED_ROUNDS as f64)?;
                if r.0 > best.0 {
                    *best = r;
                }
            }
        }
        for (c, (tps, toks)) in configs.iter().zip(best) {
            speed_json.insert(c.name.clone(), json!({ "texts_per_s": tps, "tokens_per_s": toks }));
        }
        log("speed measured".into());
    }
    drop(configs);

    // Mixed precision search.
    let mut mixed_json = Value::Null;
    let mixed_idx = spread(eval.len(), a.mixed_eval_texts);
    if a.mixed_k > 0 {
        let sens = spread(eval.len(), a.sensitivity_texts);
        let s_inputs: Vec<Input> = sens.iter().map(|&i| e_inputs[i].clone()).collect();
        // (1 − mean cosine, min, mean) of vectors for the evaluated texts `idx`, against fp32.
        let stats = |idx: &[usize], vectors: &[&[f32]]| -> (f64, f64, f64) {
            let cos: Vec<f64> = idx.iter().zip(vectors).map(|(&i, v)| cosine(v, &finals[0][i])).collect();
            let mean = cos.iter().sum::<f64>() / cos.len() as f64;
            (1.0 - mean, percentile(&cos, 0.0), mean)
        };
        let err = |m: &Model, idx: &[usize], inp: &[Input]| -> Result<(f64, f64, f64)> {
            let vectors = embed_all(m, inp)?;
            Ok(stats(idx, &vectors.iter().map(Vec::as_slice).collect::<Vec<_>>()))
        };
        let m_inputs: Vec<Input> = mixed_idx.iter().map(|&i| e_inputs[i].clone()).collect();
        // The base itself (k = 0) was evaluated above when it is one of the precisions; its
        // vectors are bit-identical whatever the batch, so they are reused.
        let base_ci = specs.iter().position(|(n, _)| *n == mixed_base);
        let evaluated =
            |ci: usize, idx: &[usize]| stats(idx, &idx.iter().map(|&i| finals[ci][i].as_slice()).collect::<Vec<_>>());
        let base_err = match base_ci {
            Some(ci) => evaluated(ci, &sens).0,
            None => err(&load(&a.model, &base_spec, vec![], &scales, a.threads, &mixed_base)?, &sens, &s_inputs)?.0,
        };
        // Independent candidates side by side, one single-threaded model per worker.
        let mut contrib = workers::map(calibrate::sub_layer_names(cfg.layers), workers, |name| {
            let m = load(&a.model, &base_spec, vec![name.clone()], &scales, Some(1), &mixed_base)?;
            let (e, _, _) = err(&m, &sens, &s_inputs)?;
            Ok((name, base_err - e))
        })?;
        contrib.sort_by(|x, y| y.1.total_cmp(&x.1));
        log(format!("sensitivity of {} sub-layers on {} texts", contrib.len(), sens.len()));
        let mut cfgs = Vec::new();
        for k in 0..=a.mixed_k.min(contrib.len()) {
            let keep: Vec<String> = contrib[..k].iter().map(|c| c.0.clone()).collect();
            let measured_speed = speed_json.get(&mixed_base).and_then(|j| j["texts_per_s"].as_f64());
            let (cmin, cmean, tps) = match (k, base_ci) {
                (0, Some(ci)) => {
                    let (_, cmin, cmean) = evaluated(ci, &mixed_idx);
                    (cmin, cmean, measured_speed.unwrap_or(f64::NAN))
                }
                _ => {
                    let m = load(&a.model, &base_spec, keep.clone(), &scales, a.threads, &mixed_base)?;
                    let (_, cmin, cmean) = err(&m, &mixed_idx, &m_inputs)?;
                    let tps = if a.bench_seconds > 0.0 {
                        throughput(&m, &sp_inputs, &sp_tokens, a.bench_seconds)?.0
                    } else {
                        f64::NAN
                    };
                    (cmin, cmean, tps)
                }
            };
            cfgs.push(
                json!({ "k": k, "keep_fp32": keep, "cos_min": cmin, "cos_mean": cmean, "texts_per_s": finite(tps) }),
            );
        }
        log(format!("mixed configurations k = 0..={}", a.mixed_k));
        mixed_json = json!({
            "base": mixed_base,
            "sensitivity_texts": sens.len(),
            "base_error": base_err,
            "sensitivity": contrib.iter().map(|(n, d)| json!({ "sub_layer": n, "error_reduction": d })).collect::<Vec<_>>(),
            "configs": cfgs,
        });
    }

    let mut rep = json!({
        "model": a.model,
        "threads": a.threads.unwrap_or_else(rayon::current_num_threads),
        "isa": reference.info().isa.to_string(),
        "layers_count": cfg.layers,
        "precisions": specs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "texts": {
            "files": a.texts,
            "total": n,
            "calibration": calib.len(),
            "calibration_overlaps_evaluation": overlap,
            "evaluated": eval.len(),
            "per_layer": layer_idx.len(),
            "per_layer_tokens": l_tokens.iter().sum::<usize>(),
            "trace_vs_embed_max_abs_diff": trace_vs_embed,
            "mixed_eval": mixed_idx.len(),
            "speed": speed_idx.len(),
        },
        "pairs": a.pairs,
        "sites": names,
        "calibration": calib_json,
        "final": final_json,
        "layers": layers_json,
        "retrieval": retrieval_json,
        "speed": speed_json,
        "mixed": mixed_json,
    });
    report::pareto(&mut rep);
    rep["elapsed_s"] = json!(t_start.elapsed().as_secs_f64());
    std::fs::write(a.out.join("report.json"), serde_json::to_string_pretty(&rep)?)?;
    report::plots(&rep, &a.out)?;
    std::fs::write(a.out.join("report.md"), report::markdown(&rep))?;
    log(format!("wrote {}", a.out.display()));
    Ok(())
}

/// Width of a tapped activation.
fn width(site: &Site, cfg: &e5::ModelConfig) -> usize {
    match site {
        Site::Qkv(_) => 3 * cfg.hidden,
        Site::FfnUp(_) => cfg.intermediate,
        _ => cfg.hidden,
    }
}
