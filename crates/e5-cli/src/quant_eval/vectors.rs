//! Compact output vectors on the parallel set: what storing the *documents* as int8 or binary
//! vectors (sentence-transformers' `quantize_embeddings`, computed by `e5::output`) does to
//! cross-lingual retrieval, with and without rescoring. Queries stay float32, as in
//! sentence-transformers' `semantic_search_faiss / _usearch` rescoring.
//!
//! Every method scores line i's query against every passage; `retrieval::evaluate` ranks the
//! pool and compares with fp32 vectors of the same weights. Methods:
//! - `fp32`: float query · float document.
//! - `int8`: int8 query · int8 document, both quantized with the same ranges (an int8 index's
//!   inner product).
//! - `int8, fp32 query`: float query · the int8 document dequantized (`(q + 128)·step + min`).
//! - `binary`: −Hamming distance between the query's and the document's sign bits.
//! - `binary → int8 ×r` / `binary → fp32 ×r`: the k·r best by Hamming distance (k = 10, ties by
//!   position), rescored with the float query against the dequantized int8 (or the float)
//!   document and ranked above the rest, which keep their Hamming order.
//!
//! The int8 ranges are calibrated on the passage vectors of quant-eval's calibration texts
//! (left out of the evaluation; the parallel set is not among them), per weight precision.

use super::retrieval::{evaluate, pool, Pair, PairVectors, Retrieval};
use anyhow::Result;
use e5::output::quantize;
use e5::{OutputPrecision, OutputRanges, VectorData};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Results kept per query before rescoring (nDCG@10).
const TOP_K: usize = 10;
/// Rescoring multipliers r: k·r candidates are rescored.
pub const RESCORE: [usize; 4] = [1, 2, 4, 10];

/// One way of storing and searching the document vectors.
#[derive(Serialize)]
pub struct VectorScores {
    pub method: String,
    /// Bytes of a document vector in the searched index.
    pub index_bytes: usize,
    /// Bytes of a document vector kept beside it for rescoring (0: none).
    pub rescore_bytes: usize,
    #[serde(flatten)]
    pub retrieval: Retrieval,
}

/// `sim[i][j]`: the score of passage j for line i's query.
type Sim = Vec<Vec<f64>>;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn sims(pairs: &[Pair], f: impl Fn(usize, usize) -> f64) -> Sim {
    (0..pairs.len()).map(|i| (0..pairs.len()).map(|j| f(i, j)).collect()).collect()
}

/// Rows of `v` (`[n, width]`) as i32 values (int8 levels or packed bytes).
fn rows_i32(v: &e5::OutputVectors) -> Vec<Vec<i32>> {
    let flat: Vec<i32> = match &v.data {
        VectorData::I8(x) => x.iter().map(|&b| b as i32).collect(),
        VectorData::U8(x) => x.iter().map(|&b| b as i32).collect(),
        VectorData::F32(_) => unreachable!("compact vectors are bytes"),
    };
    flat.chunks(v.width).map(<[i32]>::to_vec).collect()
}

fn quantized(vectors: &[Vec<f32>], p: OutputPrecision, ranges: &OutputRanges) -> Result<Vec<Vec<i32>>> {
    let dim = ranges.dim();
    Ok(rows_i32(&quantize(vectors.concat(), dim, p, Some(ranges))?))
}

/// `sim` with, per line, the k·r best of its pool by `first` rescored by `rescore` and
/// ranked above the others.
fn rescored(pairs: &[Pair], first: &Sim, rescore: &Sim, r: usize) -> Sim {
    let mut out = first.clone();
    for (i, row) in out.iter_mut().enumerate() {
        let mut cand = pool(pairs, i);
        cand.sort_by(|&a, &b| first[i][b].total_cmp(&first[i][a]).then(a.cmp(&b)));
        for &j in cand.iter().take(TOP_K * r) {
            row[j] = 1e9 + rescore[i][j];
        }
    }
    out
}

