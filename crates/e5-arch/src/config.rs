//! The encoder's configuration, as `e5` reads it from `config.json` and the
//! sentence-transformers files.

use crate::{GeluKind, Head, Prompts};

/// Encoder families e5 runs; they differ in where position ids start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Positions from 0 (multilingual-e5-small, all-MiniLM, BERT).
    Bert,
    /// Positions from `padding_idx + 1` (multilingual-e5-base/-large, bge-m3).
    XlmRoberta,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Bert => "BertModel",
            Architecture::XlmRoberta => "XLMRobertaModel",
        }
    }
}

/// Everything the encoder needs to know, validated.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub gelu: GeluKind,
    pub layer_norm_eps: f32,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    /// Position id of a sequence's first token (0 for BERT, `pad + 1` for XLM-R).
    pub position_offset: usize,
    /// Longest sequence embedded, specials included.
    pub max_tokens: usize,
    /// Checkpoint dtype as declared (`torch_dtype` / `dtype`), for reports.
    pub dtype: String,
    /// Pooling, Dense layers, normalization.
    pub head: Head,
    pub prompts: Prompts,
}

impl ModelConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Floating-point operations of one forward pass over a sequence of `len` tokens
    /// (multiply-adds count two; linear layers and attention products).
    pub fn forward_flops(&self, len: usize) -> f64 {
        let (l, h, i) = (len as f64, self.hidden as f64, self.intermediate as f64);
        self.layers as f64 * (2.0 * l * (4.0 * h * h + 2.0 * h * i) + 4.0 * l * l * h)
    }

    /// Parameters of the encoder (embeddings included, pooler excluded).
    pub fn parameters(&self) -> usize {
        let (h, i) = (self.hidden, self.intermediate);
        let embeddings = (self.vocab_size + self.max_positions + self.type_vocab_size) * h + 2 * h;
        let layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h;
        embeddings + self.layers * layer
    }
}
