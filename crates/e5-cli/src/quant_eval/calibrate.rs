//! Static int8 calibration: per-tensor input scales of every sub-layer's GEMM from fp32 traces.
//!
//! Two passes over the calibration texts: the first finds max|x| of each sub-layer input, the
//! second fills a histogram of |x| over [0, max] (`BINS` bins). minmax = max/127; pN = the
//! N-th percentile of |x| / 127 (interpolated in its bin); mse = clip c·/127 minimising the
//! expected squared quantization error over 100 candidate clips c = max·k/100, where values
//! above c cost (|x| − c)² (bin centres) and values below cost the rounding noise s²/12.

use super::corpus::{chunks, Corpus};
use anyhow::Result;
use e5::{Input, LinearId, Model, Site};
use serde::Serialize;
use std::collections::BTreeMap;

pub const BINS: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    MinMax,
    Percentile(f64),
    Mse,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "minmax" => Some(Method::MinMax),
            "mse" => Some(Method::Mse),
            _ => s
                .strip_prefix('p')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .map(Method::Percentile),
        }
    }
}

/// The calibrated input scales of every static int8 precision, by precision name.
#[derive(Default, Serialize)]
pub struct Calibration {
    #[serde(flatten)]
    pub scales: BTreeMap<String, BTreeMap<String, f32>>,
    /// max |x| of each sub-layer's input.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub max_abs: BTreeMap<String, f32>,
    #[serde(skip)]
    pub tokens: usize,
    /// int8-static-smooth: per sub-layer α (null: no smoothing), clip, scale and errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smooth: Option<e5::quantize::smooth::Calibration>,
    /// int8-static-smooth: how many evaluated rows leave the calibrated range (and take their
    /// own scale), by sub-layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smooth_out_of_range: Option<e5::quantize::smooth::OutOfRange>,
    /// `int4-g<N>-gptq`: calibration tokens of the GPTQ Hessians.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gptq_tokens: Option<usize>,
    /// The directory each written file (GPTQ, int4 table) went to, by precision name.
    #[serde(skip)]
    pub file_dirs: BTreeMap<String, std::path::PathBuf>,
}

/// Calibrates `statics` (name, method) on the corpus's calibration texts with the fp32 `model`.
pub fn stage(model: &Model, corpus: &Corpus, statics: &[(String, Method)]) -> Result<Calibration> {
    let stats = collect(model, &corpus.calibration_inputs, &chunks(&corpus.calibration_tokens, 4096))?;
    Ok(Calibration {
        scales: statics.iter().map(|(name, m)| (name.clone(), stats.scales(*m))).collect(),
        max_abs: stats.names.iter().cloned().zip(stats.max.iter().copied()).collect(),
        tokens: stats.tokens,
        smooth: None,
        smooth_out_of_range: None,
        gptq_tokens: None,
        file_dirs: BTreeMap::new(),
    })
}

/// The index of the sub-layer whose GEMM reads `site`'s rows.
fn gemm_input(site: Site) -> Option<usize> {
    match site {
        Site::LinearInput(id) => Some(id.index()),
        _ => None,
    }
}

/// |x| statistics of each sub-layer input.
pub struct Stats {
    pub names: Vec<String>,
    pub max: Vec<f32>,
    pub hist: Vec<Vec<u64>>,
    pub tokens: usize,
}

