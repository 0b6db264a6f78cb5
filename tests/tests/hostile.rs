//! Hostile inputs, one case (or a few) per family of issue 18, on models corrupted at test
//! time from the tiny fixtures: each gives a clear error naming the file, tensor, field or
//! input, or works correctly; none panics, hangs or returns a NaN vector.
//! The CLI's families (stdout/stderr failures, flags, SIGBUS while embedding) are in
//! crates/e5-cli/tests/hostile_cli.rs.

use e5::quantize::{parse_activation_scales, quantize_model, QuantizeOptions, MANIFEST};
use e5::{Error, Input, Model, Options, Precision};
use e5_tests::*;
use safetensors::Dtype;
use std::path::Path;
use std::time::Duration;

/// Hostile int4 files (a module of this test binary: one link fewer).
mod int4_files;

fn load_err(dir: &Path) -> String {
    match Model::load(dir, Options::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Sets element 0 of tensor `name` (F32) to `value`.
fn poke(dir: &Path, name: &str, value: f32) {
    edit_tensors(dir, |n, d, s, b| {
        let mut v = f32s(&b);
        if n == name {
            v.iter_mut().for_each(|x| *x = if *x == 0.0 { 0.0 } else { value });
            v[0] = value;
        }
        Some((d, s, if n == name { bytes(&v) } else { b }))
    });
}

fn files_digest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

// 1. Data loss --------------------------------------------------------------------------

#[test]
fn quantize_never_writes_over_or_around_its_source() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let before = files_digest(d.path());
    let q = |dst: &Path, force: bool| {
        quantize_model(d.path(), dst, &QuantizeOptions { overwrite: force, ..Default::default() })
    };
    for (dst, why) in [(d.path().to_path_buf(), "is the source"), (d.path().join(".."), "contains the source")] {
        let e = q(&dst, true).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    let inside = d.path().join("sub");
    assert!(q(&inside, false).unwrap_err().to_string().contains("inside the source"));
    assert_eq!(files_digest(d.path()), before, "the source is untouched");

    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("keep.txt"), "mine").unwrap();
    let e = q(out.path(), false).unwrap_err().to_string();
    assert!(e.contains("non-empty") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(out.path().join("keep.txt")).unwrap(), "mine");
    q(out.path(), true).unwrap();
    assert!(out.path().join(MANIFEST).exists() && !out.path().join("keep.txt").exists());
    Model::load(out.path(), Options::default()).unwrap().embed(&[Input::raw("x")]).unwrap();
}

#[test]
fn a_failed_quantize_leaves_no_partial_output() {
    let d = scratch_copy(&fixture("tiny-bert"));
    poke(d.path(), "encoder.layer.1.output.dense.weight", f32::NAN);
    let parent = tempfile::tempdir().unwrap();
    let dst = parent.path().join("q");
    let e = quantize_model(d.path(), &dst, &QuantizeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("encoder.layer.1.output.dense.weight") && e.contains("not finite"), "{e}");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0, "no output, no temporary directory");
}

// 3. Panics -----------------------------------------------------------------------------

#[test]
fn config_arithmetic_cannot_wrap() {
    let d = scratch_copy(&fixture("tiny-xlmr"));
    edit_config(d.path(), |c| c["pad_token_id"] = serde_json::json!(u64::MAX - 1));
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("pad_token_id"), "{e}");
}

#[test]
fn quantize_checks_shapes_against_the_config() {
    for (name, shape) in [("encoder.layer.0.output.dense.weight", vec![64 * 32]), ("encoder.layer.0.extra", vec![])] {
        let d = scratch_copy(&fixture("tiny-xlmr"));
        edit_tensors(d.path(), |n, dt, s, b| Some(if n == name { (dt, shape.clone(), b) } else { (dt, s, b) }));
        if shape.is_empty() {
            // An unused extra scalar beside the real tensors.
            let p = d.path().join("model.safetensors");
            let all = std::fs::read(&p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&all).unwrap();
            let one = 1f32.to_le_bytes();
            let mut views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
            views.push((name.into(), safetensors::tensor::TensorView::new(Dtype::F32, vec![], &one).unwrap()));
            safetensors::serialize_to_file(views, None, &d.path().join("m2")).unwrap();
            std::fs::rename(d.path().join("m2"), &p).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let e = quantize_model(d.path(), out.path(), &QuantizeOptions::default()).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}

// 4. Aborts and unbounded memory --------------------------------------------------------

#[test]
fn sizes_are_bounded_before_allocation() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| c["num_hidden_layers"] = 1_000_000_000.into());
    let e = load_err(d.path());
    assert!(e.contains("num_hidden_layers") && e.contains("range"), "{e}");
}

