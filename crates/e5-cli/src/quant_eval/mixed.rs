//! Mixed-precision search: rank the sub-layers by how much keeping each alone in f32
//! reduces the int8 base's error, then keep the k most sensitive in f32 (k = 0..=K).

use super::finals::{embed_all, Finals};
use super::metrics::{cosine, percentile};
use super::timing::{throughput, Speed};
use anyhow::Result;
use e5::{Input, Lanes, LinearId, Model};
use serde::Serialize;

#[derive(Serialize)]
pub struct Mixed {
    pub base: String,
    pub sensitivity_texts: usize,
    pub base_error: f64,
    pub sensitivity: Vec<Sensitivity>,
    pub configs: Vec<MixedConfig>,
}

#[derive(Serialize)]
pub struct Sensitivity {
    pub sub_layer: String,
    /// Reduction of 1 − mean cosine when this sub-layer alone stays f32.
    pub error_reduction: f64,
}

#[derive(Serialize)]
pub struct MixedConfig {
    pub k: usize,
    pub keep_fp32: Vec<String>,
    pub cos_min: f64,
    pub cos_mean: f64,
    /// Null without a speed measurement.
    pub texts_per_s: f64,
}

/// What the search runs on.
pub struct Search<'a, 't> {
    /// The base precision's name, and its index among the evaluated configurations.
    pub base: String,
    pub base_config: Option<usize>,
    /// Loads the base with `keep_fp32`.
    pub load: &'a (dyn Fn(Vec<String>) -> Result<Model> + Sync),
    pub finals: &'a Finals,
    /// Evaluated texts ranking sensitivity, and evaluating each configuration.
    pub sensitivity: (Vec<usize>, Vec<Input<'t>>),
    pub evaluation: (Vec<usize>, Vec<Input<'t>>),
    /// The speed texts and the base's measured speed (for k = 0).
    pub speed: (Vec<Input<'t>>, Vec<usize>, Option<Speed>),
    pub bench_seconds: f64,
}

impl Search<'_, '_> {
    /// Ranks the sub-layers, then evaluates k = 0..=`max_k`.
    pub fn run(&self, layers: usize, max_k: usize, lanes: &Lanes, log: &dyn Fn(String)) -> Result<Mixed> {
        let (base_error, sensitivity) = self.sensitivity(layers, lanes)?;
        log(format!("sensitivity of {} sub-layers on {} texts", sensitivity.len(), self.sensitivity.0.len()));
        let configs = self.configs(&sensitivity, max_k)?;
        log(format!("mixed configurations k = 0..={max_k}"));
        let sensitivity_texts = self.sensitivity.0.len();
        Ok(Mixed { base: self.base.clone(), sensitivity_texts, base_error, sensitivity, configs })
    }

    /// (1 − mean cosine, min, mean) of `vectors` for the evaluated texts `idx`, against fp32.
    fn stats(&self, idx: &[usize], vectors: &[&[f32]]) -> (f64, f64, f64) {
        let cos: Vec<f64> = idx.iter().zip(vectors).map(|(&i, v)| cosine(v, &self.finals.vectors[0][i])).collect();
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        (1.0 - mean, percentile(&cos, 0.0), mean)
    }

    /// Stats of a model on `(idx, inputs)`.
    fn error(&self, m: &Model, (idx, inputs): &(Vec<usize>, Vec<Input<'_>>)) -> Result<(f64, f64, f64)> {
        let vectors = embed_all(m, inputs)?;
        Ok(self.stats(idx, &vectors.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }

    /// Stats of evaluated configuration `ci`, from its final vectors: bit-identical to
    /// embedding the texts again, whatever the batch.
    fn evaluated(&self, ci: usize, idx: &[usize]) -> (f64, f64, f64) {
        self.stats(idx, &idx.iter().map(|&i| self.finals.vectors[ci][i].as_slice()).collect::<Vec<_>>())
    }

    /// Every sub-layer's error reduction, most sensitive first, and the base's error.
    pub fn sensitivity(&self, layers: usize, lanes: &Lanes) -> Result<(f64, Vec<Sensitivity>)> {
        let base_error = match self.base_config {
            Some(ci) => self.evaluated(ci, &self.sensitivity.0).0,
            None => self.error(&(self.load)(vec![])?, &self.sensitivity)?.0,
        };
        // Independent candidates side by side, each model on its lane's single thread.
        let mut out = lanes
            .map(LinearId::all(layers).collect(), |id: LinearId| {
                let m = (self.load)(vec![id.to_string()])?;
                let (e, _, _) = self.error(&m, &self.sensitivity)?;
                Ok(Sensitivity { sub_layer: id.to_string(), error_reduction: base_error - e })
            })
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|x, y| y.error_reduction.total_cmp(&x.error_reduction));
        Ok((base_error, out))
    }

    /// The base with the `k` most sensitive sub-layers in f32, for k = 0..=`max_k`.
    pub fn configs(&self, ranked: &[Sensitivity], max_k: usize) -> Result<Vec<MixedConfig>> {
        let mut out = Vec::new();
        for k in 0..=max_k.min(ranked.len()) {
            let keep_fp32: Vec<String> = ranked[..k].iter().map(|s| s.sub_layer.clone()).collect();
            let (cos_min, cos_mean, texts_per_s) = match (k, self.base_config) {
                (0, Some(ci)) => {
                    let (_, min, mean) = self.evaluated(ci, &self.evaluation.0);
                    (min, mean, self.speed.2.map_or(f64::NAN, |s| s.texts_per_s))
                }
                _ => {
                    let m = (self.load)(keep_fp32.clone())?;
                    let (_, min, mean) = self.error(&m, &self.evaluation)?;
                    let speed = match self.bench_seconds > 0.0 {
                        true => throughput(&m, &self.speed.0, &self.speed.1, self.bench_seconds)?.texts_per_s,
                        false => f64::NAN,
                    };
                    (min, mean, speed)
                }
            };
            out.push(MixedConfig { k, keep_fp32, cos_min, cos_mean, texts_per_s });
        }
        Ok(out)
    }
}
