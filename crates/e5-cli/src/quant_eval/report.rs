//! The report: what every stage measured ([`Report`]), its Pareto front and recommendation,
//! written as report.json, report.md and the plots, all rendered from the stages' structs.

use super::calibrate::Calibration;
use super::finals::CosSummary;
use super::layers::{Db, SiteError, LAYER_SITES};
use super::mixed::Mixed;
use super::plots;
use super::retrieval::Retrieval;
use super::timing::Speed;
use super::vectors::VectorScores;
use super::SMOOTH;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Recommendation thresholds on the final embeddings' cosine to fp32.
pub const MIN_COS: f64 = 0.995;
pub const MEAN_COS: f64 = 0.999;

#[derive(Serialize)]
pub struct TextCounts<'a> {
    pub files: &'a [String],
    pub total: usize,
    pub calibration: usize,
    /// `--calibration-file`: where the calibration texts came from (none evaluated); absent:
    /// they are `calibration` of the evaluated files' texts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration_file: Option<&'a str>,
    pub calibration_overlaps_evaluation: bool,
    pub evaluated: usize,
    pub per_layer: usize,
    pub per_layer_tokens: usize,
    pub trace_vs_embed_max_abs_diff: f32,
    pub mixed_eval: usize,
    pub speed: usize,
}

/// What every stage measured.
#[derive(Serialize)]
pub struct Report<'a> {
    pub model: &'a str,
    pub threads: usize,
    pub isa: String,
    pub layers_count: usize,
    pub precisions: Vec<String>,
    pub texts: TextCounts<'a>,
    pub pairs: &'a Option<String>,
    /// Compared sites in depth order (`embeddings`, `layer.0.q`, …).
    pub sites: &'a [String],
    pub calibration: &'a Calibration,
    #[serde(rename = "final")]
    pub finals: BTreeMap<String, CosSummary>,
    /// precision → site → error.
    pub layers: &'a BTreeMap<String, BTreeMap<String, SiteError>>,
    pub retrieval: BTreeMap<String, Retrieval>,
    /// precision → retrieval with compact document vectors.
    pub vectors: BTreeMap<String, Vec<VectorScores>>,
    /// precision → bytes e5 holds (packed weights, norms, position table).
    pub weights_bytes: BTreeMap<String, usize>,
    pub speed: BTreeMap<String, Speed>,
    pub mixed: Option<Mixed>,
}

/// A configuration on the speed / accuracy plane.
#[derive(Clone, Serialize)]
struct Point {
    config: String,
    texts_per_s: f64,
    cos_min: f64,
    cos_mean: f64,
}

#[derive(Serialize)]
struct Recommended {
    #[serde(flatten)]
    point: Point,
    rule: String,
}

/// report.json: the report, its Pareto front, the recommendation and the run time.
#[derive(Serialize)]
struct Written<'r, 'a> {
    #[serde(flatten)]
    report: &'r Report<'a>,
    pareto: Vec<Point>,
    recommended: Option<Recommended>,
    elapsed_s: f64,
}

/// Writes report.json, report.md and the plots (PNG and SVG) into `out`.
pub fn write(report: &Report, out: &Path, elapsed_s: f64) -> Result<()> {
    let points = points(report);
    let keys: Vec<Vec<f64>> = points.iter().map(|p| vec![p.texts_per_s, p.cos_min, p.cos_mean]).collect();
    let pareto: Vec<Point> = front(&keys).into_iter().map(|i| points[i].clone()).collect();
    let recommended = points
        .iter()
        .filter(|p| p.cos_min >= MIN_COS && p.cos_mean >= MEAN_COS)
        .max_by(|a, b| a.texts_per_s.total_cmp(&b.texts_per_s))
        .map(|p| Recommended {
            point: p.clone(),
            rule: format!("fastest with final cosine min >= {MIN_COS} and mean >= {MEAN_COS}"),
        });
    let w = Written { report, pareto, recommended, elapsed_s };
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&w)?)?;
    plot_all(&w, &points, out)?;
    std::fs::write(out.join("report.md"), markdown(&w))?;
    Ok(())
}

/// The indices of the points no other point dominates (at least as good in every key, better
/// in one); every key is higher-is-better.
fn front(keys: &[Vec<f64>]) -> Vec<usize> {
    let dominates = |q: &[f64], p: &[f64]| q.iter().zip(p).all(|(a, b)| a >= b) && q.iter().zip(p).any(|(a, b)| a > b);
    (0..keys.len()).filter(|&i| !keys.iter().any(|q| dominates(q, &keys[i]))).collect()
}

