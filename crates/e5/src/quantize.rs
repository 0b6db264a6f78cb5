//! `e5 quantize`: write a model directory whose weights are already int8 / int4 / f16 / bf16,
//! with a manifest, so it loads by mmap with no re-quantization.
//!
//! Layout of the written `model.safetensors` (names as in the source, prefix removed):
//! - linear weights: `I8 [n, k]` + `F32 {name}_scale [n]` (symmetric per output channel),
//!   or int4 `U8 [n, k/2]` + `F16`/`F32 {name}_scale [n, k/G]` (per group of `G`, see
//!   quantize/int4.rs), or `F16`/`BF16`; sub-layers in `keep_fp32` stay `F32`;
//! - `embeddings.word_embeddings.weight`: `I8 [V, H]` + `F32 …weight_scale [V]` (per row;
//!   int8 and int4), or `F16`/`BF16`;
//! - biases, LayerNorms, position and token-type tables: `F32`.

use crate::config::FromDir;
use crate::error::{Error, Result};
use crate::input::Precision;
use crate::weights::{Checkpoint, FloatType};
use e5_arch::{names, LinearId, ModelConfig};
use e5_kernels::i8gemm::quantize_row;
use half::{bf16, f16};
use safetensors::{tensor::TensorView, Dtype};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod gptq;
pub(crate) mod int4;
mod manifest;
mod output;
pub mod smooth;

pub(crate) use manifest::{activation_scales, stored_smoothing, verify};
use manifest::{dtype_name, FORMAT};
pub use manifest::{read_manifest, Manifest, ScaleStats, Scheme, TensorEntry, MANIFEST};

struct Out {
    name: String,
    dtype: FloatType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The tensors to write, and their manifest entries.
#[derive(Default)]
struct Written {
    outs: Vec<Out>,
    entries: BTreeMap<String, TensorEntry>,
}

impl Written {
    fn add(&mut self, name: String, dtype: FloatType, shape: Vec<usize>, bytes: Vec<u8>, scales: Option<ScaleStats>) {
        let entry = TensorEntry { dtype: dtype_name(dtype).into(), shape: shape.clone(), scales };
        self.entries.insert(name.clone(), entry);
        self.outs.push(Out { name, dtype, shape, bytes });
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Quantizes `[rows, cols]` per row; returns the int8 bytes and the scales.
fn int8_rows(v: &[f32], rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0i8; rows * cols];
    let scales =
        (0..rows).map(|r| quantize_row(&v[r * cols..(r + 1) * cols], &mut q[r * cols..(r + 1) * cols])).collect();
    (q.into_iter().map(|b| b as u8).collect(), scales)
}

fn stats(s: &[f32]) -> ScaleStats {
    let min = s.iter().copied().fold(f32::INFINITY, f32::min);
    let max = s.iter().copied().fold(0.0, f32::max);
    ScaleStats { min, max, mean: s.iter().sum::<f32>() / s.len().max(1) as f32 }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", h.finalize()))
}

/// Files copied verbatim from the source directory (with the sentence-transformers module
/// directories `modules.json` names, the model card, which may declare Matryoshka dims, and
/// the output ranges `e5 calibrate-output` stores for int8 / uint8 output vectors).
const COPIED: [&str; 9] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "README.md",
    crate::output::OutputRanges::FILE,
];

/// The files of every module directory `modules.json` names (`1_Pooling`, `2_Dense`, …).
fn module_files(src: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Module {
        #[serde(default)]
        path: String,
    }
    let Some(modules) = crate::config::read_optional::<Vec<Module>>(&src.join("modules.json"))? else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for m in modules.iter().filter(|m| !m.path.is_empty() && !m.path.contains("..")) {
        let dir = src.join(&m.path);
        if !dir.is_dir() {
            continue; // a Normalize module has no files
        }
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let p = e.map_err(|e| Error::io(&dir, e))?.path();
            if p.is_file() {
                files.push(PathBuf::from(&m.path).join(p.file_name().unwrap()));
            }
        }
    }
    Ok(files)
}

