//! The optional CUDA backend (`--features cuda`): the checkpoint's weights handed to
//! `e5-cuda`, which runs the whole encoder, pooling included, on the GPU.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::Checkpoint;
use e5_cuda::{CudaEncoder, EncoderConfig, EncoderWeights, Gelu, GpuPrecision, LayerWeights, Pooling};

/// Uploads the encoder to GPU `ordinal` (fp16 weights by default, bf16 on request).
pub(crate) fn load(
    ck: &Checkpoint,
    cfg: &ModelConfig,
    normalize: bool,
    bf16: bool,
    ordinal: usize,
) -> Result<CudaEncoder> {
    let cuda_err = |e: e5_cuda::CudaError| Error::Options(format!("CUDA device {ordinal}: {e}"));
    e5_cuda::probe(ordinal).map_err(cuda_err)?;
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let word = ck.f32("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
    let pos = ck.f32("embeddings.position_embeddings.weight", &[cfg.max_positions, h])?;
    let types = ck.f32("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?;
    let emb_ln = (ck.f32("embeddings.LayerNorm.weight", &[h])?, ck.f32("embeddings.LayerNorm.bias", &[h])?);
    struct Owned([Vec<f32>; 12]);
    let layers: Vec<Owned> = (0..cfg.layers)
        .map(|l| {
            let p = format!("encoder.layer.{l}");
            let t = |n: &str, shape: &[usize]| ck.f32(&format!("{p}.{n}"), shape);
            let qkv_w = [
                t("attention.self.query.weight", &[h, h])?,
                t("attention.self.key.weight", &[h, h])?,
                t("attention.self.value.weight", &[h, h])?,
            ]
            .concat();
            let qkv_b = [
                t("attention.self.query.bias", &[h])?,
                t("attention.self.key.bias", &[h])?,
                t("attention.self.value.bias", &[h])?,
            ]
            .concat();
            Ok(Owned([
                qkv_w,
                qkv_b,
                t("attention.output.dense.weight", &[h, h])?,
                t("attention.output.dense.bias", &[h])?,
                t("attention.output.LayerNorm.weight", &[h])?,
                t("attention.output.LayerNorm.bias", &[h])?,
                t("intermediate.dense.weight", &[i, h])?,
                t("intermediate.dense.bias", &[i])?,
                t("output.dense.weight", &[h, i])?,
                t("output.dense.bias", &[h])?,
                t("output.LayerNorm.weight", &[h])?,
                t("output.LayerNorm.bias", &[h])?,
            ]))
        })
        .collect::<Result<_>>()?;
    let weights = EncoderWeights {
        word_embeddings: &word,
        position_embeddings: &pos,
        token_type_row: &types[..h],
        emb_ln_gamma: &emb_ln.0,
        emb_ln_beta: &emb_ln.1,
        layers: layers
            .iter()
            .map(|Owned(w)| LayerWeights {
                qkv_weight: &w[0],
                qkv_bias: &w[1],
                attn_out_weight: &w[2],
                attn_out_bias: &w[3],
                attn_ln_gamma: &w[4],
                attn_ln_beta: &w[5],
                ffn_up_weight: &w[6],
                ffn_up_bias: &w[7],
                ffn_down_weight: &w[8],
                ffn_down_bias: &w[9],
                ffn_ln_gamma: &w[10],
                ffn_ln_beta: &w[11],
            })
            .collect(),
    };
    let config = EncoderConfig {
        hidden: h,
        heads: cfg.heads,
        intermediate: i,
        layers: cfg.layers,
        layer_norm_eps: cfg.layer_norm_eps,
        gelu: match cfg.gelu {
            e5_kernels::GeluKind::Erf => Gelu::Erf,
            e5_kernels::GeluKind::Tanh => Gelu::Tanh,
        },
        position_offset: cfg.position_offset,
        max_positions: cfg.max_positions,
        pooling: match cfg.pooling {
            e5_kernels::Pooling::Mean => Pooling::Mean,
            e5_kernels::Pooling::Cls => Pooling::Cls,
        },
        normalize,
    };
    let precision = if bf16 { GpuPrecision::Bf16 } else { GpuPrecision::F16 };
    CudaEncoder::new(config, &weights, precision, ordinal).map_err(cuda_err)
}
