//! Turning a request's `input` into batcher items, with the checks every embedding route
//! shares: empty list, client batch size, token-id range, and inputs over the model's limit.

use crate::batcher::{BatchError, Item};
use crate::config::kind_name;
use crate::error::ApiError;
use crate::metrics as m;
use crate::state::ServedModel;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use e5::{Embeddings, Input, InputKind};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::{OneOfBuilder, RefOr, Schema};

/// `input` as OpenAI defines it (TEI's `inputs` is the same): a string, strings, token ids,
/// or arrays of token ids. Token ids are this model's vocabulary, special tokens included,
/// as `/tokenize` returns them, and are embedded as given.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub enum EmbeddingInput {
    Texts(Vec<String>),
    Ids(Vec<Vec<u32>>),
}

/// The schema: one of the four shapes (the type parses by hand, for clear errors).
impl utoipa::PartialSchema for EmbeddingInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(String::schema())
            .item(Vec::<String>::schema())
            .item(Vec::<u32>::schema())
            .item(Vec::<Vec<u32>>::schema())
            .into()
    }
}

impl utoipa::ToSchema for EmbeddingInput {}

const SHAPE: &str = "a string, an array of strings, an array of token ids or an array of arrays of token ids";

impl TryFrom<Value> for EmbeddingInput {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let ids = |v: &Value| -> Option<Vec<u32>> {
            v.as_array()?.iter().map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok())).collect()
        };
        match v {
            Value::String(s) => Ok(EmbeddingInput::Texts(vec![s])),
            Value::Array(items) if items.is_empty() => Ok(EmbeddingInput::Texts(Vec::new())),
            Value::Array(items) if items[0].is_string() => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s),
                    _ => Err(format!("input[{i}] is not a string; input must be {SHAPE}")),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Texts),
            Value::Array(items) if items[0].is_number() => {
                ids(&Value::Array(items)).map(|ids| EmbeddingInput::Ids(vec![ids])).ok_or_else(|| {
                    format!("input holds something other than token ids (integers 0..2^32); input must be {SHAPE}")
                })
            }
            Value::Array(items) if items[0].is_array() => items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    ids(x).ok_or_else(|| format!("input[{i}] is not an array of token ids; input must be {SHAPE}"))
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Ids),
            _ => Err(format!("input must be {SHAPE}")),
        }
    }
}

impl EmbeddingInput {
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::Ids(s) => s.len(),
        }
    }
}

/// A request's embeddings, the inputs that were truncated, and what the caller should know
/// about the request's `dimensions`.
pub struct Embedded {
    pub embeddings: Embeddings,
    pub truncated: Vec<usize>,
    pub warnings: Vec<String>,
}

impl Embedded {
    /// `X-Truncated-Inputs`, and one `X-E5-Warning` per warning.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-truncated-inputs", self.truncated.len().into());
        for w in &self.warnings {
            // Library warnings are ASCII; a header cannot carry anything else.
            if let Ok(v) = HeaderValue::from_str(w) {
                headers.append("x-e5-warning", v);
            }
        }
        headers
    }
}

