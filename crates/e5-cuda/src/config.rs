//! The weights handed to the GPU, and the CPU-side validation of the model description,
//! the weights and each batch. The model itself is described by `e5_arch::ModelConfig`.

use crate::CudaError;
use e5_arch::ModelConfig;

/// Storage type of the GEMM operands on the device (accumulation is always f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuPrecision {
    F16,
    Bf16,
}

/// One transformer layer; all f32, PyTorch `Linear` layout `[out, in]`.
pub struct LayerWeights<'a> {
    /// `[3H, H]`: query rows, then key rows, then value rows.
    pub qkv_weight: &'a [f32],
    /// `[3H]`
    pub qkv_bias: &'a [f32],
    /// `[H, H]`
    pub attn_out_weight: &'a [f32],
    pub attn_out_bias: &'a [f32],
    pub attn_ln_gamma: &'a [f32],
    pub attn_ln_beta: &'a [f32],
    /// `[I, H]`
    pub ffn_up_weight: &'a [f32],
    pub ffn_up_bias: &'a [f32],
    /// `[H, I]`
    pub ffn_down_weight: &'a [f32],
    pub ffn_down_bias: &'a [f32],
    pub ffn_ln_gamma: &'a [f32],
    pub ffn_ln_beta: &'a [f32],
}

pub struct EncoderWeights<'a> {
    /// `[V, H]`; the vocabulary size V is `len / H`.
    pub word_embeddings: &'a [f32],
    /// `[max_positions, H]`
    pub position_embeddings: &'a [f32],
    /// `[H]`, token type id 0.
    pub token_type_row: &'a [f32],
    pub emb_ln_gamma: &'a [f32],
    pub emb_ln_beta: &'a [f32],
    pub layers: Vec<LayerWeights<'a>>,
}

/// Head dimensions with a compiled attention kernel.
pub(crate) const HEAD_DIMS: [usize; 4] = [16, 32, 64, 128];
/// Row kernels keep one f32 row in (at most 48 KiB of) shared memory.
const MAX_HIDDEN: usize = 8192;

/// Longest sequence the position table allows.
pub(crate) fn max_seq_len(cfg: &ModelConfig) -> usize {
    cfg.max_positions - cfg.position_offset
}

/// What the GPU kernels can run: a compiled head dimension, a row that fits shared memory.
fn validate(cfg: &ModelConfig) -> Result<(), CudaError> {
    let bad = |m: String| Err(CudaError::InvalidInput(m));
    if cfg.hidden == 0 || cfg.heads == 0 || cfg.intermediate == 0 || cfg.layers == 0 {
        return bad(format!("hidden, heads, intermediate and layers must be > 0: {cfg:?}"));
    }
    if cfg.head_dim() * cfg.heads != cfg.hidden || !HEAD_DIMS.contains(&cfg.head_dim()) {
        return bad(format!("hidden {} / heads {} must give a head dim in {HEAD_DIMS:?}", cfg.hidden, cfg.heads));
    }
    if cfg.hidden > MAX_HIDDEN {
        return bad(format!("hidden {} exceeds {MAX_HIDDEN}", cfg.hidden));
    }
    if cfg.max_positions <= cfg.position_offset {
        return bad(format!("max_positions {} must exceed position_offset {}", cfg.max_positions, cfg.position_offset));
    }
    Ok(())
}

fn check(tensor: &str, got: &[f32], expected: usize) -> Result<(), CudaError> {
    if got.len() == expected {
        Ok(())
    } else {
        Err(CudaError::Shape { tensor: tensor.to_string(), expected, got: got.len() })
    }
}

