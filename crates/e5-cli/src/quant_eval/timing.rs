//! Batch-32 throughput of every configuration, measured side by side.

use super::Config;
use anyhow::Result;
use e5::{Input, Model};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Interleaved rounds of the speed measurement (best of).
const SPEED_ROUNDS: usize = 2;

#[derive(Clone, Copy, Serialize)]
pub struct Speed {
    pub texts_per_s: f64,
    pub tokens_per_s: f64,
}

/// Batch-32 throughput over `inputs` for about `seconds`: whole passes over its batches,
/// at least one. Every configuration sees the same batches in the same order, and has
/// already embedded texts (no cold first call).
pub fn throughput(model: &Model, inputs: &[Input<'_>], tokens: &[usize], seconds: f64) -> Result<Speed> {
    let start = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || start.elapsed().as_secs_f64() < seconds {
        for b in inputs.chunks(32) {
            model.embed(b)?;
        }
        passes += 1;
    }
    let s = start.elapsed().as_secs_f64();
    let toks: usize = tokens.iter().sum();
    Ok(Speed { texts_per_s: (passes * inputs.len()) as f64 / s, tokens_per_s: (passes * toks) as f64 / s })
}

/// Configurations take turns, `SPEED_ROUNDS` times, and keep their best round: the
/// machine's speed drifts over seconds, and turns expose them all to the same drift.
pub fn stage(
    configs: &[Config],
    inputs: &[Input<'_>],
    tokens: &[usize],
    seconds: f64,
) -> Result<BTreeMap<String, Speed>> {
    let mut best: Vec<Option<Speed>> = vec![None; configs.len()];
    for _ in 0..SPEED_ROUNDS {
        for (c, best) in configs.iter().zip(best.iter_mut()) {
            let r = throughput(&c.model, inputs, tokens, seconds / SPEED_ROUNDS as f64)?;
            if best.is_none_or(|b| r.texts_per_s > b.texts_per_s) {
                *best = Some(r);
            }
        }
    }
    Ok(configs.iter().zip(best).filter_map(|(c, b)| Some((c.name.clone(), b?))).collect())
}
