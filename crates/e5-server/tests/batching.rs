//! The batcher through HTTP: rows never depend on batch-mates, a short query does not wait
//! behind a large request, a full queue answers 429, and a panic stays in its request.

mod common;

use common::*;
use e5::Input;
use e5_server::{Encoder, ServerConfig};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_embed_bit_identically_to_one_text_alone() {
    let model = e5_small();
    let config = ServerConfig { max_batch_tokens: 256, ..ServerConfig::default() };
    let s = Arc::new(Server::start(config, vec![("e5", model.clone())]).await);
    let texts: Vec<String> = (0..24)
        .map(|i| format!("text {i}: {}", "the quick brown fox jumps over the lazy dog ".repeat(1 + i % 7)))
        .collect();
    let requests = texts.chunks(3).enumerate().map(|(r, chunk)| {
        let s = s.clone();
        let kind = ["query", "passage", "raw"][r % 3];
        let body = json!({"input": chunk, "model": "e5", "input_type": kind});
        tokio::spawn(async move { (kind, s.post("/v1/embeddings", body).await) })
    });
    let mut checked = 0;
    for (r, request) in requests.enumerate() {
        let (kind, (status, body)) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        for (k, got) in vectors(&body).into_iter().enumerate() {
            let text = texts[3 * r + k].as_str();
            let input = match kind {
                "query" => Input::query(text),
                "passage" => Input::passage(text),
                _ => Input::raw(text),
            };
            assert_eq!(got, model.embed(&[input]).unwrap().vector(0), "request {r} row {k}");
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
    Arc::into_inner(s).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_query_rides_in_the_next_call_behind_a_large_request() {
    let probe = Probe::new(tiny(), false);
    let config = ServerConfig { max_batch_tokens: 64, ..ServerConfig::default() };
    let s = Arc::new(Server::start_encoders(config, vec![("tiny", probe.clone() as Arc<dyn Encoder>)]).await);
    let passages: Vec<String> = (0..200).map(|i| format!("passage number {i} about nothing much")).collect();
    let big = {
        let s = s.clone();
        tokio::spawn(async move { s.post("/v1/embeddings", json!({"input": passages})).await })
    };
    // The big request's first call is held at the gate; the query queues behind it.
    wait_until("the first call", || !probe.calls().is_empty()).await;
    let query = {
        let s = s.clone();
        tokio::spawn(async move { s.post("/v1/embeddings", json!({"input": "the query"})).await })
    };
    let served = &s.state.models().unwrap()[0];
    wait_until("the query to queue", || served.batcher.queued() == 201).await;
    probe.open();
    let (status, body) = query.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = big.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 200);
    let calls = probe.calls();
    let at = calls.iter().position(|c| c.iter().any(|t| t == "the query")).unwrap();
    assert_eq!(at, 1, "the query waited for {at} calls");
    assert!(calls.len() > 10, "the large request was split across calls ({} calls)", calls.len());
    // Its rows came back in its order.
    let want = tiny().embed(&[Input::raw("passage number 123 about nothing much")]).unwrap();
    assert_eq!(vectors(&body)[123], want.vector(0));
    Arc::into_inner(s).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let probe = Probe::new(tiny(), false);
    let config = ServerConfig { max_queue: 3, max_client_batch: 2, ..ServerConfig::default() };
    let s = Arc::new(Server::start_encoders(config, vec![("tiny", probe.clone() as Arc<dyn Encoder>)]).await);
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.post("/v1/embeddings", json!({"input": ["a", "b"]})).await })
    };
    wait_until("the first call", || !probe.calls().is_empty()).await;
    let r = Server::client().post(format!("{}/v1/embeddings", s.url)).json(&json!({"input": ["c", "d"]}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "queue_full");
    // One more input still fits.
    let third = {
        let s = s.clone();
        tokio::spawn(async move { s.post("/v1/embeddings", json!({"input": "e"})).await })
    };
    let served = &s.state.models().unwrap()[0];
    wait_until("the third request to queue", || served.batcher.queued() == 3).await;
    probe.open();
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(third.await.unwrap().0, 200);
    assert_eq!(served.batcher.queued(), 0);
    Arc::into_inner(s).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_own_request_and_the_server_keeps_serving() {
    let probe = Probe::new(tiny(), false);
    let s = Arc::new(
        Server::start_encoders(ServerConfig::default(), vec![("tiny", probe.clone() as Arc<dyn Encoder>)]).await,
    );
    let send = |input: serde_json::Value| {
        let s = s.clone();
        tokio::spawn(async move { s.post("/v1/embeddings", json!({ "input": input })).await })
    };
    // Three requests merge into one call that panics; only the faulty one fails.
    let good = send(json!(["fine", "also fine"]));
    wait_until("the first call", || !probe.calls().is_empty()).await;
    let bad = send(json!(["ok", "PANIC here"]));
    let other = send(json!("another"));
    let served = &s.state.models().unwrap()[0];
    wait_until("all to queue", || served.batcher.queued() == 5).await;
    probe.open();
    let (status, body) = bad.await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(openai_error(&body).contains("panicked"), "{body}");
    for r in [good, other] {
        let (status, body) = r.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = s.post("/v1/embeddings", json!({"input": "after"})).await;
    assert_eq!(status, 200);
    assert_eq!(served.batcher.queued(), 0);
    Arc::into_inner(s).unwrap().stop().await;
}
