//! Shutdown answers every accepted request; slow clients are cut off, slow compute is not.

mod common;

use common::*;
use e5::Precision;
use e5_server::{load_models, Encoder, ModelSpec, ServerConfig};
use serde_json::json;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_accepted_request() {
    let probe = Probe::new(tiny(), false);
    let s = Server::start_encoders(ServerConfig::default(), vec![("tiny", probe.clone() as Arc<dyn Encoder>)]).await;
    let url = format!("{}/v1/embeddings", s.url);
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let r = Server::client().post(&url).json(&json!({"input": [format!("text {i}"), "more"]}));
            tokio::spawn(async move { r.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let served = &s.state.models().unwrap()[0];
    wait_until("every request to queue", || served.batcher.queued() == 16).await;
    let state = s.state.clone();
    let stopping = tokio::spawn(s.stop());
    wait_until("draining", || state.ready() == Err("draining")).await;
    probe.open();
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), 200);
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let s = Server::start(config, vec![("tiny", tiny())]).await;
    let addr = s.url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        // Headers that never end: the connection is closed.
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        assert!(!String::from_utf8_lossy(&buf).contains(" 200 "), "{}", String::from_utf8_lossy(&buf));
        // A body that never arrives: 408.
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    })
    .await
    .unwrap();
    // The server still serves.
    assert_eq!(s.post("/v1/embeddings", json!({"input": "x"})).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_compute_outlasts_the_timeout_is_answered() {
    // --request-timeout bounds the upload only: the encoder is held for 3 timeouts.
    let config = ServerConfig { request_timeout: Duration::from_millis(300), ..ServerConfig::default() };
    let probe = Probe::new(tiny(), false);
    let s = Server::start_encoders(config, vec![("tiny", probe.clone() as Arc<dyn Encoder>)]).await;
    let url = format!("{}/v1/embeddings", s.url);
    let request = Server::client().post(&url).json(&json!({"input": ["a long job"]}));
    let answer = tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    wait_until("the call", || !probe.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    probe.open();
    assert_eq!(answer.await.unwrap().unwrap(), 200);
    s.stop().await;
}

/// The server's default residency copies the embedding table at load, so a model file
/// truncated, then rewritten in place with other bytes (`cp` over it) changes no answer.
/// (With a mapped residency the same requests fail cleanly: the file changed on disk.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_residency_survives_the_model_file_rewritten_in_place() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(root().join("tests/fixtures/tiny-xlmr").join(f), dir.path().join(f)).unwrap();
    }
    let spec = ModelSpec { name: "m".into(), dir: dir.path().into(), precision: Precision::Fp32 };
    let config = ServerConfig::default();
    let models = load_models(&[spec], &config).unwrap();
    let server = Server::start_encoders(config, models.iter().map(|(n, e)| (n.as_str(), e.clone())).collect()).await;
    let request = json!({"input": ["a text to embed", "another one"], "model": "m"});
    let (status, before) = server.post("/v1/embeddings", request.clone()).await;
    assert_eq!(status, 200, "{before}");

    let weights = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(0).unwrap();
    let (status, after_truncate) = server.post("/v1/embeddings", request.clone()).await;
    assert_eq!((status, vectors(&after_truncate)), (200, vectors(&before)));
    std::fs::write(&weights, vec![0x5a; len as usize]).unwrap();
    let (status, after_rewrite) = server.post("/v1/embeddings", request).await;
    assert_eq!((status, vectors(&after_rewrite)), (200, vectors(&before)));
    server.stop().await;
}