/// Runs the two calibration passes over `chunks` of `inputs` with the fp32 `model`.
pub fn collect(model: &Model, inputs: &[Input<'_>], chunks: &[std::ops::Range<usize>]) -> Result<Stats> {
    let names: Vec<String> = LinearId::all(model.config().layers).map(|id| id.to_string()).collect();
    let mut max = vec![0f32; names.len()];
    let mut tokens = 0;
    for c in chunks {
        let (ids, _) = model.trace(&inputs[c.clone()], &mut |site, x| {
            if let Some(k) = gemm_input(site) {
                max[k] = x.iter().fold(max[k], |m, v| m.max(v.abs()));
            }
        })?;
        tokens += ids.len();
    }
    let mut hist = vec![vec![0u64; BINS]; names.len()];
    for c in chunks {
        model.trace(&inputs[c.clone()], &mut |site, x| {
            if let Some(k) = gemm_input(site) {
                fill(&mut hist[k], x, max[k]);
            }
        })?;
    }
    Ok(Stats { names, max, hist, tokens })
}

pub fn fill(hist: &mut [u64], x: &[f32], max: f32) {
    if max <= 0.0 {
        hist[0] += x.len() as u64;
        return;
    }
    let k = hist.len() as f32 / max;
    for v in x {
        let b = ((v.abs() * k) as usize).min(hist.len() - 1);
        hist[b] += 1;
    }
}

/// The scale (x ≈ q·s, q in [−127, 127]) that `method` picks for one tensor.
pub fn scale(method: Method, hist: &[u64], max: f32) -> f32 {
    let max = max as f64;
    let clip = match method {
        Method::MinMax => max,
        Method::Percentile(p) => percentile_of(hist, max, p),
        Method::Mse => mse_clip(hist, max),
    };
    ((clip / 127.0) as f32).max(f32::MIN_POSITIVE * 1e6).max(1e-12)
}

fn percentile_of(hist: &[u64], max: f64, p: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    if total == 0 || max == 0.0 {
        return max;
    }
    let target = total as f64 * p / 100.0;
    let w = max / hist.len() as f64;
    let mut cum = 0.0;
    for (b, &n) in hist.iter().enumerate() {
        if n > 0 && cum + n as f64 >= target {
            let frac = ((target - cum) / n as f64).clamp(0.0, 1.0);
            return (w * (b as f64 + frac)).min(max);
        }
        cum += n as f64;
    }
    max
}

/// Expected squared error of quantizing the histogram's values with clip `c`.
pub fn quant_mse(hist: &[u64], max: f64, c: f64) -> f64 {
    let w = max / hist.len() as f64;
    let s = c / 127.0;
    let (mut err, mut total) = (0.0, 0.0);
    for (b, &n) in hist.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let v = w * (b as f64 + 0.5);
        let e = if v > c { (v - c) * (v - c) } else { s * s / 12.0 };
        err += e * n as f64;
        total += n as f64;
    }
    err / total.max(1.0)
}

fn mse_clip(hist: &[u64], max: f64) -> f64 {
    if max == 0.0 {
        return max;
    }
    (1..=100)
        .map(|k| max * k as f64 / 100.0)
        .map(|c| (c, quant_mse(hist, max, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
        .unwrap()
}

impl Stats {
    pub fn scales(&self, method: Method) -> BTreeMap<String, f32> {
        self.names.iter().enumerate().map(|(k, n)| (n.clone(), scale(method, &self.hist[k], self.max[k]))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(x: &[f32]) -> (Vec<u64>, f32) {
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut h = vec![0; BINS];
        fill(&mut h, x, max);
        (h, max)
    }

    #[test]
    fn minmax_and_percentiles() {
        let x: Vec<f32> = (1..=1000).map(|i| i as f32 / 1000.0 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let (h, max) = hist_of(&x);
        assert_eq!(scale(Method::MinMax, &h, max), 1.0 / 127.0);
        let p50 = scale(Method::Percentile(50.0), &h, max) * 127.0;
        assert!((p50 - 0.5).abs() < 2e-3, "{p50}");
        let p99 = scale(Method::Percentile(99.0), &h, max) * 127.0;
        assert!((p99 - 0.99).abs() < 2e-3, "{p99}");
    }

    #[test]
    fn mse_clips_outliers_but_not_uniform_data() {
        let uniform: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        let (h, max) = hist_of(&uniform);
        assert!(scale(Method::Mse, &h, max) * 127.0 > 0.95 * max);
        // 200k values in [0, 1) and one at 100: clipping near 50 balances the two errors.
        let mut outlier: Vec<f32> = (0..200_000).map(|i| (i % 100) as f32 / 100.0).collect();
        outlier.push(100.0);
        let (h, max) = hist_of(&outlier);
        let c = scale(Method::Mse, &h, max) * 127.0;
        assert!(c > 30.0 && c < 70.0, "{c}");
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::parse("minmax"), Some(Method::MinMax));
        assert_eq!(Method::parse("p99.9"), Some(Method::Percentile(99.9)));
        assert_eq!(Method::parse("mse"), Some(Method::Mse));
        assert_eq!(Method::parse("p101"), None);
        assert_eq!(Method::parse("max"), None);
    }
}
