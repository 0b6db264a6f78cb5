//! # e5-server
//!
//! e5 over HTTP, started by `e5 serve`: OpenAI's `POST /v1/embeddings` and `GET /v1/models`,
//! text-embeddings-inference's `POST /embed`, `POST /tokenize` and `GET /info`, probes
//! (`/health`, `/ready`), Prometheus `/metrics`, `/openapi.json`, and a playground at `/`.
//!
//! Requests are merged by a per-model dynamic batcher ([`batcher`]) into encoder calls of at
//! most `max_batch_tokens` tokens, round-robin across requests; a vector never depends on
//! what it was batched with. [`router`] builds the app for in-process tests; [`serve`]
//! runs it on a listener until a shutdown signal, answering every accepted request.

pub mod batcher;
mod body;
pub mod config;
mod error;
mod inputs;
pub mod metrics;
mod openai;
mod openapi;
mod playground;
mod probes;
mod prompt;
mod serve;
mod state;
mod tei;

pub use batcher::{Encoder, Item};
pub use config::{ModelSpec, ServerConfig};
pub use serve::{run, serve, shutdown_signal};
pub use state::{load_models, AppState, ServedModel};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

/// The whole app. Model routes need the API key when one is set; probes, metrics, the
/// OpenAPI document and the playground page do not.
pub fn router(state: Arc<AppState>) -> Router {
    metrics::handle();
    let models = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/embed", post(tei::embed_route))
        .route("/tokenize", post(tei::tokenize))
        .route("/info", get(tei::info))
        .route_layer(middleware::from_fn_with_state(state.clone(), probes::authorize));
    Router::new()
        .merge(models)
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/", get(playground::page))
        .fallback(probes::not_found)
        .layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(state.config.payload_limit))
        .layer(middleware::from_fn_with_state(state.clone(), body::read_in_time))
        .layer(CatchPanicLayer::custom(probes::panic_response))
        .with_state(state)
}

/// How long `serve` waits for the encoder threads to answer accepted requests after a
/// shutdown signal before it gives up.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(120);