/// Checks the config and every slice length; returns the vocabulary size.
pub(crate) fn validate_weights(cfg: &ModelConfig, w: &EncoderWeights) -> Result<usize, CudaError> {
    validate(cfg)?;
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let words = w.word_embeddings.len();
    if words == 0 || words / h * h != words {
        return Err(CudaError::InvalidInput(format!(
            "word_embeddings has {words} elements, not a non-zero multiple of hidden {h}"
        )));
    }
    check("position_embeddings", w.position_embeddings, cfg.max_positions * h)?;
    check("token_type_row", w.token_type_row, h)?;
    check("emb_ln_gamma", w.emb_ln_gamma, h)?;
    check("emb_ln_beta", w.emb_ln_beta, h)?;
    if w.layers.len() != cfg.layers {
        return Err(CudaError::Shape { tensor: "layers".into(), expected: cfg.layers, got: w.layers.len() });
    }
    for (n, l) in w.layers.iter().enumerate() {
        let tensors: [(&str, &[f32], usize); 12] = [
            ("qkv_weight", l.qkv_weight, 3 * h * h),
            ("qkv_bias", l.qkv_bias, 3 * h),
            ("attn_out_weight", l.attn_out_weight, h * h),
            ("attn_out_bias", l.attn_out_bias, h),
            ("attn_ln_gamma", l.attn_ln_gamma, h),
            ("attn_ln_beta", l.attn_ln_beta, h),
            ("ffn_up_weight", l.ffn_up_weight, i * h),
            ("ffn_up_bias", l.ffn_up_bias, i),
            ("ffn_down_weight", l.ffn_down_weight, h * i),
            ("ffn_down_bias", l.ffn_down_bias, h),
            ("ffn_ln_gamma", l.ffn_ln_gamma, h),
            ("ffn_ln_beta", l.ffn_ln_beta, h),
        ];
        for (name, got, expected) in tensors {
            check(&format!("layers.{n}.{name}"), got, expected)?;
        }
    }
    Ok(words / h)
}

/// Checks a batch (ids concatenated, `offsets` = n+1 prefix offsets); returns n.
pub(crate) fn validate_batch(
    cfg: &ModelConfig,
    vocab: usize,
    ids: &[u32],
    offsets: &[usize],
) -> Result<usize, CudaError> {
    let bad = |m: String| Err(CudaError::InvalidInput(m));
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
        return bad("seq_offsets must hold n+1 prefix offsets (got none)".into());
    };
    if first != 0 || last != ids.len() {
        return bad(format!("seq_offsets must start at 0 and end at {} (token count), got {first}..{last}", ids.len()));
    }
    if ids.len() > i32::MAX as usize {
        return bad(format!("{} tokens exceed the i32 range", ids.len()));
    }
    for (s, pair) in offsets.windows(2).enumerate() {
        let len = pair[1].saturating_sub(pair[0]);
        if pair[1] <= pair[0] {
            return bad(format!("sequence {s} is empty or seq_offsets decrease ({} -> {})", pair[0], pair[1]));
        }
        if len > max_seq_len(cfg) {
            return bad(format!("sequence {s} has {len} tokens; the model allows {}", max_seq_len(cfg)));
        }
    }
    if let Some((t, id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        return bad(format!("token {t} has id {id} >= vocab size {vocab}"));
    }
    Ok(offsets.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ModelConfig {
        ModelConfig {
            architecture: e5_arch::Architecture::XlmRoberta,
            vocab_size: 5,
            hidden: 64,
            heads: 2,
            intermediate: 128,
            layers: 1,
            layer_norm_eps: 1e-12,
            gelu: e5_arch::GeluKind::Erf,
            max_positions: 10,
            type_vocab_size: 1,
            position_offset: 2,
            max_tokens: 8,
            dtype: "float32".into(),
            head: e5_arch::Head::default(),
            prompts: e5_arch::Prompts::default(),
        }
    }

    #[test]
    fn batch_validation() {
        let c = cfg();
        assert_eq!(validate_batch(&c, 5, &[1, 2, 3], &[0, 1, 3]).unwrap(), 2);
        assert_eq!(validate_batch(&c, 5, &[], &[0]).unwrap(), 0);
        let err = |ids: &[u32], off: &[usize]| validate_batch(&c, 5, ids, off).unwrap_err().to_string();
        assert!(err(&[1], &[]).contains("n+1"));
        assert!(err(&[1, 2], &[0, 1]).contains("end at 2"));
        assert!(err(&[1, 2], &[0, 0, 2]).contains("empty"));
        assert!(err(&[1, 9], &[0, 2]).contains("id 9"));
        assert!(err(&[1; 9], &[0, 9]).contains("allows 8"));
    }
}
