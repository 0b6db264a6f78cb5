//! Hugging Face text-embeddings-inference's API: `POST /embed`, `POST /tokenize`, `GET /info`.

use crate::config::kind_name;
use crate::error::{ApiError, ApiJson, Flavor};
use crate::inputs::{embed, EmbeddingInput};
use crate::prompt;
use crate::state::{AppState, ServedModel};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use e5::Input;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct EmbedRequest {
    pub inputs: EmbeddingInput,
    /// Vectors are L2-normalized as the model was trained; `false` is refused for such models.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Truncate inputs over the model's limit (default: the server's `--truncate`).
    pub truncate: Option<bool>,
    /// Only `Right` (the start of a text is kept).
    pub truncation_direction: Option<String>,
    /// A prompt the model declares (`/info` lists them), or `query`, `passage` /
    /// `document` (the model's query / document prompt, E5's prefixes when it declares
    /// none) or `raw` (default: the server's `--default-kind`).
    pub prompt_name: Option<String>,
    /// Keep the first `dimensions` components of each vector, renormalized (1 to the
    /// model's width); `X-E5-Warning` when the model was not trained for it.
    pub dimensions: Option<u64>,
    /// e5 extension: a served model's alias (default: the first).
    pub model: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
pub struct TokenizeRequest {
    pub inputs: EmbeddingInput,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    pub prompt_name: Option<String>,
    pub model: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    /// Character offsets into the text with its prefix (`None` for special tokens).
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Info {
    /// The default model's alias and what it is.
    pub model_id: String,
    pub model_dtype: String,
    pub model_type: &'static str,
    pub max_input_length: usize,
    pub max_batch_tokens: usize,
    pub max_client_batch_size: usize,
    pub max_queue: usize,
    /// `--default-kind`, or `model_default`: each model's `default_prompt_name`, else raw.
    pub default_kind: &'static str,
    pub truncate: bool,
    pub version: &'static str,
    pub models: Vec<ModelDescription>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelDescription {
    pub name: String,
    pub architecture: &'static str,
    pub dimension: usize,
    pub precision: &'static str,
    pub isa: &'static str,
    pub max_tokens: usize,
    pub layers: usize,
    pub parameters: usize,
    pub query_prefix: String,
    pub passage_prefix: String,
    /// The prompts the model declares (`config_sentence_transformers.json`), by name.
    pub prompts: BTreeMap<String, String>,
    /// The declared prompt sentence-transformers applies when none is named.
    pub default_prompt_name: Option<String>,
    /// Every `prompt_name` / `input_type` this model takes.
    pub prompt_names: Vec<String>,
    pub normalize: bool,
}

/// Embeds texts, TEI-style: a JSON array of vectors. `X-Truncated-Inputs` counts the inputs
/// that were truncated; `X-E5-Warning` says when `dimensions` is not a trained width.
#[utoipa::path(post, path = "/embed", request_body = EmbedRequest, responses(
    (status = 200, body = Vec<Vec<f32>>),
    (status = 400, body = crate::error::TeiError), (status = 401, body = crate::error::TeiError),
    (status = 404, body = crate::error::TeiError), (status = 413, body = crate::error::TeiError),
    (status = 415, body = crate::error::TeiError), (status = 422, body = crate::error::TeiError),
    (status = 429, body = crate::error::TeiError), (status = 503, body = crate::error::TeiError),
))]
pub async fn embed_route(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<EmbedRequest, true>,
) -> Result<(HeaderMap, Json<Vec<Vec<f32>>>), ApiError> {
    let tei = |e: ApiError| e.flavor(Flavor::Tei);
    let served = state.model(req.model.as_deref()).map_err(tei)?;
    if !req.normalize && served.info.normalize {
        let msg = format!("model {} is trained for normalized vectors; normalize=false is not served", served.name);
        return Err(tei(ApiError::bad_request("normalize", msg)));
    }
    if let Some(d) = req.truncation_direction.as_deref().filter(|d| !d.eq_ignore_ascii_case("right")) {
        return Err(tei(ApiError::bad_request(
            "truncation_direction",
            format!("truncation_direction {d:?}: only Right"),
        )));
    }
    let kind =
        prompt::resolve(served.model(), "prompt_name", req.prompt_name.as_deref(), state.config.default_kind.as_ref())
            .map_err(tei)?;
    let c = &state.config;
    let truncate = req.truncate.unwrap_or(c.truncate);
    let out = embed(served, req.inputs, kind, truncate, c.max_client_batch, req.dimensions).await.map_err(tei)?;
    Ok((out.headers(), Json(out.embeddings.vectors().map(<[f32]>::to_vec).collect())))
}