/// Every method's retrieval on `pairs` from the float vectors `v` of one weight precision;
/// `calibration`: passage vectors for the int8 ranges.
pub fn evaluate_methods(pairs: &[Pair], v: &PairVectors, calibration: &[Vec<f32>]) -> Result<Vec<VectorScores>> {
    let dim = v.passages.first().map_or(0, Vec::len);
    let ranges = OutputRanges::calibrate(&calibration.concat(), dim, true)?;
    let fp32 = sims(pairs, |i, j| dot(&v.queries[i], &v.passages[j]));
    let (q8, d8) = (
        quantized(&v.queries, OutputPrecision::Int8, &ranges)?,
        quantized(&v.passages, OutputPrecision::Int8, &ranges)?,
    );
    let int8 = sims(pairs, |i, j| q8[i].iter().zip(&d8[j]).map(|(a, b)| (a * b) as f64).sum());
    // sentence-transformers' `_dequantize_embeddings`: (q + 128)·step + min, in f64.
    let step = |k: usize| {
        let s = (ranges.max[k] - ranges.min[k]) / 255.0;
        if s == 0.0 {
            1.0
        } else {
            s
        }
    };
    let dequant: Vec<Vec<f64>> = d8
        .iter()
        .map(|d| d.iter().enumerate().map(|(k, &q)| (q + 128) as f64 * step(k) as f64 + ranges.min[k] as f64).collect())
        .collect();
    let int8_fq = sims(pairs, |i, j| v.queries[i].iter().zip(&dequant[j]).map(|(a, b)| *a as f64 * b).sum::<f64>());
    let (qb, db) = (
        quantized(&v.queries, OutputPrecision::Ubinary, &ranges)?,
        quantized(&v.passages, OutputPrecision::Ubinary, &ranges)?,
    );
    let hamming = |a: &[i32], b: &[i32]| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>();
    let binary = sims(pairs, |i, j| -(hamming(&qb[i], &db[j]) as f64));

    let (f, i8b, bb) = (OutputPrecision::Float32, OutputPrecision::Int8, OutputPrecision::Binary);
    let (fb, ib, bin) = (f.bytes_per_vector(dim), i8b.bytes_per_vector(dim), bb.bytes_per_vector(dim));
    let mut out = vec![
        scores(pairs, "fp32", fb, 0, &fp32, &fp32),
        scores(pairs, "int8", ib, 0, &int8, &fp32),
        scores(pairs, "int8, fp32 query", ib, 0, &int8_fq, &fp32),
        scores(pairs, "binary", bin, 0, &binary, &fp32),
    ];
    for (target, sim, bytes) in [("int8", &int8_fq, ib), ("fp32", &fp32, fb)] {
        for r in RESCORE {
            let name = format!("binary → {target} ×{r}");
            out.push(scores(pairs, &name, bin, bytes, &rescored(pairs, &binary, sim, r), &fp32));
        }
    }
    Ok(out)
}

fn scores(pairs: &[Pair], method: &str, index: usize, rescore: usize, sim: &Sim, fp32: &Sim) -> VectorScores {
    VectorScores {
        method: method.into(),
        index_bytes: index,
        rescore_bytes: rescore,
        retrieval: evaluate(pairs, sim, fp32),
    }
}

/// Methods shown per language and per weight precision in report.md.
const SHOWN: [&str; 6] = ["fp32", "int8", "binary", "binary → int8 ×1", "binary → int8 ×4", "binary → int8 ×10"];

