//! Pareto front, recommendation, plots and the Markdown rendering of report.json.

use super::plots;
use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::Path;

/// Writes report.json (the stages' structs, the Pareto front, the recommendation and the
/// run time), report.md and the plots into `out`.
pub fn write(report: &impl Serialize, out: &Path, elapsed_s: f64) -> Result<()> {
    let mut rep = serde_json::to_value(report)?;
    pareto(&mut rep);
    rep["elapsed_s"] = json!(elapsed_s);
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&rep)?)?;
    plots(&rep, out)?;
    std::fs::write(out.join("report.md"), markdown(&rep))?;
    Ok(())
}

/// Recommendation thresholds on the final embeddings' cosine to fp32.
pub const MIN_COS: f64 = 0.995;
pub const MEAN_COS: f64 = 0.999;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Every configuration with a speed: (name, texts/s, cos min, cos mean).
fn points(rep: &Value) -> Vec<(String, f64, f64, f64)> {
    let mut out = Vec::new();
    for p in rep["precisions"].as_array().into_iter().flatten() {
        let n = p.as_str().unwrap_or_default();
        let s = f(&rep["speed"][n]["texts_per_s"]);
        if s.is_finite() {
            out.push((n.to_string(), s, f(&rep["final"][n]["min"]), f(&rep["final"][n]["mean"])));
        }
    }
    if let Some(cfgs) = rep["mixed"]["configs"].as_array() {
        let base = rep["mixed"]["base"].as_str().unwrap_or("int8");
        for c in cfgs.iter().filter(|c| c["k"].as_u64().unwrap_or(0) > 0) {
            let s = f(&c["texts_per_s"]);
            if s.is_finite() {
                out.push((format!("{base}+{}xfp32", c["k"]), s, f(&c["cos_min"]), f(&c["cos_mean"])));
            }
        }
    }
    out
}

/// Adds "pareto" (non-dominated in speed, min and mean cosine) and "recommended" (the fastest
/// configuration with min cosine ≥ MIN_COS and mean ≥ MEAN_COS).
fn pareto(rep: &mut Value) {
    let pts = points(rep);
    let dominated = |i: usize| {
        pts.iter().enumerate().any(|(j, q)| {
            let p = &pts[i];
            j != i && q.1 >= p.1 && q.2 >= p.2 && q.3 >= p.3 && (q.1 > p.1 || q.2 > p.2 || q.3 > p.3)
        })
    };
    let front: Vec<Value> = (0..pts.len())
        .filter(|&i| !dominated(i))
        .map(|i| json!({ "config": pts[i].0, "texts_per_s": pts[i].1, "cos_min": pts[i].2, "cos_mean": pts[i].3 }))
        .collect();
    let rec = pts.iter().filter(|p| p.2 >= MIN_COS && p.3 >= MEAN_COS).max_by(|a, b| a.1.total_cmp(&b.1)).map(|p| {
        json!({ "config": p.0, "texts_per_s": p.1, "cos_min": p.2, "cos_mean": p.3,
                          "rule": format!("fastest with final cosine min >= {MIN_COS} and mean >= {MEAN_COS}") })
    });
    rep["pareto"] = Value::Array(front);
    rep["recommended"] = rec.unwrap_or(Value::Null);
}

