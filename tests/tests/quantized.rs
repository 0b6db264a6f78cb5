//! Precision modes and `e5 quantize` files: accuracy against fp32 on real multilingual
//! text, loading with no re-quantization, and clear errors for inconsistent files.

use e5::quantize::{quantize_model, read_manifest, QuantizeOptions, MANIFEST};
use e5::{Embeddings, Error, Input, Isa, Model, Options, Precision};
use e5_tests::*;
use std::path::Path;

/// Output precisions (a module of this test binary: one link fewer).
mod output_vectors;

/// Every real text we have: the reference set and the benchmark workload (≥ 256 texts).
fn real_texts() -> Vec<String> {
    let mut t = Reference::load(&fixture("reference/e5-small.safetensors")).texts;
    let workload = std::fs::read_to_string(workspace().join("benches/workload.jsonl")).unwrap();
    for line in workload.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let prefix = if v["kind"] == "passage" { "passage: " } else { "query: " };
        t.push(format!("{prefix}{}", v["text"].as_str().unwrap()));
    }
    t
}

fn cosines(a: &e5::Embeddings, b: &e5::Embeddings) -> (f64, f64) {
    cosines_strided(a, b, 1)
}

/// Min and mean cosine of row `i` of `a` to row `stride·i` of `b`.
fn cosines_strided(a: &e5::Embeddings, b: &e5::Embeddings, stride: usize) -> (f64, f64) {
    let c: Vec<f64> = (0..a.len()).map(|i| cosine(a.vector(i), b.vector(stride * i))).collect();
    (c.iter().cloned().fold(1.0, f64::min), c.iter().sum::<f64>() / c.len() as f64)
}

fn embed(dir: &std::path::Path, precision: Precision, texts: &[String]) -> e5::Embeddings {
    let m = Model::load(dir, Options { precision, ..Options::default() }).unwrap();
    m.embed(&texts.iter().map(|t| Input::raw(t.as_str())).collect::<Vec<_>>()).unwrap()
}

#[test]
fn e5_small_precisions_against_fp32_on_real_texts() {
    let dir = built_model("multilingual-e5-small");
    let texts = real_texts();
    assert!(texts.len() >= 256, "{} texts", texts.len());
    let fp32 = embed(&dir, Precision::Fp32, &texts);
    for (p, min_bound, mean_bound) in [
        (Precision::F16, 0.9999, 0.99999),
        (Precision::Bf16, 0.999, 0.9999),
        (Precision::Int8, 0.995, 0.999),
        (Precision::Int4G32, 0.975, 0.996),
        (Precision::Int4G128, 0.95, 0.985),
    ] {
        let (min, mean) = cosines(&embed(&dir, p, &texts), &fp32);
        eprintln!("{}: cosine to fp32 over {} texts: min {min:.6}, mean {mean:.6}", p.name(), texts.len());
        assert!(min >= min_bound && mean >= mean_bound, "{}: min {min}, mean {mean}", p.name());
    }
    // bf16 above took the bf16-dot kernel on an AMD CPU with AVX512-BF16; AVX2 always widens
    // bf16 weights to f32, so this keeps that path checked end to end on such CPUs too.
    if Isa::Avx2.is_supported() {
        let some: Vec<String> = texts.iter().step_by(4).cloned().collect();
        let opts = Options { precision: Precision::Bf16, isa: Some(Isa::Avx2), ..Options::default() };
        let m = Model::load(&dir, opts).unwrap();
        let widened = m.embed(&some.iter().map(|t| Input::raw(t.as_str())).collect::<Vec<_>>()).unwrap();
        // An embedding does not depend on its batch-mates: text i here is text 4i there.
        let (min, mean) = cosines_strided(&widened, &fp32, 4);
        eprintln!("bf16 widened on avx2: cosine to fp32 over {} texts: min {min:.6}, mean {mean:.6}", some.len());
        assert!(min >= 0.999 && mean >= 0.9999, "bf16 widened: min {min}, mean {mean}");
    }
}

