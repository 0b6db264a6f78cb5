//! PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`), merged into
//! the checkpoint's f32 weights at load, before packing or quantization, as PEFT's
//! `merge_and_unload` does:
//!
//! ```text
//! W' = W + s · B·A      W: [out, in], A (lora_A): [r, in], B (lora_B): [out, r]
//! s  = lora_alpha / r   (lora_alpha / √r with use_rslora)
//! ```
//! `modules_to_save` tensors replace the base's. Tensors outside the encoder e5 runs (the
//! pooler, task heads) are left alone; anything else that does not fit the model (a module
//! it lacks, a shape, a LoRA variant) is an error naming it.

use crate::error::{Error, Result};
use crate::weights::{f32_tensor, Checkpoint};
use e5_arch::names;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Deserialize)]
#[serde(untagged)]
enum Targets {
    /// A regular expression matched against the whole module name.
    Pattern(String),
    /// Module-name suffixes.
    Names(Vec<String>),
}

#[derive(Deserialize)]
struct AdapterConfig {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f32,
    target_modules: Option<Targets>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    use_dora: bool,
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, serde_json::Value>,
    base_model_name_or_path: Option<String>,
}

/// Names a PEFT model gives the base model's modules.
const PEFT_PREFIX: &str = "base_model.model.";
/// Task models nest the encoder (`BertForSequenceClassification.bert`).
const NESTING: [&str; 3] = ["bert.", "roberta.", "model."];

/// The merged tensors by encoder-relative name, and warnings for the caller.
pub(crate) struct Merged {
    pub tensors: HashMap<String, Vec<f32>>,
    pub warnings: Vec<String>,
}

