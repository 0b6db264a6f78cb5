//! The model's `tokenizer.json`, run with no truncation or padding of its own: e5 decides
//! what to do with long inputs and reports it.
//!
//! XLM-R style Unigram tokenizers (e5 small/base/large) run on [`CompactUnigram`] — the
//! same output as HF `tokenizers` in ~10 MB instead of ~280 MB; anything else (WordPiece,
//! BPE, …) runs on the `tokenizers` crate.

use crate::error::{Error, Result};
use crate::unigram::CompactUnigram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

pub(crate) struct TextTokenizer {
    /// Shared by every model loaded from the same unchanged file (see [`cached`]).
    inner: Arc<Backend>,
    path: PathBuf,
}

enum Backend {
    Compact(Box<CompactUnigram>),
    Hf(Box<tokenizers::Tokenizer>),
}

mod segments;

/// One text's tokens, specials included; the content may be cut short (see `total`).
pub(crate) struct Encoded {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Character offsets into the encoded text; `(0, 0)` for specials.
    pub offsets: Vec<(usize, usize)>,
    /// Special tokens before and after the content (e.g. `<s>` … `</s>`).
    pub prefix: usize,
    pub suffix: usize,
    /// Tokens of the whole text, specials included, kept or not.
    pub total: usize,
}

impl Encoded {
    pub fn content(&self) -> std::ops::Range<usize> {
        self.prefix..self.ids.len() - self.suffix
    }
}

impl TextTokenizer {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !crate::validate::present(&path) {
            return Err(Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found"),
            ));
        }
        let inner = cached(&path, || Backend::open(&path))?;
        Ok(TextTokenizer { inner, path })
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &*self.inner {
            Backend::Compact(t) => t.vocab_size(),
            Backend::Hf(t) => t.get_vocab_size(true),
        }
    }

    /// Tokens of `text`, keeping at most `keep` content tokens (all are counted in
    /// `total`). Long texts run a segment at a time, so memory is bounded by the segment
    /// and `keep`, not by the text.
    pub fn encode(&self, text: &str, keep: usize) -> Result<Encoded> {
        if text.len() <= segments::SEGMENT {
            let mut e = self.encode_whole(text)?;
            let content = e.content();
            let drop = content.start + keep.min(content.len())..content.end;
            e.ids.drain(drop.clone());
            e.tokens.drain(drop.clone());
            e.offsets.drain(drop);
            return Ok(e);
        }
        // Each segment is encoded with its specials: the first one's leading specials and
        // the last one's trailing specials frame the concatenated contents.
        let mut out = Encoded { ids: vec![], tokens: vec![], offsets: vec![], prefix: 0, suffix: 0, total: 0 };
        let mut suffix = (vec![], vec![], vec![]);
        let (mut chars, mut counted) = (0, 0);
        for (i, r) in segments::segments(text).enumerate() {
            let part = &text[r];
            let e = self.encode_whole(part)?;
            let content = e.content();
            if i == 0 {
                out.prefix = e.prefix;
                out.ids.extend_from_slice(&e.ids[..e.prefix]);
                out.tokens.extend_from_slice(&e.tokens[..e.prefix]);
                out.offsets.extend_from_slice(&e.offsets[..e.prefix]);
            }
            out.suffix = e.suffix;
            suffix =
                (e.ids[content.end..].to_vec(), e.tokens[content.end..].to_vec(), e.offsets[content.end..].to_vec());
            counted += content.len();
            let room = keep.saturating_add(out.prefix).saturating_sub(out.ids.len()).min(content.len());
            let kept = content.start..content.start + room;
            out.ids.extend_from_slice(&e.ids[kept.clone()]);
            out.tokens.extend_from_slice(&e.tokens[kept.clone()]);
            out.offsets.extend(e.offsets[kept].iter().map(|&(a, b)| (a + chars, b + chars)));
            chars += part.chars().count();
        }
        out.ids.extend(suffix.0);
        out.tokens.extend(suffix.1);
        out.offsets.extend(suffix.2);
        out.total = out.prefix + counted + out.suffix;
        Ok(out)
    }

    fn encode_whole(&self, text: &str) -> Result<Encoded> {
        let tok = match &*self.inner {
            Backend::Compact(t) => {
                let e = t.encode(text);
                return Ok(Encoded {
                    total: e.ids.len(),
                    ids: e.ids,
                    tokens: e.tokens,
                    offsets: e.offsets,
                    prefix: e.prefix,
                    suffix: e.suffix,
                });
            }
            Backend::Hf(t) => t,
        };
        let enc = tok
            .encode_char_offsets(text, true)
            .map_err(|e| Error::Tokenizer { path: self.path.clone(), message: e.to_string() })?;
        let special = enc.get_special_tokens_mask();
        let prefix = special.iter().take_while(|&&s| s == 1).count();
        let suffix = special[prefix..].iter().rev().take_while(|&&s| s == 1).count();
        Ok(Encoded {
            total: enc.get_ids().len(),
            ids: enc.get_ids().to_vec(),
            tokens: enc.get_tokens().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            prefix,
            suffix,
        })
    }
}