/// What [`quantize_model`] writes.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// int8 (the default), f16, bf16 or int4-g32 / int4-g64 / int4-g128 (the group size must
    /// divide every quantized sub-layer's input width).
    pub precision: Precision,
    /// Sub-layers kept in f32, e.g. `layer.11.ffn_down`.
    pub keep_fp32: Vec<String>,
    /// Calibrated static int8 input scales by sub-layer, stored as `{sub_layer}.input_scale`:
    /// the model runs static int8 (int8 only).
    pub activation_scales: Option<BTreeMap<String, f32>>,
    /// Smoothing factors `s` by sub-layer (smoothed static int8; each sub-layer needs its
    /// input scale): the int8 weights' input columns are multiplied by `s`, and `s` is stored
    /// as `{sub_layer}.input_smoothing`.
    pub smoothing: Option<smooth::Factors>,
    /// Replace an existing non-empty destination directory (never the source).
    pub overwrite: bool,
    /// A PEFT LoRA adapter directory, merged into the weights first.
    pub adapter: Option<PathBuf>,
    /// int4 only: quantize with GPTQ error compensation from these calibration Hessians
    /// ([`gptq::calibrate`] on the same source model), instead of round-to-nearest.
    pub gptq: Option<Arc<gptq::Hessians>>,
    /// int4 only: store the word table as int4 too (per group of the precision's `G`, F16
    /// scales; round to nearest) instead of int8 rows: half the table's bytes.
    pub int4_word_table: bool,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            precision: Precision::Int8,
            keep_fp32: Vec::new(),
            activation_scales: None,
            smoothing: None,
            overwrite: false,
            adapter: None,
            gptq: None,
            int4_word_table: false,
        }
    }
}

