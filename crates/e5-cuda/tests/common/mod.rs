//! Tiny random encoder shared by the integration tests, plus an f32 CPU reference.
#![allow(dead_code)] // each test binary uses a subset

use e5_arch::{Architecture, GeluKind as Gelu, ModelConfig as EncoderConfig, Pooling};
use e5_cuda::{EncoderWeights, LayerWeights};

pub const VOCAB: usize = 1000;

pub fn config(gelu: Gelu, pooling: Pooling) -> EncoderConfig {
    EncoderConfig {
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
        pooling,
        normalize: true,
        query_prefix: String::new(),
        passage_prefix: String::new(),
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
    pub cfg: EncoderConfig,
    pub word: Vec<f32>,
    pub pos: Vec<f32>,
    pub typ: Vec<f32>,
    pub ln_g: Vec<f32>,
    pub ln_b: Vec<f32>,
    pub layers: Vec<Layer>,
}

impl Model {
    pub fn new(cfg: EncoderConfig) -> Self {
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

    /// Straightforward f32 forward pass of one sequence; returns the pooled vector.
    pub fn reference(&self, ids: &[u32]) -> Vec<f32> {
        let c = &self.cfg;
        let (h, n) = (c.hidden, ids.len());
        let mut x: Vec<Vec<f32>> = ids
            .iter()
            .enumerate()
            .map(|(t, &id)| {
                let p = c.position_offset + t;
                let row: Vec<f32> =
                    (0..h).map(|j| self.word[id as usize * h + j] + self.pos[p * h + j] + self.typ[j]).collect();
                layer_norm(&row, &self.ln_g, &self.ln_b, c.layer_norm_eps)
            })
            .collect();
        let (nh, d) = (c.heads, h / c.heads);
        for l in &self.layers {
            let qkv: Vec<Vec<f32>> = x.iter().map(|r| linear(r, &l.t[0], &l.t[1])).collect();
            let mut ctx = vec![vec![0.0f32; h]; n];
            for head in 0..nh {
                for q in 0..n {
                    let qv = &qkv[q][head * d..head * d + d];
                    let scores: Vec<f32> = (0..n)
                        .map(|k| {
                            let kv = &qkv[k][h + head * d..h + head * d + d];
                            qv.iter().zip(kv).map(|(a, b)| a * b).sum::<f32>() / (d as f32).sqrt()
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
                    let sum: f32 = e.iter().sum();
                    for (k, p) in e.iter().enumerate() {
                        for j in 0..d {
                            ctx[q][head * d + j] += p / sum * qkv[k][2 * h + head * d + j];
                        }
                    }
                }
            }
            for t in 0..n {
                let a = linear(&ctx[t], &l.t[2], &l.t[3]);
                let r: Vec<f32> = a.iter().zip(&x[t]).map(|(a, b)| a + b).collect();
                x[t] = layer_norm(&r, &l.t[4], &l.t[5], c.layer_norm_eps);
                let up: Vec<f32> = linear(&x[t], &l.t[6], &l.t[7]).into_iter().map(|v| gelu(v, c.gelu)).collect();
                let down = linear(&up, &l.t[8], &l.t[9]);
                let r: Vec<f32> = down.iter().zip(&x[t]).map(|(a, b)| a + b).collect();
                x[t] = layer_norm(&r, &l.t[10], &l.t[11], c.layer_norm_eps);
            }
        }
        let mut out = match c.pooling {
            Pooling::Cls => x[0].clone(),
            Pooling::Mean => (0..h).map(|j| x.iter().map(|r| r[j]).sum::<f32>() / n as f32).collect(),
        };
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        out.iter_mut().for_each(|v| *v /= norm);
        out
    }
}

fn linear(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let k = x.len();
    b.iter()
        .enumerate()
        .map(|(o, bias)| bias + w[o * k..o * k + k].iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
        .collect()
}

fn layer_norm(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    x.iter().zip(g.iter().zip(b)).map(|(v, (g, b))| (v - mean) * rstd * g + b).collect()
}

fn gelu(v: f32, form: Gelu) -> f32 {
    match form {
        Gelu::Erf => 0.5 * v * (1.0 + libm_erf(v / std::f32::consts::SQRT_2)),
        Gelu::Tanh => 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044715 * v * v * v)).tanh()),
    }
}

/// erf via Abramowitz–Stegun 7.1.26 refined in f64 (|error| < 1.5e-7).
fn libm_erf(x: f32) -> f32 {
    let x = x as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    (if x >= 0.0 { y } else { -y }) as f32
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Deterministic token ids for text `k` of length `len`.
pub fn tokens(k: usize, len: usize) -> Vec<u32> {
    (0..len).map(|t| ((k * 7919 + t * 104_729 + 13) % VOCAB) as u32).collect()
}
