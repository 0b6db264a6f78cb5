//! # e5
//!
//! Fast, faithful CPU inference for multilingual-e5 and other BERT / XLM-RoBERTa
//! text-embedding models, straight from a Hugging Face model directory.
//!
//! ```no_run
//! use e5::{Input, Model, Options};
//!
//! let model = Model::load("models/multilingual-e5-small", Options::default())?;
//! let out = model.embed(&[
//!     Input::query("how much protein should a female eat"),
//!     Input::passage("As a general guideline, the CDC's average protein requirement for women ages 19 to 70 is 46 grams per day."),
//! ])?;
//! let score: f32 = out.vector(0).iter().zip(out.vector(1)).map(|(a, b)| a * b).sum();
//! println!("cosine similarity {score:.3}, truncated inputs: {:?}", out.truncated().collect::<Vec<_>>());
//! # Ok::<(), e5::Error>(())
//! ```
//!
//! A runnable version: `cargo run --release -p e5 --example semantic_search`.
//!
//! ## How a text becomes a vector
//!
//! ```text
//! text ─▶ plan ─────────────▶ backend ────────────────▶ pool ─▶ assemble
//!         tokenize, truncate   CPU (e5-kernels, lanes)   mean    one row per input
//!         or chunk, sub-batch  or CUDA (e5-cuda)         or CLS  (chunks merged)
//! ```
//!
//! The model is described once, in `e5-arch` (configuration, typed sub-layers
//! [`LinearId`], the tensor-name table); `Model::load` picks one backend, which declares
//! what it supports: an option it cannot honour is [`Error::Unsupported`].

mod adapter;
mod backend;
mod config;
mod engine;
mod error;
mod file_watch;
mod head;
mod info;
mod input;
mod lanes;
pub mod memory;
mod model;
pub mod output;
mod plan;
pub mod quantize;
mod source;
mod st_config;
mod tokenize;
/// The compact XLM-R (SentencePiece Unigram) tokenizer e5 runs, public as an API: it reproduces
/// `tokenizers` exactly in a fraction of the memory (`tests/unigram_parity.rs` holds it to that).
pub mod unigram;
mod validate;
mod weights;

pub use e5_arch::{
    Activation, Architecture, DenseSpec, GeluKind, Head, LinearId, ModelConfig, Pooling, PoolingMode, Prompts, SubLayer,
};
pub use e5_kernels::Isa;
pub use engine::Model;
pub use error::{Error, Result};
pub use info::ModelInfo;
pub use input::{
    ChunkOutput, Device, Embeddings, Input, InputKind, LongInputs, Options, Precision, Residency, RowInfo, Tokens,
};
pub use lanes::Lanes;
pub use model::{Site, Tap};
pub use output::{OutputPrecision, OutputRanges, OutputVectors, VectorData};
pub use source::resolve_model;
