//! Probes, metrics, the API-key check and the fallbacks.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::any::Any;
use std::sync::Arc;

/// Live: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "the process is up")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: models loaded and not draining (503 otherwise).
#[utoipa::path(get, path = "/ready", responses((status = 200), (status = 503, description = "loading or draining")))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.ready() {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": why}))).into_response(),
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::handle().render())
}

/// `Authorization: Bearer KEY` (OpenAI clients' `api_key`) when `--api-key` is set.
pub async fn authorize(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given.and_then(|v| v.strip_prefix("Bearer ")) != Some(key.as_str()) {
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "missing or wrong API key");
            if !req.uri().path().starts_with("/v1/") {
                e = e.flavor(crate::error::Flavor::Tei);
            }
            return e.into_response();
        }
    }
    next.run(req).await
}

pub async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {} {}", req.method(), req.uri().path()))
}

/// A handler that panicked answers 500; the server keeps serving.
pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::internal("the request's handler panicked").into_response()
}
