//! sentence-transformers variants of tiny-bert (`tools/make_st_variants.py`): every pooling
//! mode in both spellings, Dense heads, Normalize present or absent, prompts with
//! `include_prompt: false`, output dimensions, PEFT LoRA adapters. Each embedding within 1e-5
//! of sentence-transformers' (per component), in one batch and one text at a time.

use e5::{Embeddings, Input, Model, Options};
use e5_tests::*;
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAX_DIFF: f32 = 1e-5;

fn st(name: &str) -> PathBuf {
    fixture("st").join(name)
}

/// The texts and every reference tensor (`[n, dim]` rows) of a variant's reference file.
struct StReference {
    texts: Vec<String>,
    /// The text of the `prefix` reference's prompt.
    prefix: String,
    vectors: BTreeMap<String, Vec<Vec<f32>>>,
}

fn reference(path: &Path) -> StReference {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let vectors = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let data: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (name, data.chunks(t.shape()[1]).map(|c| c.to_vec()).collect())
        })
        .collect();
    StReference { texts: serde_json::from_str(&meta["texts"]).unwrap(), prefix: meta["prefix"].clone(), vectors }
}

/// Largest |diff| of `inputs` embedded against `want`, in one batch and one by one (the
/// two must agree bit for bit).
fn worst(m: &Model, inputs: &[Input<'_>], want: &[Vec<f32>], what: &str) -> f32 {
    let batch = m.embed(inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(batch.dim, want[0].len(), "{what}: width");
    let mut worst = 0.0f32;
    for (i, w) in want.iter().enumerate() {
        let alone: Embeddings = m.embed(&inputs[i..i + 1]).unwrap();
        assert_eq!(alone.vector(0), batch.vector(i), "{what} text {i}: batch-mates changed the vector");
        let d = max_abs_diff(batch.vector(i), w);
        assert!(d <= MAX_DIFF, "{what} text {i} {:?}: max diff {d:e}", inputs[i].text);
        worst = worst.max(d);
    }
    worst
}

fn load(dir: &Path, options: Options) -> Model {
    Model::load(dir, options).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

#[test]
fn every_pooling_mode_in_both_spellings_matches_sentence_transformers() {
    let variants = [
        "mean",
        "cls",
        "max",
        "mean-sqrt-len",
        "weighted-mean",
        "last-token",
        "list-max-mean",
        "legacy-all",
        "legacy-cls",
        "dense",
    ];
    for name in variants {
        let dir = st(name);
        let r = reference(&dir.join("reference.safetensors"));
        let m = load(&dir, Options::default());
        let inputs: Vec<Input> = r.texts.iter().map(|t| Input::raw(t.as_str())).collect();
        let d = worst(&m, &inputs, &r.vectors["raw"], name);
        eprintln!("{name}: dim {}, max |diff| {d:e}", m.dim());
    }
}

#[test]
fn prompts_are_left_out_of_every_pooling_mode_as_declared() {
    let dir = st("prompts");
    let r = reference(&dir.join("reference.safetensors"));
    let m = load(&dir, Options::default());
    let texts = || r.texts.iter().map(|t| Input::raw(t.as_str()));
    let cases: Vec<(&str, Vec<Input>)> = vec![
        ("raw", texts().collect()),
        ("prompt.query", texts().map(|i| i.with_prompt("query")).collect()),
        ("prompt.document", texts().map(|i| i.with_prompt("document")).collect()),
        ("prompt.classify", texts().map(|i| i.with_prompt("classify")).collect()),
        ("prefix", texts().map(|i| i.with_prefix(r.prefix.clone())).collect()),
        // Input::query / Input::passage use the declared query / document prompts.
        ("prompt.query", r.texts.iter().map(|t| Input::query(t.as_str())).collect()),
        ("prompt.document", r.texts.iter().map(|t| Input::passage(t.as_str())).collect()),
    ];
    for (name, inputs) in cases {
        let d = worst(&m, &inputs, &r.vectors[name], name);
        eprintln!("prompts {name}: max |diff| {d:e}");
    }
    assert_eq!(m.config().prompts.default.as_deref(), Some("classify"));
    let e = m.embed(&[Input::raw("x").with_prompt("nope")]).unwrap_err().to_string();
    assert!(e.contains("no prompt named \"nope\"") && e.contains("classify, document, query"), "{e}");
}

#[test]
fn dimensions_truncate_then_renormalize() {
    let dir = st("prompts");
    let r = reference(&dir.join("reference.safetensors"));
    let inputs: Vec<Input> = r.texts.iter().map(|t| Input::raw(t.as_str())).collect();
    for n in [96, 48] {
        let m = load(&dir, Options { dimensions: Some(n), ..Options::default() });
        assert!(m.warnings().is_empty(), "{n} is a declared Matryoshka dim: {:?}", m.warnings());
        let d = worst(&m, &inputs, &r.vectors[&format!("dims.{n}")], "dims");
        eprintln!("dims.{n}: max |diff| {d:e}");
    }
    let m = load(&dir, Options { dimensions: Some(100), ..Options::default() });
    assert!(m.warnings()[0].contains("not one of the dimensions"), "{:?}", m.warnings());
    let m = load(&st("mean"), Options { dimensions: Some(16), ..Options::default() });
    assert!(m.warnings()[0].contains("declares no Matryoshka training"), "{:?}", m.warnings());
    assert_eq!(m.embed(&[Input::raw("a text")]).unwrap().dim, 16);
    for bad in [0, 33] {
        let e = Model::load(st("mean"), Options { dimensions: Some(bad), ..Options::default() }).err().unwrap();
        assert!(e.to_string().contains("between 1 and the model's output width 32"), "{e}");
    }
}

#[test]
fn normalize_follows_modules_json() {
    let norm = |name: &str| {
        let m = load(&st(name), Options::default());
        let out = m.embed(&[Input::raw("a short text")]).unwrap();
        out.vector(0).iter().map(|x| x * x).sum::<f32>().sqrt()
    };
    assert!((norm("cls") - 1.0).abs() < 1e-5);
    assert!((norm("max") - 1.0).abs() > 1e-2, "max has no Normalize module");
    assert!((norm("legacy-cls") - 1.0).abs() > 1e-2, "legacy-cls has no Normalize module");
}

/// Files written over a variant: (path, contents).
type Files<'a> = &'a [(&'a str, &'a str)];

/// An edit of `adapter_config.json`.
type ConfigEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// A copy of variant `base` with `files` (path, contents) written over it.
fn variant_with(base: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&st(base), dir.path());
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap(); // follows the links to tiny-bert
        }
    }
}

