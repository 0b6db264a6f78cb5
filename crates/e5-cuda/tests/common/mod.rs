//! Tiny random encoder weights for the validation tests. (The GPU encoder is tested against
//! the CPU `Model` in `tests/tests/gpu.rs`.)

use e5_arch::{Architecture, GeluKind, Head, ModelConfig, Pooling, Prompts};
use e5_cuda::{EncoderWeights, LayerWeights};

pub const VOCAB: usize = 1000;

pub fn config(gelu: GeluKind, pooling: Pooling) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::XlmRoberta,
        vocab_size: VOCAB,
        hidden: 64,
        heads: 4,
        intermediate: 128,
        layers: 2,
        layer_norm_eps: 1e-5,
        gelu,
        max_positions: 514,
        type_vocab_size: 1,
        position_offset: 2,
        max_tokens: 512,
        dtype: "float32".into(),
        head: Head { pooling, ..Head::default() },
        prompts: Prompts::default(),
    }
}

/// Deterministic uniform values in [-scale, scale] (xorshift).
fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub struct Layer {
    pub t: Vec<Vec<f32>>, // the 12 tensors in LayerWeights field order
}

pub struct Model {
    pub cfg: ModelConfig,
    pub word: Vec<f32>,
    pub pos: Vec<f32>,
    pub typ: Vec<f32>,
    pub ln_g: Vec<f32>,
    pub ln_b: Vec<f32>,
    pub layers: Vec<Layer>,
}

impl Model {
    pub fn new(cfg: ModelConfig) -> Self {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let mut seed = 1;
        let mut r = |n: usize, scale: f32| {
            seed += 1;
            random(n, seed, scale)
        };
        let gamma = |v: Vec<f32>| v.iter().map(|x| 1.0 + x).collect::<Vec<_>>();
        let layers = (0..cfg.layers)
            .map(|_| Layer {
                t: vec![
                    r(3 * h * h, 0.15),
                    r(3 * h, 0.1),
                    r(h * h, 0.15),
                    r(h, 0.1),
                    gamma(r(h, 0.1)),
                    r(h, 0.1),
                    r(i * h, 0.15),
                    r(i, 0.1),
                    r(h * i, 0.1),
                    r(h, 0.1),
                    gamma(r(h, 0.1)),
                    r(h, 0.1),
                ],
            })
            .collect();
        Model {
            word: r(VOCAB * h, 1.0),
            pos: r(cfg.max_positions * h, 0.5),
            typ: r(h, 0.2),
            ln_g: gamma(r(h, 0.1)),
            ln_b: r(h, 0.1),
            layers,
            cfg,
        }
    }

    pub fn weights(&self) -> EncoderWeights<'_> {
        EncoderWeights {
            word_embeddings: &self.word,
            position_embeddings: &self.pos,
            token_type_row: &self.typ,
            emb_ln_gamma: &self.ln_g,
            emb_ln_beta: &self.ln_b,
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    qkv_weight: &l.t[0],
                    qkv_bias: &l.t[1],
                    attn_out_weight: &l.t[2],
                    attn_out_bias: &l.t[3],
                    attn_ln_gamma: &l.t[4],
                    attn_ln_beta: &l.t[5],
                    ffn_up_weight: &l.t[6],
                    ffn_up_bias: &l.t[7],
                    ffn_down_weight: &l.t[8],
                    ffn_down_bias: &l.t[9],
                    ffn_ln_gamma: &l.t[10],
                    ffn_ln_beta: &l.t[11],
                })
                .collect(),
        }
    }
}
