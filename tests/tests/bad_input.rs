//! Bad model files get a typed error that names the file or tensor, never a panic.

use e5::{Error, Model, Options};
use e5_tests::*;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

fn load(dir: &Path) -> Error {
    match Model::load(dir, Options::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_and_malformed_config() {
    let d = scratch_copy(&fixture("tiny-bert"));
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let e = load(d.path());
    assert!(matches!(e, Error::Io { ref path, .. } if path.ends_with("config.json")), "{e}");
    std::fs::write(d.path().join("config.json"), "{ not json").unwrap();
    let e = load(d.path());
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("config.json"), "{e}");
    std::fs::write(d.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    assert!(load(d.path()).to_string().contains("missing field"));
}

#[test]
fn unknown_architecture_and_unsupported_settings() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| {
        c["model_type"] = "gpt2".into();
        c["architectures"] = serde_json::json!(["GPT2Model"]);
    });
    let e = load(d.path());
    assert!(matches!(e, Error::UnknownArchitecture { ref model_type, .. } if model_type == "gpt2"), "{e}");
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| c["hidden_act"] = "swish".into());
    assert!(load(d.path()).to_string().contains("hidden_act \"swish\""));
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| c["position_embedding_type"] = "relative_key".into());
    assert!(load(d.path()).to_string().contains("relative_key"));
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_config(d.path(), |c| c["num_attention_heads"] = 5.into());
    assert!(load(d.path()).to_string().contains("multiple of num_attention_heads"));
}

#[test]
fn missing_tensor_is_named() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_tensors(d.path(), |n, dt, s, b| (n != "encoder.layer.1.output.dense.bias").then_some((dt, s, b)));
    let e = load(d.path());
    assert!(matches!(e, Error::MissingTensor { ref name, .. } if name == "encoder.layer.1.output.dense.bias"), "{e}");
}

#[test]
fn wrong_shape_is_named() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_tensors(d.path(), |n, dt, s, b| {
        Some(if n == "encoder.layer.0.intermediate.dense.weight" { (dt, vec![s[1], s[0]], b) } else { (dt, s, b) })
    });
    let e = load(d.path());
    assert!(
        matches!(e, Error::TensorShape { ref name, ref expected, .. } if name == "encoder.layer.0.intermediate.dense.weight" && expected == &[64, 32]),
        "{e}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let d = scratch_copy(&fixture("tiny-bert"));
    edit_tensors(d.path(), |n, dt, s, b| {
        Some(if n == "embeddings.LayerNorm.bias" { (Dtype::F64, vec![s[0] / 2], b) } else { (dt, s, b) })
    });
    let e = load(d.path());
    assert!(matches!(e, Error::TensorDtype { ref name, .. } if name == "embeddings.LayerNorm.bias"), "{e}");
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let p = d.path().join("model.safetensors");
    let full = std::fs::read(&p).unwrap();
    for cut in [0, 5, 100, full.len() / 2, full.len() - 1] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let e = load(d.path());
        assert!(matches!(e, Error::Safetensors { ref path, .. } if path == &p), "cut at {cut}: {e}");
    }
    // A header whose offsets point past the data.
    let n = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(full[8..8 + n].to_vec()).unwrap();
    let data_len = full.len() - 8 - n;
    let bad = header.replacen(&format!("{data_len}]"), &format!("{}]", data_len + 4096), 1);
    assert_ne!(bad, header, "the last tensor's end offset was found");
    let mut f = (bad.len() as u64).to_le_bytes().to_vec();
    f.extend(bad.as_bytes());
    f.extend(&full[8 + n..]);
    std::fs::write(&p, f).unwrap();
    let e = load(d.path());
    assert!(matches!(e, Error::Safetensors { .. }), "{e}");
}

#[test]
fn missing_weights_or_tokenizer_files() {
    let d = scratch_copy(&fixture("tiny-bert"));
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    assert!(load(d.path()).to_string().contains("model.safetensors"));
    let d = scratch_copy(&fixture("tiny-bert"));
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    assert!(load(d.path()).to_string().contains("tokenizer.json"));
    let d = scratch_copy(&fixture("tiny-bert"));
    std::fs::write(d.path().join("tokenizer.json"), "{\"model\": 3}").unwrap();
    assert!(matches!(load(d.path()), Error::Tokenizer { .. }));
}

#[test]
fn vocabulary_larger_than_the_embedding_table() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let rows = 100;
    edit_config(d.path(), |c| c["vocab_size"] = rows.into());
    edit_tensors(d.path(), |n, dt, mut s, mut b| {
        if n == "embeddings.word_embeddings.weight" {
            b.truncate(rows * s[1] * 4);
            s[0] = rows;
        }
        Some((dt, s, b))
    });
    let e = load(d.path());
    assert!(matches!(e, Error::VocabMismatch { embeddings: 100, .. }), "{e}");
}

#[test]
fn sharded_checkpoint_with_index_loads() {
    let d = scratch_copy(&fixture("tiny-bert"));
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut map = serde_json::Map::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, (n, t)) in st.tensors().into_iter().enumerate() {
        let file = if i % 2 == 0 { "model-00001-of-00002.safetensors" } else { "model-00002-of-00002.safetensors" };
        map.insert(n.clone(), file.into());
        if i % 2 == 0 {
            a.push((n, t))
        } else {
            b.push((n, t))
        }
    }
    safetensors::serialize_to_file(a, None, &d.path().join("model-00001-of-00002.safetensors")).unwrap();
    safetensors::serialize_to_file(b, None, &d.path().join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::write(d.path().join("model.safetensors.index.json"), serde_json::json!({ "weight_map": map }).to_string())
        .unwrap();
    let want =
        Model::load(fixture("tiny-bert"), Options::default()).unwrap().embed(&[e5::Input::raw("shards")]).unwrap();
    drop(st);
    std::fs::remove_file(&p).unwrap();
    let got = Model::load(d.path(), Options::default()).unwrap().embed(&[e5::Input::raw("shards")]).unwrap();
    assert_eq!(got.data, want.data);
}