#[test]
fn a_charsmap_header_claiming_4_gb_is_refused() {
    let d = scratch_copy(&fixture("tiny-xlmr"));
    let p = d.path().join("tokenizer.json");
    let mut t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    // Header: a 4 GB trie, followed by 8 bytes.
    let blob = [0xFC, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0];
    t["normalizer"]["normalizers"][0]["precompiled_charsmap"] = base64_encode(&blob).into();
    std::fs::write(&p, t.to_string()).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("tokenizer.json") && e.contains("precompiled_charsmap"), "{e}");
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            s.push(if i <= c.len() { A[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    s
}

// 5. Hangs ------------------------------------------------------------------------------

/// Runs `f` on a thread; fails if it takes longer than 20 s (a hang).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(20)).expect("hung")
}

#[test]
fn a_fifo_directory_or_symlink_loop_as_weights_is_named() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let p = d.path().join("model.safetensors");
    std::fs::remove_file(&p).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(status.success());
    let dir = d.path().to_path_buf();
    let e = bounded(move || load_err(&dir));
    assert!(e.contains("model.safetensors") && e.contains("FIFO"), "{e}");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("model.safetensors") && e.contains("directory"), "{e}");
    std::fs::remove_dir(&p).unwrap();
    std::os::unix::fs::symlink("model.safetensors", &p).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("model.safetensors") && e.contains("symbolic links"), "{e}");
}

#[test]
fn thread_counts_are_bounded() {
    for n in [0, 100_000] {
        let e = Model::load(fixture("tiny-bert"), Options { threads: Some(n), ..Options::default() });
        assert!(e.err().unwrap().to_string().contains("threads"));
    }
}

// 6. Silent wrong answers ---------------------------------------------------------------

#[test]
fn non_finite_or_overflowing_weights_are_named_at_load() {
    for (name, v) in [
        ("encoder.layer.0.attention.self.query.weight", f32::INFINITY),
        ("encoder.layer.0.output.LayerNorm.weight", 1e30),
    ] {
        let d = scratch_copy(&fixture("tiny-bert"));
        poke(d.path(), name, v);
        let e = load_err(d.path());
        assert!(e.contains(name) && e.contains("not finite"), "{e}");
    }
}

