//! Declared prompts (`prompt_name`, `input_type`) and per-request `dimensions` on the
//! sentence-transformers fixture that declares prompts and Matryoshka dims
//! (tests/fixtures/st/prompts), against the library loaded with the same choices.

mod common;

use common::*;
use e5::{Input, Model, Options};
use e5_server::ServerConfig;
use serde_json::{json, Value};
use std::sync::Arc;

const TEXTS: [&str; 2] = ["how much protein should a female eat", "multiple     spaces"];

fn st(name: &str) -> std::path::PathBuf {
    root().join("tests/fixtures/st").join(name)
}

fn load(name: &str, dimensions: Option<usize>) -> Arc<Model> {
    Arc::new(Model::load(st(name), Options { dimensions, ..Options::default() }).unwrap())
}

/// The library's vectors of `TEXTS` presented by `input`.
fn library(m: &Model, input: impl Fn(&'static str) -> Input<'static>) -> Vec<Vec<f32>> {
    let inputs: Vec<Input> = TEXTS.iter().map(|t| input(t)).collect();
    m.embed(&inputs).unwrap().vectors().map(<[f32]>::to_vec).collect()
}

fn tei_vectors(body: Value) -> Vec<Vec<f32>> {
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_prompts_by_prompt_name_and_input_type() {
    let s = Server::start(ServerConfig::default(), vec![("prompts", load("prompts", None))]).await;
    let m = load("prompts", None);
    let classify = library(&m, |t| Input::raw(t).with_prompt("classify"));
    let (status, body) = s.post("/embed", json!({"inputs": TEXTS, "prompt_name": "classify"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tei_vectors(body), classify);
    let (status, body) = s.post("/v1/embeddings", json!({"input": TEXTS, "input_type": "classify"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vectors(&body), classify);

    // `document` and `passage` are the declared document prompt; `query` the query prompt.
    let document = library(&m, |t| Input::raw(t).with_prompt("document"));
    let query = library(&m, |t| Input::raw(t).with_prompt("query"));
    for (name, want) in [("document", &document), ("passage", &document), ("query", &query)] {
        let (_, body) = s.post("/v1/embeddings", json!({"input": TEXTS, "input_type": name})).await;
        assert_eq!(&vectors(&body), want, "input_type {name}");
        let (_, body) = s.post("/embed", json!({"inputs": TEXTS, "prompt_name": name})).await;
        assert_eq!(&tei_vectors(body), want, "prompt_name {name}");
    }
    let (_, body) = s.post("/embed", json!({"inputs": TEXTS, "prompt_name": "raw"})).await;
    assert_eq!(tei_vectors(body), library(&m, Input::raw));

    // /tokenize shows the declared prompt in front of the text.
    let (status, body) = s.post("/tokenize", json!({"inputs": "hi", "prompt_name": "classify"})).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<u64> = body[0].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    let want = m.tokenize(&Input::raw("hi").with_prompt("classify")).unwrap().ids;
    assert_eq!(ids, want.iter().map(|&i| i as u64).collect::<Vec<_>>());

    // Unknown names: 400 naming the field and listing what the model takes.
    let (status, body) = s.post("/embed", json!({"inputs": "x", "prompt_name": "nope"})).await;
    let err = body["error"].as_str().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(err.contains("prompt_name \"nope\"") && err.contains("classify, document, query, passage, raw"), "{err}");
    let (status, body) = s.post("/v1/embeddings", json!({"input": "x", "input_type": "nope"})).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("input_type")), "{body}");
    assert!(openai_error(&body).contains("classify"), "{body}");

    let (_, info) = s.get("/info").await;
    let info: Value = serde_json::from_str(&info).unwrap();
    let d = &info["models"][0];
    assert_eq!(d["prompts"]["classify"], "Classify the topic of: ");
    assert_eq!(d["default_prompt_name"], "classify");
    assert_eq!(d["prompt_names"], json!(["classify", "document", "query", "passage", "raw"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_models_keep_their_prefixes_for_every_name() {
    let s = Server::start(ServerConfig::default(), vec![("tiny", tiny())]).await;
    let m = tiny();
    for (name, want) in [
        ("query", library(&m, Input::query)),
        ("passage", library(&m, Input::passage)),
        ("document", library(&m, Input::passage)),
    ] {
        let (_, body) = s.post("/v1/embeddings", json!({"input": TEXTS, "input_type": name})).await;
        assert_eq!(vectors(&body), want, "input_type {name}");
    }
    let (_, body) = s.post("/embed", json!({"inputs": "x", "prompt_name": "classify"})).await;
    assert!(body["error"].as_str().unwrap().contains("query, passage, document, raw"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimensions_cut_per_request_like_the_library_at_load() {
    let s =
        Server::start(ServerConfig::default(), vec![("prompts", load("prompts", None)), ("mean", load("mean", None))])
            .await;
    // Requests of every width at once, batched together: each equals a model loaded with it.
    let requests = [(Some(96), "prompts"), (None, "prompts"), (Some(48), "prompts"), (Some(100), "prompts")];
    let answers = futures_join(requests.iter().map(|&(d, model)| {
        let body = json!({"input": TEXTS, "model": model, "input_type": "query", "dimensions": d});
        let url = format!("{}/v1/embeddings", s.url);
        async move {
            let r = Server::client().post(url).json(&body).send().await.unwrap();
            let warning = r.headers().get("x-e5-warning").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), warning, r.json::<Value>().await.unwrap())
        }
    }))
    .await;
    for (&(d, model), (status, warning, body)) in requests.iter().zip(answers) {
        assert_eq!(status, 200, "{body}");
        let want = library(&load(model, d), Input::query);
        assert_eq!(vectors(&body), want, "dimensions {d:?}");
        assert_eq!(warning.is_some(), d == Some(100), "only 100 is not a trained width: {warning:?}");
    }

    // A model without Matryoshka training: honoured, with the library's warning.
    let r = Server::client()
        .post(format!("{}/embed", s.url))
        .json(&json!({"inputs": TEXTS, "model": "mean", "dimensions": 16}))
        .send()
        .await
        .unwrap();
    let warning = r.headers()["x-e5-warning"].to_str().unwrap().to_string();
    assert!(warning.contains("declares no Matryoshka training"), "{warning}");
    assert_eq!(tei_vectors(r.json().await.unwrap()), library(&load("mean", Some(16)), Input::raw));
    let (_, metrics) = s.get("/metrics").await;
    assert!(metrics.contains("e5_dimension_warnings_total{model=\"mean\"}"), "{metrics}");

    for bad in [json!(0), json!(193), json!(u64::MAX)] {
        let (status, body) = s.post("/v1/embeddings", json!({"input": "x", "dimensions": bad})).await;
        assert_eq!((status, body["error"]["param"].as_str()), (400, Some("dimensions")), "{bad}: {body}");
        let (status, body) = s.post("/embed", json!({"inputs": "x", "dimensions": bad})).await;
        assert!(status == 400 && body["error"].as_str().unwrap().contains("dimensions"), "{bad}: {body}");
    }
    s.stop().await;
}

/// Runs `futures` concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// A request that names no prompt gets the model's `default_prompt_name` ("classify" in the
/// fixture), as `e5 embed` without `--kind` does, unless the server was given `--default-kind`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_prompt_named_means_the_models_default_prompt_unless_the_server_sets_one() {
    let m = load("prompts", None);
    let classify = library(&m, |t| Input::raw(t).with_prompt("classify"));
    let s = Server::start(ServerConfig::default(), vec![("prompts", m.clone())]).await;
    let (_, body) = s.post("/embed", json!({"inputs": TEXTS})).await;
    assert_eq!(tei_vectors(body), classify);
    let (_, body) = s.post("/v1/embeddings", json!({"input": TEXTS})).await;
    assert_eq!(vectors(&body), classify);
    s.stop().await;

    let config = ServerConfig { default_kind: Some(e5::InputKind::Raw), ..ServerConfig::default() };
    let s = Server::start(config, vec![("prompts", m.clone())]).await;
    let (_, body) = s.post("/v1/embeddings", json!({"input": TEXTS})).await;
    assert_eq!(vectors(&body), library(&m, Input::raw));
    s.stop().await;
}
