//! `e5 quant-eval`: what each precision (f16, bf16, dynamic and static int8, mixed int8/f32)
//! does to the activations of every sub-layer and to the final embeddings, measured against
//! fp32 on real multilingual text; plus cross-lingual retrieval, speed, and a mixed-precision
//! search. Writes report.json, report.md and the plots (PNG and SVG, drawn with `plotters`).
//!
//! Stages, each a function returning what it measured: calibrate → per-layer error →
//! final embeddings → retrieval → timing → mixed-precision search → report.

mod calibrate;
pub(crate) mod corpus;
mod finals;
mod layers;
pub mod metrics;
mod mixed;
mod plots;
mod report;
mod retrieval;
mod timing;
mod vectors;

use anyhow::{bail, ensure, Context, Result};
use calibrate::{Calibration, Method};
use clap::Args;
use corpus::{spread, CalibrationSource, Corpus, Text};
use e5::quantize::{quantize_model, smooth, QuantizeOptions};
use e5::{Lanes, Model, Options, Precision};
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
    /// Precisions to compare with fp32: fp32, f16, bf16, int8 (dynamic), int8-static-<minmax|pN|mse>,
    /// int8-static-smooth (SmoothQuant factors searched per sub-layer; rows outside the
    /// calibrated range take their own scale).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PRECISIONS)]
    precisions: Vec<String>,
    /// JSONL texts {"text", "lang", "kind"} (repeat or comma-separate for several files). kind
    /// query/short → embedded as a query, anything else as a passage.
    #[arg(long, value_delimiter = ',', required = true)]
    texts: Vec<String>,
    /// Parallel retrieval set: JSONL {"query", "passage", "lang"}. Also measures int8 and
    /// binary document vectors, with rescoring (ranges from the calibration texts).
    #[arg(long)]
    pairs: Option<String>,
    /// Output directory (report.json, report.md, *.png, *.svg).
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Texts used to calibrate static int8 scales (evenly spaced over the inputs, then left out
    /// of the evaluation; all texts, overlapping, when there are no more than this). Default 64;
    /// 0 with --calibration-file.
    #[arg(long)]
    calibration_texts: Option<usize>,
    /// JSONL calibration texts (the --texts format) for every calibrated precision (static and
    /// smoothed int8 scales, GPTQ Hessians, int8 vector ranges) instead of --calibration-texts
    /// of the inputs; every --texts text is then evaluated.
    #[arg(long)]
    calibration_file: Option<String>,
    /// int8-static-smooth: multiplier (≥ 1) on every searched scale: rows up to that many times
    /// the calibration texts' range keep the static scale.
    #[arg(long, default_value_t = 1.0)]
    smooth_headroom: f32,
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
    /// Static int8 with smoothing (`e5::quantize::smooth`).
    Smooth,
    /// An int4 file written by `e5 quantize` into `{out}/models/{name}` and loaded from there:
    /// weights from GPTQ (`e5::quantize::gptq`, `-gptq`) or rounded to nearest, the word
    /// table int4 (`-int4-table`) or int8.
    File {
        precision: Precision,
        gptq: bool,
        int4_table: bool,
    },
}

/// The smoothed static int8 precision.
const SMOOTH: &str = "int8-static-smooth";

fn parse_spec(name: &str) -> Result<Spec> {
    if name == SMOOTH {
        return Ok(Spec::Smooth);
    }
    let (base, int4_table) = name.strip_suffix("-int4-table").map_or((name, false), |b| (b, true));
    let (base, gptq) = base.strip_suffix("-gptq").map_or((base, false), |b| (b, true));
    if let (Some(precision), true) = (Precision::parse(base), gptq || int4_table) {
        if precision.int4_group().is_some() {
            return Ok(Spec::File { precision, gptq, int4_table });
        }
    }
    if let Some(m) = name.strip_prefix("int8-static-") {
        if let Some(m) = Method::parse(m) {
            return Ok(Spec::Static(m));
        }
    } else if let Some(p) = Precision::parse(name) {
        return Ok(Spec::Plain(p));
    }
    bail!(
        "unknown precision {name:?}; valid: {DEFAULT_PRECISIONS}, {SMOOTH}, int4-g32, int4-g64, int4-g128, int4-g<N>[-gptq][-int4-table] (static percentiles: int8-static-p<N>, 0 < N <= 100)"
    )
}

/// The precisions compared (fp32, the reference, first) and the mixed search's base.
struct Specs {
    list: Vec<(String, Spec)>,
    mixed_base: (String, Spec),
}