/// Real f32 checkpoints may hold weights beyond f16's range outside LayerNorm: they load and
/// embed; only `quantize --precision f16`, which cannot store them, refuses them by name.
#[test]
fn large_finite_weights_outside_layer_norm_load_and_refuse_only_f16() {
    let name = "encoder.layer.0.intermediate.dense.weight";
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_tensors(d.path(), |n, dt, s, b| {
        let mut v = f32s(&b);
        if n == name {
            v[0] = 1e5;
        }
        Some((dt, s, bytes(&v)))
    });
    let m = Model::load(d.path(), Options::default()).unwrap();
    let out = m.embed(&[Input::raw("hello world")]).unwrap();
    assert!(out.data.iter().all(|x| x.is_finite()));
    let out_dir = tempfile::tempdir().unwrap();
    let e = quantize_model(
        d.path(),
        out_dir.path(),
        &QuantizeOptions { precision: Precision::F16, overwrite: true, ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(name) && e.contains("f16"), "{e}");
    quantize_model(
        d.path(),
        out_dir.path(),
        &QuantizeOptions { precision: Precision::Bf16, overwrite: true, ..Default::default() },
    )
    .unwrap();
    Model::load(out_dir.path(), Options::default()).unwrap();
}

#[test]
fn a_nan_in_the_in_place_table_is_an_error_naming_the_input_never_nan() {
    let d = scratch_copy(&fixture("tiny-bert"));
    poke(d.path(), "embeddings.word_embeddings.weight", f32::NAN);
    let m = Model::load(d.path(), Options::default()).unwrap();
    let e = m.embed(&[Input::raw("hello")]).unwrap_err();
    assert!(matches!(e, Error::Input { index: 0, .. }) && e.to_string().contains("not finite"), "{e}");
}

#[test]
fn layer_norm_eps_and_max_seq_length_are_validated() {
    for eps in [-1e-5, 0.0, 1e300] {
        let d = scratch_copy(&fixture("tiny-bert"));
        edit_config(d.path(), |c| c["layer_norm_eps"] = eps.into());
        assert!(load_err(d.path()).contains("layer_norm_eps"), "eps {eps}");
    }
    let d = scratch_copy(&fixture("tiny-bert"));
    std::fs::write(d.path().join("sentence_bert_config.json"), r#"{"max_seq_length": 0}"#).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("sentence_bert_config.json") && e.contains("max_seq_length"), "{e}");
}

#[test]
fn huge_int8_scales_are_an_error_not_nan() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let q = tempfile::tempdir().unwrap();
    quantize_model(d.path(), q.path(), &QuantizeOptions::default()).unwrap();
    edit_tensors(q.path(), |n, dt, s, b| {
        let b = if n == "encoder.layer.0.intermediate.dense.weight_scale" { bytes(&vec![3e38; s[0]]) } else { b };
        Some((dt, s, b))
    });
    match Model::load(q.path(), Options::default()) {
        Err(e) => assert!(e.to_string().contains("scale"), "{e}"),
        Ok(m) => {
            let e = m.embed(&[Input::raw("hello")]).unwrap_err();
            assert!(matches!(e, Error::Input { index: 0, .. }), "{e}");
        }
    }
}

#[test]
fn a_tensor_in_the_wrong_shard_is_refused() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let p = d.path().join("model.safetensors");
    let all = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&all).unwrap();
    let mut map = serde_json::Map::new();
    let tensors = st.tensors();
    for (n, _) in &tensors {
        map.insert(n.clone(), "a.safetensors".into());
    }
    safetensors::serialize_to_file(tensors.clone(), None, &d.path().join("a.safetensors")).unwrap();
    // Shard b holds a second copy of one tensor that the index places in a.
    let stray: Vec<_> = tensors.into_iter().filter(|(n, _)| n.ends_with("embeddings.LayerNorm.weight")).collect();
    safetensors::serialize_to_file(stray, None, &d.path().join("b.safetensors")).unwrap();
    map.insert("unrelated".into(), "b.safetensors".into());
    let index = serde_json::json!({ "weight_map": map }).to_string();
    std::fs::write(d.path().join("model.safetensors.index.json"), index).unwrap();
    std::fs::remove_file(&p).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("index") && e.contains("LayerNorm.weight"), "{e}");
}

#[test]
fn special_token_ids_beyond_u32_are_refused() {
    let d = scratch_copy(&fixture("tiny-xlmr"));
    let p = d.path().join("tokenizer.json");
    let mut t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    t["post_processor"]["special_tokens"]["<s>"]["ids"] = serde_json::json!([(1u64 << 32) + 5]);
    std::fs::write(&p, t.to_string()).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("tokenizer.json") && e.contains("u32"), "{e}");
}

#[test]
fn a_manifest_that_misstates_the_precision_is_refused() {
    let q = tempfile::tempdir().unwrap();
    quantize_model(&fixture("tiny-bert"), q.path(), &QuantizeOptions::default()).unwrap();
    let p = q.path().join(MANIFEST);
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    m["precision"] = "f16".into();
    std::fs::write(&p, m.to_string()).unwrap();
    let e = load_err(q.path());
    assert!(e.contains("manifest") && e.contains("f16"), "{e}");
    // A tensor in the weights that the manifest does not list.
    m["precision"] = "int8".into();
    let listed = m["tensors"].as_object_mut().unwrap();
    listed.remove("encoder.layer.0.output.LayerNorm.bias").unwrap();
    std::fs::write(&p, m.to_string()).unwrap();
    let e = load_err(q.path());
    assert!(e.contains("manifest") && e.contains("output.LayerNorm.bias") && e.contains("not listed"), "{e}");
}