impl Backend {
    fn open(path: &Path) -> Result<Backend> {
        let json = crate::validate::read_text(path)?;
        let err = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
        if let Some(compact) = CompactUnigram::from_json(&json).map_err(|e| err(e.to_string()))? {
            return Ok(Backend::Compact(Box::new(compact)));
        }
        crate::unigram::check_charsmaps(&json).map_err(err)?;
        let mut inner: tokenizers::Tokenizer = json.parse().map_err(|e: tokenizers::Error| err(e.to_string()))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| err(e.to_string()))?;
        Ok(Backend::Hf(Box::new(inner)))
    }
}

/// The tokenizer of `path` if a live model already built it from the same file (same
/// canonical path, length and modification time), else `build()`'s. Building the 250k-piece
/// XLM-R tokenizer is about a third of a model's load time, and tools that load one model in
/// several precisions (`e5 quant-eval`) would otherwise build it once per load. Entries are
/// weak: the tokenizer is freed with the last model that uses it.
fn cached(path: &Path, build: impl FnOnce() -> Result<Backend>) -> Result<Arc<Backend>> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<Vec<(Key, Weak<Backend>)>> = Mutex::new(Vec::new());
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let key: Key = (std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?, meta.len(), meta.modified().ok());
    let hit = {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|(_, w)| w.strong_count() > 0);
        cache.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade())
    };
    if let Some(t) = hit {
        return Ok(t);
    }
    let t = Arc::new(build()?);
    CACHE.lock().unwrap_or_else(PoisonError::into_inner).push((key, Arc::downgrade(&t)));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long text tokenized a segment at a time gives the tokens of the whole text, and
    /// truncation keeps the first ones while counting them all.
    #[test]
    fn long_texts_tokenize_in_segments_exactly() {
        let texts = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/texts/multilingual.jsonl"),
        )
        .unwrap();
        let mut long = String::new();
        for (i, line) in texts.lines().cycle().take(3000).enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            long.push_str(v["text"].as_str().unwrap());
            long.push_str(["  ", " ", "\n ", " \u{301}x "][i % 4]);
        }
        assert!(long.len() > 4 * segments::SEGMENT);
        for fixture in ["tiny-xlmr", "tiny-bert"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(fixture);
            let t = TextTokenizer::open(&dir).unwrap();
            let whole = t.encode_whole(&long).unwrap();
            let parts = t.encode(&long, usize::MAX).unwrap();
            assert_eq!(parts.total, whole.ids.len(), "{fixture}");
            assert_eq!(parts.ids, whole.ids, "{fixture}");
            assert_eq!(parts.offsets, whole.offsets, "{fixture}");
            assert_eq!(parts.tokens, whole.tokens, "{fixture}");
            let cut = t.encode(&long, 100).unwrap();
            assert_eq!((cut.total, cut.ids.len()), (whole.ids.len(), 100 + whole.prefix + whole.suffix));
            assert_eq!(cut.ids[..100 + cut.prefix], whole.ids[..100 + whole.prefix]);
        }
    }

    #[test]
    fn shares_one_tokenizer_per_unchanged_file_while_a_user_lives() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-bert/tokenizer.json");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&src, dir.path().join("tokenizer.json")).unwrap();
        let a = TextTokenizer::open(dir.path()).unwrap();
        let b = TextTokenizer::open(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner), "second open reuses the live tokenizer");
        // A changed file is read again.
        let mut json = std::fs::read_to_string(&src).unwrap();
        json.push('\n');
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        let c = TextTokenizer::open(dir.path()).unwrap();
        assert!(!Arc::ptr_eq(&a.inner, &c.inner));
        assert_eq!(c.encode("hello world", usize::MAX).unwrap().ids, a.encode("hello world", usize::MAX).unwrap().ids);
        // Once no model holds it, the entry is gone and the next open builds anew.
        let weak = Arc::downgrade(&c.inner);
        drop(c);
        assert!(weak.upgrade().is_none());
    }
}