/// The deployment picture: weight precisions by memory, speed and accuracy (left), and
/// document vectors by bytes and retrieval (right).
fn plot_deployments(r: &Report, out: &Path) -> Result<()> {
    let mut left = Vec::new();
    for p in &r.precisions {
        let (Some(speed), Some(cos), Some(bytes)) = (r.speed.get(p), r.finals.get(p), r.weights_bytes.get(p)) else {
            continue;
        };
        let mib = *bytes as f64 / (1u64 << 20) as f64;
        left.push((format!("{p} · {:.0} texts/s", speed.texts_per_s), mib, cos.min, speed.texts_per_s));
    }
    let left_front = front(&left.iter().map(|p| vec![-p.1, p.2, p.3]).collect::<Vec<_>>());
    let left: Vec<(String, f64, f64)> = left.into_iter().map(|p| (p.0, p.1, p.2)).collect();
    let methods = r.vectors.get("fp32").map(Vec::as_slice).unwrap_or_default();
    let right: Vec<(String, f64, f64)> =
        methods.iter().map(|m| (m.method.clone(), m.index_bytes as f64, m.retrieval.overall.ndcg10)).collect();
    let keys: Vec<Vec<f64>> = methods
        .iter()
        .map(|m| vec![-(m.index_bytes as f64), -(m.rescore_bytes as f64), m.retrieval.overall.ndcg10])
        .collect();
    if left.is_empty() && right.is_empty() {
        return Ok(());
    }
    let weights = plots::Scatter {
        title: "Weights: memory, speed, accuracy (* = Pareto front)",
        xlabel: "weights held by e5 (MiB)",
        ylabel: "min cosine to fp32",
        points: &left,
        front: &left_front,
    };
    let vectors = plots::Scatter {
        title: "Document vectors, fp32 weights (* = Pareto front)",
        xlabel: "bytes per vector in the index",
        ylabel: "nDCG@10, parallel set",
        points: &right,
        front: &front(&keys),
    };
    plots::scatter_pair(&out.join("deployments"), weights, vectors)
}

/// Every configuration with a speed: the precisions, then the mixed configurations.
fn points(r: &Report) -> Vec<Point> {
    let mut out = Vec::new();
    for p in &r.precisions {
        let (Some(speed), Some(cos)) = (r.speed.get(p), r.finals.get(p)) else { continue };
        if speed.texts_per_s.is_finite() {
            out.push(Point { config: p.clone(), texts_per_s: speed.texts_per_s, cos_min: cos.min, cos_mean: cos.mean });
        }
    }
    if let Some(mx) = &r.mixed {
        for c in mx.configs.iter().filter(|c| c.k > 0 && c.texts_per_s.is_finite()) {
            let config = format!("{}+{}xfp32", mx.base, c.k);
            out.push(Point { config, texts_per_s: c.texts_per_s, cos_min: c.cos_min, cos_mean: c.cos_mean });
        }
    }
    out
}

/// The error at `site` of precision `p`, if measured.
fn site<'r>(r: &'r Report, p: &str, site: &str) -> Option<&'r SiteError> {
    r.layers.get(p)?.get(site)
}

/// SQNR as a plotted number: NaN (a gap) when unmeasured or infinite.
fn sqnr(e: Option<&SiteError>) -> f64 {
    match e.and_then(|e| e.sqnr_db.as_ref()) {
        Some(Db::Finite(x)) => *x,
        _ => f64::NAN,
    }
}

/// Layer outputs in depth order, with the embeddings first.
fn output_sites<'r>(r: &'r Report) -> Vec<&'r str> {
    r.sites.iter().map(String::as_str).filter(|s| *s == "embeddings" || s.ends_with(".output")).collect()
}

fn quantized<'r>(r: &'r Report) -> Vec<&'r str> {
    r.precisions.iter().map(String::as_str).filter(|p| *p != "fp32").collect()
}

/// x labels of the layer-output charts: `emb`, then the layer index.
fn layer_ticks(n: usize) -> Vec<(f64, String)> {
    (0..n).map(|i| (i as f64, if i == 0 { "emb".into() } else { format!("{}", i - 1) })).collect()
}