/// Tokens of each text as the model sees it (prefix included).
#[utoipa::path(post, path = "/tokenize", request_body = TokenizeRequest, responses(
    (status = 200, body = Vec<Vec<SimpleToken>>),
    (status = 400, body = crate::error::TeiError), (status = 422, body = crate::error::TeiError),
))]
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<TokenizeRequest, true>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    let tei = |e: ApiError| e.flavor(Flavor::Tei);
    let served = state.model(req.model.as_deref()).map_err(tei)?;
    let kind =
        prompt::resolve(served.model(), "prompt_name", req.prompt_name.as_deref(), state.config.default_kind.as_ref())
            .map_err(tei)?;
    let EmbeddingInput::Texts(texts) = req.inputs else {
        return Err(tei(ApiError::bad_request("inputs", "/tokenize takes texts, not token ids")));
    };
    if texts.len() > state.config.max_client_batch {
        let msg = format!("{} inputs exceed --max-client-batch {}", texts.len(), state.config.max_client_batch);
        return Err(tei(ApiError::unprocessable("inputs", "batch_too_large", msg)));
    }
    let encoder = served.encoder.clone();
    let special = req.add_special_tokens;
    let tokens = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let toks = encoder
                    .model()
                    .tokenize(&Input { kind: kind.clone(), text: t.as_str().into() })
                    .map_err(|e| ApiError::bad_request("inputs", format!("inputs[{i}]: {e}")))?;
                Ok(toks
                    .ids
                    .iter()
                    .zip(toks.tokens)
                    .zip(toks.offsets)
                    .map(|((&id, text), (start, stop))| {
                        // The tokenizer gives special tokens the empty span (0, 0).
                        let is_special = start == 0 && stop == 0;
                        let span = |x| (!is_special).then_some(x);
                        SimpleToken { id, text, special: is_special, start: span(start), stop: span(stop) }
                    })
                    .filter(|t| special || !t.special)
                    .collect())
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))
    .and_then(|r| r)
    .map_err(tei)?;
    Ok(Json(tokens))
}

/// The served models and the server's limits.
#[utoipa::path(get, path = "/info", responses((status = 200, body = Info), (status = 503, body = crate::error::TeiError)))]
pub async fn info(State(state): State<Arc<AppState>>) -> Result<Json<Info>, ApiError> {
    let models = state.models().map_err(|e| e.flavor(Flavor::Tei))?;
    let first = &models[0];
    let c = &state.config;
    Ok(Json(Info {
        model_id: first.name.clone(),
        model_dtype: first.info.precision.name().to_string(),
        model_type: "embedding",
        max_input_length: first.info.max_tokens,
        max_batch_tokens: c.max_batch_tokens,
        max_client_batch_size: c.max_client_batch,
        max_queue: c.max_queue,
        default_kind: c.default_kind.as_ref().map_or("model_default", kind_name),
        truncate: c.truncate,
        version: env!("CARGO_PKG_VERSION"),
        models: models.iter().map(describe).collect(),
    }))
}

fn describe(m: &ServedModel) -> ModelDescription {
    let cfg = m.model().config();
    ModelDescription {
        name: m.name.clone(),
        architecture: m.info.architecture,
        dimension: m.info.dim,
        precision: m.info.precision.name(),
        isa: m.info.isa.name(),
        max_tokens: m.info.max_tokens,
        layers: m.info.layers,
        parameters: m.info.parameters,
        query_prefix: cfg.prompts.query.clone(),
        passage_prefix: cfg.prompts.passage.clone(),
        prompts: cfg.prompts.named.clone(),
        default_prompt_name: cfg.prompts.default.clone(),
        prompt_names: prompt::accepted(m.model()),
        normalize: m.info.normalize,
    }
}
