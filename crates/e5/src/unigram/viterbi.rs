//! The Unigram model: `tokenizers::models::unigram::Unigram::encode_optimized` and
//! `Model::tokenize`, reproduced exactly (candidate order, strict `>` tie-breaking, the
//! unknown-piece penalty `min_score - 10`, fusing of consecutive unknown pieces, byte
//! fallback).

use super::trie::Trie;

const K_UNK_PENALTY: f64 = 10.0;

pub(crate) struct UnigramModel {
    /// piece bytes -> id (the last id when a piece is repeated, like `token_to_ids`)
    pub trie: Trie,
    /// score of each id
    pub scores: Vec<f64>,
    pub min_score: f64,
    pub unk_id: u32,
    pub byte_fallback: bool,
    /// ids of `<0x00>`..`<0xFF>` (`u32::MAX` when absent); used when `byte_fallback` is set
    pub byte_ids: Box<[u32; 256]>,
}

/// A token of one pre-tokenized word: id, value, byte offsets into that word.
pub(crate) struct ModelToken {
    pub id: u32,
    pub value: String,
    pub offsets: (usize, usize),
}

#[derive(Clone, Copy)]
struct BestPathNode {
    id: u32,
    best_path_score: f64,
    starts_at: Option<usize>,
}

impl UnigramModel {
    pub fn vocab_len(&self) -> usize {
        self.scores.len()
    }

    /// `Unigram::encode` (the optimized Viterbi with `fuse_unk`).
    fn encode_pieces(&self, sentence: &str) -> Vec<(usize, usize)> {
        if sentence.is_empty() {
            return vec![];
        }
        let size = sentence.len();
        let bytes = sentence.as_bytes();
        let unk_score = self.min_score - K_UNK_PENALTY;
        let mut best = vec![BestPathNode { id: 0, best_path_score: 0.0, starts_at: None }; size + 1];
        let mut starts_at = 0;
        while starts_at < size {
            let best_here = best[starts_at].best_path_score;
            let mut has_single_node = false;
            let mblen = sentence[starts_at..].chars().next().unwrap().len_utf8();
            self.trie.common_prefixes(&bytes[starts_at..], |len, id| {
                let key_pos = starts_at + len;
                let target = &mut best[key_pos];
                let candidate = self.scores[id as usize] + best_here;
                if target.starts_at.is_none() || candidate > target.best_path_score {
                    target.best_path_score = candidate;
                    target.starts_at = Some(starts_at);
                    target.id = id;
                }
                if !has_single_node && len == mblen {
                    has_single_node = true;
                }
            });
            if !has_single_node {
                let target = &mut best[starts_at + mblen];
                let candidate = unk_score + best_here;
                if target.starts_at.is_none() || candidate > target.best_path_score {
                    target.best_path_score = candidate;
                    target.starts_at = Some(starts_at);
                    target.id = self.unk_id;
                }
            }
            starts_at += mblen;
        }
        // Backtrack, fusing runs of unknown pieces.
        let mut results: Vec<(usize, usize)> = vec![];
        let mut unk_run: Option<(usize, usize)> = None;
        let mut ends_at = size;
        while ends_at > 0 {
            let node = best[ends_at];
            let starts_at = node.starts_at.unwrap();
            if node.id == self.unk_id {
                unk_run = Some(match unk_run {
                    Some((_, e)) => (starts_at, e),
                    None => (starts_at, ends_at),
                });
            } else {
                if let Some(r) = unk_run.take() {
                    results.push(r);
                }
                results.push((starts_at, ends_at));
            }
            ends_at = starts_at;
        }
        if let Some(r) = unk_run.take() {
            results.push(r);
        }
        results.reverse();
        results
    }

    /// `Model::tokenize` for `Unigram`.
    pub fn tokenize(&self, sentence: &str, out: &mut Vec<ModelToken>) {
        let mut offset = 0;
        for (s, e) in self.encode_pieces(sentence) {
            let string = &sentence[s..e];
            let len = string.len();
            let offsets = (offset, offset + len);
            let id = match self.trie.get(string.as_bytes()) {
                Some(id) => id,
                None => {
                    if self.byte_fallback && string.bytes().all(|b| self.byte_ids[b as usize] != u32::MAX) {
                        for b in string.bytes() {
                            out.push(ModelToken {
                                id: self.byte_ids[b as usize],
                                value: format!("<0x{b:02X}>"),
                                offsets: (offset, offset + len),
                            });
                        }
                        offset += len;
                        continue;
                    }
                    self.unk_id
                }
            };
            offset += len;
            out.push(ModelToken { id, value: string.to_owned(), offsets });
        }
    }
}
