//! (A module of the `hostile` test binary.) Hostile int4 files (`e5 quantize --precision
//! int4`): bad nibbles, scales, shapes, dtypes, group sizes, manifests and truncation are
//! clear errors at load, never a panic or a silent wrong answer.

use super::load_err;
use e5::quantize::{quantize_model, QuantizeOptions, MANIFEST};
use e5::Precision;
use e5_tests::*;
use half::f16;
use safetensors::Dtype;
use std::path::Path;

const KEY_SCALE: &str = "encoder.layer.0.attention.self.key.weight_scale";
const FFN_DOWN: &str = "encoder.layer.1.output.dense.weight";

/// Rewrites the manifest through `f`.
fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(MANIFEST);
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&p, m.to_string()).unwrap();
}

/// Replaces tensor `name` by `dtype` `shape` `bytes`, in the weights and the manifest.
fn replace(dir: &Path, name: &str, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) {
    edit_tensors(dir, |n, d, s, b| Some(if n == name { (dtype, shape.clone(), bytes.clone()) } else { (d, s, b) }));
    edit_manifest(dir, |m| {
        m["tensors"][name]["dtype"] = format!("{dtype:?}").into();
        m["tensors"][name]["shape"] = serde_json::json!(shape);
    });
}

/// The tensor's bytes and shape in the file.
fn tensor(dir: &Path, name: &str) -> (Vec<u8>, Vec<usize>) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    (t.data().to_vec(), t.shape().to_vec())
}

/// The F16 scales of `KEY_SCALE` with scale 0 set to `value`.
fn key_scale_set(dir: &Path, value: f16) {
    let (mut b, shape) = tensor(dir, KEY_SCALE);
    b[..2].copy_from_slice(&value.to_le_bytes());
    replace(dir, KEY_SCALE, Dtype::F16, shape, b);
}

#[test]
fn bad_int4_files_are_clear_errors() {
    let base = tempfile::tempdir().unwrap();
    let opts = QuantizeOptions { precision: Precision::Int4G32, ..Default::default() };
    quantize_model(&fixture("tiny-bert"), base.path(), &opts).unwrap();
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("NaN scale", Box::new(|d| key_scale_set(d, f16::NAN)), &[KEY_SCALE, "not finite"]),
        ("infinite scale", Box::new(|d| key_scale_set(d, f16::INFINITY)), &[KEY_SCALE, "not finite"]),
        ("negative scale", Box::new(|d| key_scale_set(d, f16::from_f32(-0.5))), &[KEY_SCALE, "outside [0, 2^32]"]),
        ("zero scale", Box::new(|d| key_scale_set(d, f16::ZERO)), &[KEY_SCALE, "row 0, group 0", "is 0"]),
        (
            "huge scale",
            Box::new(|d| {
                let (_, shape) = tensor(d, KEY_SCALE);
                let huge = vec![1e30f32; shape.iter().product()];
                replace(d, KEY_SCALE, Dtype::F32, shape, huge.iter().flat_map(|x| x.to_le_bytes()).collect());
            }),
            &[KEY_SCALE, "outside [0, 2^32]"],
        ),
        (
            "bf16 scales",
            Box::new(|d| {
                let (b, shape) = tensor(d, KEY_SCALE);
                replace(d, KEY_SCALE, Dtype::BF16, shape, b);
            }),
            &[KEY_SCALE, "F16 or F32"],
        ),
        (
            "wrong weight shape",
            Box::new(|d| {
                let (b, _) = tensor(d, FFN_DOWN);
                replace(d, FFN_DOWN, Dtype::U8, vec![64, 16], b);
            }),
            &[FFN_DOWN, "shape"],
        ),
        (
            "wrong scale shape",
            Box::new(|d| {
                let (b, shape) = tensor(d, KEY_SCALE);
                replace(d, KEY_SCALE, Dtype::F16, vec![shape[1], shape[0]], b);
            }),
            &[KEY_SCALE, "shape"],
        ),
        (
            "group size that does not divide k",
            Box::new(|d| {
                edit_manifest(d, |m| {
                    m["precision"] = "int4-g64".into();
                    m["group_size"] = 64.into();
                })
            }),
            &["group size 64 does not divide its input width 32"],
        ),
        (
            "manifest group size that disagrees with the precision",
            Box::new(|d| edit_manifest(d, |m| m["group_size"] = 128.into())),
            &["manifest mismatch", "int4-g32", "group_size 128"],
        ),
        (
            "manifest saying int8 over int4 weights",
            Box::new(|d| {
                edit_manifest(d, |m| {
                    m["precision"] = "int8".into();
                    m.as_object_mut().unwrap().remove("group_size");
                })
            }),
            &["manifest mismatch", "precision int8", "is U8"],
        ),
        (
            "int4 weights with no manifest",
            Box::new(|d| std::fs::remove_file(d.join(MANIFEST)).unwrap()),
            &["packed int4 levels", "does not run as int4"],
        ),
        (
            "truncated weights",
            Box::new(|d| {
                let p = d.join("model.safetensors");
                let len = std::fs::metadata(&p).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 100).unwrap();
            }),
            &["model.safetensors"],
        ),
    ];
    for (what, edit, expected) in cases {
        let d = scratch_copy(base.path());
        edit(d.path());
        let e = load_err(d.path());
        assert!(expected.iter().all(|x| e.contains(x)), "{what}: {e}");
    }
}

