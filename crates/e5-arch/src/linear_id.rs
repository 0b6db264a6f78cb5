//! The linear maps of an encoder layer, typed: [`LinearId`] = `{ layer, SubLayer }`,
//! written `layer.{i}.{qkv|attn_out|ffn_up|ffn_down}` (options, manifests, reports).

use crate::ModelConfig;
use std::fmt;
use std::str::FromStr;

/// One of the four linear maps of a layer, in dataflow order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubLayer {
    /// Query, key and value projections stacked: `[H] → [3H]`.
    Qkv,
    /// Attention output projection: `[H] → [H]`.
    AttnOut,
    /// Feed-forward up projection (GELU follows): `[H] → [I]`.
    FfnUp,
    /// Feed-forward down projection: `[I] → [H]`.
    FfnDown,
}

impl SubLayer {
    pub const ALL: [SubLayer; 4] = [SubLayer::Qkv, SubLayer::AttnOut, SubLayer::FfnUp, SubLayer::FfnDown];

    pub fn name(self) -> &'static str {
        match self {
            SubLayer::Qkv => "qkv",
            SubLayer::AttnOut => "attn_out",
            SubLayer::FfnUp => "ffn_up",
            SubLayer::FfnDown => "ffn_down",
        }
    }

    /// Output width of each stacked HF module and the input width `k`: the map is
    /// `[modules · n_each, k]`.
    pub fn shape(self, cfg: &ModelConfig) -> (usize, usize) {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        match self {
            SubLayer::Qkv | SubLayer::AttnOut => (h, h),
            SubLayer::FfnUp => (i, h),
            SubLayer::FfnDown => (h, i),
        }
    }

    /// Width of the map's input rows (what a `Site::LinearInput` tap sees).
    pub fn input_width(self, cfg: &ModelConfig) -> usize {
        self.shape(cfg).1
    }
}

/// A linear map of the encoder: layer `layer`'s `sub`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinearId {
    pub layer: usize,
    pub sub: SubLayer,
}

impl LinearId {
    pub fn new(layer: usize, sub: SubLayer) -> Self {
        LinearId { layer, sub }
    }

    /// Every linear map of a `layers`-layer encoder, in dataflow order.
    pub fn all(layers: usize) -> impl Iterator<Item = LinearId> {
        (0..layers).flat_map(|layer| SubLayer::ALL.map(|sub| LinearId { layer, sub }))
    }

    /// Position in [`LinearId::all`].
    pub fn index(self) -> usize {
        4 * self.layer + SubLayer::ALL.iter().position(|&s| s == self.sub).expect("in ALL")
    }

    /// Parses `s` and checks that the layer exists in a `layers`-layer encoder.
    pub fn parse_in(s: &str, layers: usize) -> Result<LinearId, ParseLinearIdError> {
        let err = || ParseLinearIdError { text: s.to_string(), layers: Some(layers) };
        let id: LinearId = s.parse().map_err(|_| err())?;
        if id.layer >= layers {
            return Err(err());
        }
        Ok(id)
    }
}

impl fmt::Display for LinearId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer.{}.{}", self.layer, self.sub.name())
    }
}

/// A string that names no linear map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLinearIdError {
    pub text: String,
    /// The layer count the id was checked against, if any.
    pub layers: Option<usize>,
}

impl fmt::Display for ParseLinearIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = SubLayer::ALL.iter().map(|s| s.name()).collect();
        write!(f, "{:?} names no sub-layer (expected layer.N.{{{}}}", self.text, names.join("|"))?;
        match self.layers {
            Some(n) => write!(f, " with N < {n})"),
            None => write!(f, ")"),
        }
    }
}

impl std::error::Error for ParseLinearIdError {}

impl FromStr for LinearId {
    type Err = ParseLinearIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLinearIdError { text: s.to_string(), layers: None };
        let (layer, sub) = s.strip_prefix("layer.").and_then(|r| r.split_once('.')).ok_or_else(err)?;
        // Digits only: `+1` or ` 1` would parse as a number but are not how ids are written.
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let layer = layer.parse().map_err(|_| err())?;
        let sub = SubLayer::ALL.into_iter().find(|s| s.name() == sub).ok_or_else(err)?;
        Ok(LinearId { layer, sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_from_str_round_trip() {
        let all: Vec<LinearId> = LinearId::all(3).collect();
        assert_eq!(all.len(), 12);
        for (i, id) in all.iter().enumerate() {
            assert_eq!(id.to_string().parse::<LinearId>().unwrap(), *id);
            assert_eq!(id.index(), i);
        }
        assert_eq!(LinearId::new(2, SubLayer::FfnUp).to_string(), "layer.2.ffn_up");
    }

    #[test]
    fn rejects_what_names_no_sub_layer() {
        for bad in ["", "layer.", "layer.1", "layer.x.qkv", "layer.+1.qkv", "layer.1.query", "layers.1.qkv"] {
            let e = bad.parse::<LinearId>().unwrap_err();
            assert!(e.to_string().contains("expected layer.N.{qkv|attn_out|ffn_up|ffn_down}"), "{e}");
        }
        let e = LinearId::parse_in("layer.12.qkv", 12).unwrap_err();
        assert!(e.to_string().ends_with("with N < 12)"), "{e}");
        assert!(LinearId::parse_in("layer.11.qkv", 12).is_ok());
    }
}
