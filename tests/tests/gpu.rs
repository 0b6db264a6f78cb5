//! The CUDA backend against the CPU `Model` (`--features cuda`). Tests that need a GPU
//! print `skipped: no CUDA device (…)` and pass where no driver or device is present; the
//! option checks need none and always run.
#![cfg(feature = "cuda")]

use e5::{Device, Embeddings, Error, Input, Model, Options, Precision};
use e5_tests::built_model;

/// Texts of every length class, the last over the 512-token limit (truncated on both).
fn texts() -> Vec<String> {
    let mut t: Vec<String> = [
        "a",
        "how much protein should a female eat",
        "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
        "人人生而自由，在尊严和权利上一律平等。",
        "Все люди рождаются свободными и равными в своем достоинстве и правах.",
    ]
    .map(String::from)
    .to_vec();
    t.push("The quick brown fox jumps over the lazy dog. ".repeat(12));
    t.push("Long inputs are truncated at the model's limit, on every backend alike. ".repeat(60));
    t
}

fn inputs(texts: &[String]) -> Vec<Input<'_>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| if i % 2 == 0 { Input::passage(t.as_str()) } else { Input::query(t.as_str()) })
        .collect()
}

/// The model on GPU 0, or `None` after printing the skip line when there is none.
fn gpu(name: &str, precision: Precision) -> Option<Model> {
    match Model::load(built_model(name), Options { device: Device::Cuda(0), precision, ..Options::default() }) {
        Ok(m) => Some(m),
        // `CudaError::NoDriver` / `NoDevice`: anything else on a GPU machine is a failure.
        Err(e @ Error::Device { .. })
            if e.to_string().contains("CUDA unavailable") || e.to_string().contains("no CUDA device") =>
        {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
        Err(e) => panic!("loading {name} on CUDA: {e}"),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

fn parity(name: &str, precision: Precision, min_cos: f32) {
    let Some(gpu) = gpu(name, precision) else { return };
    let cpu = Model::load(built_model(name), Options::default()).unwrap();
    let texts = texts();
    let (g, c): (Embeddings, Embeddings) = (gpu.embed(&inputs(&texts)).unwrap(), cpu.embed(&inputs(&texts)).unwrap());
    assert_eq!(g.rows, c.rows, "{name}: same plan (tokens, truncation, spans) on both backends");
    for (i, (a, b)) in g.vectors().zip(c.vectors()).enumerate() {
        let cos = cosine(a, b);
        assert!(cos >= min_cos, "{name} {precision:?} text {i}: cosine to the CPU {cos}");
    }
    assert_eq!(gpu.info().backend, "cuda");
    assert_eq!(gpu.info().precision, precision);
}

#[test]
fn e5_small_f16_matches_the_cpu() {
    parity("multilingual-e5-small", Precision::F16, 0.9999);
}

#[test]
fn minilm_bf16_matches_the_cpu() {
    parity("all-MiniLM-L6-v2", Precision::Bf16, 0.999);
}

#[test]
fn gpu_vectors_do_not_depend_on_batch_mates() {
    let Some(gpu) = gpu("multilingual-e5-small", Precision::F16) else { return };
    let texts = texts();
    let batched = gpu.embed(&inputs(&texts)).unwrap();
    for (i, input) in inputs(&texts).into_iter().enumerate() {
        let alone = gpu.embed(&[input]).unwrap();
        let cos = cosine(alone.vector(0), batched.vector(i));
        assert!(cos >= 0.99999, "text {i}: alone vs batched cosine {cos}");
    }
}

#[test]
fn cuda_refuses_what_it_cannot_honour() {
    let dir = built_model("multilingual-e5-small");
    let refused = |o: Options, what: &str| {
        let e = Model::load(&dir, Options { device: Device::Cuda(0), ..o }).err().expect("an error");
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains(what), "{e}");
    };
    refused(Options { precision: Precision::Int8, ..Options::default() }, "precision int8");
    refused(Options::default(), "precision fp32");
    let f16 = Options { precision: Precision::F16, ..Options::default() };
    refused(Options { keep_fp32: vec!["layer.0.qkv".into()], ..f16.clone() }, "keep_fp32");
    refused(Options { residency: e5::Residency::Lock, ..f16.clone() }, "residency");
    // Heads other than one mean or CLS pooling over every token are refused at load, by name
    // (before any device is touched, so this runs without a GPU too).
    let st = |name: &str| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/st").join(name);
    for (model, what) in [
        ("max", "pooling max with 0 Dense layers"),
        ("last-token", "pooling lasttoken"),
        ("dense", "with 2 Dense layers"),
        ("prompts", "(prompt excluded)"),
    ] {
        let e = Model::load(st(model), Options { device: Device::Cuda(0), ..f16.clone() }).err().expect("an error");
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains(what), "{model}: {e}");
    }
}
