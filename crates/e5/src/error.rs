//! One error type for loading and embedding; every variant names the file or tensor.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{path}: unsupported architecture (model_type {model_type:?}, architectures {architectures:?}); e5 runs BERT and XLM-RoBERTa encoders")]
    UnknownArchitecture { path: PathBuf, model_type: String, architectures: Vec<String> },

    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("tensor {name:?} not found in {path}")]
    MissingTensor { path: PathBuf, name: String },

    #[error("tensor {name:?}: expected shape {expected:?}, found {found:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("tensor {name:?}: {message}")]
    TensorValue { name: String, message: String },

    #[error("tensor {name:?}: dtype {dtype}, expected {expected}")]
    TensorDtype { name: String, dtype: String, expected: &'static str },

    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("tokenizer has {tokenizer} tokens but the embedding table has {embeddings} rows")]
    VocabMismatch { tokenizer: usize, embeddings: usize },

    #[error("model {name:?} not found: {reason}")]
    ModelNotFound { name: String, reason: String },

    #[error("input {index}: {message}")]
    Input { index: usize, message: String },

    #[error("quantized model: {0}")]
    Quantized(String),

    #[error("invalid option: {0}")]
    Options(String),

    #[error("adapter: {0}")]
    Adapter(String),

    /// An option the chosen backend cannot honour (e.g. int8 on CUDA), or a build without it.
    #[error("{backend} does not support {option}")]
    Unsupported { backend: String, option: String },

    /// The accelerator failed: no driver or device, out of memory, a kernel error.
    #[error("{device}: {message}")]
    Device { device: String, message: String },

    #[error(transparent)]
    Isa(#[from] e5_kernels::IsaError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), message: message.into() }
    }
}
