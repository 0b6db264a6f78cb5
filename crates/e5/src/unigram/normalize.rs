//! A line-by-line port of the parts of `tokenizers::NormalizedString` (v0.23) that the
//! XLM-R pipeline uses, plus the normalizers of that pipeline (`Precompiled`, `Replace`).
//!
//! The alignment bookkeeping is reproduced exactly — including its quirks (e.g. a
//! removal at the very start of a string is not accounted for by `Precompiled`) — so that
//! offsets come out identical to the `tokenizers` crate.

use unicode_segmentation::UnicodeSegmentation;

/// One string being normalized: the original text, its normalized form and, for every byte
/// of the normalized form, the byte range of the original it comes from.
#[derive(Debug, Clone)]
pub(crate) struct NormStr {
    pub original: String,
    pub normalized: String,
    pub alignments: Vec<(usize, usize)>,
    pub original_shift: usize,
}

/// Which referential a range is expressed in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Referential {
    Original,
    Normalized,
}

impl NormStr {
    pub fn new(s: &str) -> Self {
        let mut alignments = Vec::with_capacity(s.len());
        for (b, c) in s.char_indices() {
            let len = c.len_utf8();
            for _ in 0..len {
                alignments.push((b, b + len));
            }
        }
        NormStr { original: s.to_owned(), normalized: s.to_owned(), alignments, original_shift: 0 }
    }

    pub fn get(&self) -> &str {
        &self.normalized
    }

    pub fn len(&self) -> usize {
        self.normalized.len()
    }

    pub fn is_empty(&self) -> bool {
        self.normalized.is_empty()
    }

    pub fn len_original(&self) -> usize {
        self.original.len()
    }

    pub fn offsets_original(&self) -> (usize, usize) {
        (self.original_shift, self.original_shift + self.len_original())
    }

    /// `NormalizedString::convert_offsets`.
    pub fn convert_offsets(
        &self,
        referential: Referential,
        target: std::ops::Range<usize>,
    ) -> Option<std::ops::Range<usize>> {
        let len_normalized = self.len();
        let original = matches!(referential, Referential::Original);
        if target.start == target.end {
            return Some(target);
        }
        if target.start > target.end {
            return None;
        }
        if original && self.original.is_empty() && target == (0..0) {
            return Some(0..len_normalized);
        }
        if !original && self.normalized.is_empty() && target == (0..0) {
            return Some(0..self.len_original());
        }
        if original {
            let (mut start, mut end) = (None, None);
            for (i, alignment) in self.alignments.iter().enumerate() {
                if target.end < alignment.1 {
                    break;
                }
                if start.is_none() && target.start <= alignment.0 && alignment.0 != alignment.1 {
                    start = Some(i);
                }
                if target.end >= alignment.1 {
                    end = Some(i + 1);
                }
            }
            match (start, end) {
                (Some(s), None) => Some(s..s),
                (None, Some(e)) => Some(e..e),
                (Some(s), Some(e)) => Some(s..e),
                _ => None,
            }
        } else {
            let a = self.alignments.get(target)?;
            if a.is_empty() {
                None
            } else {
                Some(a[0].0..a[a.len() - 1].1)
            }
        }
    }

    /// `NormalizedString::slice(Range::Normalized(range))`.
    pub fn slice_normalized(&self, range: std::ops::Range<usize>) -> Option<NormStr> {
        if !(self.normalized.is_char_boundary(range.start) && self.normalized.is_char_boundary(range.end)) {
            return None;
        }
        let normalized_range = range.clone();
        let original_range = self.convert_offsets(Referential::Normalized, range.clone())?;
        let n_shift = original_range.start;
        let original = self.original.get(original_range.clone()).unwrap_or_default().to_owned();
        let normalized = self.normalized.get(range).unwrap_or_default().to_owned();
        let alignments = self
            .alignments
            .get(normalized_range)?
            .iter()
            .map(|(start, end)| (start - n_shift, end - n_shift))
            .collect();
        Some(NormStr { original, normalized, alignments, original_shift: self.original_shift + original_range.start })
    }

