//! The manifest `e5 quantize` writes beside `model.safetensors` (`e5-quantization.json`),
//! and what the loader reads back from it and checks against the weights.

use super::smooth;
use crate::error::{Error, Result};
use crate::input::Precision;
use crate::weights::{Checkpoint, FloatType};
use e5_arch::names;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// File name of the manifest beside the quantized `model.safetensors`.
pub const MANIFEST: &str = "e5-quantization.json";
pub(super) const FORMAT: &str = "e5-quantized/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub tool: String,
    pub precision: String,
    /// Input values per weight scale (int4 precisions only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group_size: Option<usize>,
    pub scheme: Scheme,
    pub keep_fp32: Vec<String>,
    /// sha256 of each source weight file.
    pub source: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, TensorEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scheme {
    pub weights: String,
    pub activations: String,
    pub embeddings: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Statistics of the quantization scales (int8 and int4 tensors).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scales: Option<ScaleStats>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScaleStats {
    pub min: f32,
    pub max: f32,
    pub mean: f32,
}

pub(super) fn dtype_name(d: FloatType) -> &'static str {
    match d {
        FloatType::F32 => "F32",
        FloatType::F16 => "F16",
        FloatType::Bf16 => "BF16",
        FloatType::I8 => "I8",
        FloatType::U8 => "U8",
    }
}

/// The manifest of a quantized model directory, if it is one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    if !crate::validate::present(&path) {
        return Ok(None);
    }
    let text = crate::validate::read_text(&path)?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| Error::config(&path, format!("malformed manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(Error::Quantized(format!("{}: unknown format {:?} (expected {FORMAT})", path.display(), m.format)));
    }
    Ok(Some(m))
}

/// Checks that the weights are what the manifest says; returns the stored precision.
pub(crate) fn verify(m: &Manifest, ck: &Checkpoint) -> Result<Precision> {
    let precision = Precision::parse(&m.precision).filter(|p| *p != Precision::Fp32).ok_or_else(|| {
        Error::Quantized(format!("manifest precision {:?} is not int8, f16, bf16 or int4-g32/64/128", m.precision))
    })?;
    if m.group_size != precision.int4_group() {
        return Err(Error::Quantized(format!(
            "manifest mismatch: precision {} but group_size {}",
            m.precision,
            m.group_size.map_or("absent".into(), |g| g.to_string())
        )));
    }
    let inventory: BTreeMap<&str, (FloatType, &[usize])> = ck.inventory().map(|(n, d, s)| (n, (d, s))).collect();
    for (name, entry) in &m.tensors {
        match inventory.get(name.as_str()) {
            None => {
                return Err(Error::Quantized(format!(
                    "manifest mismatch: tensor {name:?} is listed but not in the weights"
                )))
            }
            Some((d, s)) if dtype_name(*d) != entry.dtype || *s != entry.shape.as_slice() => {
                return Err(Error::Quantized(format!(
                    "manifest mismatch: tensor {name:?} is {} {:?} in the weights but {} {:?} in the manifest",
                    dtype_name(*d),
                    s,
                    entry.dtype,
                    entry.shape
                )))
            }
            _ => {}
        }
    }
    if let Some(name) = inventory.keys().find(|n| !m.tensors.contains_key(**n)) {
        return Err(Error::Quantized(format!("manifest mismatch: tensor {name:?} is in the weights but not listed")));
    }
    // The stored dtype of every quantized tensor must be the precision the manifest states
    // (which `info` reports and the model runs in).
    // int4 stores its word table as int8 rows, or as int4 (U8).
    let stored = |table: bool, dtype: &str| match precision {
        Precision::Int8 => dtype == "I8",
        Precision::Bf16 => dtype == "BF16",
        Precision::F16 => dtype == "F16",
        _ if table => dtype == "I8" || dtype == "U8",
        _ => dtype == "U8",
    };
    for (name, entry) in &m.tensors {
        let table = name == names::WORD_EMBEDDINGS;
        let quantized = table || names::linear_of_weight(name).is_some_and(|l| !m.keep_fp32.contains(&l.to_string()));
        if quantized && !stored(table, &entry.dtype) {
            return Err(Error::Quantized(format!(
                "manifest mismatch: precision {} but tensor {name:?} is {}",
                m.precision, entry.dtype
            )));
        }
    }
    Ok(precision)
}

/// The smoothing factors stored in a quantized model (`{sub_layer}.input_smoothing`), whose
/// int8 weights were smoothed when they were written.
pub(crate) fn stored_smoothing(m: &Manifest, ck: &Checkpoint) -> Result<Option<Arc<smooth::Factors>>> {
    let mut out = BTreeMap::new();
    for (name, entry) in &m.tensors {
        if let Some(id) = names::linear_of_input_smoothing(name) {
            out.insert(id.to_string(), ck.f32(name, &entry.shape)?);
        }
    }
    Ok((!out.is_empty()).then(|| Arc::new(out)))
}

/// The calibrated input scales stored in a quantized model (`{sub_layer}.input_scale`).
pub(crate) fn activation_scales(
    m: &Manifest,
    ck: &Checkpoint,
) -> Result<Option<std::sync::Arc<BTreeMap<String, f32>>>> {
    let mut out = BTreeMap::new();
    for name in m.tensors.keys() {
        if let Some(id) = names::linear_of_input_scale(name) {
            out.insert(id.to_string(), ck.f32(name, &[1])?[0]);
        }
    }
    Ok((!out.is_empty()).then(|| std::sync::Arc::new(out)))
}
