//! Outlier smoothing (SmoothQuant) for static int8, and its calibration.
//!
//! A sub-layer GEMM `y = x·Wᵀ` runs as `(x / s)·(W·diag(s))ᵀ`, exact in real arithmetic.
//! With `s_j = max|x_j|^α / max_i|W_ij|^(1−α)` the few activation channels with outliers
//! shrink and the weights' columns grow, so one per-tensor activation scale resolves the
//! bulk of `x / s` far better than that of `x`, at a small cost in weight precision.
//!
//! In BERT's post-LayerNorm layers the LayerNorm output that feeds QKV and FFN-up is also
//! the next residual, so `1 / s` cannot be folded into the LayerNorm without changing the
//! residual stream. The division rides on the activation quantization instead
//! ([`e5_kernels::ActQuant::Smoothed`]: one multiply per value, on the row in L1), which
//! works the same for every sub-layer, the attention output and FFN-down included.
//!
//! [`calibrate`] searches, per sub-layer, α (or unit factors) and the clip of the per-tensor
//! scale that minimise the GEMM's output error on rows of fp32 calibration traces, with the
//! int8 kernels the model runs.
//!
//! The calibrated scale is a floor: a row outside the calibrated range takes its own scale
//! instead of clipping (see `ActQuant::Smoothed`). Smoothing with a high α evens out the
//! channels' maxima, so on fresh text a row exceeds *some* channel's calibrated maximum far
//! more often than without it; clipping those rows cost e5-small 0.002–0.003 of cosine on
//! fresh prose (docs/quantization.md). [`Calibration::out_of_range`] counts such rows.

use crate::error::{Error, Result};
use crate::input::{Input, Options, Precision};
use crate::model::Site;
use crate::validate::SMOOTHING_RANGE;
use crate::weights::Checkpoint;
use crate::Model;
use e5_arch::{names, LinearId};
use e5_kernels::{ActQuant, Kernels, PackedF32, PackedI8, Post};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Smoothing factors `s` (`[k]`) by sub-layer name (`layer.{i}.{sub_layer}`).
pub type Factors = BTreeMap<String, Vec<f32>>;

/// Largest [`Search::headroom`]: beyond it the rounding step grows past what any measured
/// input needed (docs/quantization.md: 2 already lowers the mean cosine).
pub const MAX_HEADROOM: f32 = 8.0;

/// What [`calibrate`] tries.
#[derive(Clone, Debug)]
pub struct Search {
    /// Migration strengths α (0: all of the range in the activations, 1: in the weights);
    /// unit factors (plain per-tensor static int8, with the same floor) are always a
    /// candidate too.
    pub alphas: Vec<f32>,
    /// Clips of the per-tensor scale, as fractions of max |x / s| over the calibration rows.
    /// Rows beyond a clip take their own scale, so a clip below 1 trades static rows for
    /// per-row (dynamic) ones: the default tries only 1.
    pub clips: Vec<f32>,
    /// Rows (tokens) per sub-layer on which the output error is measured, evenly spaced over
    /// the calibration tokens; max |x_j| comes from all of them.
    pub sample_rows: usize,
    /// Texts traced at once.
    pub batch_texts: usize,
    /// Multiplier (≥ 1) on each chosen scale: the rows up to h × the calibrated range keep
    /// the static scale, at h × its rounding step.
    pub headroom: f32,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            alphas: vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            clips: vec![1.0],
            sample_rows: 512,
            batch_texts: 16,
            headroom: 1.0,
        }
    }
}

/// The calibration of one sub-layer.
#[derive(Clone, Debug, Serialize)]
pub struct SiteCalibration {
    /// α of the chosen smoothing; `None`: unit factors (plain per-tensor static int8, with
    /// the same floor) had the least error.
    pub alpha: Option<f32>,
    /// The chosen clip (fraction of max |x / s|).
    pub clip: f32,
    /// The static input scale of `x / s`, headroom included.
    pub scale: f32,
    /// Relative error ‖ŷ − y‖ / ‖y‖ of the GEMM output on the sampled rows: chosen, and the
    /// best without smoothing (any clip).
    pub error: f32,
    pub error_unsmoothed: f32,
    /// The smoothing factors `s` (`[k]`): all 1 where `alpha` is `None`.
    #[serde(skip)]
    pub factors: Vec<f32>,
}

