//! OpenAI's embeddings API: `POST /v1/embeddings`, `GET /v1/models`.

use crate::error::{ApiError, ApiJson};
use crate::inputs::{embed, EmbeddingInput};
use crate::prompt;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    pub input: EmbeddingInput,
    /// A served model's alias (`GET /v1/models`); the first one when absent.
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Keep the first `dimensions` components of each vector, L2-renormalized when the model
    /// normalizes (1 to the model's width). For a model that declares no Matryoshka
    /// training for this width the answer carries an `X-E5-Warning` header.
    pub dimensions: Option<u64>,
    /// A prompt the model declares (`GET /info` lists them), or `query`, `passage` /
    /// `document` (the model's query / document prompt, E5's `"query: "` / `"passage: "`
    /// when it declares none) or `raw` (as given); the server's `--default-kind` when
    /// absent. Text inputs only.
    pub input_type: Option<String>,
}

#[derive(Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian f32 bytes, base64-encoded (the official clients' default).
    Base64,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: Usage,
    /// e5 extension: how many inputs were longer than the model's limit and truncated.
    pub truncated_inputs: usize,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    /// Tokens embedded, prefixes and special tokens included, after truncation.
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

/// Embeds text or token ids, OpenAI-style.
#[utoipa::path(post, path = "/v1/embeddings", request_body = EmbeddingRequest, responses(
    (status = 200, body = EmbeddingResponse, headers(
        ("x-e5-warning" = String, description = "a `dimensions` the model was not trained for"),
    )),
    (status = 400, description = "malformed request, unknown input_type, dimensions out of range", body = crate::error::OpenAiError),
    (status = 401, description = "bad or missing API key", body = crate::error::OpenAiError),
    (status = 404, description = "unknown model", body = crate::error::OpenAiError),
    (status = 413, description = "body over --payload-limit", body = crate::error::OpenAiError),
    (status = 415, description = "not application/json", body = crate::error::OpenAiError),
    (status = 422, description = "too many inputs, or an input over the limit with truncation off", body = crate::error::OpenAiError),
    (status = 429, description = "queue full (see Retry-After)", body = crate::error::OpenAiError),
    (status = 503, description = "loading or draining", body = crate::error::OpenAiError),
))]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<EmbeddingRequest, false>,
) -> Result<(HeaderMap, Json<EmbeddingResponse>), ApiError> {
    let served = state.model(req.model.as_deref())?;
    if let (Some(_), EmbeddingInput::Ids(_)) = (&req.input_type, &req.input) {
        let msg = "input_type applies to text; token ids are embedded exactly as given";
        return Err(ApiError::bad_request("input_type", msg));
    }
    let kind =
        prompt::resolve(served.model(), "input_type", req.input_type.as_deref(), state.config.default_kind.as_ref())?;
    let c = &state.config;
    let out = embed(served, req.input, kind, c.truncate, c.max_client_batch, req.dimensions).await?;
    let tokens: usize = out.embeddings.rows.iter().map(|r| r.tokens).sum();
    let data = out
        .embeddings
        .vectors()
        .enumerate()
        .map(|(index, v)| EmbeddingData {
            object: "embedding",
            index,
            embedding: match req.encoding_format {
                EncodingFormat::Float => Vector::Float(v.to_vec()),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            },
        })
        .collect();
    let response = EmbeddingResponse {
        object: "list",
        data,
        model: served.name.clone(),
        usage: Usage { prompt_tokens: tokens, total_tokens: tokens },
        truncated_inputs: out.truncated.len(),
    };
    Ok((out.headers(), Json(response)))
}

/// The served models, OpenAI-style.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelList)))]
pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<ModelList>, ApiError> {
    let data = state
        .models()?
        .iter()
        .map(|m| ModelCard { id: m.name.clone(), object: "model", created: 0, owned_by: "e5" })
        .collect();
    Ok(Json(ModelList { object: "list", data }))
}