/// Checks `input`, queues it on `served`'s batcher and waits for its rows (request order),
/// cut to `dimensions` when the request asks.
pub async fn embed(
    served: &ServedModel,
    input: EmbeddingInput,
    kind: InputKind,
    truncate: bool,
    max_client_batch: usize,
    dimensions: Option<u64>,
) -> Result<Embedded, ApiError> {
    // Checked before anything is queued; the batcher runs every request at the model's width.
    let dimensions = dimensions.map(|d| usize::try_from(d).unwrap_or(usize::MAX));
    let warnings = match dimensions {
        Some(d) => {
            served.model().check_dimensions(d).map_err(|e| ApiError::bad_request("dimensions", e.to_string()))?
        }
        None => Vec::new(),
    };
    let n = input.len();
    if n == 0 {
        return Err(ApiError::bad_request("input", "input is empty: send at least one text or token sequence"));
    }
    if n > max_client_batch {
        return Err(ApiError::unprocessable(
            "input",
            "batch_too_large",
            format!("{n} inputs exceed this server's --max-client-batch of {max_client_batch}; split the request"),
        ));
    }
    let max = served.info.max_tokens;
    let (items, costs) = match input {
        EmbeddingInput::Ids(seqs) => {
            check_ids(&seqs, max, served.info.vocab_size)?;
            m::inputs(&served.name, "ids", n, seqs.iter().map(Vec::len).sum());
            let costs = seqs.iter().map(Vec::len).collect();
            (seqs.into_iter().map(Item::Ids).collect(), costs)
        }
        EmbeddingInput::Texts(texts) => {
            let (texts, counts) = token_counts(served, texts, kind.clone()).await?;
            if !truncate {
                if let Some((i, &c)) = counts.iter().enumerate().find(|&(_, &c)| c > max) {
                    return Err(ApiError::unprocessable(
                        "input",
                        "input_too_long",
                        format!("input[{i}] has {c} tokens, over the model's limit of {max} (truncation is off)"),
                    ));
                }
            }
            m::inputs(&served.name, kind_name(&kind), n, counts.iter().map(|&c| c.min(max)).sum());
            if kind == InputKind::Raw {
                let cfg = served.model().config();
                let prefixes = [cfg.prompts.query.as_str(), cfg.prompts.passage.as_str()];
                if prefixes.iter().all(|p| !p.is_empty()) {
                    m::unprefixed(
                        &served.name,
                        texts.iter().filter(|t| !prefixes.iter().any(|p| t.starts_with(p))).count(),
                    );
                }
            }
            let costs = counts.iter().map(|&c| c.min(max)).collect();
            (texts.into_iter().map(|t| Item::Text(Input { kind: kind.clone(), text: t.into() })).collect(), costs)
        }
    };
    let embeddings = served.batcher.embed(items, costs).await.map_err(|e| match e {
        BatchError::QueueFull => {
            m::rejected(&served.name, "queue_full");
            ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!("model {} has a full queue; retry later", served.name),
                )
            }
        }
        BatchError::Input { index, message } => ApiError::bad_request("input", format!("input[{index}]: {message}")),
        BatchError::Failed(message) => ApiError::internal(message),
    })?;
    let truncated: Vec<usize> = embeddings.truncated().collect();
    m::truncated(&served.name, truncated.len());
    let embeddings = match dimensions {
        Some(d) => served.model().cut(embeddings, d).map_err(|e| ApiError::internal(e.to_string()))?,
        None => embeddings,
    };
    if let Some(d) = dimensions.filter(|_| !warnings.is_empty()) {
        served.warn_dimensions(d, &warnings);
    }
    Ok(Embedded { embeddings, truncated, warnings })
}

/// Token sequences must be non-empty, fit the model and use its vocabulary.
fn check_ids(seqs: &[Vec<u32>], max: usize, vocab: usize) -> Result<(), ApiError> {
    for (i, ids) in seqs.iter().enumerate() {
        if ids.is_empty() {
            return Err(ApiError::bad_request("input", format!("input[{i}] is an empty token sequence")));
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ApiError::bad_request(
                "input",
                format!("input[{i}]: token id {bad} is outside the model's vocabulary of {vocab}"),
            ));
        }
        if ids.len() > max {
            return Err(ApiError::unprocessable(
                "input",
                "input_too_long",
                format!(
                    "input[{i}] has {} tokens, over the model's limit of {max}; token ids are never cut",
                    ids.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Tokens of each text with its prefix, specials included, before truncation; tokenized
/// off the async runtime.
async fn token_counts(
    served: &ServedModel,
    texts: Vec<String>,
    kind: InputKind,
) -> Result<(Vec<String>, Vec<usize>), ApiError> {
    let encoder = served.encoder.clone();
    tokio::task::spawn_blocking(move || {
        let counts = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                encoder
                    .model()
                    .tokenize(&Input { kind: kind.clone(), text: t.as_str().into() })
                    .map(|t| t.untruncated)
                    .map_err(|e| ApiError::bad_request("input", format!("input[{i}]: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok((texts, counts))
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?
}
