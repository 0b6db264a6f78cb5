//! The model's `tokenizer.json`, run with no truncation or padding of its own: e5 decides
//! what to do with long inputs and reports it.
//!
//! XLM-R style Unigram tokenizers (e5 small/base/large) run on [`CompactUnigram`] — the
//! same output as HF `tokenizers` in ~10 MB instead of ~280 MB; anything else (WordPiece,
//! BPE, …) runs on the `tokenizers` crate.

use crate::error::{Error, Result};
use crate::unigram::CompactUnigram;
use std::path::{Path, PathBuf};

pub(crate) struct TextTokenizer {
    inner: Backend,
    path: PathBuf,
}

enum Backend {
    Compact(CompactUnigram),
    Hf(Box<tokenizers::Tokenizer>),
}

/// One text's tokens, specials included.
pub(crate) struct Encoded {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Character offsets into the encoded text; `(0, 0)` for specials.
    pub offsets: Vec<(usize, usize)>,
    /// Special tokens before and after the content (e.g. `<s>` … `</s>`).
    pub prefix: usize,
    pub suffix: usize,
}

impl Encoded {
    pub fn content(&self) -> std::ops::Range<usize> {
        self.prefix..self.ids.len() - self.suffix
    }
}

impl TextTokenizer {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found"),
            ));
        }
        let json = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let err = |message: String| Error::Tokenizer { path: path.clone(), message };
        if let Some(compact) = CompactUnigram::from_json(&json).map_err(err)? {
            return Ok(TextTokenizer { inner: Backend::Compact(compact), path });
        }
        let mut inner: tokenizers::Tokenizer = json.parse().map_err(|e: tokenizers::Error| err(e.to_string()))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| err(e.to_string()))?;
        Ok(TextTokenizer { inner: Backend::Hf(Box::new(inner)), path })
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Backend::Compact(t) => t.vocab_size(),
            Backend::Hf(t) => t.get_vocab_size(true),
        }
    }

    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let tok = match &self.inner {
            Backend::Compact(t) => {
                let e = t.encode(text);
                return Ok(Encoded {
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
            ids: enc.get_ids().to_vec(),
            tokens: enc.get_tokens().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            prefix,
            suffix,
        })
    }
}
