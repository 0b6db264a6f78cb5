//! Long texts tokenized a segment at a time, so that memory stays bounded whatever the
//! input: the tokenizers hold per-byte alignment tables (~16 bytes per input byte) and a
//! string per token, which for one 200 MB line is gigabytes.
//!
//! Cuts fall before a space that follows a letter or digit. Both pipelines e5 runs split
//! words at spaces before their model sees them (XLM-R's Metaspace, BERT's whitespace
//! pre-tokenizer), their normalizers work per character or per grapheme (a space starts a
//! grapheme, and any combining marks after it stay with it), and a run of spaces stays
//! whole, so the tokens of the segments are those of the whole text. A run of more than
//! [`MAX_SEGMENT`] bytes with no such space (no real text has one) is cut at a character
//! boundary after a letter or digit; tokens next to that cut may then differ.

/// Texts up to this many bytes are tokenized whole.
pub(super) const SEGMENT: usize = 64 << 10;
/// Longest segment when no space is found.
const MAX_SEGMENT: usize = 1 << 20;

/// Byte ranges covering `text`, in order, each ending before a cut (see the module doc).
pub(super) fn segments(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = if text.len() - start <= SEGMENT { text.len() } else { cut(text, start) };
        let r = start..end;
        start = end;
        Some(r)
    })
}

/// The end of the segment from `start`: the last cut before `start + SEGMENT`, else the
/// first one after it, else a forced cut at `start + MAX_SEGMENT`.
fn cut(text: &str, start: usize) -> usize {
    let is_cut = |i: usize| -> bool {
        text.as_bytes()[i] == b' ' && text[..i].chars().next_back().is_some_and(char::is_alphanumeric)
    };
    let target = start + SEGMENT;
    if let Some(i) = (start + 1..target).rev().find(|&i| is_cut(i)) {
        return i;
    }
    let limit = (start + MAX_SEGMENT).min(text.len());
    if let Some(i) = (target..limit).find(|&i| is_cut(i)) {
        return i;
    }
    if limit == text.len() {
        return limit;
    }
    // No space at all: cut at a character boundary after a letter or digit if there is one.
    let boundary = |i: usize| text.is_char_boundary(i);
    (start + 1..limit)
        .rev()
        .filter(|&i| boundary(i))
        .find(|&i| text[..i].chars().next_back().is_some_and(char::is_alphanumeric))
        .unwrap_or_else(|| (start + 1..=limit).rev().find(|&i| boundary(i)).unwrap_or(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_text_and_cut_before_a_space_after_a_letter() {
        let text = "word  ".repeat(40_000) + &"x".repeat(3 << 20) + " tail";
        let parts: Vec<_> = segments(&text).collect();
        assert_eq!(parts.first().unwrap().start, 0);
        assert_eq!(parts.last().unwrap().end, text.len());
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        assert!(parts.iter().all(|r| r.len() <= MAX_SEGMENT));
        for r in &parts[..parts.len() - 1] {
            let after = &text[r.end..];
            assert!(after.starts_with(' ') || after.starts_with('x'), "{:?}", &after[..8]);
            assert!(!text[..r.end].ends_with(' '));
        }
    }
}