#[test]
fn quantized_files_load_without_requantization() {
    let dir = built_model("multilingual-e5-small");
    let texts: Vec<String> = real_texts().into_iter().step_by(5).collect();
    let fp32 = embed(&dir, Precision::Fp32, &texts);
    for p in [Precision::Int8, Precision::F16] {
        let out = tempfile::tempdir().unwrap();
        let m = quantize_model(
            &dir,
            out.path(),
            &QuantizeOptions { precision: p, keep_fp32: vec!["layer.11.ffn_down".into()], ..Default::default() },
        )
        .unwrap();
        assert_eq!(m.precision, p.name());
        assert_eq!(m.source.len(), 1, "source checkpoint hashed");
        assert_eq!(m.tensors["encoder.layer.11.output.dense.weight"].dtype, "F32", "kept in f32");
        let size = std::fs::metadata(out.path().join("model.safetensors")).unwrap().len();
        let got = embed(out.path(), Precision::Fp32, &texts);
        let (min, mean) = cosines(&got, &fp32);
        eprintln!("{} file: {:.1} MiB, cosine to fp32 min {min:.6} mean {mean:.6}", p.name(), size as f64 / 1048576.0);
        if p == Precision::Int8 {
            assert!(size < 125 << 20, "{size}");
            assert_eq!(m.tensors["embeddings.word_embeddings.weight"].dtype, "I8");
            assert!(m.tensors["encoder.layer.0.intermediate.dense.weight"].scales.as_ref().unwrap().max > 0.0);
            assert!(min >= 0.995 && mean >= 0.999, "min {min} mean {mean}");
        } else {
            assert!(min >= 0.9999, "min {min}");
        }
        let info = Model::load(out.path(), Options::default()).unwrap().info();
        assert_eq!(info.precision, p);
        let e = Model::load(out.path(), Options { precision: Precision::Bf16, ..Options::default() }).err().unwrap();
        assert!(e.to_string().contains("cannot run as bf16"), "{e}");
    }
}

