//! Cross-lingual retrieval on a parallel set: English queries, passages in other languages.
//!
//! Line i's query matches line i's passage. The candidate pool of line i is every passage
//! except the *other* lines' passages that share line i's query text (translations of the same
//! English sentence into other languages would be correct answers too); with distinct queries
//! that is simply all passages.

use super::finals::embed_all;
use super::metrics::{kendall_tau_b, ndcg_at};
use super::Config;
use anyhow::{bail, Result};
use e5::{Input, Model};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Pair {
    pub query: String,
    pub passage: String,
    pub lang: String,
}

/// Reads JSONL `{"query", "passage", "lang"?}`; every error names the file and line.
pub fn read_pairs(path: &str) -> Result<Vec<Pair>> {
    let mut out = Vec::new();
    for (n, v) in crate::io::read_jsonl(path, "the pairs file")? {
        let field = |f: &str| -> Result<String> {
            match v.get(f) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                _ => {
                    bail!("{path}: line {n}: missing or empty \"{f}\" string (each line needs a query and its passage)")
                }
            }
        };
        let (query, passage) = (field("query")?, field("passage")?);
        let lang = v.get("lang").and_then(|l| l.as_str()).unwrap_or("unknown").to_string();
        out.push(Pair { query, passage, lang });
    }
    if out.is_empty() {
        bail!("{path}: no pairs");
    }
    Ok(out)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Scores {
    pub acc1: f64,
    pub ndcg10: f64,
    /// Mean Kendall τ-b against the reference ranking (1 for the reference itself).
    pub tau: f64,
    pub n: usize,
}

#[derive(Serialize)]
pub struct Retrieval {
    #[serde(flatten)]
    pub overall: Scores,
    pub by_lang: BTreeMap<String, Scores>,
}

/// The pool of line i (see the module doc).
pub fn pool(pairs: &[Pair], i: usize) -> Vec<usize> {
    (0..pairs.len()).filter(|&j| j == i || pairs[j].query != pairs[i].query).collect()
}

/// `sim[i][j]`: similarity of line i's query and passage j, for the evaluated precision and for
/// the fp32 reference.
pub fn evaluate(pairs: &[Pair], sim: &[Vec<f64>], reference: &[Vec<f64>]) -> Retrieval {
    let mut groups: BTreeMap<String, Scores> = BTreeMap::new();
    let mut all = Scores::default();
    for i in 0..pairs.len() {
        let cand = pool(pairs, i);
        let mut order = cand.clone();
        order.sort_by(|&a, &b| sim[i][b].total_cmp(&sim[i][a]).then(a.cmp(&b)));
        let rel: Vec<bool> = order.iter().map(|&j| j == i).collect();
        let acc = rel[0] as u8 as f64;
        let ndcg = ndcg_at(&rel, 10, 1);
        let a: Vec<f64> = cand.iter().map(|&j| sim[i][j]).collect();
        let b: Vec<f64> = cand.iter().map(|&j| reference[i][j]).collect();
        let tau = kendall_tau_b(&a, &b);
        for s in [&mut all, groups.entry(pairs[i].lang.clone()).or_default()] {
            s.acc1 += acc;
            s.ndcg10 += ndcg;
            s.tau += tau;
            s.n += 1;
        }
    }
    let fin = |s: &mut Scores| {
        let n = s.n.max(1) as f64;
        s.acc1 /= n;
        s.ndcg10 /= n;
        s.tau /= n;
    };
    fin(&mut all);
    groups.values_mut().for_each(fin);
    Retrieval { overall: all, by_lang: groups }
}

/// The float vectors of a parallel set: line i's query, and passage i.
pub struct PairVectors {
    pub queries: Vec<Vec<f32>>,
    pub passages: Vec<Vec<f32>>,
}

/// `pairs` embedded by `model` (each distinct query once).
pub fn embed_pairs(model: &Model, pairs: &[Pair]) -> Result<PairVectors> {
    let mut queries: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
    queries.sort();
    queries.dedup();
    let q_inputs: Vec<Input> = queries.iter().map(|q| Input::query(*q)).collect();
    let p_inputs: Vec<Input> = pairs.iter().map(|p| Input::passage(p.passage.as_str())).collect();
    let q = embed_all(model, &q_inputs)?;
    let by_line = pairs.iter().map(|p| q[queries.binary_search(&p.query.as_str()).expect("listed")].clone());
    Ok(PairVectors { queries: by_line.collect(), passages: embed_all(model, &p_inputs)? })
}

/// Every configuration's retrieval scores on `pairs` from its vectors, with fp32 (the first)
/// as reference.
pub fn stage(configs: &[Config], pairs: &[Pair], vectors: &[PairVectors]) -> BTreeMap<String, Retrieval> {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum::<f64>();
    let sims: Vec<Vec<Vec<f64>>> = vectors
        .iter()
        .map(|v| v.queries.iter().map(|q| v.passages.iter().map(|p| dot(p, q)).collect()).collect())
        .collect();
    configs.iter().zip(&sims).map(|(c, s)| (c.name.clone(), evaluate(pairs, s, &sims[0]))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str, l: &str) -> Pair {
        Pair { query: q.into(), passage: format!("{q}-{l}"), lang: l.into() }
    }

    #[test]
    fn perfect_and_swapped() {
        let pairs = vec![p("a", "de"), p("b", "de"), p("c", "fr")];
        let good = vec![vec![0.9, 0.1, 0.2], vec![0.1, 0.8, 0.3], vec![0.0, 0.1, 0.7]];
        let r = evaluate(&pairs, &good, &good);
        assert_eq!((r.overall.acc1, r.overall.ndcg10, r.overall.tau), (1.0, 1.0, 1.0));
        // line 2 now ranks its passage third
        let bad = vec![vec![0.9, 0.1, 0.2], vec![0.1, 0.8, 0.3], vec![0.9, 0.8, 0.7]];
        let r = evaluate(&pairs, &bad, &good);
        assert!((r.overall.acc1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.by_lang["fr"].ndcg10 - 0.5).abs() < 1e-12);
        assert!((r.by_lang["fr"].tau + 1.0).abs() < 1e-12);
        assert_eq!(r.by_lang["de"].tau, 1.0);
    }

    #[test]
    fn shared_queries_leave_the_other_translations_out_of_the_pool() {
        let pairs = vec![p("a", "de"), p("a", "fr"), p("b", "fr")];
        assert_eq!(pool(&pairs, 0), vec![0, 2]);
        assert_eq!(pool(&pairs, 2), vec![0, 1, 2]);
    }
}
