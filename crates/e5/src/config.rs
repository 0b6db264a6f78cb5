//! A model directory's configuration: HF `config.json` plus the optional
//! sentence-transformers files ([`crate::st_config`]).

use crate::error::{Error, Result};
use crate::validate::{self, bounded};
use e5_arch::{Architecture, GeluKind, ModelConfig};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    max_position_embeddings: usize,
    type_vocab_size: Option<usize>,
    pad_token_id: Option<usize>,
    position_embedding_type: Option<String>,
    torch_dtype: Option<String>,
    dtype: Option<String>,
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = validate::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("malformed JSON: {e}")))
}

pub(crate) fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if validate::present(path) {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// How `e5` reads the model description: `ModelConfig::from_dir`.
pub(crate) trait FromDir: Sized {
    /// Reads and validates the configuration files of a model directory.
    fn from_dir(dir: &Path) -> Result<Self>;
}

impl FromDir for ModelConfig {
    fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let hf: HfConfig = read_json(&path)?;
        let model_type = hf.model_type.clone().unwrap_or_default();
        let arch_names = hf.architectures.join(",");
        let architecture = match model_type.as_str() {
            "bert" => Architecture::Bert,
            "xlm-roberta" | "roberta" | "camembert" => Architecture::XlmRoberta,
            "" if arch_names.starts_with("Bert") => Architecture::Bert,
            "" if arch_names.contains("Roberta") => Architecture::XlmRoberta,
            _ => {
                return Err(Error::UnknownArchitecture { path, model_type, architectures: hf.architectures });
            }
        };
        if let Some(p) = hf.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(Error::config(
                &path,
                format!("position_embedding_type {p:?} is not supported (only \"absolute\")"),
            ));
        }
        let gelu = match hf.hidden_act.as_deref().unwrap_or("gelu") {
            "gelu" => GeluKind::Erf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => GeluKind::Tanh,
            other => {
                return Err(Error::config(&path, format!("hidden_act {other:?} is not supported (gelu, gelu_new)")))
            }
        };
        let heads = hf.num_attention_heads;
        if hf.hidden_size == 0 || heads == 0 || !hf.hidden_size.is_multiple_of(heads) || hf.num_hidden_layers == 0 {
            return Err(Error::config(
                &path,
                format!("hidden_size {} must be a positive multiple of num_attention_heads {heads}", hf.hidden_size),
            ));
        }
        if hf.vocab_size == 0 || hf.intermediate_size == 0 {
            return Err(Error::config(&path, "vocab_size and intermediate_size must be positive"));
        }
        check_sizes(&path, &hf)?;
        let position_offset = match architecture {
            Architecture::Bert => 0,
            Architecture::XlmRoberta => hf.pad_token_id.unwrap_or(1) + 1,
        };
        if hf.max_position_embeddings <= position_offset + 2 {
            return Err(Error::config(&path, "max_position_embeddings leaves no room for a sequence"));
        }
        let st = crate::st_config::read(dir, hf.hidden_size)?;
        let max_tokens = (hf.max_position_embeddings - position_offset).min(st.max_seq_length.unwrap_or(usize::MAX));
        Ok(ModelConfig {
            architecture,
            vocab_size: hf.vocab_size,
            hidden: hf.hidden_size,
            layers: hf.num_hidden_layers,
            heads,
            intermediate: hf.intermediate_size,
            gelu,
            layer_norm_eps: layer_norm_eps(&path, hf.layer_norm_eps)?,
            max_positions: hf.max_position_embeddings,
            type_vocab_size: hf.type_vocab_size.unwrap_or(2),
            position_offset,
            max_tokens,
            dtype: hf.torch_dtype.or(hf.dtype).unwrap_or_else(|| "float32".into()),
            head: st.head,
            prompts: st.prompts,
        })
    }
}

/// Sizes within what any real encoder uses, checked before anything is allocated from
/// them (every tensor must then also match its file), so that arithmetic on them cannot
/// overflow and a hostile config cannot ask for terabytes.
fn check_sizes(path: &Path, hf: &HfConfig) -> Result<()> {
    bounded(path, "hidden_size", hf.hidden_size, 1, 1 << 16)?;
    bounded(path, "num_attention_heads", hf.num_attention_heads, 1, hf.hidden_size)?;
    bounded(path, "num_hidden_layers", hf.num_hidden_layers, 1, 1024)?;
    bounded(path, "intermediate_size", hf.intermediate_size, 1, 1 << 20)?;
    bounded(path, "vocab_size", hf.vocab_size, 1, 1 << 24)?;
    bounded(path, "max_position_embeddings", hf.max_position_embeddings, 1, 1 << 16)?;
    bounded(path, "type_vocab_size", hf.type_vocab_size.unwrap_or(2), 1, 1 << 16)?;
    bounded(path, "pad_token_id", hf.pad_token_id.unwrap_or(1), 0, hf.max_position_embeddings)?;
    Ok(())
}

/// `layer_norm_eps` must be positive and at most 1, and stay a positive normal f32 (a
/// negative, zero or huge epsilon makes NaN vectors or one vector for every text).
fn layer_norm_eps(path: &Path, eps: Option<f64>) -> Result<f32> {
    let eps = eps.unwrap_or(1e-12);
    let e = eps as f32;
    if !(e.is_normal() && e > 0.0 && e <= 1.0) {
        return Err(Error::config(path, format!("layer_norm_eps {eps:e} must be positive, at most 1 and above 1e-38")));
    }
    Ok(e)
}