#[test]
fn inconsistent_quantized_files_are_clear_errors() {
    let out = tempfile::tempdir().unwrap();
    quantize_model(&fixture("tiny-bert"), out.path(), &QuantizeOptions::default()).unwrap();
    assert!(read_manifest(out.path()).unwrap().is_some());
    let ok = Model::load(out.path(), Options::default()).unwrap();
    let want = ok.embed(&[Input::raw("hello")]).unwrap();
    let fp32 = Model::load(fixture("tiny-bert"), Options::default()).unwrap().embed(&[Input::raw("hello")]).unwrap();
    assert!(cosine(want.vector(0), fp32.vector(0)) > 0.99);

    // The manifest disagrees with the weights.
    let mpath = out.path().join(MANIFEST);
    let original = std::fs::read_to_string(&mpath).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    m["tensors"]["encoder.layer.0.output.dense.weight"]["dtype"] = "F16".into();
    std::fs::write(&mpath, m.to_string()).unwrap();
    let e = Model::load(out.path(), Options::default()).err().unwrap();
    assert!(matches!(e, Error::Quantized(_)) && e.to_string().contains("manifest mismatch"), "{e}");
    m["tensors"]["encoder.layer.0.output.dense.weight"]["dtype"] = "I8".into();
    m["format"] = "e5-quantized/99".into();
    std::fs::write(&mpath, m.to_string()).unwrap();
    assert!(Model::load(out.path(), Options::default()).err().unwrap().to_string().contains("unknown format"));
    std::fs::write(&mpath, &original).unwrap();

    // A NaN scale in the weights.
    edit_tensors(out.path(), |n, d, s, mut b| {
        if n == "encoder.layer.1.attention.self.key.weight_scale" {
            b[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        Some((d, s, b))
    });
    let e = Model::load(out.path(), Options::default()).err().unwrap();
    assert!(e.to_string().contains("not finite") && e.to_string().contains("key.weight_scale"), "{e}");
}

#[test]
fn bad_precision_requests() {
    let e = quantize_model(
        &fixture("tiny-bert"),
        tempfile::tempdir().unwrap().path(),
        &QuantizeOptions { precision: Precision::Fp32, ..Default::default() },
    )
    .unwrap_err();
    assert!(e.to_string().contains("other than fp32"));
    let e = Model::load(fixture("tiny-bert"), Options { keep_fp32: vec!["layer.9.qkv".into()], ..Options::default() })
        .err()
        .unwrap();
    assert!(e.to_string().contains("layer.9.qkv"), "{e}");
    assert_eq!(Precision::parse("INT8"), Some(Precision::Int8));
    assert_eq!(Precision::parse("int4"), Some(Precision::Int4G32));
    assert_eq!(Precision::parse("Int4-G128"), Some(Precision::Int4G128));
    assert_eq!(Precision::parse("int4-g16"), None);
}

/// `dir` written as `precision` (int4) by `e5 quantize`, keeping `keep` in f32: the file runs
/// bit for bit as the in-memory int4 model (given the file's int8 word table). Returns the
/// file's vectors and size in bytes.
fn int4_file_against_in_memory(dir: &Path, precision: Precision, keep: &[&str], texts: &[String]) -> (Embeddings, u64) {
    int4_file_with_table_against_in_memory(dir, precision, keep, texts, false)
}

/// As [`int4_file_against_in_memory`], the word table stored as int4 when `int4_word_table`.
fn int4_file_with_table_against_in_memory(
    dir: &Path,
    precision: Precision,
    keep: &[&str],
    texts: &[String],
    int4_word_table: bool,
) -> (Embeddings, u64) {
    let out = tempfile::tempdir().unwrap();
    let keep_fp32: Vec<String> = keep.iter().map(|k| k.to_string()).collect();
    let opts = QuantizeOptions { precision, keep_fp32: keep_fp32.clone(), int4_word_table, ..Default::default() };
    let m = quantize_model(dir, out.path(), &opts).unwrap();
    assert_eq!((m.precision.as_str(), m.group_size), (precision.name(), precision.int4_group()));
    let from_file = Model::load(out.path(), Options::default()).unwrap();
    assert_eq!(from_file.info().precision, precision);
    let e = Model::load(out.path(), Options { precision: Precision::Int8, ..Options::default() }).err().unwrap();
    assert!(e.to_string().contains("cannot run as int8"), "{e}");
    let inputs: Vec<Input> = texts.iter().map(|t| Input::raw(t.as_str())).collect();
    let got = from_file.embed(&inputs).unwrap();
    let twin = with_quantized_table(dir, out.path());
    let in_memory = Model::load(twin.path(), Options { precision, keep_fp32, ..Options::default() }).unwrap();
    assert!(got.data == in_memory.embed(&inputs).unwrap().data, "{}: file and in-memory int4 differ", dir.display());
    (got, std::fs::metadata(out.path().join("model.safetensors")).unwrap().len())
}

#[test]
fn int4_files_run_as_the_in_memory_int4_model_bit_for_bit() {
    let texts: Vec<String> =
        ["int4 weights", "Alle Menschen sind frei und gleich an Würde", "人人生而自由", ""].map(String::from).to_vec();
    int4_file_against_in_memory(&fixture("tiny-bert"), Precision::Int4G32, &[], &texts);
    int4_file_against_in_memory(&fixture("tiny-xlmr"), Precision::Int4G32, &["layer.1.ffn_down"], &texts);
    let (int4_table, _) =
        int4_file_with_table_against_in_memory(&fixture("tiny-xlmr"), Precision::Int4G32, &[], &texts, true);
    let (int8_table, _) = int4_file_against_in_memory(&fixture("tiny-xlmr"), Precision::Int4G32, &[], &texts);
    assert!(int4_table.data != int8_table.data, "the int4 table is read as int4");
    let out = tempfile::tempdir().unwrap();
    let m = quantize_model(
        &fixture("tiny-bert"),
        out.path(),
        &QuantizeOptions { precision: Precision::Int4G32, ..Default::default() },
    )
    .unwrap();
    let (w, s) = (
        &m.tensors["encoder.layer.0.intermediate.dense.weight"],
        &m.tensors["encoder.layer.0.intermediate.dense.weight_scale"],
    );
    assert_eq!((w.dtype.as_str(), w.shape.as_slice()), ("U8", [64, 16].as_slice()), "two levels a byte");
    assert_eq!((s.dtype.as_str(), s.shape.as_slice()), ("F16", [64, 1].as_slice()), "one f16 scale a group");
    assert_eq!(m.tensors["embeddings.word_embeddings.weight"].dtype, "I8");
    // Groups of 64 do not divide the tiny model's hidden width, 32.
    let opts = QuantizeOptions { precision: Precision::Int4G64, ..Default::default() };
    let e = quantize_model(&fixture("tiny-bert"), tempfile::tempdir().unwrap().path(), &opts).unwrap_err().to_string();
    assert!(e.contains("group size 64 does not divide its input width 32"), "{e}");
}

#[test]
fn e5_small_int4_file_runs_as_the_in_memory_int4_model_bit_for_bit() {
    let dir = built_model("multilingual-e5-small");
    let texts: Vec<String> = real_texts().into_iter().step_by(5).collect();
    let (got, size) = int4_file_against_in_memory(&dir, Precision::Int4G32, &[], &texts);
    let (min, mean) = cosines(&got, &embed(&dir, Precision::Fp32, &texts));
    eprintln!(
        "int4-g32 file: {:.1} MiB, cosine to fp32 over {} texts: min {min:.6} mean {mean:.6}",
        size as f64 / 1048576.0,
        texts.len()
    );
    assert!(size < 110 << 20, "{size}");
    assert!(min >= 0.975 && mean >= 0.996, "min {min} mean {mean}");
}

#[test]
fn static_int8_scales_load_from_options_and_files() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let dir = fixture("tiny-bert");
    let texts = ["static calibration", "Alle Menschen sind frei"];
    let inputs: Vec<Input> = texts.iter().map(|t| Input::raw(*t)).collect();
    // Calibrate min-max scales from an fp32 trace: max |x| of each sub-layer's input / 127.
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    let mut amax: BTreeMap<String, f32> = BTreeMap::new();
    let mut note = |name: String, x: &[f32]| {
        let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let e = amax.entry(name).or_insert(0.0);
        *e = e.max(m);
    };
    let layers = fp32.config().layers;
    fp32.trace(&inputs, &mut |site, x| match site {
        e5::Site::Embeddings => note("layer.0.qkv".into(), x),
        e5::Site::Output(i) if i + 1 < layers => note(format!("layer.{}.qkv", i + 1), x),
        e5::Site::Attention(i) => note(format!("layer.{i}.attn_out"), x),
        e5::Site::AttentionNorm(i) => note(format!("layer.{i}.ffn_up"), x),
        e5::Site::FfnUp(i) => note(format!("layer.{i}.ffn_down"), x),
        _ => {}
    })
    .unwrap();
    assert_eq!(amax.len(), 4 * layers);
    let scales: BTreeMap<String, f32> = amax.into_iter().map(|(k, v)| (k, v / 127.0)).collect();
    let opts =
        Options { precision: Precision::Int8, activation_scales: Some(Arc::new(scales.clone())), ..Options::default() };
    let from_options = Model::load(&dir, opts).unwrap().embed(&inputs).unwrap();
    let reference = fp32.embed(&inputs).unwrap();
    let (min, _) = cosines(&from_options, &reference);
    assert!(min > 0.98, "static int8 cosine {min}");
    let out = tempfile::tempdir().unwrap();
    let m = quantize_model(
        &dir,
        out.path(),
        &QuantizeOptions { activation_scales: Some(scales.clone()), ..Default::default() },
    )
    .unwrap();
    assert!(m.scheme.activations.contains("static"));
    let from_file = Model::load(out.path(), Options::default()).unwrap().embed(&inputs).unwrap();
    let (min, _) = cosines(&from_file, &from_options);
    assert!(min > 0.999, "file vs options {min}");
    let bad = Options { activation_scales: Some(Arc::new(scales)), ..Options::default() };
    assert!(Model::load(&dir, bad).err().unwrap().to_string().contains("need int8"));
}