fn plot_all(w: &Written, points: &[Point], out: &Path) -> Result<()> {
    let r = w.report;
    let (all, outs) = (r.sites, output_sites(r));
    let over = |sites: &[&str]| -> Vec<(String, Vec<f64>)> {
        quantized(r).iter().map(|p| (p.to_string(), sites.iter().map(|s| sqnr(site(r, p, s))).collect())).collect()
    };
    let title = "SQNR of each layer's output vs fp32 (higher is better)";
    plots::line_chart(&out.join("sqnr_by_depth"), title, "layer", "SQNR dB", &layer_ticks(outs.len()), &over(&outs))?;
    let every: Vec<&str> = all.iter().map(String::as_str).collect();
    let ticks: Vec<(f64, String)> = every
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == "embeddings" || s.ends_with(".q"))
        .map(|(i, s)| (i as f64, if i == 0 { "emb".into() } else { format!("L{}", s.split('.').nth(1).unwrap_or("")) }))
        .collect();
    let title = "SQNR at every site (q k v ctx attn_out attn_norm ffn_up ffn_down output per layer)";
    plots::line_chart(&out.join("sqnr_all_sites"), title, "site (depth order)", "SQNR dB", &ticks, &over(&every))?;
    // Per script, for the dynamic int8 run (or the last quantized precision).
    let q = quantized(r);
    if let Some(p) = q.iter().find(|p| **p == "int8").or(q.last()) {
        let scripts = site(r, p, "embeddings").and_then(|e| e.by_script.as_ref());
        let series: Vec<(String, Vec<f64>)> = scripts
            .into_iter()
            .flat_map(|m| m.keys())
            .map(|sc| {
                let by = |s: &&str| sqnr(site(r, p, s).and_then(|e| e.by_script.as_ref()?.get(sc)));
                (sc.clone(), outs.iter().map(by).collect())
            })
            .collect();
        let title = format!("{p}: SQNR of layer outputs by script");
        plots::line_chart(&out.join("sqnr_by_script"), &title, "layer", "SQNR dB", &layer_ticks(outs.len()), &series)?;
    }
    if !points.is_empty() {
        let front: Vec<usize> =
            w.pareto.iter().filter_map(|f| points.iter().position(|p| p.config == f.config)).collect();
        let xy: Vec<(String, f64, f64)> = points.iter().map(|p| (p.config.clone(), p.texts_per_s, p.cos_min)).collect();
        let title = "Speed vs accuracy (* = Pareto front)";
        plots::scatter(&out.join("pareto"), title, "texts/s (batch 32)", "min cosine to fp32", &xy, &front)?;
    }
    plot_deployments(r, out)
}

/// 4 or 6 decimals; a dash for a missing value.
fn n4(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.4}")
    }
}
fn n6(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.6}")
    }
}
fn opt(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}
fn db(e: Option<&SiteError>) -> String {
    match e.and_then(|e| e.sqnr_db.as_ref()) {
        Some(Db::Finite(x)) => format!("{x:.1}"),
        Some(Db::Text(_)) => "∞".into(),
        None => "–".into(),
    }
}

/// report.md, section by section.
fn markdown(w: &Written) -> String {
    let mut m = String::new();
    summary(&mut m, w);
    per_layer(&mut m, w.report);
    by_script(&mut m, w.report);
    retrieval_by_language(&mut m, w.report);
    super::vectors::markdown(&mut m, &w.report.vectors, &w.report.precisions);
    mixed_precision(&mut m, w.report);
    speed_vs_accuracy(&mut m, w);
    m
}

