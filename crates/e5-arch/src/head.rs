//! What turns the encoder's token states into the model's output vector, as the
//! sentence-transformers modules declare it: `Pooling` → `Dense`* → `Normalize`?; and the
//! prompts the model was trained with.

use std::collections::BTreeMap;
use std::fmt;

/// One reduction of a sequence's token vectors, by sentence-transformers' name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolingMode {
    /// The first (counted) token.
    Cls,
    /// Element-wise maximum.
    Max,
    /// Sum / count.
    Mean,
    /// Sum / sqrt(count).
    MeanSqrtLen,
    /// Tokens weighted by their position in the sequence (1-based).
    WeightedMean,
    /// The last (counted) token.
    LastToken,
}

impl PoolingMode {
    /// Every mode, in the order the legacy `pooling_mode_*` keys concatenate them.
    pub const ALL: [PoolingMode; 6] = [
        PoolingMode::Cls,
        PoolingMode::Max,
        PoolingMode::Mean,
        PoolingMode::MeanSqrtLen,
        PoolingMode::WeightedMean,
        PoolingMode::LastToken,
    ];

    /// The `"pooling_mode"` string sentence-transformers 6 writes.
    pub fn name(self) -> &'static str {
        match self {
            PoolingMode::Cls => "cls",
            PoolingMode::Max => "max",
            PoolingMode::Mean => "mean",
            PoolingMode::MeanSqrtLen => "mean_sqrt_len_tokens",
            PoolingMode::WeightedMean => "weightedmean",
            PoolingMode::LastToken => "lasttoken",
        }
    }

    /// The legacy boolean key (`pooling_mode_mean_tokens`, …).
    pub fn legacy_key(self) -> &'static str {
        match self {
            PoolingMode::Cls => "pooling_mode_cls_token",
            PoolingMode::Max => "pooling_mode_max_tokens",
            PoolingMode::Mean => "pooling_mode_mean_tokens",
            PoolingMode::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
            PoolingMode::WeightedMean => "pooling_mode_weightedmean_tokens",
            PoolingMode::LastToken => "pooling_mode_lasttoken",
        }
    }

    pub fn parse(s: &str) -> Option<PoolingMode> {
        PoolingMode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// A model's pooling: each mode's `[H]` vector, concatenated in `modes` order (`[modes·H]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pooling {
    /// Never empty.
    pub modes: Vec<PoolingMode>,
    /// `false`: the prompt's tokens (and the leading special token) are left out, as
    /// sentence-transformers' `include_prompt: false` masks them.
    pub include_prompt: bool,
}

impl Pooling {
    pub fn single(mode: PoolingMode) -> Pooling {
        Pooling { modes: vec![mode], include_prompt: true }
    }

    /// The kernels' fused pooling for a single mean or CLS mode over every token.
    pub fn fused(&self) -> Option<e5_kernels::Pooling> {
        match self.modes.as_slice() {
            [PoolingMode::Mean] if self.include_prompt => Some(e5_kernels::Pooling::Mean),
            [PoolingMode::Cls] if self.include_prompt => Some(e5_kernels::Pooling::Cls),
            _ => None,
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        write!(f, "{}", names.join(" ++ "))?;
        if !self.include_prompt {
            write!(f, " (prompt excluded)")?;
        }
        Ok(())
    }
}

/// A Dense module's activation (`activation_function`, a `torch.nn` class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
    Relu,
    /// Exact (erf) GELU, `torch.nn.GELU()`.
    Gelu,
    Sigmoid,
    Silu,
}

impl Activation {
    /// The class name (last component of `torch.nn.modules.activation.Tanh`).
    pub fn parse(class: &str) -> Option<Activation> {
        Some(match class {
            "Identity" => Activation::Identity,
            "Tanh" => Activation::Tanh,
            "ReLU" => Activation::Relu,
            "GELU" => Activation::Gelu,
            "Sigmoid" => Activation::Sigmoid,
            "SiLU" => Activation::Silu,
            _ => return None,
        })
    }
}

/// A `Dense` module: `y = activation(W·x + b)`, `W`: `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSpec {
    /// The module's directory, relative to the model's (`2_Dense`).
    pub path: String,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: Activation,
}

/// Everything after the encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    pub pooling: Pooling,
    /// Applied in order after pooling.
    pub dense: Vec<DenseSpec>,
    /// A final `Normalize` module.
    pub normalize: bool,
    /// Output widths the model was trained to be truncated to (Matryoshka), if it says.
    pub matryoshka_dims: Option<Vec<usize>>,
}

impl Default for Head {
    /// Mean pooling, normalized: E5's head, and what a directory without sentence-transformers
    /// files gets.
    fn default() -> Self {
        Head { pooling: Pooling::single(PoolingMode::Mean), dense: Vec::new(), normalize: true, matryoshka_dims: None }
    }
}

impl Head {
    /// Width of the output vector for an encoder of width `hidden`.
    pub fn width(&self, hidden: usize) -> usize {
        self.dense.last().map_or(self.pooling.modes.len() * hidden, |d| d.out_features)
    }
}

/// Texts prepended to inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompts {
    /// For `Input::query` / `Input::passage`: the declared `query` / `document` (or
    /// `passage`) prompts, else E5's `"query: "` / `"passage: "`.
    pub query: String,
    pub passage: String,
    /// Every prompt `config_sentence_transformers.json` declares, by name.
    pub named: BTreeMap<String, String>,
    /// `default_prompt_name`.
    pub default: Option<String>,
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts { query: "query: ".into(), passage: "passage: ".into(), named: BTreeMap::new(), default: None }
    }
}
