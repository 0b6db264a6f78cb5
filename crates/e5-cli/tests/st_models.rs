//! `e5` on sentence-transformers models (tests/fixtures/st): prompts, --dimensions, --adapter
//! and `e5 quantize --adapter` give the library's vectors bit for bit; bad choices are errors.

use e5::{Input, Model, Options};
use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{e5, tiny};

fn st(name: &str) -> String {
    format!("{}/../../tests/fixtures/st/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tiny_bert() -> String {
    format!("{}/../../tests/fixtures/tiny-bert", env!("CARGO_MANIFEST_DIR"))
}

const TEXTS: [&str; 3] = ["how much protein should a female eat", "", "multiple     spaces   between    words"];

fn stdin() -> Vec<u8> {
    TEXTS.join("\n").into_bytes()
}

/// The JSONL vectors of a successful run.
fn vectors(o: &Output) -> Vec<Vec<f32>> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn library(model: &str, options: Options, input: impl Fn(&'static str) -> Input<'static>) -> Vec<Vec<f32>> {
    let m = Model::load(model, options).unwrap();
    let inputs: Vec<Input> = TEXTS.iter().map(|t| input(t)).collect();
    m.embed(&inputs).unwrap().vectors().map(|v| v.to_vec()).collect()
}

#[test]
fn prompts_by_name_text_or_default_match_the_library() {
    let dir = st("prompts");
    let run = |args: &[&str]| vectors(&e5(&[&["embed", "-m", &dir], args].concat(), &stdin()));
    let by_name = library(&dir, Options::default(), |t| Input::raw(t).with_prompt("query"));
    assert_eq!(run(&["--prompt-name", "query"]), by_name);
    assert_eq!(run(&["--kind", "query"]), by_name, "--kind query uses the declared query prompt");
    let default = library(&dir, Options::default(), |t| Input::raw(t).with_prompt("classify"));
    assert_eq!(run(&[]), default, "default_prompt_name applies without a kind");
    assert_eq!(run(&["--kind", "raw"]), library(&dir, Options::default(), Input::raw));
    let instruct = "Instruct: find the topic\nQuery: ";
    assert_eq!(
        run(&["--prompt", instruct]),
        library(&dir, Options::default(), |t| Input::raw(t).with_prefix(instruct))
    );

    let o = e5(&["embed", "-m", &dir, "--prompt-name", "nope"], &stdin());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("classify, document, query"), "{err}");
    let o = e5(&["embed", "-m", &dir, "--prompt-name", "query", "--kind", "raw"], &stdin());
    assert!(!o.status.success(), "--kind and --prompt-name conflict");

    let o = e5(&["info", "-m", &dir, "--json"], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let prompts = v["prompts"].as_str().unwrap();
    assert!(prompts.contains("classify = \"Classify the topic of: \" (default)"), "{prompts}");
    assert!(v["output"].as_str().unwrap().starts_with("192 (cls ++ max"), "{}", v["output"]);
}

#[test]
fn dimensions_and_adapters_match_the_library() {
    let dims = e5(&["embed", "-m", &st("mean"), "--dimensions", "16"], &stdin());
    assert!(String::from_utf8_lossy(&dims.stderr).contains("warning: the model declares no Matryoshka"));
    let want = library(&st("mean"), Options { dimensions: Some(16), ..Options::default() }, Input::raw);
    assert_eq!(vectors(&dims), want);

    let adapter = PathBuf::from(st("lora"));
    let with_adapter = e5(&["embed", "-m", &tiny_bert(), "--adapter", &st("lora")], &stdin());
    let merged = library(&tiny_bert(), Options { adapter: Some(adapter), ..Options::default() }, Input::raw);
    assert_eq!(vectors(&with_adapter), merged);

    let out = tempfile::tempdir().unwrap();
    let q = out.path().to_str().unwrap();
    let o = e5(&["quantize", "-m", &tiny_bert(), "--adapter", &st("lora"), "--precision", "f16", "--out", q], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (a, b) in vectors(&e5(&["embed", "-m", q], &stdin())).iter().zip(&merged) {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.999, "f16 of the merged model: cosine {cos}");
    }

    let o = e5(&["embed", "-m", &tiny_bert(), "--adapter", &tiny()], &stdin());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("adapter_config.json"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