/// How often rows of some texts leave the calibrated range (and take their own scale), by
/// sub-layer, measured on their fp32 traces.
#[derive(Clone, Debug, Serialize)]
pub struct OutOfRange {
    /// Rows (tokens) traced per sub-layer.
    pub rows: usize,
    /// The fraction of all sub-layers' rows out of range.
    pub fraction: f64,
    /// The same by sub-layer name.
    pub by_site: BTreeMap<String, f64>,
}

/// Static int8 scales and smoothing factors of every sub-layer.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// By sub-layer name (`layer.{i}.{sub_layer}`).
    pub sites: BTreeMap<String, SiteCalibration>,
    /// Calibration tokens traced.
    pub tokens: usize,
    /// Rows per sub-layer the errors were measured on.
    pub sampled_rows: usize,
    /// [`Search::headroom`], applied to every scale.
    pub headroom: f32,
}

impl Calibration {
    pub fn activation_scales(&self) -> BTreeMap<String, f32> {
        self.sites.iter().map(|(n, c)| (n.clone(), c.scale)).collect()
    }

    pub fn smoothing(&self) -> Factors {
        self.sites.iter().map(|(n, c)| (n.clone(), c.factors.clone())).collect()
    }

    /// `base` with int8 precision, these scales and these smoothing factors.
    pub fn options(&self, base: Options) -> Options {
        Options {
            precision: Precision::Int8,
            activation_scales: Some(Arc::new(self.activation_scales())),
            smoothing: Some(Arc::new(self.smoothing())),
            ..base
        }
    }

