//! A server on 127.0.0.1, port 0, in this process; and encoders that wrap a real model to
//! record, hold back or fail calls.
#![allow(dead_code)] // each test binary uses its own part

use e5::{Embeddings, Input, Model, Options};
use e5_server::{AppState, Encoder, ServerConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tiny() -> Arc<Model> {
    Arc::new(Model::load(root().join("tests/fixtures/tiny-xlmr"), Options::default()).unwrap())
}

pub fn e5_small() -> Arc<Model> {
    let dir = root().join("models/multilingual-e5-small");
    assert!(dir.join("model.safetensors").exists(), "{} is missing: run bash tools/setup-models.sh", dir.display());
    Arc::new(Model::load(dir, Options::default()).unwrap())
}

pub struct Server {
    pub url: String,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(config: ServerConfig, models: Vec<(&str, Arc<Model>)>) -> Server {
        Self::start_encoders(config, models.into_iter().map(|(n, m)| (n, m as Arc<dyn Encoder>)).collect()).await
    }

    pub async fn start_encoders(config: ServerConfig, models: Vec<(&str, Arc<dyn Encoder>)>) -> Server {
        let state = AppState::new(config);
        if !models.is_empty() {
            state.set_models(models.into_iter().map(|(n, e)| (n.to_string(), e)).collect()).unwrap();
        }
        Self::start_with(state).await
    }

    pub async fn start_with(state: Arc<AppState>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(e5_server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Server { url, state, stop: Some(stop), task }
    }

    /// Signals shutdown and waits for the drain.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(120), &mut self.task).await.expect("drained in time").unwrap();
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = Self::client().post(format!("{}{path}", self.url)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = Self::client().get(format!("{}{path}", self.url)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Vectors of a `/v1/embeddings` float response.
pub fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

/// Asserts OpenAI's error shape and returns the message.
pub fn openai_error(body: &Value) -> String {
    let e = &body["error"];
    assert!(e["type"].is_string() && e["code"].is_string() && e.get("param").is_some(), "{body}");
    e["message"].as_str().unwrap().to_string()
}

/// Polls `f` until true (generous bound for a loaded machine).
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Wraps a model: records the texts of every call, can hold calls at a gate, and panics on
/// texts containing `PANIC`.
pub struct Probe {
    pub model: Arc<Model>,
    pub calls: Mutex<Vec<Vec<String>>>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Probe {
    pub fn new(model: Arc<Model>, open: bool) -> Arc<Probe> {
        Arc::new(Probe { model, calls: Mutex::new(Vec::new()), open: Mutex::new(open), opened: Condvar::new() })
    }
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl Encoder for Probe {
    fn model(&self) -> &Model {
        &self.model
    }
    fn embed(&self, texts: &[Input<'_>]) -> e5::Result<Embeddings> {
        self.calls.lock().unwrap().push(texts.iter().map(|t| t.text.to_string()).collect());
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        if texts.iter().any(|t| t.text.contains("PANIC")) {
            panic!("injected fault");
        }
        self.model.embed(texts)
    }
}
