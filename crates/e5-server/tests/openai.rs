//! `POST /v1/embeddings` and `GET /v1/models` on the tiny fixture model: every input shape,
//! both encodings, usage, and every error in OpenAI's shape.

mod common;

use base64::Engine;
use common::*;
use e5::{Input, InputKind};
use e5_server::ServerConfig;
use serde_json::json;

async fn tiny_server(config: ServerConfig) -> Server {
    Server::start(config, vec![("tiny", tiny())]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_and_ids_embed_like_the_library_alone() {
    let s = tiny_server(ServerConfig::default()).await;
    let model = tiny();
    let alone = |i: Input<'_>| model.embed(&[i]).unwrap().vector(0).to_vec();

    let (status, body) = s.post("/v1/embeddings", json!({"input": "hello world", "model": "tiny"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert_eq!(vectors(&body), vec![alone(Input::raw("hello world"))]);
    let tokens = model.tokenize(&Input::raw("hello world")).unwrap().ids.len();
    assert_eq!(body["usage"], json!({"prompt_tokens": tokens, "total_tokens": tokens}));

    let texts = ["first text", "second, longer text about something", ""];
    for (kind, name) in [(InputKind::Query, "query"), (InputKind::Passage, "passage"), (InputKind::Raw, "raw")] {
        let (status, body) =
            s.post("/v1/embeddings", json!({"input": texts, "model": "tiny", "input_type": name})).await;
        assert_eq!(status, 200, "{body}");
        let want: Vec<Vec<f32>> =
            texts.iter().map(|t| alone(Input { kind: kind.clone(), text: (*t).into() })).collect();
        assert_eq!(vectors(&body), want, "input_type {name}");
        let indices: Vec<u64> = body["data"].as_array().unwrap().iter().map(|d| d["index"].as_u64().unwrap()).collect();
        assert_eq!(indices, [0, 1, 2]);
    }

    // Token ids as /tokenize gives them embed like their text; one sequence or several.
    let ids = model.tokenize(&Input::query("hello world")).unwrap().ids;
    let (status, body) = s.post("/v1/embeddings", json!({"input": ids, "model": "tiny"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vectors(&body), vec![alone(Input::query("hello world"))]);
    assert_eq!(body["usage"]["prompt_tokens"], ids.len());
    let (status, body) = s.post("/v1/embeddings", json!({"input": [ids, [0, 5, 2]], "model": "tiny"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vectors(&body)[0], alone(Input::query("hello world")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_is_little_endian_f32_of_the_float_answer() {
    let s = tiny_server(ServerConfig::default()).await;
    let input = json!(["one", "two three"]);
    let (_, floats) = s.post("/v1/embeddings", json!({"input": input, "model": "tiny"})).await;
    let (status, b64) =
        s.post("/v1/embeddings", json!({"input": input, "model": "tiny", "encoding_format": "base64"})).await;
    assert_eq!(status, 200, "{b64}");
    for (d, want) in b64["data"].as_array().unwrap().iter().zip(vectors(&floats)) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(d["embedding"].as_str().unwrap()).unwrap();
        let got: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(got, want);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_reported_or_refused_by_index() {
    let long = "word ".repeat(400);
    let s = tiny_server(ServerConfig::default()).await;
    let (status, body) = s.post("/v1/embeddings", json!({"input": ["short", long, long], "model": "tiny"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated_inputs"], 2);
    let model = tiny();
    let short = model.tokenize(&Input::raw("short")).unwrap().ids.len();
    assert_eq!(body["usage"]["prompt_tokens"].as_u64().unwrap() as usize, 2 * model.info().max_tokens + short);
    s.stop().await;

    let s = tiny_server(ServerConfig { truncate: false, ..ServerConfig::default() }).await;
    let (status, body) = s.post("/v1/embeddings", json!({"input": ["short", long], "model": "tiny"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(openai_error(&body).contains("input[1]"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors() {
    let config = ServerConfig { max_client_batch: 3, max_queue: 8, payload_limit: 4096, ..ServerConfig::default() };
    let s = tiny_server(config).await;
    let cases = [
        (json!({"input": "x", "model": "gpt-4"}), 404, "model_not_found"),
        (json!({"input": "x", "model": "tiny", "dimensions": 33}), 400, "invalid_value"),
        (json!({"input": [], "model": "tiny"}), 400, "invalid_value"),
        (json!({"input": ["a", "b", "c", "d"], "model": "tiny"}), 422, "batch_too_large"),
        (json!({"input": 5, "model": "tiny"}), 400, "invalid_json"),
        (json!({"input": ["a", 1], "model": "tiny"}), 400, "invalid_json"),
        (json!({"input": [[0, 2], "a"], "model": "tiny"}), 400, "invalid_json"),
        (json!({"input": [0, -1], "model": "tiny"}), 400, "invalid_json"),
        (json!({"model": "tiny"}), 400, "invalid_json"),
        (json!({"input": "x", "model": 3}), 400, "invalid_json"),
        (json!({"input": "x", "encoding_format": "int8"}), 400, "invalid_json"),
        (json!({"input": "x", "input_type": "question"}), 400, "invalid_value"),
        (json!({"input": [0, 5, 2], "input_type": "query"}), 400, "invalid_value"),
        (json!({"input": [0, 100000, 2]}), 400, "invalid_value"),
        (json!({"input": [[0, 2], []]}), 400, "invalid_value"),
        (json!({"input": vec![5; 100]}), 422, "input_too_long"),
        (json!({"input": "x".repeat(5000)}), 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = s.post("/v1/embeddings", body.clone()).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body} -> {answer}");
        openai_error(&answer);
    }
    // The model's own width, or any narrower one (tests/prompts.rs checks the vectors).
    for d in [32, 8] {
        let (status, body) = s.post("/v1/embeddings", json!({"input": "x", "dimensions": d})).await;
        assert_eq!((status, vectors(&body)[0].len()), (200, d), "{body}");
    }

    let client = Server::client();
    let url = format!("{}/v1/embeddings", s.url);
    let r =
        client.post(&url).body("{\"input\": \"x\"").header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    openai_error(&r.json().await.unwrap());
    let r = client.post(&url).body("{\"input\": \"x\"}").header("content-type", "text/plain").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    openai_error(&r.json().await.unwrap());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_and_chosen_by_alias() {
    let bert =
        std::sync::Arc::new(e5::Model::load(root().join("tests/fixtures/tiny-bert"), e5::Options::default()).unwrap());
    let s = Server::start(ServerConfig::default(), vec![("tiny", tiny()), ("bert", bert.clone())]).await;
    let (status, list) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tiny", "bert"]);
    let (_, body) = s.post("/v1/embeddings", json!({"input": "hello", "model": "bert"})).await;
    assert_eq!(body["model"], "bert");
    assert_eq!(vectors(&body), vec![bert.embed(&[Input::raw("hello")]).unwrap().vector(0).to_vec()]);
    // Without `model`, the first one.
    let (_, body) = s.post("/v1/embeddings", json!({"input": "hello"})).await;
    assert_eq!(body["model"], "tiny");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guards_the_model_routes_only() {
    let s = tiny_server(ServerConfig { api_key: Some("sesame".into()), ..ServerConfig::default() }).await;
    let client = Server::client();
    for key in [None, Some("wrong")] {
        let mut r = client.post(format!("{}/v1/embeddings", s.url)).json(&json!({"input": "x"}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(openai_error(&r.json().await.unwrap()), "missing or wrong API key");
    }
    let r = client.post(format!("{}/embed", s.url)).json(&json!({"inputs": "x"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client.post(format!("{}/v1/embeddings", s.url)).bearer_auth("sesame").json(&json!({"input": "x"}));
    assert_eq!(r.send().await.unwrap().status().as_u16(), 200);
    for open in ["/health", "/ready", "/metrics", "/openapi.json", "/"] {
        assert_eq!(s.get(open).await.0, 200, "{open}");
    }
    s.stop().await;
}
