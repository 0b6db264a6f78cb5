//! The Hugging Face tensor names of a BERT / XLM-R encoder: the one place they are spelled.
//!
//! Names are relative to the encoder; a checkpoint that nests it (`bert.`, `roberta.`) is
//! the loader's business. The quantized format written by `e5 quantize` adds names of its
//! own, also spelled here: `{weight}_scale`, `{linear id}.input_scale` and
//! `{linear id}.input_smoothing`.

use crate::{LinearId, SubLayer};

pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings.weight";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings.weight";

/// Top-level modules holding the encoder's tensors (the pooler and task heads are elsewhere).
const ENCODER_MODULES: [&str; 2] = ["embeddings.", "encoder."];

/// A LayerNorm of the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormId {
    /// After the embedding sum.
    Embeddings,
    /// After layer `i`'s attention output projection and residual.
    Attention(usize),
    /// After layer `i`'s feed-forward down projection and residual.
    Output(usize),
}

impl NormId {
    fn module(self) -> String {
        match self {
            NormId::Embeddings => "embeddings.LayerNorm".into(),
            NormId::Attention(i) => format!("{}.attention.output.LayerNorm", layer(i)),
            NormId::Output(i) => format!("{}.output.LayerNorm", layer(i)),
        }
    }
    /// `γ`, `[H]`.
    pub fn weight(self) -> String {
        format!("{}.weight", self.module())
    }
    /// `β`, `[H]`.
    pub fn bias(self) -> String {
        format!("{}.bias", self.module())
    }
}

fn layer(i: usize) -> String {
    format!("encoder.layer.{i}")
}

/// The HF modules stacked along the output dimension into one map, relative to the layer.
fn modules(sub: SubLayer) -> &'static [&'static str] {
    match sub {
        SubLayer::Qkv => &["attention.self.query", "attention.self.key", "attention.self.value"],
        SubLayer::AttnOut => &["attention.output.dense"],
        SubLayer::FfnUp => &["intermediate.dense"],
        SubLayer::FfnDown => &["output.dense"],
    }
}

/// The tensors of one HF `Linear` module: `weight` `[n, k]` and `bias` `[n]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearTensors {
    pub weight: String,
    pub bias: String,
}

impl LinearTensors {
    /// Per-output-channel scales of an int8 `weight` (`e5 quantize`), `[n]`.
    pub fn weight_scale(&self) -> String {
        scale_of(&self.weight)
    }
}

/// The HF modules of `id`, in stacking order (query, key, value for `qkv`).
pub fn linear(id: LinearId) -> Vec<LinearTensors> {
    modules(id.sub)
        .iter()
        .map(|m| LinearTensors {
            weight: format!("{}.{m}.weight", layer(id.layer)),
            bias: format!("{}.{m}.bias", layer(id.layer)),
        })
        .collect()
}

/// The linear map a weight tensor belongs to
/// (`encoder.layer.3.attention.self.key.weight` → `layer.3.qkv`).
pub fn linear_of_weight(name: &str) -> Option<LinearId> {
    let rest = name.strip_prefix("encoder.layer.")?;
    let (i, tail) = rest.split_once('.')?;
    let module = tail.strip_suffix(".weight")?;
    let sub = SubLayer::ALL.into_iter().find(|&s| modules(s).contains(&module))?;
    Some(LinearId { layer: i.parse().ok()?, sub })
}

/// Whether a tensor belongs to the encoder (embeddings or layers).
pub fn is_encoder_tensor(name: &str) -> bool {
    ENCODER_MODULES.iter().any(|m| name.starts_with(m))
}

/// Scales of a tensor written by `e5 quantize`: per row of an int8 tensor (`[rows]`), per
/// group of an int4 one (`[rows, k/group]`).
pub fn scale_of(tensor: &str) -> String {
    format!("{tensor}_scale")
}

/// The calibrated static-int8 input scale of `id`, `[1]`.
pub fn input_scale(id: LinearId) -> String {
    format!("{id}.input_scale")
}

/// The linear map whose input scale `name` is, if it is one.
pub fn linear_of_input_scale(name: &str) -> Option<LinearId> {
    name.strip_suffix(".input_scale")?.parse().ok()
}

/// The smoothing factors of `id`'s input channels (smoothed static int8), `[k]`.
pub fn input_smoothing(id: LinearId) -> String {
    format!("{id}.input_smoothing")
}

/// The linear map whose smoothing factors `name` are, if they are.
pub fn linear_of_input_smoothing(name: &str) -> Option<LinearId> {
    name.strip_suffix(".input_smoothing")?.parse().ok()
}

/// The name old BERT checkpoints use for a LayerNorm parameter (`gamma` / `beta`).
pub fn legacy_alias(name: &str) -> String {
    name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linear_weight_maps_back_to_its_id() {
        for id in LinearId::all(2) {
            for t in linear(id) {
                assert_eq!(linear_of_weight(&t.weight), Some(id), "{}", t.weight);
                assert_eq!(linear_of_weight(&t.bias), None);
                assert!(is_encoder_tensor(&t.weight));
            }
            assert_eq!(linear_of_input_scale(&input_scale(id)), Some(id));
            assert_eq!(linear_of_input_smoothing(&input_smoothing(id)), Some(id));
        }
        assert_eq!(linear(LinearId::new(0, SubLayer::Qkv)).len(), 3);
        assert_eq!(linear_of_weight(WORD_EMBEDDINGS), None);
        assert_eq!(linear_of_weight("encoder.layer.0.output.LayerNorm.weight"), None);
        assert_eq!(legacy_alias(&NormId::Output(1).bias()), "encoder.layer.1.output.LayerNorm.beta");
    }
}
