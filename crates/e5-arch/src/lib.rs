//! # e5-arch: the model, described once
//!
//! Everything a backend needs to know about the BERT / XLM-R encoder e5 runs, and nothing
//! about how it runs:
//! - [`ModelConfig`]: the validated configuration (parsed from a model directory by `e5`),
//!   with the [`Head`] after the encoder (pooling, Dense, normalization) and the [`Prompts`];
//! - [`LinearId`] = `{ layer, SubLayer }`: the four linear maps of a layer, typed, written
//!   `layer.{i}.{qkv|attn_out|ffn_up|ffn_down}` in options, manifests and reports;
//! - [`names`]: the one table of Hugging Face tensor names.
//!
//! The CPU encoder, the CUDA encoder, the quantizer and `e5 quant-eval` all read the model
//! through this crate, so a change to the model's structure is a change here.

mod config;
mod head;
mod linear_id;
pub mod names;

pub use config::{Architecture, ModelConfig};
pub use e5_kernels::GeluKind;
pub use head::{Activation, DenseSpec, Head, Pooling, PoolingMode, Prompts};
pub use linear_id::{LinearId, ParseLinearIdError, SubLayer};
