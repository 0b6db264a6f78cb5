//! Arbitrary bytes as `model.safetensors` beside the tiny BERT's config and tokenizer:
//! the safetensors header, `Checkpoint::open`, every tensor's shape, dtype and values, and
//! an embedding if it loads. Any outcome but a panic, abort or hang is fine; a vector must
//! be finite.
#![no_main]

#[path = "common.rs"]
mod common;

use e5::{Input, Model, Options};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| common::scratch("tiny-bert")).path();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
    if let Ok(m) = Model::load(dir, Options { threads: Some(1), ..Options::default() }) {
        if let Ok(out) = m.embed(&[Input::raw("hello world"), Input::query("x")]) {
            assert!(out.data.iter().all(|v| v.is_finite()));
        }
    }
});