impl Specs {
    /// Validates the names before anything is loaded.
    fn parse(a: &QuantEvalArgs) -> Result<Specs> {
        let mut list: Vec<(String, Spec)> = vec![("fp32".into(), Spec::Plain(Precision::Fp32))];
        for n in &a.precisions {
            let n = n.trim().to_ascii_lowercase();
            if !list.iter().any(|(m, _)| *m == n) {
                list.push((n.clone(), parse_spec(&n)?));
            }
        }
        let base = a.mixed_base.trim().to_ascii_lowercase();
        let spec = parse_spec(&base)?;
        ensure!(
            matches!(spec, Spec::Static(_) | Spec::Smooth | Spec::Plain(Precision::Int8))
                || matches!(spec, Spec::Plain(p) if p.int4_group().is_some()),
            "--mixed-base must be an int8 or int4 precision, not {base:?}"
        );
        Ok(Specs { list, mixed_base: (base, spec) })
    }

    /// Whether any precision needs calibrated scales.
    fn needs_calibration(&self, mixed_search: bool) -> bool {
        self.list.iter().any(|(_, s)| matches!(s, Spec::Static(_) | Spec::Smooth))
            || (mixed_search && matches!(self.mixed_base.1, Spec::Static(_) | Spec::Smooth))
    }

    /// The precisions quant-eval writes as files, by name.
    fn files(&self) -> Vec<(String, Precision, bool, bool)> {
        let file = |(n, s): &(String, Spec)| match *s {
            Spec::File { precision, gptq, int4_table } => Some((n.clone(), precision, gptq, int4_table)),
            _ => None,
        };
        self.list.iter().filter_map(file).collect()
    }

    /// Whether any precision is smoothed static int8.
    fn needs_smoothing(&self, mixed_search: bool) -> bool {
        self.list.iter().any(|(_, s)| matches!(s, Spec::Smooth))
            || (mixed_search && matches!(self.mixed_base.1, Spec::Smooth))
    }

    /// The static int8 precisions, by name (the mixed base included).
    fn statics(&self) -> Vec<(String, Method)> {
        let mut out: Vec<(String, Method)> = Vec::new();
        for (n, s) in self.list.iter().chain([&self.mixed_base]) {
            if let (Spec::Static(m), false) = (s, out.iter().any(|(o, _)| o == n)) {
                out.push((n.clone(), *m));
            }
        }
        out
    }
}

struct Config {
    name: String,
    model: Model,
}

/// Loads the model as precision `name` with `keep` sub-layers in f32. With no thread pool
/// of its own, it runs on the caller's: rayon's global pool (`--threads`), or a lane.
fn load(dir: &str, (name, spec): (&str, &Spec), keep: Vec<String>, cal: &Calibration) -> Result<Model> {
    let mut o = Options { keep_fp32: keep, ..Options::default() };
    match spec {
        Spec::Plain(p) => o.precision = *p,
        Spec::Static(_) => {
            o.precision = Precision::Int8;
            o.activation_scales = Some(Arc::new(cal.scales.get(name).context("internal: no calibration")?.clone()));
        }
        Spec::Smooth => o = cal.smooth.as_ref().context("internal: no smoothing calibration")?.options(o),
        Spec::File { .. } => {
            ensure!(o.keep_fp32.is_empty(), "internal: a written file keeps no sub-layer in f32");
            let file = cal.file_dirs.get(name).context("internal: no written file")?;
            return Model::load(file, Options::default()).with_context(|| format!("loading {}", file.display()));
        }
    }
    Model::load(dir, o).with_context(|| format!("loading {dir} as {name}"))
}

