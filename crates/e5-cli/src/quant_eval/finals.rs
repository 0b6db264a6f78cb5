//! Final embeddings of every evaluated text in every configuration, and their cosine to
//! fp32 (overall and per script).

use super::corpus::Corpus;
use super::layers::Traced;
use super::metrics::{cosine, percentile};
use super::Config;
use anyhow::{ensure, Result};
use e5::{Input, Model};
use serde::Serialize;
use std::collections::BTreeMap;

/// Texts per `embed` call: enough for the engine to balance its per-thread lanes.
const EMBED_CHUNK: usize = 256;

/// One vector per input.
pub fn embed_all(model: &Model, inputs: &[Input<'_>]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for c in inputs.chunks(EMBED_CHUNK) {
        let e = model.embed(c)?;
        ensure!(e.len() == c.len(), "expected one vector per input");
        out.extend(e.vectors().map(|v| v.to_vec()));
    }
    Ok(out)
}

pub struct Finals {
    /// `[config][evaluated text]`.
    pub vectors: Vec<Vec<Vec<f32>>>,
    /// Texts embedded here (the others' vectors come from the per-layer traces).
    pub embedded: usize,
    /// Largest difference between a traced and an embedded vector (checked on a few texts).
    pub trace_vs_embed: f32,
}

/// The traced texts' vectors from their traces, every other evaluated text embedded.
pub fn stage(reference: &Model, configs: &[Config], corpus: &Corpus, traced: &Traced) -> Result<Finals> {
    let n = corpus.inputs.len();
    let mut vectors = vec![vec![Vec::new(); n]; configs.len()];
    for (by_text, pooled) in vectors.iter_mut().zip(&traced.pooled) {
        for (&i, v) in traced.idx.iter().zip(pooled) {
            by_text[i] = v.clone();
        }
    }
    let rest: Vec<usize> = (0..n).filter(|&i| vectors[0][i].is_empty()).collect();
    let (inputs, _) = corpus.subset(&rest);
    for (by_text, c) in vectors.iter_mut().zip(configs) {
        for (&i, v) in rest.iter().zip(embed_all(&c.model, &inputs)?) {
            by_text[i] = v;
        }
    }
    // Trace pooling and embed() agree.
    let check: Vec<usize> = traced.idx.iter().copied().take(4).collect();
    let (inputs, _) = corpus.subset(&check);
    let trace_vs_embed = embed_all(reference, &inputs)?
        .iter()
        .zip(&check)
        .map(|(v, &i)| v.iter().zip(&vectors[0][i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max))
        .fold(0f32, f32::max);
    ensure!(trace_vs_embed < 1e-3, "internal: pooled trace differs from embed() by {trace_vs_embed}");
    Ok(Finals { vectors, embedded: rest.len(), trace_vs_embed })
}

#[derive(Serialize)]
pub struct CosSummary {
    pub min: f64,
    pub p1: f64,
    pub p50: f64,
    pub mean: f64,
    pub n: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_script: Option<BTreeMap<String, CosSummary>>,
    /// The `WORST` evaluated texts with the lowest cosine, lowest first (overall summary only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub worst: Vec<WorstText>,
}

/// Texts listed per configuration in `CosSummary::worst`.
const WORST: usize = 5;

/// One of the texts with the lowest cosine: which input breaks a precision.
#[derive(Serialize)]
pub struct WorstText {
    pub cos: f64,
    pub script: String,
    /// Its first 60 characters.
    pub text: String,
}

impl CosSummary {
    pub fn of(c: &[f64]) -> Self {
        let mean = c.iter().sum::<f64>() / c.len().max(1) as f64;
        let p = |q| percentile(c, q);
        CosSummary { min: p(0.0), p1: p(1.0), p50: p(50.0), mean, n: c.len(), by_script: None, worst: vec![] }
    }
}

/// Per configuration: the cosine of every evaluated text's vector to fp32's.
pub fn cosines(finals: &Finals, configs: &[Config], corpus: &Corpus) -> BTreeMap<String, CosSummary> {
    let reference = &finals.vectors[0];
    let mut out = BTreeMap::new();
    for (c, vectors) in configs.iter().zip(&finals.vectors) {
        let cos: Vec<f64> = vectors.iter().zip(reference).map(|(v, r)| cosine(v, r)).collect();
        let by: BTreeMap<String, CosSummary> = corpus
            .scripts
            .iter()
            .map(|s| {
                let v: Vec<f64> = cos.iter().zip(&corpus.script).filter(|(_, t)| *t == s).map(|(c, _)| *c).collect();
                (s.clone(), CosSummary::of(&v))
            })
            .collect();
        let mut order: Vec<usize> = (0..cos.len()).collect();
        order.sort_by(|&a, &b| cos[a].total_cmp(&cos[b]));
        let worst = order
            .iter()
            .take(WORST)
            .map(|&i| WorstText {
                cos: cos[i],
                script: corpus.script[i].clone(),
                text: corpus.inputs[i].text.chars().take(60).collect(),
            })
            .collect();
        out.insert(c.name.clone(), CosSummary { by_script: Some(by), worst, ..CosSummary::of(&cos) });
    }
    out
}
