//! The input planner: pure logic between the tokenizer and the backend.
//!
//! text → [`compose`] (prefix, strip) → tokenizer → [`Planner::plan`] (whole, truncated or
//! chunked [`Piece`]s) → [`sub_batches`] + [`pack`] (what one backend call runs) → backend →
//! pooled rows → [`assemble`] (one row per input, or per chunk).

use crate::error::{Error, Result};
use crate::input::{ChunkOutput, Embeddings, LongInputs, RowInfo};
use crate::tokenize::Encoded;
use e5_kernels::Kernels;
use std::ops::Range;

/// One sequence the encoder runs: a whole input, its truncated start, or one chunk.
pub(crate) struct Piece {
    pub ids: Vec<u32>,
    pub row: RowInfo,
    /// Leading tokens left out of pooling (the prompt, under `include_prompt: false`).
    pub skip: usize,
}

/// What planning needs to know of the model and the options.
pub(crate) struct Planner {
    /// Longest sequence the model embeds, specials included.
    pub max_tokens: usize,
    /// Rows of the embedding table: every id must be below.
    pub vocab: usize,
    pub long_inputs: LongInputs,
}

/// The text the tokenizer sees — prefix + text, stripped of surrounding whitespace as
/// sentence-transformers does — and the shift from its character offsets to the caller's
/// text (`caller = offset + shift`).
pub(crate) fn compose(prefix: &str, text: &str) -> (String, isize) {
    let full = format!("{prefix}{text}");
    // Python's str.isspace also counts the information separators U+001C..U+001F.
    let space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    let stripped = full.trim_matches(space);
    let lead = full[..full.len() - full.trim_start_matches(space).len()].chars().count();
    (stripped.to_string(), lead as isize - prefix.chars().count() as isize)
}

impl Planner {
    /// Splits input `index` (tokenized as `enc`, whose first `prompt` content tokens are
    /// its prompt; `shift` from [`compose`]; `text_chars` characters in the caller's text)
    /// into the sequences the encoder runs, per [`LongInputs`]. The prompt opens every
    /// piece: each chunk of a query or passage is presented as one.
    pub fn plan(
        &self,
        index: usize,
        enc: &Encoded,
        shift: isize,
        text_chars: usize,
        prompt: usize,
    ) -> Result<Vec<Piece>> {
        let vocab = self.vocab;
        if let Some(bad) = enc.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Input {
                index,
                message: format!("token id {bad} is outside the embedding table ({vocab} rows)"),
            });
        }
        let max = self.max_tokens;
        let (total, content) = (enc.total, enc.content());
        // Content is `[prompt | text]`; pieces cut the text only.
        let prompt = content.start..(content.start + prompt).min(content.end);
        let text_start = prompt.end;
        let room = max.checked_sub(enc.prefix + prompt.len() + enc.suffix).filter(|&r| r > 0).ok_or_else(|| {
            let after = if prompt.is_empty() { "" } else { " after the prompt" };
            Error::Input { index, message: format!("the model's limit of {max} tokens leaves no room for text{after}") }
        })?;
        let to_caller = |c: usize| (c as isize + shift).max(0) as usize;
        let chars = |a: usize, b: usize| -> Range<usize> {
            if a >= b {
                return 0..0;
            }
            to_caller(enc.offsets[a].0)..to_caller(enc.offsets[b - 1].1)
        };
        let piece = |a: usize, b: usize, truncated: bool, chars: Range<usize>| {
            let ids: Vec<u32> = enc.ids[..enc.prefix]
                .iter()
                .chain(&enc.ids[prompt.clone()])
                .chain(&enc.ids[a..b])
                .chain(&enc.ids[content.end..])
                .copied()
                .collect();
            Piece {
                row: RowInfo { input: index, tokens: ids.len(), input_tokens: total, truncated, chars },
                ids,
                skip: 0,
            }
        };
        if total <= max {
            return Ok(vec![piece(text_start, content.end, false, 0..text_chars)]);
        }
        match self.long_inputs {
            LongInputs::Truncate => {
                let end = text_start + room;
                Ok(vec![piece(text_start, end, true, chars(text_start, end))])
            }
            LongInputs::Chunk { window, overlap, .. } => {
                let w = if window == 0 { room } else { window.min(room) };
                if overlap >= w {
                    return Err(Error::Options(format!("chunk overlap {overlap} must be smaller than the window {w}")));
                }
                let mut out = Vec::new();
                let mut a = text_start;
                loop {
                    let b = (a + w).min(content.end);
                    out.push(piece(a, b, false, chars(a, b)));
                    if b == content.end {
                        return Ok(out);
                    }
                    a += w - overlap;
                }
            }
        }
    }

    /// Whether an input's chunks are merged into one row.
    pub fn merges_chunks(&self) -> bool {
        matches!(self.long_inputs, LongInputs::Chunk { output: ChunkOutput::PerInput, .. })
    }
}

/// Concatenated ids and their `n + 1` prefix offsets.
pub(crate) fn pack<'a>(seqs: impl Iterator<Item = &'a [u32]>) -> (Vec<u32>, Vec<usize>) {
    let (mut ids, mut offsets) = (Vec::new(), vec![0]);
    for s in seqs {
        ids.extend_from_slice(s);
        offsets.push(ids.len());
    }
    (ids, offsets)
}

/// `group` cut greedily into runs of at most `max_tokens` tokens (a longer piece runs alone).
pub(crate) fn sub_batches<'g>(pieces: &[Piece], group: &'g [usize], max_tokens: usize) -> Vec<&'g [usize]> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < group.len() {
        let (mut end, mut tokens) = (start, 0);
        while end < group.len() && (end == start || tokens + pieces[group[end]].ids.len() <= max_tokens) {
            tokens += pieces[group[end]].ids.len();
            end += 1;
        }
        batches.push(&group[start..end]);
        start = end;
    }
    batches
}

/// Rows in input order from the pieces' pooled `vectors` (`[pieces, h]`); with
/// `merge_chunks`, an input's chunks are merged into their token-weighted mean,
/// renormalized when `normalize`.
pub(crate) fn assemble(
    kern: &Kernels,
    h: usize,
    pieces: Vec<Piece>,
    vectors: Vec<f32>,
    merge_chunks: bool,
    normalize: bool,
) -> Embeddings {
    if !merge_chunks {
        return Embeddings { dim: h, data: vectors, rows: pieces.into_iter().map(|p| p.row).collect() };
    }
    let mut out = Embeddings { dim: h, ..Default::default() };
    let mut i = 0;
    while i < pieces.len() {
        let input = pieces[i].row.input;
        let j = i + pieces[i..].iter().take_while(|p| p.row.input == input).count();
        let mut v = vec![0.0; h];
        let weight: usize = pieces[i..j].iter().map(|p| p.row.tokens).sum();
        for (p, k) in pieces[i..j].iter().zip(i..j) {
            kern.axpy(&mut v, p.row.tokens as f32 / weight as f32, &vectors[k * h..(k + 1) * h]);
        }
        if normalize && j - i > 1 {
            let norm = kern.dot(&v, &v).sqrt();
            kern.scale(&mut v, 1.0 / norm.max(1e-12));
        }
        let first = &pieces[i].row;
        let last = &pieces[j - 1].row;
        out.rows.push(RowInfo {
            input,
            tokens: weight,
            input_tokens: first.input_tokens,
            truncated: false,
            chars: first.chars.start..last.chars.end,
        });
        out.data.extend(v);
        i = j;
    }
    out
}

#[cfg(test)]
mod tests;
