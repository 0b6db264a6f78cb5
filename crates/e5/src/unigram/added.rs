//! Added tokens matched in the raw text, before normalization:
//! `tokenizers::tokenizer::added_vocabulary::AddedVocabulary::find_matches` for the
//! non-normalized tokens (leftmost-longest, then `single_word` / `lstrip` / `rstrip`).

use regex::Regex;
use std::sync::LazyLock;

static STARTS_WITH_WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\w").unwrap());
static ENDS_WITH_WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w$").unwrap());
static RIGHTMOST_SPACE_AT_START: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*").unwrap());
static LEFTMOST_SPACE_AT_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s*$").unwrap());

#[derive(Clone, Debug)]
pub(crate) struct AddedToken {
    pub content: String,
    pub id: u32,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
}

pub(crate) struct AddedVocab {
    /// non-normalized added tokens (content unique)
    pub tokens: Vec<AddedToken>,
}

impl AddedVocab {
    /// Leftmost-longest, non-overlapping occurrences: (token index, start, end).
    fn leftmost_longest(&self, sentence: &str) -> Vec<(usize, usize, usize)> {
        let bytes = sentence.as_bytes();
        let mut out = Vec::new();
        if self.tokens.is_empty() {
            return out;
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let mut found = None;
            let mut s = pos;
            while s < bytes.len() {
                let mut best: Option<(usize, usize)> = None;
                for (k, t) in self.tokens.iter().enumerate() {
                    let c = t.content.as_bytes();
                    if bytes[s..].starts_with(c) && best.is_none_or(|(_, l)| c.len() > l) {
                        best = Some((k, c.len()));
                    }
                }
                if let Some((k, l)) = best {
                    found = Some((k, s, s + l));
                    break;
                }
                s += 1;
            }
            match found {
                Some((k, s, e)) => {
                    out.push((k, s, e));
                    pos = e;
                }
                None => break,
            }
        }
        out
    }

    /// `AddedVocabulary::find_matches`: the sentence cut into (added token id or None, byte range).
    pub fn find_matches(&self, sentence: &str) -> Vec<(Option<u32>, (usize, usize))> {
        if sentence.is_empty() {
            return vec![(None, (0, 0))];
        }
        if self.tokens.is_empty() {
            return vec![(None, (0, sentence.len()))];
        }
        let mut start_offset = 0;
        let mut splits = vec![];
        for (k, mut start, mut stop) in self.leftmost_longest(sentence) {
            let t = &self.tokens[k];
            if t.single_word {
                let start_space = start == 0 || !ENDS_WITH_WORD.is_match(&sentence[..start]);
                let stop_space = stop == sentence.len() || !STARTS_WITH_WORD.is_match(&sentence[stop..]);
                if !stop_space || !start_space {
                    continue;
                }
            }
            if t.lstrip {
                let newstart = LEFTMOST_SPACE_AT_END.find(&sentence[..start]).map_or(start, |m| m.start());
                start = std::cmp::max(newstart, start_offset);
            }
            if t.rstrip {
                stop += RIGHTMOST_SPACE_AT_START.find(&sentence[stop..]).map_or(0, |m| m.end());
            }
            if start_offset < start {
                splits.push((None, (start_offset, start)));
            }
            splits.push((Some(t.id), (start, stop)));
            start_offset = stop;
        }
        if start_offset != sentence.len() {
            splits.push((None, (start_offset, sentence.len())));
        }
        splits
    }
}
