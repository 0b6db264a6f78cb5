//! Request bodies of `e5 serve`'s JSON routes (`/v1/embeddings`, `/embed`, `/tokenize`; the
//! first byte picks the route) through the whole router in process, on the tiny XLM-R model:
//! body limits, JSON extraction, input checks, the batcher and the encoder. Every answer is
//! a success or a client error (4xx) with a JSON body, never a 5xx, a panic or a hang.
#![no_main]

#[path = "common.rs"]
mod common;

use axum::body::Body;
use axum::http::Request;
use e5::{Model, Options};
use e5_server::{AppState, Encoder, ServerConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ROUTES: [&str; 3] = ["/v1/embeddings", "/embed", "/tokenize"];

static APP: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();

fn app() -> &'static (tokio::runtime::Runtime, axum::Router) {
    APP.get_or_init(|| {
        let options = Options { threads: Some(1), ..Options::default() };
        let model: Arc<dyn Encoder> = Arc::new(Model::load(common::fixture("tiny-xlmr"), options).unwrap());
        let state = AppState::new(ServerConfig { threads: Some(1), ..ServerConfig::default() });
        state.set_models(vec![("tiny".into(), model)]).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        (runtime, e5_server::router(state))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else { return };
    let path = ROUTES[route as usize % ROUTES.len()];
    let (runtime, app) = app();
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, answer) = runtime.block_on(async {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    });
    let shown = String::from_utf8_lossy(&answer);
    assert!(status.is_success() || status.is_client_error(), "{path}: {status} {shown}");
    assert!(serde_json::from_slice::<serde_json::Value>(&answer).is_ok(), "{path}: {status} not JSON: {shown}");
});