/// Writes `dst` from the model at `src` as `options` say.
///
/// `dst` may not be `src`, contain it or lie inside it; an existing non-empty `dst` is
/// replaced only with `options.overwrite`. Everything is written to a temporary directory
/// beside `dst` and renamed into place at the end, so a failure leaves no half-written model.
/// The output ranges of `e5 calibrate-output` are copied with the tokenizer and config.
pub fn quantize_model(src: &Path, dst: &Path, options: &QuantizeOptions) -> Result<Manifest> {
    let QuantizeOptions {
        precision,
        ref keep_fp32,
        ref activation_scales,
        ref smoothing,
        overwrite,
        ref adapter,
        ref gptq,
        int4_word_table,
    } = *options;
    let adapter = adapter.as_deref();
    if precision == Precision::Fp32 {
        return Err(Error::Options(
            "quantize needs a precision other than fp32 (int8, f16, bf16, int4-g32, int4-g64 or int4-g128)".into(),
        ));
    }
    output::check_destination(src, dst, overwrite)?;
    let cfg = ModelConfig::from_dir(src)?;
    let mut ck = Checkpoint::open(src)?;
    crate::validate::check_layer_count(src, &ck, cfg.layers)?;
    if let Some(m) = read_manifest(src)? {
        return Err(Error::Options(format!("{} is already quantized ({})", src.display(), m.precision)));
    }
    if let Some(a) = adapter {
        ck.set_overrides(crate::adapter::merge(a, &ck, src)?.tensors);
    }
    let parse = |what: &str, name: &str| {
        LinearId::parse_in(name, cfg.layers).map_err(|e| Error::Options(format!("{what} {e}")))
    };
    let keep: Vec<LinearId> = keep_fp32.iter().map(|k| parse("keep-fp32", k)).collect::<Result<_>>()?;
    let scales = activation_scales.clone().unwrap_or_default();
    if !scales.is_empty() && precision != Precision::Int8 {
        return Err(Error::Options("activation scales (static int8) need --precision int8".into()));
    }
    if int4_word_table && precision.int4_group().is_none() {
        return Err(Error::Options("an int4 word table needs an int4 precision".into()));
    }
    if gptq.is_some() && (precision.int4_group().is_none() || adapter.is_some()) {
        return Err(Error::Options("GPTQ writes int4 (int4-g32, int4-g64 or int4-g128) without an adapter".into()));
    }
    let scale_ids: Vec<LinearId> = scales.keys().map(|k| parse("activation scale for", k)).collect::<Result<_>>()?;
    for (sub_layer, s) in &scales {
        crate::validate::check_input_scale(sub_layer, *s)?;
    }
    // Smoothing of the sub-layers that are quantized, each with its static scale.
    let mut smoothed: BTreeMap<LinearId, &[f32]> = BTreeMap::new();
    for (sub_layer, s) in smoothing.iter().flatten() {
        let id = parse("smoothing for", sub_layer)?;
        crate::validate::check_smoothing(sub_layer, s, id.sub.input_width(&cfg))?;
        if !scales.contains_key(sub_layer) {
            return Err(Error::Options(format!("smoothing for {sub_layer} needs its static int8 input scale")));
        }
        if !keep.contains(&id) {
            smoothed.insert(id, s);
        }
    }
    let half = |v: &[f32]| -> (FloatType, Vec<u8>) {
        match precision {
            Precision::Bf16 => (FloatType::Bf16, v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect()),
            _ => (FloatType::F16, v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect()),
        }
    };
    let mut out = Written::default();
    let mut tensors: Vec<(String, Vec<usize>)> = ck
        .inventory()
        .filter(|(n, _, _)| names::is_encoder_tensor(n))
        .map(|(n, _, s)| (n.to_string(), s.to_vec()))
        .collect();
    tensors.sort();
    // The GPTQ factor of the last sub-layer seen: QKV's three weights share one, and sorted
    // names put them one after another (were they not, it would only be computed again).
    let mut last_factor: Option<(LinearId, gptq::Factor)> = None;
    for (name, shape) in tensors {
        crate::validate::check_tensor_shape(&cfg, &name, &shape)?;
        let mut v = ck.f32(&name, &shape)?;
        let is_table = name == names::WORD_EMBEDDINGS;
        let linear = names::linear_of_weight(&name);
        let quantize = is_table || linear.is_some_and(|l| !keep.contains(&l));
        if let Some(s) = linear.and_then(|l| smoothed.get(&l)) {
            smooth::scale_columns(&mut v, s);
        }
        let int4_group = precision.int4_group().filter(|_| !is_table || int4_word_table);
        if !quantize {
            out.add(name, FloatType::F32, shape, f32_bytes(&v), None);
        } else if let Some(group) = int4_group {
            let (n, k) = (shape[0], shape[1]);
            let hessian = gptq.as_ref().and_then(|g| g.by_site.get(&linear?));
            if let (Some(g), Some(id), None) = (gptq, linear, hessian) {
                return Err(Error::Options(format!("GPTQ Hessians ({} sub-layers) lack {id}", g.by_site.len())));
            }
            if let Some(h) = hessian.filter(|h| h.k != k) {
                return Err(Error::Options(format!(
                    "{name}: GPTQ Hessian is [{0}, {0}], the weight's input width {k}",
                    h.k
                )));
            }
            let factor = match (hessian, linear) {
                (Some(h), Some(id)) => {
                    if last_factor.as_ref().is_none_or(|(last, _)| *last != id) {
                        let f = gptq::Factor::new(h).ok_or_else(|| {
                            Error::Options(format!("{name}: its GPTQ Hessian is not finite (overflowing activations)"))
                        })?;
                        last_factor = Some((id, f));
                    }
                    last_factor.as_ref().map(|(_, f)| f)
                }
                _ => None,
            };
            let e = int4::encode(&name, &v, n, k, group, factor)?;
            if is_table && e.scale_dtype != FloatType::F16 {
                return Err(Error::Options(format!(
                    "{name}: a group scale is outside f16's range: keep an int8 table"
                )));
            }
            out.add(names::scale_of(&name), e.scale_dtype, vec![n, k / group], e.scale_bytes, None);
            out.add(name, FloatType::U8, vec![n, k / 2], e.nibbles, Some(stats(&e.scales)));
        } else if precision == Precision::Int8 || precision.int4_group().is_some() {
            // int8 linear weights per output channel; the word table per row (with int4 too).
            let (q, s) = int8_rows(&v, shape[0], shape[1]);
            out.add(names::scale_of(&name), FloatType::F32, vec![shape[0]], f32_bytes(&s), None);
            out.add(name, FloatType::I8, shape, q, Some(stats(&s)));
        } else {
            if precision == Precision::F16 {
                check_f16_range(&name, &v)?;
            }
            let (dtype, bytes) = half(&v);
            out.add(name, dtype, shape, bytes, None);
        }
    }
    for (&id, s) in scale_ids.iter().zip(scales.values()) {
        out.add(names::input_scale(id), FloatType::F32, vec![1], f32_bytes(&[*s]), None);
    }
    for (&id, s) in &smoothed {
        out.add(names::input_smoothing(id), FloatType::F32, vec![s.len()], f32_bytes(s), None);
    }
    let staging = output::Staging::new(dst)?;
    let dst = staging.path();
    for f in COPIED.iter().map(PathBuf::from).chain(module_files(src)?) {
        let from = src.join(&f);
        if from.exists() {
            let to = dst.join(&f);
            std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| Error::io(&to, e))?;
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    let views: Vec<(String, TensorView)> = out
        .outs
        .iter()
        .map(|o| {
            let d = match o.dtype {
                FloatType::F32 => Dtype::F32,
                FloatType::F16 => Dtype::F16,
                FloatType::Bf16 => Dtype::BF16,
                FloatType::I8 => Dtype::I8,
                FloatType::U8 => Dtype::U8,
            };
            (o.name.clone(), TensorView::new(d, o.shape.clone(), &o.bytes).expect("shape matches bytes"))
        })
        .collect();
    let out_path = dst.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &out_path)
        .map_err(|e| Error::Safetensors { path: out_path.clone(), message: e.to_string() })?;
    let mut source = BTreeMap::new();
    for f in source_files(src)? {
        source.insert(f.file_name().unwrap().to_string_lossy().into_owned(), sha256_file(&f)?);
    }
    for name in
        adapter.map(|a| ["adapter_config.json", "adapter_model.safetensors"].map(|f| a.join(f))).into_iter().flatten()
    {
        source.insert(format!("adapter/{}", name.file_name().unwrap().to_string_lossy()), sha256_file(&name)?);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        tool: format!("e5 {}", env!("CARGO_PKG_VERSION")),
        precision: precision.name().into(),
        group_size: precision.int4_group(),
        scheme: Scheme {
            weights: match (precision, precision.int4_group()) {
                (Precision::Int8, _) => "int8 symmetric per output channel, [-127, 127]".into(),
                (_, Some(g)) => format!(
                    "int4 symmetric per group of {g} input values, [-8, 7]: U8 [n, k/2], k = 2j in the low \
                     nibble of byte j and 2j+1 in the high one, each stored as level + 8; one scale per group \
                     in {{name}}_scale [n, k/{g}], F16 (F32 where a scale is outside f16's normal range: \
                     see the tensor's dtype)"
                ),
                (p, None) => format!("{} storage, f32 arithmetic", p.name()),
            },
            activations: match precision {
                Precision::Int8 if !smoothed.is_empty() => {
                    "int8 symmetric per tensor, static (calibrated input_scale), \
                    smoothed: inputs divided per channel by input_smoothing, weight columns multiplied"
                        .into()
                }
                Precision::Int8 if !scales.is_empty() => {
                    "int8 symmetric per tensor, static (calibrated input_scale)".into()
                }
                Precision::Int8 => "int8 symmetric per token, dynamic (computed at run time)".into(),
                p if p.int4_group().is_some() => {
                    "int8 symmetric per token, dynamic (computed at run time), exact i32 sums per group".into()
                }
                _ => "f32".into(),
            },
            embeddings: match precision {
                p if int4_word_table => {
                    format!(
                        "int4 per group of {} values, as the linear weights (round to nearest)",
                        p.int4_group().unwrap_or(0)
                    )
                }
                p if p == Precision::Int8 || p.int4_group().is_some() => "int8 symmetric per row".into(),
                p => p.name().into(),
            },
        },
        keep_fp32: keep_fp32.to_vec(),
        source,
        tensors: out.entries,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(dst.join(MANIFEST), json).map_err(|e| Error::io(dst.join(MANIFEST), e))?;
    staging.commit()?;
    Ok(manifest)
}

fn source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| p.file_name().is_some_and(|n| n != crate::output::OutputRanges::FILE))
        .collect();
    files.sort();
    Ok(files)
}