const TABLE: &str = "embeddings.word_embeddings.weight";
const TABLE_SCALE: &str = "embeddings.word_embeddings.weight_scale";

#[test]
fn bad_int4_word_tables_are_clear_errors() {
    let base = tempfile::tempdir().unwrap();
    let opts = QuantizeOptions { precision: Precision::Int4G32, int4_word_table: true, ..Default::default() };
    quantize_model(&fixture("tiny-bert"), base.path(), &opts).unwrap();
    let (table, shape) = tensor(base.path(), TABLE);
    assert_eq!(shape[1] * 2, 32, "two levels a byte");
    type Edit = Box<dyn Fn(&Path)>;
    let table_scale_set = |d: &Path, value: f16| {
        let (mut b, shape) = tensor(d, TABLE_SCALE);
        b[2..4].copy_from_slice(&value.to_le_bytes());
        replace(d, TABLE_SCALE, Dtype::F16, shape, b);
    };
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("NaN table scale", Box::new(move |d| table_scale_set(d, f16::NAN)), &[TABLE_SCALE, "not finite"]),
        ("negative table scale", Box::new(move |d| table_scale_set(d, f16::from_f32(-1.0))), &[TABLE_SCALE, "row 1"]),
        (
            "F32 table scales",
            Box::new(|d| {
                let (b, shape) = tensor(d, TABLE_SCALE);
                let f: Vec<u8> =
                    b.chunks_exact(2).flat_map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32().to_le_bytes()).collect();
                replace(d, TABLE_SCALE, Dtype::F32, shape, f);
            }),
            &[TABLE_SCALE, "F16"],
        ),
        (
            "table scales of a group size that is not 32, 64 or 128",
            Box::new(|d| {
                let (b, shape) = tensor(d, TABLE_SCALE);
                let doubled: Vec<u8> = b.chunks_exact(2).flat_map(|h| [h[0], h[1], h[0], h[1]]).collect();
                replace(d, TABLE_SCALE, Dtype::F16, vec![shape[0], shape[1] * 2], doubled);
            }),
            &[TABLE, "G 32, 64 or 128"],
        ),
        ("missing table scales", Box::new(|d| drop_tensor(d, TABLE_SCALE)), &[TABLE_SCALE, "missing"]),
        (
            "table of the wrong width",
            Box::new(move |d| replace(d, TABLE, Dtype::U8, vec![shape[0] * 2, shape[1] / 2], table.clone())),
            &[TABLE, "shape"],
        ),
    ];
    for (what, edit, expected) in cases {
        let d = scratch_copy(base.path());
        edit(d.path());
        let e = load_err(d.path());
        assert!(expected.iter().all(|x| e.contains(x)), "{what}: {e}");
    }
    // Only int4 files store an int4 table.
    let opts = QuantizeOptions { precision: Precision::Int8, int4_word_table: true, ..Default::default() };
    let e = quantize_model(&fixture("tiny-bert"), &base.path().join("x"), &opts).unwrap_err().to_string();
    assert!(e.contains("an int4 word table needs an int4 precision"), "{e}");
}

/// Removes tensor `name` from the weights and the manifest.
fn drop_tensor(dir: &Path, name: &str) {
    edit_tensors(dir, |n, d, s, b| (n != name).then_some((d, s, b)));
    edit_manifest(dir, |m| {
        m["tensors"].as_object_mut().unwrap().remove(name);
    });
}