/// The run, then the final embeddings and retrieval per precision.
fn summary(m: &mut String, w: &Written) {
    let (r, t) = (w.report, &w.report.texts);
    let overlap = match (t.calibration_file, t.calibration_overlaps_evaluation) {
        (Some(f), _) => format!(" from {f} (none of them evaluated; every text above is)"),
        (None, true) => " (overlapping the evaluated texts: too few texts)".into(),
        (None, false) => " (left out of the evaluation)".into(),
    };
    let _ = writeln!(m, "# Quantization report: {}\n", r.model);
    let _ = writeln!(
        m,
        "{} texts ({}); {} calibration texts{overlap}, {} evaluated (final embeddings), {} of them ({} tokens) for the per-layer comparison, {} for the mixed-precision configurations. Threads {}, ISA {}, {:.0} s.\n",
        t.total, t.files.join(", "), t.calibration, t.evaluated, t.per_layer, t.per_layer_tokens, t.mixed_eval, r.threads, r.isa, w.elapsed_s
    );
    if let Some(out) = &r.calibration.smooth_out_of_range {
        let worst = out.by_site.iter().max_by(|a, b| a.1.total_cmp(b.1));
        let _ = writeln!(
            m,
            "{SMOOTH}: {:.2}% of the evaluated rows (tokens × sub-layers, fp32 traces) leave the calibrated range and take their own scale{}.\n",
            100.0 * out.fraction,
            worst.map_or(String::new(), |(site, f)| format!(" (most: {site}, {:.2}%)", 100.0 * f))
        );
    }
    let _ = writeln!(m, "## Final embeddings and retrieval\n");
    let _ = writeln!(m, "Cosine of each text's embedding to its fp32 embedding; retrieval on the parallel set (English query → passage in another language); τ = Kendall τ-b of the full candidate ranking vs fp32's, averaged over queries; speed = batch-32 texts/s (whole passes over the texts in batches of 32 for the measuring time, at least one pass; the precisions take turns, 2 rounds, best of) on {} evaluated texts.\n", t.speed);
    let _ = writeln!(m, "| precision | cos min | cos p1 | cos p50 | cos mean | acc@1 | nDCG@10 | τ | texts/s |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|");
    for p in &r.precisions {
        let cos = |f: fn(&CosSummary) -> f64| n6(r.finals.get(p).map_or(f64::NAN, f));
        let ret = r.retrieval.get(p).map(|x| &x.overall);
        let score = |f: fn(&super::retrieval::Scores) -> f64| n4(ret.map_or(f64::NAN, f));
        let _ = writeln!(
            m,
            "| {p} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cos(|c| c.min),
            cos(|c| c.p1),
            cos(|c| c.p50),
            cos(|c| c.mean),
            score(|s| s.acc1),
            score(|s| s.ndcg10),
            score(|s| s.tau),
            r.speed.get(p).map_or("–".into(), |s| format!("{:.1}", s.texts_per_s))
        );
    }
}