pub fn run(a: QuantEvalArgs) -> Result<()> {
    let clock = Instant::now();
    let log = |m: String| eprintln!("[{:>6.1}s] {m}", clock.elapsed().as_secs_f64());
    let (specs, pairs, texts, calibration_texts) = read_inputs(&a)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let reference = Model::load(&a.model, Options::default()).with_context(|| format!("loading {}", a.model))?;
    let source = match &calibration_texts {
        Some(t) => CalibrationSource::Separate(t),
        None => CalibrationSource::Spread(a.calibration_texts.unwrap_or(64)),
    };
    let corpus = Corpus::new(&texts, &reference, source)?;
    let mut cal = Calibration::default();
    if specs.needs_calibration(a.mixed_k > 0) {
        ensure!(!corpus.calibration_inputs.is_empty(), "static int8 needs --calibration-texts > 0");
        cal = calibrate::stage(&reference, &corpus, &specs.statics())?;
        log(format!("calibrated on {} texts ({} tokens)", corpus.calibration_inputs.len(), cal.tokens));
    }
    if specs.needs_smoothing(a.mixed_k > 0) {
        let smooth = {
            let search = smooth::Search { headroom: a.smooth_headroom, ..Default::default() };
            smooth::calibrate(&reference, &corpus.calibration_inputs, &search)?
        };
        log(format!("smoothing calibrated on {} rows per sub-layer", smooth.sampled_rows));
        let out = smooth.out_of_range(&reference, &corpus.inputs)?;
        log(format!("{:.2}% of the evaluated rows leave the smoothed static range", 100.0 * out.fraction));
        cal.smooth_out_of_range = Some(out);
        cal.scales.insert(SMOOTH.into(), smooth.activation_scales());
        cal.smooth = Some(smooth);
    }
    let files = specs.files();
    let mut hessians = None;
    if files.iter().any(|f| f.2) {
        ensure!(!corpus.calibration_inputs.is_empty(), "GPTQ needs --calibration-texts > 0");
        let h = Arc::new(e5::quantize::gptq::calibrate(&reference, &corpus.calibration_inputs, 16)?);
        log(format!("GPTQ Hessians from {} calibration tokens", h.tokens));
        cal.gptq_tokens = Some(h.tokens);
        hessians = Some(h);
    }
    for (name, precision, gptq, int4_word_table) in files {
        let dir = a.out.join("models").join(&name);
        let gptq = hessians.clone().filter(|_| gptq);
        let options = QuantizeOptions { precision, overwrite: true, gptq, int4_word_table, ..Default::default() };
        quantize_model(std::path::Path::new(&a.model), &dir, &options)
            .with_context(|| format!("writing {name} to {}", dir.display()))?;
        log(format!("wrote {name} to {}", dir.display()));
        cal.file_dirs.insert(name, dir);
    }
    let configs: Vec<Config> = specs
        .list
        .iter()
        .map(|(n, s)| Ok(Config { name: n.clone(), model: load(&a.model, (n, s), vec![], &cal)? }))
        .collect::<Result<_>>()?;
    log(format!("loaded {} configurations", configs.len()));
    let lanes = Lanes::new(rayon::current_num_threads())?;
    let m = measure(&a, &reference, &corpus, &configs, pairs.as_deref(), &lanes, &log)?;
    let base_config = configs.iter().position(|c| c.name == specs.mixed_base.0);
    drop(configs);
    let (base, base_spec) = (&specs.mixed_base.0, &specs.mixed_base.1);
    let search = mixed::Search {
        base: base.clone(),
        base_config,
        load: &|keep| load(&a.model, (base, base_spec), keep, &cal),
        finals: &m.finals,
        sensitivity: with_inputs(&corpus, spread(corpus.inputs.len(), a.sensitivity_texts)),
        evaluation: with_inputs(&corpus, spread(corpus.inputs.len(), a.mixed_eval_texts)),
        speed: (corpus.subset(&m.speed_idx).0, corpus.subset(&m.speed_idx).1, m.speed.get(base).copied()),
        bench_seconds: a.bench_seconds,
    };
    let mixed = match a.mixed_k > 0 {
        true => Some(search.run(reference.config().layers, a.mixed_k, &lanes, &log)?),
        false => None,
    };
    let texts = report::TextCounts {
        files: &a.texts,
        total: corpus.total,
        calibration: corpus.calibration_inputs.len(),
        calibration_file: a.calibration_file.as_deref(),
        calibration_overlaps_evaluation: corpus.calibration_overlaps,
        evaluated: corpus.inputs.len(),
        per_layer: m.traced.idx.len(),
        per_layer_tokens: m.traced.tokens,
        trace_vs_embed_max_abs_diff: m.finals.trace_vs_embed,
        mixed_eval: search.evaluation.0.len(),
        speed: m.speed_idx.len(),
    };
    let report = report::Report {
        model: &a.model,
        threads: rayon::current_num_threads(),
        isa: reference.info().isa.to_string(),
        layers_count: reference.config().layers,
        precisions: specs.list.iter().map(|(n, _)| n.clone()).collect(),
        texts,
        pairs: &a.pairs,
        sites: &m.traced.names,
        calibration: &cal,
        finals: m.final_cos,
        layers: &m.traced.errors,
        retrieval: m.retrieval,
        vectors: m.vectors,
        weights_bytes: m.weights_bytes,
        speed: m.speed,
        mixed,
    };
    report::write(&report, &a.out, clock.elapsed().as_secs_f64())?;
    log(format!("wrote {}", a.out.display()));
    Ok(())
}

