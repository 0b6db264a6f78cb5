//! [`Model::embed_ids`]: embed sequences that were tokenized elsewhere (an API client that
//! sends token ids, as OpenAI's embeddings route allows).

use super::{install, Model};
use crate::error::{Error, Result};
use crate::input::{Embeddings, RowInfo};
use crate::plan::Piece;

impl Model {
    /// Embeds whole token sequences exactly as given: ids of this model's vocabulary,
    /// special tokens included (what [`Model::tokenize`] returns), at most `max_tokens` each.
    /// Nothing is added, cut or prefixed, so a sequence from `tokenize` embeds bit-identically
    /// to its text. Row `i` embeds `sequences[i]`; batch-mates change no bit.
    pub fn embed_ids(&self, sequences: &[&[u32]]) -> Result<Embeddings> {
        let (vocab, max) = (self.planner.vocab, self.planner.max_tokens);
        let mut pieces = Vec::with_capacity(sequences.len());
        for (index, ids) in sequences.iter().enumerate() {
            let message = if ids.is_empty() {
                Some("an empty token sequence has nothing to embed".to_string())
            } else if ids.len() > max {
                Some(format!("{} tokens exceed the model's limit of {max}", ids.len()))
            } else {
                ids.iter()
                    .find(|&&id| id as usize >= vocab)
                    .map(|bad| format!("token id {bad} is outside the embedding table ({vocab} rows)"))
            };
            if let Some(message) = message {
                return Err(Error::Input { index, message });
            }
            let row =
                RowInfo { input: index, tokens: ids.len(), input_tokens: ids.len(), truncated: false, chars: 0..0 };
            pieces.push(Piece { ids: ids.to_vec(), row, skip: 0 });
        }
        install(&self.pool, || {
            let vectors = self.truncate(self.backend.run(&pieces)?);
            Ok(Embeddings { dim: self.dim(), data: vectors, rows: pieces.into_iter().map(|p| p.row).collect() })
        })
    }
}