/// The worst site of each precision, then SQNR per layer and site.
fn per_layer(m: &mut String, r: &Report) {
    let _ = writeln!(m, "\n## Per-layer error\n");
    let _ = writeln!(m, "![SQNR by depth](sqnr_by_depth.png)\n\n![SQNR at every site](sqnr_all_sites.png)\n");
    let _ = writeln!(
        m,
        "Worst site per precision (lowest SQNR over all sites; per-token cosine mean / min, relative L2):\n"
    );
    let _ = writeln!(m, "| precision | worst site | SQNR dB | cos mean | cos min | rel L2 | last output SQNR dB |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    let last = r.sites.last().map_or("", String::as_str);
    for p in quantized(r) {
        let worst = r.sites.iter().min_by(|a, b| sqnr(site(r, p, a)).total_cmp(&sqnr(site(r, p, b))));
        if let Some(s) = worst.and_then(|w| Some((w, site(r, p, w)?))) {
            let (name, e) = s;
            let _ = writeln!(
                m,
                "| {p} | {name} | {} | {} | {} | {} | {} |",
                db(Some(e)),
                n6(opt(e.cos_mean)),
                n4(opt(e.cos_min)),
                n4(opt(e.rel_l2)),
                db(site(r, p, last))
            );
        }
    }
    for p in quantized(r) {
        let _ = writeln!(m, "\n### {p}: SQNR (dB) per layer and site\n");
        let _ = writeln!(m, "embeddings: {} dB\n", db(site(r, p, "embeddings")));
        let _ = writeln!(m, "| layer | {} |", LAYER_SITES.join(" | "));
        let _ = writeln!(m, "|---|{}", "---|".repeat(LAYER_SITES.len()));
        for i in 0..r.layers_count {
            let row: Vec<String> = LAYER_SITES.iter().map(|s| db(site(r, p, &format!("layer.{i}.{s}")))).collect();
            let _ = writeln!(m, "| {i} | {} |", row.join(" | "));
        }
    }
}

/// Final cosine and last-layer SQNR per script.
fn by_script(m: &mut String, r: &Report) {
    let last = r.sites.last().map_or("", String::as_str);
    let Some(scripts) = r.finals.get("fp32").and_then(|c| c.by_script.as_ref()) else { return };
    let q = quantized(r);
    let _ = writeln!(m, "\n## By script\n");
    let _ = writeln!(m, "Final-embedding cosine to fp32, mean (min), and the SQNR of the last layer's output (dB), per script of the input's language.\n\n![SQNR by script](sqnr_by_script.png)\n");
    let _ = writeln!(m, "| script | texts | {} |", q.join(" | "));
    let _ = writeln!(m, "|---|---|{}", "---|".repeat(q.len()));
    for (s, fp32) in scripts {
        let row: Vec<String> = q
            .iter()
            .map(|p| {
                let cos = r.finals.get(*p).and_then(|c| c.by_script.as_ref()?.get(s));
                let out = site(r, p, last).and_then(|e| e.by_script.as_ref()?.get(s));
                let (mean, min) = cos.map_or((f64::NAN, f64::NAN), |c| (c.mean, c.min));
                format!("{} ({}) / {}", n6(mean), n4(min), db(out))
            })
            .collect();
        let _ = writeln!(m, "| {s} | {} | {} |", fp32.n, row.join(" | "));
    }
    let _ = writeln!(m, "\nThe texts with the lowest cosine (script: cosine, first characters):\n");
    for p in &q {
        let worst = r.finals.get(*p).map_or(&[][..], |c| &c.worst[..]);
        let w: Vec<String> = worst.iter().map(|w| format!("{}: {} {:?}", w.script, n6(w.cos), w.text)).collect();
        let _ = writeln!(m, "- {p}: {}", w.join("; "));
    }
}

fn retrieval_by_language(m: &mut String, r: &Report) {
    let Some(fp32) = r.retrieval.get("fp32") else { return };
    let _ = writeln!(m, "\n## Retrieval by language\n\nacc@1 / τ per passage language.\n");
    let _ = writeln!(m, "| lang | pairs | {} |", r.precisions.join(" | "));
    let _ = writeln!(m, "|---|---|{}", "---|".repeat(r.precisions.len()));
    for (l, scores) in &fp32.by_lang {
        let row: Vec<String> = r
            .precisions
            .iter()
            .map(|p| {
                let s = r.retrieval.get(p).and_then(|x| x.by_lang.get(l));
                format!("{:.2} / {:.3}", s.map_or(f64::NAN, |s| s.acc1), s.map_or(f64::NAN, |s| s.tau))
            })
            .collect();
        let _ = writeln!(m, "| {l} | {} | {} |", scores.n, row.join(" | "));
    }
}

/// Sub-layer sensitivity and the greedy configurations.
fn mixed_precision(m: &mut String, r: &Report) {
    let Some(mx) = &r.mixed else { return };
    let _ = writeln!(m, "\n## Mixed precision ({} + f32 sub-layers)\n", mx.base);
    let _ = writeln!(m, "Sensitivity: mean (1 − cosine) of the final embeddings on {} texts with everything {} is {:.3e}; keeping one sub-layer in f32 reduces it by:\n", mx.sensitivity_texts, mx.base, mx.base_error);
    let _ = writeln!(m, "| rank | sub-layer | error reduction | share |\n|---|---|---|---|");
    for (i, s) in mx.sensitivity.iter().take(12).enumerate() {
        let share = 100.0 * s.error_reduction / mx.base_error;
        let _ = writeln!(m, "| {} | {} | {:.3e} | {share:.1}% |", i + 1, s.sub_layer, s.error_reduction);
    }
    let _ = writeln!(m, "\nGreedy: the k most sensitive sub-layers in f32 (cosine on the mixed-evaluation subset):\n\n| k | kept in f32 | cos min | cos mean | texts/s |\n|---|---|---|---|---|");
    for c in &mx.configs {
        let keep = if c.keep_fp32.is_empty() { "–".into() } else { c.keep_fp32.join(", ") };
        let _ = writeln!(m, "| {} | {keep} | {} | {} | {:.1} |", c.k, n6(c.cos_min), n6(c.cos_mean), c.texts_per_s);
    }
}

/// The Pareto front and the recommendation.
fn speed_vs_accuracy(m: &mut String, w: &Written) {
    let _ = writeln!(m, "\n## Speed vs accuracy\n\n![Pareto](pareto.png)\n\n![Deployments: weights by memory, speed and accuracy; document vectors by bytes and retrieval](deployments.png)\n\nPareto front (no other configuration is at least as fast with at least as high min and mean cosine):\n");
    let _ = writeln!(m, "| config | texts/s | cos min | cos mean |\n|---|---|---|---|");
    for p in &w.pareto {
        let _ = writeln!(m, "| {} | {:.1} | {} | {} |", p.config, p.texts_per_s, n6(p.cos_min), n6(p.cos_mean));
    }
    match &w.recommended {
        None => {
            let _ = writeln!(m, "\n**Recommended:** none meets min cosine ≥ {MIN_COS} and mean ≥ {MEAN_COS}.");
        }
        Some(r) => {
            let p = &r.point;
            let _ = writeln!(
                m,
                "\n**Recommended:** `{}` ({:.1} texts/s, cos min {}, mean {}) — the {}.",
                p.config,
                p.texts_per_s,
                n6(p.cos_min),
                n6(p.cos_mean),
                r.rule
            );
        }
    }
}