/// The precisions, the pairs, the texts and the `--calibration-file` texts, validated before
/// anything is loaded.
type Inputs = (Specs, Option<Vec<retrieval::Pair>>, Vec<Text>, Option<Vec<Text>>);

fn read_inputs(a: &QuantEvalArgs) -> Result<Inputs> {
    let specs = Specs::parse(a)?;
    let pairs = a.pairs.as_deref().map(retrieval::read_pairs).transpose()?;
    let mut texts: Vec<Text> = Vec::new();
    for f in &a.texts {
        texts.extend(corpus::read_texts(f)?);
    }
    ensure!(!texts.is_empty(), "no texts in {}", a.texts.join(", "));
    let calibration = match &a.calibration_file {
        Some(f) => {
            ensure!(
                a.calibration_texts.is_none_or(|n| n == 0),
                "--calibration-file {f} replaces --calibration-texts: give one of them"
            );
            let t = corpus::read_texts(f).context("reading --calibration-file")?;
            ensure!(!t.is_empty(), "--calibration-file {f} holds no texts");
            Some(t)
        }
        None => None,
    };
    if let Some(n) = a.threads {
        ensure!(n > 0, "--threads must be positive");
        // Every model runs on rayon's global pool (see `load`).
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    Ok((specs, pairs, texts, calibration))
}

/// What the stages after calibration measured on the evaluated configurations.
struct Measured {
    traced: layers::Traced,
    finals: finals::Finals,
    final_cos: BTreeMap<String, finals::CosSummary>,
    retrieval: BTreeMap<String, retrieval::Retrieval>,
    /// Per configuration, its retrieval with compact document vectors.
    vectors: BTreeMap<String, Vec<vectors::VectorScores>>,
    /// Per configuration, the bytes e5 holds for it (packed weights, norms, position table).
    weights_bytes: BTreeMap<String, usize>,
    speed_idx: Vec<usize>,
    speed: BTreeMap<String, timing::Speed>,
}

/// Per-layer error, final embeddings, retrieval and timing.
fn measure(
    a: &QuantEvalArgs,
    reference: &Model,
    corpus: &Corpus,
    configs: &[Config],
    pairs: Option<&[retrieval::Pair]>,
    lanes: &Lanes,
    log: &dyn Fn(String),
) -> Result<Measured> {
    let traced = layers::stage(reference, configs, corpus, a.layer_texts, lanes)?;
    log(format!("per-layer comparison on {} texts ({} tokens)", traced.idx.len(), traced.tokens));
    let finals = finals::stage(reference, configs, corpus, &traced)?;
    log(format!("final embeddings of {} texts ({} embedded)", corpus.inputs.len(), finals.embedded));
    let (mut retrieval, mut vectors) = (BTreeMap::new(), BTreeMap::new());
    if let Some(p) = pairs {
        let pv: Vec<_> = configs.iter().map(|c| retrieval::embed_pairs(&c.model, p)).collect::<Result<_>>()?;
        retrieval = retrieval::stage(configs, p, &pv);
        // Documents calibrate the int8 ranges: the calibration texts, embedded as passages.
        let cal: Vec<e5::Input> =
            corpus.calibration_inputs.iter().map(|x| e5::Input::passage(x.text.clone())).collect();
        if !cal.is_empty() {
            for (c, v) in configs.iter().zip(&pv) {
                let cal = finals::embed_all(&c.model, &cal)?;
                vectors.insert(c.name.clone(), vectors::evaluate_methods(p, v, &cal)?);
            }
        }
    }
    log(format!("retrieval on {} pairs", pairs.map_or(0, <[_]>::len)));
    let weights_bytes = configs.iter().map(|c| (c.name.clone(), c.model.info().owned_bytes)).collect();
    let speed_idx = spread(corpus.inputs.len(), a.speed_texts);
    let (inputs, tokens) = corpus.subset(&speed_idx);
    let speed = match a.bench_seconds > 0.0 {
        true => timing::stage(configs, &inputs, &tokens, a.bench_seconds)?,
        false => BTreeMap::new(),
    };
    log("speed measured".into());
    let final_cos = finals::cosines(&finals, configs, corpus);
    Ok(Measured { traced, finals, final_cos, retrieval, vectors, weights_bytes, speed_idx, speed })
}

/// Evaluated texts `idx` with their inputs.
fn with_inputs<'t>(corpus: &Corpus<'t>, idx: Vec<usize>) -> (Vec<usize>, Vec<e5::Input<'t>>) {
    let (inputs, _) = corpus.subset(&idx);
    (idx, inputs)
}
