//! The optional CUDA backend (`--features cuda`): the checkpoint's weights read straight
//! into `e5-cuda`, which runs the whole encoder, pooling included, on the GPU. The CPU
//! encoder is never built.

use super::{Backend, Memory, Supports};
use crate::error::{Error, Result};
use crate::input::{Options, Precision};
use crate::model::Tap;
use crate::plan::{pack, sub_batches, Piece};
use crate::weights::Checkpoint;
use e5_arch::names::{self, NormId};
use e5_arch::{LinearId, ModelConfig, SubLayer};
use e5_cuda::{CudaEncoder, CudaError, EncoderWeights, GpuPrecision, LayerWeights};

/// 16-bit GEMM operands with f32 accumulation; no int8, no mixed precision, no mapped table.
pub(crate) const SUPPORTS: Supports = Supports {
    name: "the CUDA backend",
    precisions: &[Precision::F16, Precision::Bf16],
    keep_fp32: false,
    activation_scales: false,
    residency: false,
};

pub(crate) struct CudaBackend {
    gpu: CudaEncoder,
    ordinal: usize,
    max_batch_tokens: usize,
}

impl CudaBackend {
    /// Checks `options` against [`SUPPORTS`], then uploads the encoder to GPU `ordinal`.
    pub fn load(
        ck: &Checkpoint,
        cfg: &ModelConfig,
        options: &Options,
        normalize: bool,
        ordinal: usize,
    ) -> Result<Self> {
        SUPPORTS.check(options)?;
        if cfg.head.pooling.fused().is_none() || !cfg.head.dense.is_empty() {
            let option = format!(
                "pooling {} with {} Dense layers (it runs one mean or CLS pooling over every token, and no Dense layer)",
                cfg.head.pooling,
                cfg.head.dense.len()
            );
            return Err(Error::Unsupported { backend: SUPPORTS.name.into(), option });
        }
        let bf16 = options.precision == Precision::Bf16;
        let gpu = upload(ck, cfg, normalize, bf16, ordinal)?;
        Ok(CudaBackend { gpu, ordinal, max_batch_tokens: options.max_batch_tokens })
    }
}

impl Backend for CudaBackend {
    fn run(&self, pieces: &[Piece]) -> Result<Vec<f32>> {
        let all: Vec<usize> = (0..pieces.len()).collect();
        let mut out = Vec::new();
        for batch in sub_batches(pieces, &all, self.max_batch_tokens) {
            let (ids, seqs) = pack(batch.iter().map(|&i| pieces[i].ids.as_slice()));
            out.extend(self.gpu.embed(&ids, &seqs).map_err(|e| device_error(self.ordinal, e))?);
        }
        Ok(out)
    }

    fn trace(&self, _: &[u32], _: &[usize], _: &[usize], _: &mut Tap<'_>) -> Result<()> {
        Err(Error::Unsupported { backend: SUPPORTS.name.into(), option: "trace (intermediate activations)".into() })
    }

    fn memory(&self) -> Memory {
        Memory::default()
    }
}

fn device_error(ordinal: usize, e: CudaError) -> Error {
    Error::Device { device: format!("CUDA device {ordinal}"), message: e.to_string() }
}

/// Uploads the encoder to GPU `ordinal` (fp16 weights, or bf16).
fn upload(ck: &Checkpoint, cfg: &ModelConfig, normalize: bool, bf16: bool, ordinal: usize) -> Result<CudaEncoder> {
    e5_cuda::probe(ordinal).map_err(|e| device_error(ordinal, e))?;
    let h = cfg.hidden;
    let word = ck.f32(names::WORD_EMBEDDINGS, &[cfg.vocab_size, h])?;
    let pos = ck.f32(names::POSITION_EMBEDDINGS, &[cfg.max_positions, h])?;
    let types = ck.f32(names::TOKEN_TYPE_EMBEDDINGS, &[cfg.type_vocab_size, h])?;
    let norm = |id: NormId| -> Result<[Vec<f32>; 2]> { Ok([ck.f32(&id.weight(), &[h])?, ck.f32(&id.bias(), &[h])?]) };
    // A linear map's HF modules stacked along the output dimension: weight and bias.
    let linear = |layer: usize, sub: SubLayer| -> Result<[Vec<f32>; 2]> {
        let (n, k) = sub.shape(cfg);
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for m in names::linear(LinearId::new(layer, sub)) {
            w.extend(ck.f32(&m.weight, &[n, k])?);
            b.extend(ck.f32(&m.bias, &[n])?);
        }
        Ok([w, b])
    };
    let [emb_ln_gamma, emb_ln_beta] = norm(NormId::Embeddings)?;
    struct Owned([Vec<f32>; 12]);
    let layers: Vec<Owned> = (0..cfg.layers)
        .map(|l| {
            let [qkv_w, qkv_b] = linear(l, SubLayer::Qkv)?;
            let [out_w, out_b] = linear(l, SubLayer::AttnOut)?;
            let [ln1_g, ln1_b] = norm(NormId::Attention(l))?;
            let [up_w, up_b] = linear(l, SubLayer::FfnUp)?;
            let [down_w, down_b] = linear(l, SubLayer::FfnDown)?;
            let [ln2_g, ln2_b] = norm(NormId::Output(l))?;
            Ok(Owned([qkv_w, qkv_b, out_w, out_b, ln1_g, ln1_b, up_w, up_b, down_w, down_b, ln2_g, ln2_b]))
        })
        .collect::<Result<_>>()?;
    let weights = EncoderWeights {
        word_embeddings: &word,
        position_embeddings: &pos,
        token_type_row: &types[..h],
        emb_ln_gamma: &emb_ln_gamma,
        emb_ln_beta: &emb_ln_beta,
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
    let mut config = cfg.clone();
    config.head.normalize = normalize;
    let precision = if bf16 { GpuPrecision::Bf16 } else { GpuPrecision::F16 };
    CudaEncoder::new(config, &weights, precision, ordinal).map_err(|e| device_error(ordinal, e))
}