    /// `NormalizedString::transform_range`.
    pub fn transform_range(
        &mut self,
        referential: Referential,
        range: std::ops::Range<usize>,
        dest: impl IntoIterator<Item = (char, isize)>,
        initial_offset: usize,
    ) {
        let n_range = match referential {
            Referential::Normalized => range,
            Referential::Original => match self.convert_offsets(Referential::Original, range) {
                Some(r) => r,
                None => return,
            },
        };
        let replaced: Vec<char> = self.normalized[n_range.clone()].chars().collect();
        let mut replaced_normalized = replaced.into_iter();
        let initial_removed: usize = (&mut replaced_normalized).take(initial_offset).map(|c| c.len_utf8()).sum();

        let mut offset = (initial_removed + n_range.start) as isize;
        let mut alignments = Vec::with_capacity(n_range.len());
        let mut normalized = String::with_capacity(n_range.len());
        for (c, changes) in dest {
            let idx = offset as usize;
            let align = if changes > 0 {
                if idx < 1 {
                    (0, 0)
                } else {
                    self.alignments[idx - 1]
                }
            } else {
                self.alignments[idx]
            };
            let replaced_char = if changes <= 0 { replaced_normalized.next() } else { None };
            let replaced_char_size = replaced_char.map_or(0, |c| c.len_utf8());
            let total_bytes_to_remove: usize = if changes < 0 {
                (&mut replaced_normalized).take((-changes) as usize).map(|c| c.len_utf8()).sum()
            } else {
                0
            };
            offset += replaced_char_size as isize;
            offset += total_bytes_to_remove as isize;
            for _ in 0..c.len_utf8() {
                alignments.push(align);
            }
            normalized.push(c);
        }
        self.alignments.splice(n_range.clone(), alignments);
        self.normalized.replace_range(n_range, &normalized);
    }

    /// `NormalizedString::transform` (whole original range).
    pub fn transform(&mut self, dest: impl IntoIterator<Item = (char, isize)>, initial_offset: usize) {
        let full = 0..self.len_original();
        self.transform_range(Referential::Original, full, dest, initial_offset)
    }

    /// `NormalizedString::prepend`.
    pub fn prepend(&mut self, s: &str) {
        if let Some(next) = self.normalized.chars().next() {
            let transformations: Vec<(char, isize)> = s
                .chars()
                .enumerate()
                .map(|(i, c)| (c, isize::from(i != 0)))
                .chain(std::iter::once((next, 1)))
                .collect();
            self.transform_range(Referential::Normalized, 0..next.len_utf8(), transformations, 0);
        }
    }

    /// `NormalizedString::replace` given the pattern's `find_matches` output.
    pub fn replace_matches(&mut self, matches: &[((usize, usize), bool)], content: &str) {
        let mut new_normalized = String::with_capacity(self.normalized.len());
        let mut new_alignments: Vec<(usize, usize)> = Vec::with_capacity(self.alignments.len());
        let mut last_end = 0;
        for &((start, end), is_match) in matches {
            if !is_match {
                continue;
            }
            let removed_chars = self.normalized[start..end].chars().count();
            new_normalized.push_str(&self.normalized[last_end..start]);
            new_alignments.extend(self.alignments[last_end..start].iter().cloned());

            let replaced: Vec<char> = self.normalized[start..end].chars().collect();
            let mut replaced_normalized = replaced.into_iter();
            let initial_removed: usize = (&mut replaced_normalized).take(removed_chars).map(|c| c.len_utf8()).sum();
            // every content char is an insertion (`changes == 1`), so the offset never moves
            let idx = initial_removed + start;
            for c in content.chars() {
                let align = if idx < 1 { (0, 0) } else { self.alignments[idx - 1] };
                for _ in 0..c.len_utf8() {
                    new_alignments.push(align);
                }
                new_normalized.push(c);
            }
            last_end = end;
        }
        new_normalized.push_str(&self.normalized[last_end..]);
        new_alignments.extend(&self.alignments[last_end..]);
        self.normalized = new_normalized;
        self.alignments = new_alignments;
    }

    /// `NormalizedString::split(char, MergedWithNext)` (or the whole string when `split` is off).
    pub fn split_merged_with_next(&self, delim: char) -> Vec<NormStr> {
        let matches = char_matches(&self.normalized, delim);
        let mut previous_match = false;
        let mut acc: Vec<(usize, usize)> = Vec::new();
        for &(offsets, is_match) in matches.iter().rev() {
            if is_match && !previous_match {
                if let Some(last) = acc.last_mut() {
                    last.0 = offsets.0;
                } else {
                    acc.push(offsets);
                }
            } else {
                acc.push(offsets);
            }
            previous_match = is_match;
        }
        acc.reverse();
        acc.into_iter().map(|(s, e)| self.slice_normalized(s..e).expect("NormalizedString bad split")).collect()
    }
}