/// f16 stores at most ±65504: a larger (finite) f32 weight would become Inf.
fn check_f16_range(name: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| x.abs() > f16::MAX.to_f32()) {
        Some(i) => Err(Error::TensorValue {
            name: name.into(),
            message: format!("value {} at element {i} exceeds f16's range ±65504: use bf16 or --keep-fp32", v[i]),
        }),
        None => Ok(()),
    }
}

/// A JSON object of calibrated static int8 input scales per sub-layer
/// (`{"layer.0.qkv": 0.031, ...}`, as `e5 quant-eval` writes them), each checked.
pub fn read_activation_scales(path: &Path) -> Result<BTreeMap<String, f32>> {
    let text = crate::validate::read_text(path)?;
    parse_activation_scales(&text).map_err(|message| Error::config(path, message))
}

/// [`read_activation_scales`] on the file's text.
pub fn parse_activation_scales(text: &str) -> std::result::Result<BTreeMap<String, f32>, String> {
    let raw: BTreeMap<String, f64> =
        serde_json::from_str(text).map_err(|e| format!("expected {{\"layer.N.sub_layer\": scale}}: {e}"))?;
    raw.into_iter()
        .map(|(k, v)| {
            crate::validate::check_input_scale(&k, v as f32).map_err(|e| e.to_string())?;
            Ok((k, v as f32))
        })
        .collect()
}
