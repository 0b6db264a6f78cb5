//! The model's `tokenizer.json`, run with no truncation or padding of its own: e5 decides
//! what to do with long inputs and reports it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub(crate) struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
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
        let mut inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer { path: path.clone(), message: e.to_string() })?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer { path: path.clone(), message: e.to_string() })?;
        Ok(TextTokenizer { inner, path })
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
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
