//! `e5 serve` as a process: flags, and SIGTERM answering every accepted request.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

fn root() -> String {
    format!("{}/../..", env!("CARGO_MANIFEST_DIR"))
}

/// Starts `e5 serve ARGS --port 0` and returns it with its base URL.
fn serve(args: &[&str]) -> (Child, String, std::thread::JoinHandle<()>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e5"))
        .arg("serve")
        .args(args)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("e5 serve exited before listening").unwrap();
        if let Some(rest) = line.split_once("listening on ") {
            break rest.1.trim().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    (child, url, drain)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
}

fn wait_ready(url: &str) {
    for _ in 0..3000 {
        if client().get(format!("{url}/ready")).send().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{url} never became ready");
}

#[test]
fn two_aliases_of_one_model_and_a_bad_flag() {
    let tiny = common::tiny();
    let a = format!("small={tiny}");
    let b = format!("small-f16={tiny}:f16");
    let (mut child, url, drain) = serve(&["--model", &a, "--model", &b, "--default-kind", "query", "--no-truncate"]);
    wait_ready(&url);
    let info: Value = client().get(format!("{url}/info")).send().unwrap().json().unwrap();
    assert_eq!(info["models"][1]["precision"], "f16");
    assert_eq!((info["default_kind"].as_str(), info["truncate"].as_bool()), (Some("query"), Some(false)));
    let r = client().post(format!("{url}/v1/embeddings")).json(&json!({"input": "x", "model": "small-f16"}));
    assert_eq!(r.send().unwrap().status(), 200);
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    drain.join().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_e5"))
        .args(["serve", "--model", &tiny, "--max-queue", "4", "--max-client-batch", "8", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-queue"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The JSONL vectors `e5 embed ARGS` prints for `texts`.
fn cli_vectors(args: &[&str], texts: &[&str]) -> Vec<Vec<f32>> {
    let o = common::e5(&[&["embed"], args].concat(), texts.join("\n").as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn prompts_and_dimensions_serve_the_vectors_of_e5_embed() {
    let st = |name: &str| format!("{}/tests/fixtures/st/{name}", root());
    let (prompts, mean) = (st("prompts"), st("mean"));
    let (mut child, url, drain) =
        serve(&["--model", &format!("prompts={prompts}"), "--model", &format!("mean={mean}")]);
    wait_ready(&url);
    let texts = ["how much protein should a female eat", "multiple     spaces"];
    let post = |path: &str, body: Value| {
        let r = client().post(format!("{url}{path}")).json(&body).send().unwrap();
        assert_eq!(r.status(), 200);
        let warning = r.headers().get("x-e5-warning").map(|v| v.to_str().unwrap().to_string());
        (warning, r.json::<Value>().unwrap())
    };
    let floats = |v: &Value| -> Vec<Vec<f32>> { serde_json::from_value(v.clone()).unwrap() };

    let (_, tei) =
        post("/embed", json!({"inputs": texts, "model": "prompts", "prompt_name": "classify", "dimensions": 96}));
    assert_eq!(floats(&tei), cli_vectors(&["-m", &prompts, "--prompt-name", "classify", "--dimensions", "96"], &texts));
    let (_, openai) = post("/v1/embeddings", json!({"input": texts, "model": "prompts", "input_type": "document"}));
    let data: Vec<Value> = openai["data"].as_array().unwrap().iter().map(|d| d["embedding"].clone()).collect();
    assert_eq!(floats(&Value::Array(data)), cli_vectors(&["-m", &prompts, "--prompt-name", "document"], &texts));
    let (warning, tei) = post("/embed", json!({"inputs": texts, "model": "mean", "dimensions": 16}));
    assert_eq!(floats(&tei), cli_vectors(&["-m", &mean, "--dimensions", "16"], &texts));
    assert!(warning.unwrap().contains("no Matryoshka training"), "the CLI's warning, as a header");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    drain.join().unwrap();
}

#[test]
fn sigterm_answers_every_accepted_request_and_exits_0() {
    let model = format!("{}/models/multilingual-e5-small", root());
    assert!(std::path::Path::new(&model).join("model.safetensors").exists(), "run bash tools/setup-models.sh");
    let (mut child, url, drain) = serve(&["--model", &model, "--threads", "1"]);
    wait_ready(&url);
    let passage = "a passage long enough to take the encoder a while to embed. ".repeat(10);
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let body = json!({"input": vec![format!("{i} {passage}"); 6], "input_type": "passage"});
            let url = url.clone();
            std::thread::spawn(move || {
                client().post(format!("{url}/v1/embeddings")).json(&body).send().map(|r| r.status())
            })
        })
        .collect();
    // Every request is accepted and in the server's hands before the signal.
    let in_flight = |url: &str| -> usize {
        let text = client().get(format!("{url}/metrics")).send().unwrap().text().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("e5_requests_in_flight "))
            .map_or(0, |v| v.parse::<f64>().unwrap() as usize)
    };
    let mut seen = 0;
    for _ in 0..3000 {
        seen = in_flight(&url);
        if seen == 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen, 6, "the requests never were all in flight");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    for r in requests {
        assert_eq!(r.join().unwrap().expect("answered").as_u16(), 200);
    }
    assert!(child.wait().unwrap().success());
    drain.join().unwrap();
}