/// report.md's section: every method on the fp32 weights, per language, and per weight precision.
pub fn markdown(m: &mut String, by: &BTreeMap<String, Vec<VectorScores>>, precisions: &[String]) {
    let Some(fp32) = by.get("fp32") else { return };
    let _ = writeln!(m, "\n## Compact output vectors\n");
    let _ = writeln!(
        m,
        "Documents stored as int8 or binary vectors (sentence-transformers' `quantize_embeddings`; `e5 embed --output-precision`), queries in float32, fp32 weights. int8 ranges from the passage vectors of the calibration texts. `int8`: int8 query · int8 document; `int8, fp32 query`: float query · dequantized document; `binary`: Hamming distance; `binary → X ×r`: the {TOP_K}·r best by Hamming distance rescored with the float query against the dequantized int8 (or float) document. τ: Kendall τ-b of the candidate ranking vs float vectors of the same weights. Bytes: per document vector, in the searched index + kept for rescoring.\n"
    );
    let _ = writeln!(m, "| method | bytes / vector | acc@1 | nDCG@10 | τ |\n|---|---|---|---|---|");
    for s in fp32 {
        let bytes = match s.rescore_bytes {
            0 => s.index_bytes.to_string(),
            r => format!("{} + {r}", s.index_bytes),
        };
        let o = &s.retrieval.overall;
        let _ = writeln!(m, "| {} | {bytes} | {:.4} | {:.4} | {:.4} |", s.method, o.acc1, o.ndcg10, o.tau);
    }
    let shown: Vec<&VectorScores> = SHOWN.iter().filter_map(|n| fp32.iter().find(|s| s.method == *n)).collect();
    let _ = writeln!(m, "\nacc@1 / nDCG@10 per passage language (fp32 weights):\n");
    let _ = writeln!(m, "| lang | pairs | {} |", SHOWN.join(" | "));
    let _ = writeln!(m, "|---|---|{}", "---|".repeat(SHOWN.len()));
    for (lang, n) in fp32[0].retrieval.by_lang.iter().map(|(l, s)| (l, s.n)) {
        let row: Vec<String> = shown
            .iter()
            .map(|s| s.retrieval.by_lang.get(lang).map_or("–".into(), |x| format!("{:.2} / {:.3}", x.acc1, x.ndcg10)))
            .collect();
        let _ = writeln!(m, "| {lang} | {n} | {} |", row.join(" | "));
    }
    let _ = writeln!(m, "\nnDCG@10 by weight precision (rows) and document vectors (columns):\n");
    let _ = writeln!(m, "| weights | {} |\n|---|{}", SHOWN.join(" | "), "---|".repeat(SHOWN.len()));
    for p in precisions {
        let Some(methods) = by.get(p) else { continue };
        let row: Vec<String> = SHOWN
            .iter()
            .map(|n| {
                methods
                    .iter()
                    .find(|s| s.method == *n)
                    .map_or("–".into(), |s| format!("{:.4}", s.retrieval.overall.ndcg10))
            })
            .collect();
        let _ = writeln!(m, "| {p} | {} |", row.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(q: &str, l: &str) -> Pair {
        Pair { query: q.into(), passage: format!("{q}-{l}"), lang: l.into() }
    }

    #[test]
    fn rescoring_reorders_only_the_first_candidates() {
        let pairs: Vec<Pair> = (0..12).map(|i| pair(&format!("q{i}"), "de")).collect();
        // By the first score, line 0's answer (passage 0) is last of the 12; the rescore prefers it.
        let first: Sim =
            (0..12).map(|_| (0..12).map(|j| if j == 0 { -100.0 } else { -(j as f64) }).collect()).collect();
        let rescore: Sim = (0..12).map(|_| (0..12).map(|j| if j == 0 { 1.0 } else { 0.0 }).collect()).collect();
        let best = |s: &Sim| (0..12).max_by(|&a, &b| s[0][a].total_cmp(&s[0][b]).then(b.cmp(&a))).unwrap();
        // k·r = 10 candidates: passage 0 (12th) is not among them, passage 1 stays first.
        let r1 = rescored(&pairs, &first, &rescore, 1);
        assert_eq!((best(&r1), r1[0][0], r1[0][11]), (1, -100.0, -11.0));
        // k·r = 20 covers the pool: the rescore puts passage 0 first.
        assert_eq!(best(&rescored(&pairs, &first, &rescore, 2)), 0);
    }

    #[test]
    fn methods_on_identical_queries_and_passages_find_every_answer() {
        let pairs: Vec<Pair> = (0..6).map(|i| pair(&format!("q{i}"), ["de", "fr"][i % 2])).collect();
        // Six well-separated unit vectors in 16 dimensions.
        let v: Vec<Vec<f32>> = (0..6)
            .map(|i| {
                (0..16)
                    .map(|k| {
                        if k / 2 == i {
                            0.7
                        } else if k % 3 == i % 3 {
                            0.1
                        } else {
                            -0.1
                        }
                    })
                    .collect()
            })
            .collect();
        let pv = PairVectors { queries: v.clone(), passages: v.clone() };
        let m = evaluate_methods(&pairs, &pv, &v).unwrap();
        assert_eq!(m.len(), 4 + 2 * RESCORE.len());
        for s in &m {
            assert_eq!(s.retrieval.overall.acc1, 1.0, "{}", s.method);
        }
        assert_eq!((m[0].index_bytes, m[1].index_bytes, m[3].index_bytes), (64, 16, 2));
        assert_eq!(m[4].rescore_bytes, 16);
    }
}
