//! The quantization files: the manifest (`e5-quantization.json`, loaded beside the tiny
//! BERT quantized to int8 and to int4), the activation-scale file, and the packed int4
//! levels and f16 scales of one sub-layer (overwritten with the input's bytes): an error or
//! a model whose vectors are finite; accepted scales are inside the documented range.
#![no_main]

#[path = "common.rs"]
mod common;

use e5::quantize::{parse_activation_scales, quantize_model, QuantizeOptions, MANIFEST};
use e5::{Input, Model, Options, Precision};
use libfuzzer_sys::fuzz_target;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// The int8 and int4 directories, and where the int4 file keeps the query weight's levels
/// and scales (byte ranges of `model.safetensors`) with the file's original bytes.
struct Dirs {
    int8: tempfile::TempDir,
    int4: tempfile::TempDir,
    int4_file: Vec<u8>,
    int4_ranges: [Range<usize>; 2],
}

static DIRS: OnceLock<Dirs> = OnceLock::new();

fn quantized(precision: Precision) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let options = QuantizeOptions { precision, ..QuantizeOptions::default() };
    quantize_model(&common::fixture("tiny-bert"), d.path(), &options).unwrap();
    d
}

fn dirs() -> Dirs {
    let (int8, int4) = (quantized(Precision::Int8), quantized(Precision::Int4G32));
    let int4_file = std::fs::read(int4.path().join("model.safetensors")).unwrap();
    let (header, meta) = safetensors::SafeTensors::read_metadata(&int4_file).unwrap();
    let range = |name: &str| {
        let (s, e) = meta.info(name).unwrap().data_offsets;
        8 + header + s..8 + header + e
    };
    let query = "encoder.layer.0.attention.self.query.weight";
    let int4_ranges = [range(query), range(&format!("{query}_scale"))];
    Dirs { int8, int4, int4_file, int4_ranges }
}

fn embeds_finite_or_fails(dir: &Path) {
    if let Ok(m) = Model::load(dir, Options { threads: Some(1), ..Options::default() }) {
        if let Ok(out) = m.embed(&[Input::raw("hello world")]) {
            assert!(out.data.iter().all(|v| v.is_finite()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dirs = DIRS.get_or_init(dirs);
    // The bytes as the int4 query weight's levels, then its scales (the rest unchanged).
    let mut file = dirs.int4_file.clone();
    let mut rest = data;
    for r in &dirs.int4_ranges {
        let n = rest.len().min(r.len());
        file[r.start..r.start + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    let manifest = dirs.int4.path().join(MANIFEST);
    let original_manifest = std::fs::read(&manifest).unwrap();
    std::fs::write(dirs.int4.path().join("model.safetensors"), &file).unwrap();
    embeds_finite_or_fails(dirs.int4.path());
    std::fs::write(dirs.int4.path().join("model.safetensors"), &dirs.int4_file).unwrap();

    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(scales) = parse_activation_scales(text) {
        assert!(scales.values().all(|s| s.is_finite() && *s >= 1e-12 && *s <= 1e12));
    }
    for dir in [dirs.int8.path(), dirs.int4.path()] {
        std::fs::write(dir.join(MANIFEST), data).unwrap();
        embeds_finite_or_fails(dir);
    }
    std::fs::write(&manifest, original_manifest).unwrap();
});