fn load_error(dir: &Path) -> String {
    match Model::load(dir, Options::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn configurations_e5_cannot_honour_are_clear_errors() {
    let pooling = "1_Pooling/config.json";
    let cases: &[(&str, Files, &str)] = &[
        (
            "mean",
            &[(pooling, r#"{"embedding_dimension": 32, "pooling_mode": "median"}"#)],
            "unknown pooling_mode \"median\"",
        ),
        ("mean", &[(pooling, r#"{"embedding_dimension": 32, "pooling_mode": []}"#)], "names no mode"),
        ("mean", &[(pooling, r#"{"embedding_dimension": 64, "pooling_mode": "mean"}"#)], "embedding_dimension 64"),
        (
            "mean",
            &[(pooling, r#"{"embedding_dimension": 32, "pooling_mode": "mean", "pooling_mode_cls_token": true}"#)],
            "contradicts",
        ),
        ("mean", &[(pooling, r#"{"pooling_mode_mean_tokens": "yes"}"#)], "must be true or false"),
        ("dense", &[("2_Dense/config.json", r#"{"in_features": 16, "out_features": 16}"#)], "in_features 16"),
        (
            "dense",
            &[("2_Dense/config.json", r#"{"in_features": 32, "out_features": 16, "activation_function": "my.Swish"}"#)],
            "activation_function \"my.Swish\"",
        ),
        (
            "mean",
            &[(
                "modules.json",
                r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                    {"idx": 2, "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"}]"#,
            )],
            "sentence_transformers.models.LayerNorm is not supported",
        ),
        (
            "dense",
            &[(
                "modules.json",
                r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                    {"idx": 2, "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"},
                    {"idx": 3, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#,
            )],
            "Normalize must be the last module",
        ),
        (
            "mean",
            &[("modules.json", r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}]"#)],
            "followed by a Pooling module",
        ),
    ];
    for (base, files, want) in cases {
        let dir = variant_with(base, files);
        let e = load_error(dir.path());
        assert!(e.contains(want), "{base} with {files:?}: {e:?} should say {want:?}");
    }
}

#[test]
fn lora_adapters_merged_at_load_match_peft_merge_and_unload() {
    let r = reference(&st("lora-reference.safetensors"));
    let inputs: Vec<Input> = r.texts.iter().map(|t| Input::raw(t.as_str())).collect();
    for name in ["lora", "lora-rslora", "lora-fan-in-fan-out"] {
        let m = load(&fixture("tiny-bert"), Options { adapter: Some(st(name)), ..Options::default() });
        let d = worst(&m, &inputs, &r.vectors[&format!("lora.{name}")], name);
        eprintln!("{name}: max |diff| {d:e}");
        assert_eq!(m.warnings().len(), usize::from(name == "lora-fan-in-fan-out"), "{:?}", m.warnings());
    }
    // The merged model quantizes like any other: int8 stays close to the merged fp32 vectors.
    let out = tempfile::tempdir().unwrap();
    let adapter = st("lora");
    e5::quantize::quantize_model(
        &fixture("tiny-bert"),
        out.path(),
        &e5::quantize::QuantizeOptions { adapter: Some(adapter), ..Default::default() },
    )
    .unwrap();
    let q = load(out.path(), Options::default());
    let e = q.embed(&inputs).unwrap();
    for (i, want) in r.vectors["lora.lora"].iter().enumerate() {
        let c = cosine(e.vector(i), want);
        assert!(c > 0.99, "int8 merged text {i}: cosine {c}");
    }
}

#[test]
fn adapters_that_do_not_fit_the_model_are_clear_errors() {
    let adapter = |config_edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&st("lora"), dir.path());
        let path = dir.path().join("adapter_config.json");
        let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config_edit(&mut c);
        std::fs::write(&path, c.to_string()).unwrap();
        dir
    };
    let error = |model: &Path, dir: &Path| match Model::load(
        model,
        Options { adapter: Some(dir.to_path_buf()), ..Options::default() },
    ) {
        Ok(_) => panic!("{} loaded with {}", model.display(), dir.display()),
        Err(e) => e.to_string(),
    };
    let tiny = fixture("tiny-bert");
    let cases: Vec<(ConfigEdit, &str)> = vec![
        (Box::new(|c| c["r"] = 8.into()), "expected shape [8, 32]"),
        (Box::new(|c| c["target_modules"] = serde_json::json!(["query", "value"])), "target_modules does not name it"),
        (Box::new(|c| c["use_dora"] = true.into()), "DoRA"),
        (Box::new(|c| c["peft_type"] = "IA3".into()), "only LORA"),
        (Box::new(|c| c["modules_to_save"] = serde_json::Value::Null), "neither LoRA nor in modules_to_save"),
        (Box::new(|c| c["rank_pattern"] = serde_json::json!({"query": 2})), "rank_pattern"),
    ];
    for (edit, want) in cases {
        let dir = adapter(&*edit);
        let e = error(&tiny, dir.path());
        assert!(e.contains(want), "{e:?} should say {want:?}");
    }
    // tiny-xlmr has tiny-bert's shapes and names: the adapter merges, with a warning.
    let m = load(&fixture("tiny-xlmr"), Options { adapter: Some(st("lora")), ..Options::default() });
    assert!(m.warnings().iter().any(|w| w.contains("made for \"tiny-bert\"")), "{:?}", m.warnings());
    let e = error(&tiny, &fixture("tiny-xlmr"));
    assert!(e.contains("adapter_config.json"), "{e}");
}