fn names(rep: &Value) -> Vec<String> {
    rep["precisions"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect()
}

fn sites(rep: &Value) -> Vec<String> {
    rep["sites"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect()
}

/// Sites in depth order that are layer outputs (plus the embeddings).
fn output_sites(rep: &Value) -> Vec<String> {
    sites(rep).into_iter().filter(|s| s == "embeddings" || s.ends_with(".output")).collect()
}

fn plots(rep: &Value, out: &Path) -> Result<()> {
    let precs: Vec<String> = names(rep).into_iter().filter(|p| p != "fp32").collect();
    let all = sites(rep);
    let outs = output_sites(rep);
    let sq = |p: &str, s: &str| f(&rep["layers"][p][s]["sqnr_db"]);
    let series: Vec<(String, Vec<f64>)> =
        precs.iter().map(|p| (p.clone(), outs.iter().map(|s| sq(p, s)).collect())).collect();
    let xt: Vec<(f64, String)> = outs
        .iter()
        .enumerate()
        .map(|(i, _)| (i as f64, if i == 0 { "emb".into() } else { format!("{}", i - 1) }))
        .collect();
    plots::line_chart(
        &out.join("sqnr_by_depth.png"),
        "SQNR of each layer's output vs fp32 (higher is better)",
        "layer",
        "SQNR dB",
        &xt,
        &series,
    )?;
    let series: Vec<(String, Vec<f64>)> =
        precs.iter().map(|p| (p.clone(), all.iter().map(|s| sq(p, s)).collect())).collect();
    let xt: Vec<(f64, String)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_str() == "embeddings" || s.ends_with(".q"))
        .map(|(i, s)| (i as f64, if i == 0 { "emb".into() } else { format!("L{}", s.split('.').nth(1).unwrap_or("")) }))
        .collect();
    plots::line_chart(
        &out.join("sqnr_all_sites.png"),
        "SQNR at every site (q k v ctx attn_out attn_norm ffn_up ffn_down output per layer)",
        "site (depth order)",
        "SQNR dB",
        &xt,
        &series,
    )?;
    // Per script, for the dynamic int8 run (or the first quantized precision).
    if let Some(p) = precs.iter().find(|p| *p == "int8").or(precs.last()) {
        let scripts: Vec<String> = rep["layers"][p]["embeddings"]["by_script"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let series: Vec<(String, Vec<f64>)> = scripts
            .iter()
            .map(|sc| (sc.clone(), outs.iter().map(|s| f(&rep["layers"][p][s]["by_script"][sc]["sqnr_db"])).collect()))
            .collect();
        let xt: Vec<(f64, String)> =
            (0..outs.len()).map(|i| (i as f64, if i == 0 { "emb".into() } else { format!("{}", i - 1) })).collect();
        plots::line_chart(
            &out.join("sqnr_by_script.png"),
            &format!("{p}: SQNR of layer outputs by script"),
            "layer",
            "SQNR dB",
            &xt,
            &series,
        )?;
    }
    let pts = points(rep);
    if !pts.is_empty() {
        let front: Vec<usize> = rep["pareto"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| pts.iter().position(|p| Some(p.0.as_str()) == q["config"].as_str()))
            .collect();
        let sp: Vec<(String, f64, f64)> = pts.iter().map(|p| (p.0.clone(), p.1, p.2)).collect();
        plots::scatter(
            &out.join("pareto.png"),
            "Speed vs accuracy (* = Pareto front)",
            "texts/s (batch 32)",
            "min cosine to fp32",
            &sp,
            &front,
        )?;
    }
    Ok(())
}

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
fn db(v: &Value) -> String {
    match (v.as_f64(), v.as_str()) {
        (Some(x), _) => format!("{x:.1}"),
        (_, Some("inf")) => "∞".into(),
        _ => "–".into(),
    }
}

/// report.md, section by section.
fn markdown(rep: &Value) -> String {
    let mut m = String::new();
    summary(&mut m, rep);
    per_layer(&mut m, rep);
    by_script(&mut m, rep);
    retrieval_by_language(&mut m, rep);
    mixed_precision(&mut m, rep);
    speed_vs_accuracy(&mut m, rep);
    m
}

/// The run, then the final embeddings and retrieval per precision.
fn summary(m: &mut String, rep: &Value) {
    let t = &rep["texts"];
    let precs = names(rep);
    let _ = writeln!(m, "# Quantization report: {}\n", rep["model"].as_str().unwrap_or(""));
    let _ = writeln!(
        m,
        "{} texts ({}); {} calibration texts{}, {} evaluated (final embeddings), {} of them ({} tokens) for the per-layer comparison, {} for the mixed-precision configurations. Threads {}, ISA {}, {:.0} s.\n",
        t["total"], t["files"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        t["calibration"], if t["calibration_overlaps_evaluation"].as_bool() == Some(true) { " (overlapping the evaluated texts: too few texts)" } else { " (left out of the evaluation)" },
        t["evaluated"], t["per_layer"], t["per_layer_tokens"], t["mixed_eval"], rep["threads"], rep["isa"].as_str().unwrap_or(""), f(&rep["elapsed_s"])
    );
    let _ = writeln!(m, "## Final embeddings and retrieval\n");
    let _ = writeln!(m, "Cosine of each text's embedding to its fp32 embedding; retrieval on the parallel set (English query → passage in another language); τ = Kendall τ-b of the full candidate ranking vs fp32's, averaged over queries; speed = batch-32 texts/s (whole passes over the texts in batches of 32 for the measuring time, at least one pass; the precisions take turns, 2 rounds, best of) on {} evaluated texts.\n", t["speed"]);
    let _ = writeln!(m, "| precision | cos min | cos p1 | cos p50 | cos mean | acc@1 | nDCG@10 | τ | texts/s |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|");
    for p in &precs {
        let fj = &rep["final"][p];
        let r = &rep["retrieval"][p];
        let _ = writeln!(
            m,
            "| {p} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            n6(f(&fj["min"])),
            n6(f(&fj["p1"])),
            n6(f(&fj["p50"])),
            n6(f(&fj["mean"])),
            n4(f(&r["acc1"])),
            n4(f(&r["ndcg10"])),
            n4(f(&r["tau"])),
            f(&rep["speed"][p]["texts_per_s"])
        );
    }
}

/// The worst site of each precision, then SQNR per layer and site.
fn per_layer(m: &mut String, rep: &Value) {
    let precs = names(rep);
    let _ = writeln!(m, "\n## Per-layer error\n");
    let _ = writeln!(m, "![SQNR by depth](sqnr_by_depth.png)\n\n![SQNR at every site](sqnr_all_sites.png)\n");
    let _ = writeln!(
        m,
        "Worst site per precision (lowest SQNR over all sites; per-token cosine mean / min, relative L2):\n"
    );
    let _ = writeln!(m, "| precision | worst site | SQNR dB | cos mean | cos min | rel L2 | last output SQNR dB |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    let all = sites(rep);
    let last = all.last().cloned().unwrap_or_default();
    for p in precs.iter().filter(|p| *p != "fp32") {
        let worst = all.iter().min_by(|a, b| {
            f(&rep["layers"][p][a.as_str()]["sqnr_db"]).total_cmp(&f(&rep["layers"][p][b.as_str()]["sqnr_db"]))
        });
        if let Some(w) = worst {
            let s = &rep["layers"][p][w.as_str()];
            let _ = writeln!(
                m,
                "| {p} | {w} | {} | {} | {} | {} | {} |",
                db(&s["sqnr_db"]),
                n6(f(&s["cos_mean"])),
                n4(f(&s["cos_min"])),
                n4(f(&s["rel_l2"])),
                db(&rep["layers"][p][last.as_str()]["sqnr_db"])
            );
        }
    }
    let layers = rep["layers_count"].as_u64().unwrap_or(0);
    let subs = super::layers::LAYER_SITES;
    for p in precs.iter().filter(|p| *p != "fp32") {
        let _ = writeln!(m, "\n### {p}: SQNR (dB) per layer and site\n");
        let _ = writeln!(m, "embeddings: {} dB\n", db(&rep["layers"][p]["embeddings"]["sqnr_db"]));
        let _ = writeln!(m, "| layer | {} |", subs.join(" | "));
        let _ = writeln!(m, "|---|{}", "---|".repeat(subs.len()));
        for i in 0..layers {
            let row: Vec<String> =
                subs.iter().map(|s| db(&rep["layers"][p][format!("layer.{i}.{s}")]["sqnr_db"])).collect();
            let _ = writeln!(m, "| {i} | {} |", row.join(" | "));
        }
    }
}

/// Final cosine and last-layer SQNR per script.
fn by_script(m: &mut String, rep: &Value) {
    let precs = names(rep);
    let last = sites(rep).last().cloned().unwrap_or_default();
    let scripts: Vec<String> =
        rep["final"]["fp32"]["by_script"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let q: Vec<&String> = precs.iter().filter(|p| *p != "fp32").collect();
    let _ = writeln!(m, "\n## By script\n");
    let _ = writeln!(m, "Final-embedding cosine to fp32, mean (min), and the SQNR of the last layer's output (dB), per script of the input's language.\n\n![SQNR by script](sqnr_by_script.png)\n");
    let _ = writeln!(m, "| script | texts | {} |", q.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(m, "|---|---|{}", "---|".repeat(q.len()));
    for s in &scripts {
        let row: Vec<String> = q
            .iter()
            .map(|p| {
                let fj = &rep["final"][p.as_str()]["by_script"][s];
                format!(
                    "{} ({}) / {}",
                    n6(f(&fj["mean"])),
                    n4(f(&fj["min"])),
                    db(&rep["layers"][p.as_str()][last.as_str()]["by_script"][s]["sqnr_db"])
                )
            })
            .collect();
        let _ = writeln!(m, "| {s} | {} | {} |", rep["final"]["fp32"]["by_script"][s]["n"], row.join(" | "));
    }
}

fn retrieval_by_language(m: &mut String, rep: &Value) {
    let precs = names(rep);
    if let Some(langs) = rep["retrieval"]["fp32"]["by_lang"].as_object() {
        let _ = writeln!(m, "\n## Retrieval by language\n\nacc@1 / τ per passage language.\n");
        let _ = writeln!(m, "| lang | pairs | {} |", precs.join(" | "));
        let _ = writeln!(m, "|---|---|{}", "---|".repeat(precs.len()));
        for (l, v) in langs {
            let row: Vec<String> = precs
                .iter()
                .map(|p| {
                    format!(
                        "{:.2} / {:.3}",
                        f(&rep["retrieval"][p]["by_lang"][l]["acc1"]),
                        f(&rep["retrieval"][p]["by_lang"][l]["tau"])
                    )
                })
                .collect();
            let _ = writeln!(m, "| {l} | {} | {} |", v["n"], row.join(" | "));
        }
    }
}

/// Sub-layer sensitivity and the greedy configurations.
fn mixed_precision(m: &mut String, rep: &Value) {
    if !rep["mixed"].is_null() {
        let mx = &rep["mixed"];
        let _ = writeln!(m, "\n## Mixed precision ({} + f32 sub-layers)\n", mx["base"].as_str().unwrap_or(""));
        let _ = writeln!(m, "Sensitivity: mean (1 − cosine) of the final embeddings on {} texts with everything {} is {:.3e}; keeping one sub-layer in f32 reduces it by:\n", mx["sensitivity_texts"], mx["base"].as_str().unwrap_or(""), f(&mx["base_error"]));
        let _ = writeln!(m, "| rank | sub-layer | error reduction | share |\n|---|---|---|---|");
        for (i, s) in mx["sensitivity"].as_array().into_iter().flatten().take(12).enumerate() {
            let _ = writeln!(
                m,
                "| {} | {} | {:.3e} | {:.1}% |",
                i + 1,
                s["sub_layer"].as_str().unwrap_or(""),
                f(&s["error_reduction"]),
                100.0 * f(&s["error_reduction"]) / f(&mx["base_error"])
            );
        }
        let _ = writeln!(m, "\nGreedy: the k most sensitive sub-layers in f32 (cosine on the mixed-evaluation subset):\n\n| k | kept in f32 | cos min | cos mean | texts/s |\n|---|---|---|---|---|");
        for c in mx["configs"].as_array().into_iter().flatten() {
            let keep: Vec<&str> = c["keep_fp32"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {:.1} |",
                c["k"],
                if keep.is_empty() { "–".into() } else { keep.join(", ") },
                n6(f(&c["cos_min"])),
                n6(f(&c["cos_mean"])),
                f(&c["texts_per_s"])
            );
        }
    }
}

/// The Pareto front and the recommendation.
fn speed_vs_accuracy(m: &mut String, rep: &Value) {
    let _ = writeln!(m, "\n## Speed vs accuracy\n\n![Pareto](pareto.png)\n\nPareto front (no other configuration is at least as fast with at least as high min and mean cosine):\n");
    let _ = writeln!(m, "| config | texts/s | cos min | cos mean |\n|---|---|---|---|");
    for p in rep["pareto"].as_array().into_iter().flatten() {
        let _ = writeln!(
            m,
            "| {} | {:.1} | {} | {} |",
            p["config"].as_str().unwrap_or(""),
            f(&p["texts_per_s"]),
            n6(f(&p["cos_min"])),
            n6(f(&p["cos_mean"]))
        );
    }
    let r = &rep["recommended"];
    if r.is_null() {
        let _ = writeln!(m, "\n**Recommended:** none meets min cosine ≥ {MIN_COS} and mean ≥ {MEAN_COS}.");
    } else {
        let _ = writeln!(
            m,
            "\n**Recommended:** `{}` ({:.1} texts/s, cos min {}, mean {}) — the {}.",
            r["config"].as_str().unwrap_or(""),
            f(&r["texts_per_s"]),
            n6(f(&r["cos_min"])),
            n6(f(&r["cos_mean"])),
            r["rule"].as_str().unwrap_or("")
        );
    }
}