    /// Traces `inputs` with the fp32 `model` and counts, per sub-layer, the input rows `x`
    /// with some `|x_j| / (s_j · scale) > 127`: the rows the int8 model quantizes with
    /// their own scale (up to the int8 model's own drift from fp32).
    pub fn out_of_range(&self, model: &Model, inputs: &[Input<'_>]) -> Result<OutOfRange> {
        let ids: Vec<LinearId> = LinearId::all(model.config().layers).collect();
        let mut inv = Vec::with_capacity(ids.len());
        for id in &ids {
            let site =
                self.sites.get(&id.to_string()).ok_or_else(|| Error::Options(format!("no calibration for {id}")))?;
            inv.push(site.factors.iter().map(|s| 1.0 / (s * site.scale)).collect::<Vec<f32>>());
        }
        let (mut out, mut rows) = (vec![0usize; ids.len()], 0);
        for batch in inputs.chunks(16) {
            let (batch_ids, _) = model.trace(batch, &mut |site, x| {
                if let Site::LinearInput(id) = site {
                    let inv = &inv[id.index()];
                    out[id.index()] += x
                        .chunks_exact(inv.len())
                        .filter(|row| row.iter().zip(inv).any(|(x, i)| (x * i).abs() > 127.0))
                        .count();
                }
            })?;
            rows += batch_ids.len();
        }
        let share = |n: usize| n as f64 / rows.max(1) as f64;
        Ok(OutOfRange {
            rows,
            fraction: share(out.iter().sum()) / ids.len() as f64,
            by_site: ids.iter().zip(&out).map(|(id, n)| (id.to_string(), share(*n))).collect(),
        })
    }
}

/// `e5 quantize --smooth`: writes `dst` from the float model at `src` as smoothed static
/// int8: int8 weights whose input columns were multiplied by `s`, with each sub-layer's
/// `input_scale` and `input_smoothing`. It loads with no options and runs exactly as
/// `cal.options(..)` does on `src` (the word table aside, which the file stores as int8).
pub fn quantize_smoothed(
    src: &std::path::Path,
    dst: &std::path::Path,
    cal: &Calibration,
    overwrite: bool,
) -> Result<super::Manifest> {
    let options = super::QuantizeOptions {
        precision: Precision::Int8,
        activation_scales: Some(cal.activation_scales()),
        smoothing: Some(cal.smoothing()),
        overwrite,
        ..Default::default()
    };
    super::quantize_model(src, dst, &options)
}

/// `s_j = max|x_j|^α / max|W_j|^(1−α)`, 1 for a channel that is all zero on either side,
/// clamped to the range the loader accepts.
pub fn factors(act_max: &[f32], weight_max: &[f32], alpha: f32) -> Vec<f32> {
    let (lo, hi) = SMOOTHING_RANGE;
    act_max
        .iter()
        .zip(weight_max)
        .map(|(&a, &w)| match a > 0.0 && w > 0.0 {
            true => (a.powf(alpha) / w.powf(1.0 - alpha)).clamp(lo, hi),
            false => 1.0,
        })
        .collect()
}

/// `W ← W·diag(s)`: multiplies input column `j` of every row of `w` (`[n, k]`) by `s[j]`.
pub(crate) fn scale_columns(w: &mut [f32], s: &[f32]) {
    for row in w.chunks_exact_mut(s.len()) {
        row.iter_mut().zip(s).for_each(|(w, s)| *w *= s);
    }
}

/// Traces `inputs` with the fp32 `model` and, for every sub-layer, finds the smoothing α
/// (or none) and the clip whose static int8 GEMM output is closest to fp32's.
pub fn calibrate(model: &Model, inputs: &[Input<'_>], search: &Search) -> Result<Calibration> {
    if model.options().precision != Precision::Fp32 || model.options().adapter.is_some() {
        return Err(Error::Options("smoothing is calibrated on an fp32 model without adapter".into()));
    }
    if inputs.is_empty() || search.clips.is_empty() || search.sample_rows == 0 {
        return Err(Error::Options("smoothing calibration needs texts, clips and sample rows".into()));
    }
    if let Some(a) = search.alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(Error::Options(format!("alpha {a} is outside [0, 1]")));
    }
    if let Some(c) = search.clips.iter().find(|c| !(**c > 0.0 && **c <= 1.0)) {
        return Err(Error::Options(format!("clip {c} is outside (0, 1]")));
    }
    if !(1.0..=MAX_HEADROOM).contains(&search.headroom) {
        return Err(Error::Options(format!("headroom {} is outside [1, {MAX_HEADROOM}]", search.headroom)));
    }
    let traces = Traces::collect(model, inputs, search)?;
    let ck = Checkpoint::open(model.dir())?;
    let kern = model.kernels();
    let mut sites = BTreeMap::new();
    for (k, id) in LinearId::all(model.config().layers).enumerate() {
        let (rows, x) = (traces.sampled[k].len() / traces.act_max[k].len(), &traces.sampled[k]);
        let site = calibrate_site(&ck, kern, model, id, &traces.act_max[k], x, rows, search)?;
        sites.insert(id.to_string(), site);
    }
    Ok(Calibration { sites, tokens: traces.tokens, sampled_rows: traces.rows, headroom: search.headroom })
}

/// max |x_j| of every sub-layer input over all calibration tokens, and sampled input rows.
struct Traces {
    act_max: Vec<Vec<f32>>,
    sampled: Vec<Vec<f32>>,
    tokens: usize,
    rows: usize,
}

impl Traces {
    fn collect(model: &Model, inputs: &[Input<'_>], search: &Search) -> Result<Traces> {
        let cfg = model.config();
        let widths: Vec<usize> = LinearId::all(cfg.layers).map(|id| id.sub.input_width(cfg)).collect();
        let mut act_max: Vec<Vec<f32>> = widths.iter().map(|&k| vec![0.0; k]).collect();
        let mut tokens = 0;
        for batch in inputs.chunks(search.batch_texts.max(1)) {
            let (ids, _) = model.trace(batch, &mut |site, x| {
                if let Site::LinearInput(id) = site {
                    let m = &mut act_max[id.index()];
                    for row in x.chunks_exact(m.len()) {
                        m.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
                    }
                }
            })?;
            tokens += ids.len();
        }
        // Every `stride`-th token of the calibration set.
        let stride = tokens.div_ceil(search.sample_rows).max(1);
        let mut sampled: Vec<Vec<f32>> = vec![Vec::new(); widths.len()];
        let mut offset = 0;
        for batch in inputs.chunks(search.batch_texts.max(1)) {
            let (ids, _) = model.trace(batch, &mut |site, x| {
                if let Site::LinearInput(id) = site {
                    let k = widths[id.index()];
                    let keep = x.chunks_exact(k).enumerate().filter(|(r, _)| (offset + r) % stride == 0);
                    keep.for_each(|(_, row)| sampled[id.index()].extend_from_slice(row));
                }
            })?;
            offset += ids.len();
        }
        Ok(Traces { act_max, sampled, tokens, rows: tokens.div_ceil(stride) })
    }
}

/// The f32 weights of `id`, its modules stacked along the output dimension: `[n, k]`.
fn weights(ck: &Checkpoint, model: &Model, id: LinearId) -> Result<(Vec<f32>, usize, usize)> {
    let modules = names::linear(id);
    let (n_each, k) = id.sub.shape(model.config());
    let mut w = Vec::with_capacity(modules.len() * n_each * k);
    for m in &modules {
        w.extend(ck.f32(&m.weight, &[n_each, k])?);
    }
    Ok((w, modules.len() * n_each, k))
}

/// Relative L2 error of `got` against `want`.
fn rel_error(got: &[f32], want: &[f32]) -> f32 {
    let (mut err, mut norm) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        err += ((g - w) as f64).powi(2);
        norm += (*w as f64).powi(2);
    }
    (err / norm.max(f64::MIN_POSITIVE)).sqrt() as f32
}

#[allow(clippy::too_many_arguments)]
fn calibrate_site(
    ck: &Checkpoint,
    kern: &Kernels,
    model: &Model,
    id: LinearId,
    act_max: &[f32],
    x: &[f32],
    rows: usize,
    search: &Search,
) -> Result<SiteCalibration> {
    let (w, n, k) = weights(ck, model, id)?;
    let want = kern.gemm_to_vec(x, rows, &PackedF32::from_rows(kern, &w, n, k, k, None), Post::None);
    let mut weight_max = vec![0f32; k];
    for row in w.chunks_exact(k) {
        weight_max.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
    }
    let mut best: Option<SiteCalibration> = None;
    let mut error_unsmoothed = f32::INFINITY;
    let candidates = std::iter::once(None).chain(search.alphas.iter().map(Some));
    for alpha in candidates {
        let s = match alpha {
            Some(&a) => factors(act_max, &weight_max, a),
            None => vec![1.0; k],
        };
        let mut ws = w.clone();
        scale_columns(&mut ws, &s);
        let packed = PackedI8::quantize(kern, &ws, n, k, None);
        let amax = act_max.iter().zip(&s).fold(0f32, |m, (a, s)| m.max(a / s));
        for &clip in &search.clips {
            let scale = (clip * amax / 127.0).max(crate::validate::INPUT_SCALE_RANGE.0);
            let inv: Vec<f32> = s.iter().map(|s| 1.0 / (s * scale)).collect();
            let act = ActQuant::Smoothed { scale, inv: &inv };
            let error = rel_error(&kern.gemm_i8_to_vec(x, rows, &packed, act, Post::None), &want);
            if alpha.is_none() {
                error_unsmoothed = error_unsmoothed.min(error);
            }
            if best.as_ref().is_none_or(|b| error < b.error) {
                let (alpha, factors) = (alpha.copied(), s.clone());
                best = Some(SiteCalibration { alpha, clip, scale, error, error_unsmoothed: 0.0, factors });
            }
        }
    }
    let best = best.expect("at least one candidate");
    let scale = (best.scale * search.headroom).min(crate::validate::INPUT_SCALE_RANGE.1);
    Ok(SiteCalibration { error_unsmoothed, scale, ..best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_balance_the_two_ranges_and_leave_dead_channels_alone() {
        let s = factors(&[100.0, 1.0, 0.0, 4.0], &[0.01, 1.0, 0.5, 0.0], 0.5);
        assert!((s[0] - 100.0).abs() < 1e-3, "{s:?}"); // 100 / 100 = 1 = 0.01 · 100
        assert_eq!(&s[1..], &[1.0, 1.0, 1.0]);
        assert_eq!(factors(&[1e30], &[1e-30], 0.9), vec![SMOOTHING_RANGE.1]);
        let mut w = vec![1.0, 2.0, 3.0, 4.0];
        scale_columns(&mut w, &[10.0, 0.5]);
        assert_eq!(w, vec![10.0, 1.0, 30.0, 2.0]);
    }
}