/// Reads the adapter in `dir` and merges it into `ck`'s weights (the model in `model_dir`).
pub(crate) fn merge(dir: &Path, ck: &Checkpoint, model_dir: &Path) -> Result<Merged> {
    let cfg_path = dir.join("adapter_config.json");
    let cfg: AdapterConfig = crate::config::read_json(&cfg_path)?;
    let bad = |msg: String| Error::config(&cfg_path, msg);
    if cfg.peft_type.as_deref().is_some_and(|t| t != "LORA") {
        return Err(bad(format!(
            "peft_type {:?}: only LORA adapters are supported",
            cfg.peft_type.unwrap_or_default()
        )));
    }
    if cfg.use_dora {
        return Err(bad("use_dora: DoRA adapters are not supported".into()));
    }
    if cfg.bias.as_deref().is_some_and(|b| b != "none") {
        return Err(bad(format!("bias {:?}: only adapters without trained biases are supported", cfg.bias.unwrap())));
    }
    if !cfg.rank_pattern.is_empty() || !cfg.alpha_pattern.is_empty() {
        return Err(bad("rank_pattern / alpha_pattern (per-module ranks) are not supported".into()));
    }
    if cfg.r == 0 {
        return Err(bad("r must be positive".into()));
    }
    let scale = if cfg.use_rslora { cfg.lora_alpha / (cfg.r as f32).sqrt() } else { cfg.lora_alpha / cfg.r as f32 };
    let targets = match &cfg.target_modules {
        Some(Targets::Pattern(p)) if p == "all-linear" => None,
        Some(Targets::Pattern(p)) => {
            Some(Err(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| bad(format!("target_modules {p:?}: {e}")))?))
        }
        Some(Targets::Names(n)) => Some(Ok(n.clone())),
        None => None,
    };
    let targeted = |module: &str| match &targets {
        None => true,
        Some(Err(re)) => re.is_match(module),
        Some(Ok(names)) => names.iter().any(|t| module == t || module.ends_with(&format!(".{t}"))),
    };
    let saved = cfg.modules_to_save.clone().unwrap_or_default();
    let is_saved = |module: &str| saved.iter().any(|t| module == t || module.ends_with(&format!(".{t}")));

    let path = dir.join("adapter_model.safetensors");
    if !path.exists() {
        let msg = "no adapter_model.safetensors (an adapter_model.bin must be converted to safetensors)";
        return Err(Error::config(dir, msg));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Safetensors { path: path.clone(), message: e.to_string() })?;
    let base = cfg.base_model_name_or_path.as_deref().unwrap_or("unknown");
    let missing = |name: &str| {
        Error::Adapter(format!(
            "{}: the model has no tensor {name:?} (the adapter was made for {base:?})",
            path.display()
        ))
    };

    let mut tensors = HashMap::new();
    let mut names_in: Vec<String> = st.names().into_iter().map(String::from).collect();
    names_in.sort();
    for key in &names_in {
        let peft_name = key.strip_prefix(PEFT_PREFIX).unwrap_or(key);
        let name = NESTING.iter().find_map(|p| peft_name.strip_prefix(p)).unwrap_or(peft_name);
        if let Some(module) = name.strip_suffix(".lora_A.weight") {
            if !targeted(peft_name.trim_end_matches(".lora_A.weight")) {
                return Err(Error::Adapter(format!(
                    "{}: {module:?} has LoRA weights but target_modules does not name it",
                    path.display()
                )));
            }
            let weight = format!("{module}.weight");
            let shape = ck.shape(&weight).ok_or_else(|| missing(&weight))?;
            if !names::is_encoder_tensor(&weight) {
                continue; // the pooler or a task head: e5 does not run it
            }
            let [out, inp] = shape[..] else { return Err(missing(&weight)) };
            let a = f32_tensor(&st, &path, key, &[cfg.r, inp]).map_err(|e| adapter_error(&path, e))?;
            let b_key = key.replace(".lora_A.weight", ".lora_B.weight");
            let b = f32_tensor(&st, &path, &b_key, &[out, cfg.r]).map_err(|e| adapter_error(&path, e))?;
            let mut w = ck.f32(&weight, &[out, inp])?;
            add_product(&mut w, &b, &a, out, cfg.r, inp, scale);
            tensors.insert(weight, w);
        } else if name.ends_with(".lora_B.weight") {
            let a_key = key.replace(".lora_B.weight", ".lora_A.weight");
            if !names_in.contains(&a_key) {
                return Err(Error::Adapter(format!("{}: {key:?} has no {a_key:?}", path.display())));
            }
        } else if name.contains("lora_") {
            return Err(Error::Adapter(format!("{}: {key:?} is a LoRA variant e5 does not merge", path.display())));
        } else {
            let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
            if !is_saved(module) {
                return Err(Error::Adapter(format!(
                    "{}: {key:?} is neither LoRA nor in modules_to_save",
                    path.display()
                )));
            }
            let shape = ck.shape(name).ok_or_else(|| missing(name))?;
            if !names::is_encoder_tensor(name) {
                continue;
            }
            if name == names::WORD_EMBEDDINGS {
                return Err(Error::Adapter("a saved word-embedding table is not supported".into()));
            }
            tensors.insert(name.to_string(), f32_tensor(&st, &path, key, &shape).map_err(|e| adapter_error(&path, e))?);
        }
    }
    let mut warnings = Vec::new();
    if let Some(base) = cfg.base_model_name_or_path.as_deref().filter(|b| !same_model(b, model_dir)) {
        // Shapes and names fit (checked above); a differently named directory may be a copy.
        warnings.push(format!("the adapter was made for {base:?}, not {}", model_dir.display()));
    }
    if cfg.fan_in_fan_out {
        // PEFT does the same for torch.nn.Linear targets (every linear map of BERT / XLM-R).
        warnings.push("the adapter sets fan_in_fan_out, which PEFT ignores for Linear layers; so does e5".into());
    }
    Ok(Merged { tensors, warnings })
}

/// Whether the model id or path `base` names the model in `dir` (by its directory name, or
/// its repository name in a Hugging Face cache: `models--ORG--NAME/snapshots/REV`).
fn same_model(base: &str, dir: &Path) -> bool {
    let want = base.trim_end_matches('/').rsplit('/').next().unwrap_or(base);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = |p: Option<&Path>| p.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let repo = name(dir.parent().and_then(|p| p.parent())).and_then(|r| r.rsplit("--").next().map(String::from));
    [name(Some(&dir)), repo].into_iter().flatten().any(|n| n == want)
}

/// `w += s · b·a`; `w`: `[n, k]`, `b`: `[n, r]`, `a`: `[r, k]`.
fn add_product(w: &mut [f32], b: &[f32], a: &[f32], n: usize, r: usize, k: usize, s: f32) {
    for i in 0..n {
        let row = &mut w[i * k..(i + 1) * k];
        for (j, &bij) in b[i * r..(i + 1) * r].iter().enumerate() {
            let f = s * bij;
            row.iter_mut().zip(&a[j * k..(j + 1) * k]).for_each(|(x, &y)| *x += f * y);
        }
    }
}

fn adapter_error(path: &Path, e: Error) -> Error {
    Error::Adapter(format!("{}: {e}", path.display()))
}
