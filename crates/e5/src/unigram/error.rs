//! Why a `tokenizer.json` of the supported shape cannot be read, by the part at fault.

/// A malformed Unigram `tokenizer.json` (a valid one of another shape is `Ok(None)`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnigramError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("Unknown tokenizer version '{0}'")]
    Version(String),
    #[error("vocabulary: {0}")]
    Vocab(String),
    #[error("normalizer: {0}")]
    Normalizer(String),
    #[error("pre-tokenizer: {0}")]
    PreTokenizer(String),
    #[error("post-processor: {0}")]
    PostProcessor(String),
}
