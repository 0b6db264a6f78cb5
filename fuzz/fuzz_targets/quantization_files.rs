//! The quantization manifest (`e5-quantization.json`, loaded beside the tiny BERT
//! quantized to int8) and the activation-scale file: an error or a model whose vectors are
//! finite; accepted scales are inside the documented range.
#![no_main]

#[path = "common.rs"]
mod common;

use e5::quantize::{parse_activation_scales, quantize_model, QuantizeOptions, MANIFEST};
use e5::{Input, Model, Options};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(scales) = parse_activation_scales(text) {
        assert!(scales.values().all(|s| s.is_finite() && *s >= 1e-12 && *s <= 1e12));
    }
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        quantize_model(&common::fixture("tiny-bert"), d.path(), &QuantizeOptions::default()).unwrap();
        d
    });
    std::fs::write(dir.path().join(MANIFEST), data).unwrap();
    if let Ok(m) = Model::load(dir.path(), Options { threads: Some(1), ..Options::default() }) {
        if let Ok(out) = m.embed(&[Input::raw("hello world")]) {
            assert!(out.data.iter().all(|v| v.is_finite()));
        }
    }
});
