//! The TEI routes (`/embed`, `/tokenize`, `/info`), the probes, `/metrics`, `/openapi.json`
//! and the playground page.

mod common;

use common::*;
use e5::Input;
use e5_server::{AppState, ServerConfig};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_matches_the_library_and_reports_truncation() {
    let s = Server::start(ServerConfig::default(), vec![("tiny", tiny())]).await;
    let model = tiny();
    let (status, body) = s.post("/embed", json!({"inputs": ["a b", "c"], "prompt_name": "passage"})).await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
    let want = model.embed(&[Input::passage("a b"), Input::passage("c")]).unwrap();
    assert_eq!(got, want.vectors().map(<[f32]>::to_vec).collect::<Vec<_>>());

    let long = "word ".repeat(300);
    let r = Server::client().post(format!("{}/embed", s.url)).json(&json!({"inputs": long})).send().await.unwrap();
    assert_eq!(r.headers()["x-truncated-inputs"], "1");
    let (status, body) = s.post("/embed", json!({"inputs": ["ok", long], "truncate": false})).await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("input[1]"), "{body}");
    assert_eq!(body["error_type"], "Validation");

    for (req, status) in [
        (json!({"inputs": "x", "normalize": false}), 400),
        (json!({"inputs": "x", "prompt_name": "nope"}), 400),
        (json!({"inputs": "x", "truncation_direction": "Left"}), 400),
        (json!({"inputs": "x", "model": "other"}), 404),
        (json!({"inputs": []}), 400),
        (json!({"inputs": {"a": 1}}), 400),
    ] {
        let (got, body) = s.post("/embed", req.clone()).await;
        assert_eq!(got, status, "{req} -> {body}");
        assert!(body["error"].is_string() && body["error_type"].is_string(), "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_and_info_describe_the_model() {
    let s = Server::start(ServerConfig::default(), vec![("tiny", tiny())]).await;
    let model = tiny();
    let (status, body) = s.post("/tokenize", json!({"inputs": ["hello world"], "prompt_name": "query"})).await;
    assert_eq!(status, 200, "{body}");
    let toks = model.tokenize(&Input::query("hello world")).unwrap();
    let ids: Vec<u32> = body[0].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap() as u32).collect();
    assert_eq!(ids, toks.ids);
    assert_eq!(body[0][0]["special"], true);
    assert_eq!(body[0][1]["special"], false);
    let (_, bare) = s.post("/tokenize", json!({"inputs": "hello world", "add_special_tokens": false})).await;
    assert!(bare[0].as_array().unwrap().iter().all(|t| t["special"] == false));
    let (status, _) = s.post("/tokenize", json!({"inputs": [[1, 2]]})).await;
    assert_eq!(status, 400);

    let (status, info) = s.get("/info").await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_id"], "tiny");
    assert_eq!(info["max_input_length"], model.info().max_tokens);
    assert_eq!(info["default_kind"], "model_default");
    let m = &info["models"][0];
    assert_eq!((m["dimension"].as_u64(), m["precision"].as_str()), (Some(32), Some("fp32")));
    assert_eq!(m["query_prefix"], "query: ");
    assert!(m["isa"].is_string());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_loading_and_draining() {
    let state = AppState::new(ServerConfig::default());
    let s = Server::start_with(state.clone()).await;
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/ready").await.0, 503);
    let (status, body) = s.post("/v1/embeddings", json!({"input": "x"})).await;
    assert_eq!(status, 503, "{body}");
    state.set_models(vec![("tiny".into(), tiny() as std::sync::Arc<dyn e5_server::Encoder>)]).unwrap();
    assert_eq!(s.get("/ready").await.0, 200);
    state.drain();
    assert_eq!(s.get("/ready").await, (503, "{\"status\":\"draining\"}".to_string()));
    assert_eq!(s.get("/health").await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_unprefixed_e5_inputs() {
    let s = Server::start(ServerConfig::default(), vec![("metrics-tiny", tiny())]).await;
    s.post("/v1/embeddings", json!({"input": ["plain", "query: already prefixed"]})).await;
    s.post("/v1/embeddings", json!({"input": ["q"], "input_type": "query"})).await;
    s.post("/v1/embeddings", json!({"input": "x", "model": "nope"})).await;
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, 200);
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has("e5_unprefixed_inputs_total{model=\"metrics-tiny\"} 1"), "{text}");
    assert!(has("e5_inputs_total{model=\"metrics-tiny\",kind=\"raw\"} 2"), "{text}");
    assert!(has("e5_inputs_total{model=\"metrics-tiny\",kind=\"query\"} 1"), "{text}");
    assert!(text.contains("e5_requests_total{route=\"/v1/embeddings\",status=\"404\"}"), "{text}");
    assert!(text.contains("e5_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("e5_batches_total{model=\"metrics-tiny\"}"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_the_page_is_self_contained() {
    let s = Server::start(ServerConfig::default(), vec![("tiny", tiny())]).await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for path in ["/v1/embeddings", "/v1/models", "/embed", "/tokenize", "/info", "/health", "/ready", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from /openapi.json");
    }
    assert!(doc["components"]["schemas"]["EmbeddingRequest"].is_object());
    let (status, page) = s.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>e5 playground</title>") && page.contains("/v1/embeddings"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "the page loads nothing external");
    let (status, body) = s.get("/nope").await;
    assert_eq!(status, 404, "{body}");
    s.stop().await;
}