#[test]
fn fewer_layers_in_the_config_than_in_the_weights_is_refused() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| c["num_hidden_layers"] = 1.into());
    let e = load_err(d.path());
    assert!(e.contains("num_hidden_layers") && e.contains("encoder.layer.1"), "{e}");
}

#[test]
fn activation_scales_outside_any_real_range_are_refused() {
    for s in ["0", "1e-45", "-0.5", "1e39", "3e38"] {
        let text = format!(r#"{{"layer.0.qkv": {s}}}"#);
        let e = parse_activation_scales(&text).unwrap_err();
        assert!(e.contains("layer.0.qkv") && e.contains("activation scale"), "{s}: {e}");
        let scales = [("layer.0.qkv".to_string(), s.parse::<f32>().unwrap())].into_iter().collect();
        let out = tempfile::tempdir().unwrap();
        let e = quantize_model(
            &fixture("tiny-bert"),
            out.path(),
            &QuantizeOptions { activation_scales: Some(scales), ..Default::default() },
        );
        assert!(e.unwrap_err().to_string().contains("activation scale"), "{s}");
    }
}

// 8. Misleading messages ----------------------------------------------------------------

#[test]
fn messages_name_the_real_problem() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let p = d.path().join("config.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("\u{feff}{text}")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("byte-order mark"), "{e}");
    std::fs::write(&p, text).unwrap();

    edit_tensors(d.path(), |n, dt, s, b| {
        Some(if n.ends_with("word_embeddings.weight") { (Dtype::I32, s, b) } else { (dt, s, b) })
    });
    let e = load_err(d.path());
    assert!(e.contains("word_embeddings.weight") && e.contains("I32"), "{e}");
}

#[test]
fn hf_cache_refs_main_cannot_point_outside_the_cache() {
    let hub = tempfile::tempdir().unwrap();
    let repo = hub.path().join("models--org--name");
    std::fs::create_dir_all(repo.join("snapshots/abc")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "../../../../etc").unwrap();
    // The only test in this binary that reads the HF cache variables.
    std::env::set_var("HF_HUB_CACHE", hub.path());
    let e = e5::resolve_model("org/name").unwrap_err().to_string();
    assert!(e.contains("refs/main") && e.contains("not a revision"), "{e}");
}

// 2. SIGBUS family (the CLI's long-run case is in crates/e5-cli/tests/hostile_cli.rs) ----

#[test]
fn a_mapped_model_file_changed_in_place_fails_the_next_call_cleanly() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let m = Model::load(d.path(), Options::default()).unwrap();
    let want = m.embed(&[Input::raw("before")]).unwrap();
    // Same size, other bytes, in place (as `cp` of a same-size file does).
    let p = d.path().join("model.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 64..].iter_mut().for_each(|x| *x = 0);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&p, &b).unwrap();
    let e = m.embed(&[Input::raw("before")]).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("changed on disk"), "{e}");
    drop(want);
}

#[test]
fn replacing_the_model_file_by_atomic_rename_keeps_working() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let m = Model::load(d.path(), Options::default()).unwrap();
    let want = m.embed(&[Input::raw("rename")]).unwrap();
    let p = d.path().join("model.safetensors");
    std::fs::copy(fixture("tiny-bert-f16").join("model.safetensors"), d.path().join("new")).unwrap();
    std::fs::rename(d.path().join("new"), &p).unwrap();
    assert_eq!(m.embed(&[Input::raw("rename")]).unwrap().data, want.data);
}

#[test]
fn residency_copy_needs_nothing_of_the_file_after_loading() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let m = Model::load(d.path(), Options { residency: e5::Residency::Copy, ..Options::default() }).unwrap();
    let want = m.embed(&[Input::raw("copy")]).unwrap();
    std::fs::OpenOptions::new().write(true).open(d.path().join("model.safetensors")).unwrap().set_len(0).unwrap();
    assert_eq!(m.embed(&[Input::raw("copy")]).unwrap().data, want.data);
    let reference = Model::load(fixture("tiny-bert"), Options::default()).unwrap();
    assert_eq!(reference.embed(&[Input::raw("copy")]).unwrap().data, want.data);
}
