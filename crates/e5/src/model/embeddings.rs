//! Token embeddings: token + position + token-type rows summed, then LayerNorm (`[T, H]`).

use super::linear::Norm;
use crate::error::Result;
use crate::weights::{Checkpoint, MappedTensor};
use e5_arch::names::{self, NormId};
use e5_arch::ModelConfig;
use e5_kernels::Kernels;

pub(crate) struct TokenEmbeddings {
    /// `[vocab, H]`, read in place from the checkpoint.
    pub words: MappedTensor,
    /// `[max_positions, H]`.
    positions: Vec<f32>,
    /// Row 0 of the token-type table: e5 embeds single segments.
    token_type: Vec<f32>,
    norm: Norm,
    hidden: usize,
    position_offset: usize,
}

impl TokenEmbeddings {
    pub fn load(ck: &Checkpoint, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden;
        let mut token_type = ck.f32(names::TOKEN_TYPE_EMBEDDINGS, &[cfg.type_vocab_size, h])?;
        token_type.truncate(h);
        Ok(TokenEmbeddings {
            words: ck.mapped(names::WORD_EMBEDDINGS, [cfg.vocab_size, h])?,
            positions: ck.f32(names::POSITION_EMBEDDINGS, &[cfg.max_positions, h])?,
            token_type,
            norm: Norm::load(ck, NormId::Embeddings, h, cfg.layer_norm_eps)?,
            hidden: h,
            position_offset: cfg.position_offset,
        })
    }

    /// `ids`: `[T]` token ids of all sequences; `seqs`: `n + 1` prefix offsets → `[T, H]`.
    /// Ids are checked against the table by the caller.
    pub fn forward(&self, kern: &Kernels, ids: &[u32], seqs: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let mut x = vec![0.0; ids.len() * h];
        // Position of token t within its sequence.
        let mut pos = vec![0usize; ids.len()];
        for s in seqs.windows(2) {
            (s[0]..s[1]).for_each(|t| pos[t] = t - s[0]);
        }
        e5_kernels::for_each_chunk_mut(&mut x, h, 16, |t, row| {
            self.words.row_into(ids[t] as usize, row);
            let p = pos[t] + self.position_offset;
            kern.axpy(row, 1.0, &self.positions[p * h..(p + 1) * h]);
            kern.axpy(row, 1.0, &self.token_type);
        });
        self.norm.forward(kern, &mut x);
        x
    }

    /// Bytes copied out of the checkpoint (the word table stays mapped; a quantized
    /// table's scales are held).
    pub fn owned_bytes(&self) -> usize {
        (self.positions.len() + self.token_type.len()) * 4 + self.norm.bytes() + self.words.scale_bytes()
    }
}
