//! The sentence-transformers files of a model directory: `modules.json` and each module's
//! config (`1_Pooling/config.json`, `2_Dense/config.json`), `sentence_bert_config.json`,
//! `config_sentence_transformers.json`, and the Matryoshka dims a `README.md` model card
//! declares. Both spellings of pooling are read: the legacy `pooling_mode_*` booleans and the
//! `"pooling_mode"` string (or list) sentence-transformers 6 writes. A module or setting e5
//! cannot honour is an error, never a silently different vector.

use crate::config::{read_json, read_optional};
use crate::error::{Error, Result};
use e5_arch::{Activation, DenseSpec, Head, Pooling, PoolingMode, Prompts};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct StModule {
    #[serde(default)]
    idx: usize,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ModeSpec {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StPooling {
    #[serde(alias = "word_embedding_dimension")]
    embedding_dimension: Option<usize>,
    pooling_mode: Option<ModeSpec>,
    include_prompt: Option<bool>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct StDense {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    activation_function: Option<String>,
    module_input_name: Option<String>,
    module_output_name: Option<String>,
    #[serde(default)]
    use_residual: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct StBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    /// A float: tokenizers without a limit write 1e30.
    model_max_length: Option<f64>,
}

#[derive(Deserialize)]
struct StPrompts {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    default_prompt_name: Option<String>,
}

/// What the sentence-transformers files say; E5's defaults where a file is absent.
pub(crate) struct SentenceTransformers {
    pub head: Head,
    pub prompts: Prompts,
    /// `max_seq_length`, else the tokenizer's `model_max_length`.
    pub max_seq_length: Option<usize>,
}

pub(crate) fn read(dir: &Path, hidden: usize) -> Result<SentenceTransformers> {
    let mut head = match read_optional::<Vec<StModule>>(&dir.join("modules.json"))? {
        Some(modules) => read_modules(dir, modules, hidden)?,
        None => Head::default(),
    };
    head.matryoshka_dims = matryoshka_dims(dir);
    let max_seq_length = match read_optional::<StBertConfig>(&dir.join("sentence_bert_config.json"))? {
        Some(StBertConfig { max_seq_length: Some(0) }) => {
            return Err(Error::config(dir.join("sentence_bert_config.json"), "max_seq_length must be positive"))
        }
        Some(StBertConfig { max_seq_length: Some(n) }) => Some(n),
        _ => read_optional::<TokenizerConfig>(&dir.join("tokenizer_config.json"))?
            .and_then(|t| t.model_max_length)
            .filter(|n| (1.0..1e9).contains(n))
            .map(|n| n as usize),
    };
    let mut prompts = Prompts::default();
    let path = dir.join("config_sentence_transformers.json");
    if let Some(p) = read_optional::<StPrompts>(&path)? {
        if let Some(q) = p.prompts.get("query") {
            prompts.query = q.clone();
        }
        if let Some(d) = p.prompts.get("document").or(p.prompts.get("passage")) {
            prompts.passage = d.clone();
        }
        if let Some(name) = &p.default_prompt_name {
            if !p.prompts.contains_key(name) {
                return Err(Error::config(&path, format!("default_prompt_name {name:?} names no declared prompt")));
            }
        }
        prompts.named = p.prompts;
        prompts.default = p.default_prompt_name;
    }
    Ok(SentenceTransformers { head, prompts, max_seq_length })
}

/// `Transformer` (at the root) → `Pooling` → `Dense`* → `Normalize`?, in `idx` order.
fn read_modules(dir: &Path, mut modules: Vec<StModule>, hidden: usize) -> Result<Head> {
    let path = dir.join("modules.json");
    modules.sort_by_key(|m| m.idx);
    let class = |m: &StModule| m.kind.rsplit('.').next().unwrap_or_default().to_string();
    let mut it = modules.iter().peekable();
    match it.next() {
        Some(m) if class(m) == "Transformer" && m.path.is_empty() => {}
        Some(m) if class(m) == "Transformer" => {
            let msg =
                format!("the Transformer module lives in {:?}; e5 reads the encoder from the model directory", m.path);
            return Err(Error::config(&path, msg));
        }
        _ => return Err(Error::config(&path, "the first module must be the Transformer")),
    }
    let pooling = match it.next() {
        Some(m) if class(m) == "Pooling" => read_pooling(&dir.join(&m.path).join("config.json"), hidden)?,
        _ => return Err(Error::config(&path, "the Transformer must be followed by a Pooling module")),
    };
    let mut head = Head { pooling, ..Head::default() };
    head.normalize = false;
    let mut width = head.width(hidden);
    for m in it {
        match class(m).as_str() {
            "Dense" if !head.normalize => {
                let d = read_dense(dir, &m.path, width)?;
                width = d.out_features;
                head.dense.push(d);
            }
            "Normalize" if !head.normalize => head.normalize = true,
            "Dense" | "Normalize" => return Err(Error::config(&path, "Normalize must be the last module")),
            _ => {
                let msg =
                    format!("module {} is not supported (e5 runs Transformer, Pooling, Dense, Normalize)", m.kind);
                return Err(Error::config(&path, msg));
            }
        }
    }
    Ok(head)
}

fn read_pooling(path: &Path, hidden: usize) -> Result<Pooling> {
    let p: StPooling = read_json(path)?;
    if let Some(d) = p.embedding_dimension.filter(|&d| d != hidden) {
        return Err(Error::config(
            path,
            format!("embedding_dimension {d} differs from the encoder's hidden_size {hidden}"),
        ));
    }
    let mut legacy = Vec::new();
    for mode in PoolingMode::ALL {
        match p.rest.get(mode.legacy_key()) {
            None | Some(serde_json::Value::Bool(false)) => {}
            Some(serde_json::Value::Bool(true)) => legacy.push(mode),
            Some(v) => {
                return Err(Error::config(path, format!("{} must be true or false, not {v}", mode.legacy_key())))
            }
        }
    }
    let modes = match p.pooling_mode {
        Some(spec) => {
            let names = match spec {
                ModeSpec::One(s) => vec![s],
                ModeSpec::Many(v) => v,
            };
            let modes = names
                .iter()
                .map(|n| {
                    PoolingMode::parse(n).ok_or_else(|| {
                        let known: Vec<&str> = PoolingMode::ALL.iter().map(|m| m.name()).collect();
                        Error::config(path, format!("unknown pooling_mode {n:?} (known: {})", known.join(", ")))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if modes.is_empty() {
                return Err(Error::config(path, "pooling_mode names no mode"));
            }
            let mut sorted = modes.clone();
            sorted.sort_by_key(|m| PoolingMode::ALL.iter().position(|x| x == m));
            sorted.dedup();
            if !legacy.is_empty() && legacy != sorted {
                let msg = format!("pooling_mode {names:?} contradicts the pooling_mode_* keys {legacy:?}");
                return Err(Error::config(path, msg));
            }
            modes
        }
        // sentence-transformers 6 reads a legacy file with no key set as mean pooling.
        None if legacy.is_empty() => vec![PoolingMode::Mean],
        None => legacy,
    };
    Ok(Pooling { modes, include_prompt: p.include_prompt.unwrap_or(true) })
}

fn read_dense(dir: &Path, module: &str, width: usize) -> Result<DenseSpec> {
    let path = dir.join(module).join("config.json");
    let d: StDense = read_json(&path)?;
    if d.in_features != width {
        return Err(Error::config(
            &path,
            format!("in_features {} but the previous module outputs {width}", d.in_features),
        ));
    }
    if d.out_features == 0 {
        return Err(Error::config(&path, "out_features must be positive"));
    }
    let names = [d.module_input_name.as_deref(), d.module_output_name.as_deref()];
    if names.iter().flatten().any(|n| *n != "sentence_embedding") {
        return Err(Error::config(&path, "only a Dense over sentence_embedding is supported"));
    }
    if d.use_residual {
        return Err(Error::config(&path, "use_residual is not supported"));
    }
    // sentence-transformers' default activation is Tanh.
    let class = d.activation_function.as_deref().unwrap_or("torch.nn.modules.activation.Tanh");
    let activation = Activation::parse(class.rsplit('.').next().unwrap_or_default())
        .filter(|_| class.starts_with("torch."))
        .ok_or_else(|| {
            Error::config(
                &path,
                format!("activation_function {class:?} is not supported (Identity, Tanh, ReLU, GELU, Sigmoid, SiLU)"),
            )
        })?;
    Ok(DenseSpec {
        path: module.to_string(),
        in_features: d.in_features,
        out_features: d.out_features,
        bias: d.bias,
        activation,
    })
}

/// The `matryoshka_dims` a sentence-transformers model card (`README.md`) lists, if any.
fn matryoshka_dims(dir: &Path) -> Option<Vec<usize>> {
    let card = std::fs::read_to_string(dir.join("README.md")).ok()?;
    let at = card.find("\"matryoshka_dims\"")?;
    let list = &card[at..];
    let (open, close) = (list.find('[')?, list.find(']')?);
    let dims: Vec<usize> =
        list.get(open + 1..close)?.split(',').map(|s| s.trim().parse().ok()).collect::<Option<_>>()?;
    (!dims.is_empty()).then_some(dims)
}