/// `impl Pattern for char` → `find_matches`.
pub(crate) fn char_matches(inside: &str, delim: char) -> Vec<((usize, usize), bool)> {
    if inside.is_empty() {
        return vec![((0, 0), false)];
    }
    let mut last_offset = 0;
    let mut last_seen = 0;
    let mut matches = Vec::new();
    for (b, c) in inside.char_indices() {
        last_seen = b + c.len_utf8();
        if c == delim {
            if last_offset < b {
                matches.push(((last_offset, b), false));
            }
            matches.push(((b, b + c.len_utf8()), true));
            last_offset = b + c.len_utf8();
        }
    }
    if last_seen > last_offset {
        matches.push(((last_offset, last_seen), false));
    }
    matches
}

/// Splits `inside` like `Pattern::find_matches` for a regex/literal given its match ranges.
fn matches_from_ranges(inside: &str, found: impl Iterator<Item = (usize, usize)>) -> Vec<((usize, usize), bool)> {
    if inside.is_empty() {
        return vec![((0, 0), false)];
    }
    let mut prev = 0;
    let mut splits = Vec::new();
    for (start, end) in found {
        if prev != start {
            splits.push(((prev, start), false));
        }
        splits.push(((start, end), true));
        prev = end;
    }
    if prev != inside.len() {
        splits.push(((prev, inside.len()), false));
    }
    splits
}

/// A normalizer of the supported shapes.
pub(crate) enum Normalizer {
    /// SentencePiece's precompiled charsmap.
    Precompiled(Box<spm_precompiled::Precompiled>),
    /// `Replace` whose pattern is the regex ` {2,}` (runs of two or more U+0020).
    ReplaceSpaceRuns {
        content: String,
    },
    /// `Replace` with a literal pattern.
    ReplaceLiteral {
        pattern: String,
        content: String,
    },
    Sequence(Vec<Normalizer>),
}

impl Normalizer {
    pub fn normalize(&self, n: &mut NormStr) {
        match self {
            Normalizer::Sequence(list) => {
                for x in list {
                    x.normalize(n);
                }
            }
            Normalizer::Precompiled(p) => precompiled_normalize(p, n),
            Normalizer::ReplaceSpaceRuns { content } => {
                let s = n.get();
                let bytes = s.as_bytes();
                let mut found = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b' ' {
                        let mut j = i;
                        while j < bytes.len() && bytes[j] == b' ' {
                            j += 1;
                        }
                        if j - i >= 2 {
                            found.push((i, j));
                        }
                        i = j;
                    } else {
                        i += 1;
                    }
                }
                let matches = matches_from_ranges(s, found.into_iter());
                n.replace_matches(&matches, content);
            }
            Normalizer::ReplaceLiteral { pattern, content } => {
                let s = n.get();
                // leftmost, non-overlapping occurrences (what `regex::escape(pattern)` finds)
                let found: Vec<(usize, usize)> =
                    s.match_indices(pattern.as_str()).map(|(i, m)| (i, i + m.len())).collect();
                let matches = matches_from_ranges(s, found.into_iter());
                n.replace_matches(&matches, content);
            }
        }
    }
}

/// `normalizers::precompiled::replace`.
fn push_replacement(transformations: &mut Vec<(char, isize)>, old_part: &str, new_part: &str) {
    let old_count = old_part.chars().count() as isize;
    let new_count = new_part.chars().count() as isize;
    let diff = new_count - old_count;
    transformations.extend(new_part.chars().map(|c| (c, 0)));
    match diff.cmp(&0) {
        std::cmp::Ordering::Greater => {
            transformations.iter_mut().rev().take(diff as usize).for_each(|(_, cs)| *cs = 1);
        }
        std::cmp::Ordering::Less => {
            if let Some((_, cs)) = transformations.last_mut() {
                *cs += diff;
            }
        }
        std::cmp::Ordering::Equal => {}
    }
}

/// `impl Normalizer for Precompiled`.
fn precompiled_normalize(p: &spm_precompiled::Precompiled, n: &mut NormStr) {
    let mut transformations = Vec::with_capacity(n.get().len());
    let mut modified = false;
    for grapheme in n.get().graphemes(true) {
        if grapheme.len() < 6 {
            if let Some(norm) = p.transform(grapheme) {
                modified = true;
                push_replacement(&mut transformations, grapheme, norm);
                continue;
            }
        }
        for (char_index, c) in grapheme.char_indices() {
            let part = &grapheme[char_index..char_index + c.len_utf8()];
            if let Some(norm) = p.transform(part) {
                modified = true;
                push_replacement(&mut transformations, part, norm);
            } else {
                transformations.push((c, 0));
            }
        }
    }
    if modified {
        n.transform(transformations, 0);
    }
}
