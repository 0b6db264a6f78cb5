//! The texts of a run: read from JSONL, tokenized once, split into calibration and
//! evaluation, and grouped by script.

use anyhow::{ensure, Context, Result};
use e5::{Input, Model};
use serde_json::Value;
use std::ops::Range;

pub struct Text {
    pub text: String,
    pub lang: String,
    pub query: bool,
}

impl Text {
    pub fn input(&self) -> Input<'_> {
        if self.query {
            Input::query(self.text.as_str())
        } else {
            Input::passage(self.text.as_str())
        }
    }
}

/// "zh_Hans" → "Hans"; a language without a script subtag is its own group.
fn script(lang: &str) -> String {
    lang.split_once('_').map(|(_, s)| s.to_string()).unwrap_or_else(|| lang.to_string())
}

/// JSONL `{"text", "lang"?, "kind"?}` or bare strings; kind query/short → a query.
pub fn read_texts(path: &str) -> Result<Vec<Text>> {
    let mut out = Vec::new();
    for (n, v) in crate::io::read_jsonl(path, "texts")? {
        let text = match &v {
            Value::String(s) => s.clone(),
            _ => v
                .get("text")
                .and_then(|t| t.as_str())
                .with_context(|| format!("{path}: line {n}: expected a \"text\" string"))?
                .to_string(),
        };
        let lang = v.get("lang").and_then(|l| l.as_str()).unwrap_or("unknown").to_string();
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        out.push(Text { text, lang, query: matches!(kind, "query" | "short") });
    }
    Ok(out)
}

/// `k` indices spread evenly over `0..n` (all of them if k >= n).
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    (0..k).map(|i| i * n / k).collect()
}

/// Consecutive ranges of at most 32 texts and `max_tokens` tokens.
pub fn chunks(tokens: &[usize], max_tokens: usize) -> Vec<Range<usize>> {
    let (mut out, mut start, mut sum) = (Vec::new(), 0, 0);
    for (i, &t) in tokens.iter().enumerate() {
        if i > start && (i - start >= 32 || sum + t > max_tokens) {
            out.push(start..i);
            start = i;
            sum = 0;
        }
        sum += t;
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

/// Where the calibration texts come from.
pub enum CalibrationSource<'t> {
    /// `n` of the texts, evenly spread, left out of the evaluation (all of them, overlapping
    /// the evaluation, when there are no more than `n`; none when `n` is 0).
    Spread(usize),
    /// Texts of their own (`--calibration-file`): every text is evaluated.
    Separate(&'t [Text]),
}

/// The evaluated texts and the calibration texts.
pub struct Corpus<'t> {
    pub total: usize,
    pub calibration_overlaps: bool,
    /// Inputs, tokens (as embedded, truncated) and script of every evaluated text.
    pub inputs: Vec<Input<'t>>,
    pub tokens: Vec<usize>,
    pub script: Vec<String>,
    /// The distinct scripts, sorted.
    pub scripts: Vec<String>,
    /// Inputs and tokens of the calibration texts.
    pub calibration_inputs: Vec<Input<'t>>,
    pub calibration_tokens: Vec<usize>,
}

/// The token count of each input as `model` embeds it (truncated to its limit).
fn token_counts(inputs: &[Input], model: &Model) -> Result<Vec<usize>> {
    let max_tokens = model.info().max_tokens;
    inputs.iter().map(|x| Ok(model.tokenize(x)?.ids.len().min(max_tokens))).collect()
}

impl<'t> Corpus<'t> {
    /// Tokenizes `texts` with `model` and takes the calibration texts from `source`.
    pub fn new(texts: &'t [Text], model: &Model, source: CalibrationSource<'t>) -> Result<Self> {
        ensure!(!texts.is_empty(), "no texts");
        let all: Vec<Input> = texts.iter().map(|t| t.input()).collect();
        let tokens = token_counts(&all, model)?;
        let n = texts.len();
        let (calibration, eval, overlaps): (Vec<usize>, Vec<usize>, bool) = match source {
            CalibrationSource::Spread(0) | CalibrationSource::Separate(_) => (vec![], (0..n).collect(), false),
            CalibrationSource::Spread(k) if n > k => {
                let c = spread(n, k);
                let e = (0..n).filter(|i| !c.contains(i)).collect();
                (c, e, false)
            }
            CalibrationSource::Spread(_) => ((0..n).collect(), (0..n).collect(), true),
        };
        let (calibration_inputs, calibration_tokens) = match source {
            CalibrationSource::Separate(cal) => {
                let inputs: Vec<Input> = cal.iter().map(|t| t.input()).collect();
                let tokens = token_counts(&inputs, model)?;
                (inputs, tokens)
            }
            CalibrationSource::Spread(_) => (
                calibration.iter().map(|&i| all[i].clone()).collect(),
                calibration.iter().map(|&i| tokens[i]).collect(),
            ),
        };
        let script: Vec<String> = eval.iter().map(|&i| script(&texts[i].lang)).collect();
        let mut scripts = script.clone();
        scripts.sort();
        scripts.dedup();
        Ok(Corpus {
            total: n,
            calibration_inputs,
            calibration_tokens,
            calibration_overlaps: overlaps,
            inputs: eval.iter().map(|&i| all[i].clone()).collect(),
            tokens: eval.iter().map(|&i| tokens[i]).collect(),
            script,
            scripts,
        })
    }

    /// Inputs and tokens of the evaluated texts `idx`.
    pub fn subset(&self, idx: &[usize]) -> (Vec<Input<'t>>, Vec<usize>) {
        (idx.iter().map(|&i| self.inputs[i].clone()).collect(), idx.iter().map(|&i| self.tokens[i]).collect())
    }

    /// 1 + the script index of evaluated text `i` (0 is "all scripts").
    pub fn group(&self, i: usize) -> usize {
        1 + self.scripts.iter().position(|s| *s == self.script[i]).expect("every script is listed")
    }
}
