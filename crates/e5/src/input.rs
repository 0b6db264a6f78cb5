//! What callers pass in and get back.

use std::borrow::Cow;
use std::ops::Range;

/// How a text is presented to the model. E5 models were trained with `"query: "` and
/// `"passage: "` prefixes, other models with the prompts their
/// `config_sentence_transformers.json` declares; using the right one is worth several points
/// of retrieval quality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A search query: the model's `query` prompt (`"query: "` for E5) is prepended.
    Query,
    /// A document to be retrieved: the `document` (or `passage`) prompt (`"passage: "` for
    /// E5) is prepended.
    Passage,
    /// Embedded exactly as given.
    Raw,
    /// The model's prompt of this name is prepended (an unknown name is an error).
    Prompt(String),
    /// This text is prepended, as a prompt.
    Prefix(String),
}

/// One text to embed, with its kind made explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input<'a> {
    pub kind: InputKind,
    pub text: Cow<'a, str>,
}

impl<'a> Input<'a> {
    pub fn query(text: impl Into<Cow<'a, str>>) -> Self {
        Input { kind: InputKind::Query, text: text.into() }
    }
    pub fn passage(text: impl Into<Cow<'a, str>>) -> Self {
        Input { kind: InputKind::Passage, text: text.into() }
    }
    pub fn raw(text: impl Into<Cow<'a, str>>) -> Self {
        Input { kind: InputKind::Raw, text: text.into() }
    }
    /// The same text, presented with the model's prompt `name`
    /// (`Input::raw(t).with_prompt("web_search_query")`).
    pub fn with_prompt(self, name: impl Into<String>) -> Self {
        Input { kind: InputKind::Prompt(name.into()), ..self }
    }
    /// The same text, presented after `prefix` (an instruction such as
    /// `"Instruct: {task}\nQuery: "`), which counts as a prompt.
    pub fn with_prefix(self, prefix: impl Into<String>) -> Self {
        Input { kind: InputKind::Prefix(prefix.into()), ..self }
    }
}

/// What to do with inputs longer than the model's limit (512 tokens for E5, specials included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongInputs {
    /// Keep the first tokens that fit and report the input as truncated.
    Truncate,
    /// Split the text into windows of `window` tokens (0: as many as fit) overlapping by
    /// `overlap` tokens, and embed each. Every window opens with the input's prompt
    /// (`"query: "`, a declared prompt…), as the whole input would, and under
    /// `include_prompt: false` the prompt is left out of every window's pooling.
    Chunk { window: usize, overlap: usize, output: ChunkOutput },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkOutput {
    /// One vector per input: the token-weighted mean of its chunks, renormalized.
    PerInput,
    /// One vector per chunk, with the character span it covers.
    PerChunk,
}

/// Where a weight table's pages should live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Residency {
    /// Pages fault in on first use (and may be paged out when cold).
    #[default]
    Lazy,
    /// Read the whole embedding table at load, so first calls do not wait on the disk.
    Prefetch,
    /// Prefetch and `mlock` the table so it is never paged out (needs `RLIMIT_MEMLOCK`).
    Lock,
    /// Read the table into private memory at load: nothing of the model file is used
    /// afterwards, so a process survives the file being truncated or rewritten in place.
    /// The choice for long-lived processes (docs/robustness.md).
    Copy,
}

impl Residency {
    pub const ALL: [Residency; 4] = [Residency::Lazy, Residency::Prefetch, Residency::Lock, Residency::Copy];

    pub fn name(self) -> &'static str {
        match self {
            Residency::Lazy => "lazy",
            Residency::Prefetch => "prefetch",
            Residency::Lock => "lock",
            Residency::Copy => "copy",
        }
    }

    pub fn parse(s: &str) -> Option<Residency> {
        Residency::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The names `parse` takes, for error messages.
    pub fn names() -> String {
        Residency::ALL.map(|r| r.name()).join(", ")
    }
}

/// Numeric format of the encoder's linear layers. LayerNorm, softmax, the residual stream
/// and pooling always stay in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// The reference.
    #[default]
    Fp32,
    /// Weights stored as IEEE half, computed in f32.
    F16,
    /// Weights stored as bfloat16. On AMD CPUs with AVX512-BF16 the activations are
    /// rounded to bfloat16 too and multiplied by `vdpbf16ps` (exact products, f32 sums);
    /// elsewhere (Intel's measured faster so) the weights are widened to f32 and computed
    /// in f32 (`E5_BF16=dot|widen` forces either).
    Bf16,
    /// Dynamic quantization: int8 weights per output channel, activations per token at
    /// run time, exact i32 accumulation, f32 epilogue.
    Int8,
    /// Group-wise int4 weights: symmetric 4-bit with one scale (an f16 value where it fits) per
    /// 32 (64, 128) consecutive input values of an output channel; activations int8 per token
    /// at run time, exact i32 accumulation per group. Quantized at load from f32, f16 or bf16
    /// weights, or read as written by `e5 quantize --precision int4`.
    Int4G32,
    Int4G64,
    Int4G128,
}

impl Precision {
    pub const ALL: [Precision; 7] = [
        Precision::Fp32,
        Precision::F16,
        Precision::Bf16,
        Precision::Int8,
        Precision::Int4G32,
        Precision::Int4G64,
        Precision::Int4G128,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::Int4G32 => "int4-g32",
            Precision::Int4G64 => "int4-g64",
            Precision::Int4G128 => "int4-g128",
        }
    }

    /// A name of [`Precision::name`], any case; `int4` alone is `int4-g32`.
    pub fn parse(s: &str) -> Option<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int4" => Some(Precision::Int4G32),
            s => Precision::ALL.into_iter().find(|p| p.name() == s),
        }
    }

    /// The names `parse` takes, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
        names.join(", ")
    }

    /// The int4 precision with `group` input values per weight scale (32, 64 or 128).
    pub fn int4(group: usize) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.int4_group() == Some(group))
    }

    /// Input values per weight scale of the int4 precisions.
    pub fn int4_group(self) -> Option<usize> {
        match self {
            Precision::Int4G32 => Some(32),
            Precision::Int4G64 => Some(64),
            Precision::Int4G128 => Some(128),
            _ => None,
        }
    }
}

/// Where the encoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// NVIDIA GPU `n` (needs the `cuda` feature and a driver; fp16 unless `Precision::Bf16`).
    Cuda(usize),
}

/// Loading and embedding options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads; `None` uses rayon's global pool.
    pub threads: Option<usize>,
    pub long_inputs: LongInputs,
    /// L2-normalize outputs; `None` follows the model (`modules.json`), default on.
    pub normalize: Option<bool>,
    pub residency: Residency,
    /// Largest number of tokens run through the encoder at once (bounds memory).
    pub max_batch_tokens: usize,
    /// Force an instruction set instead of `E5_ISA` / detection.
    pub isa: Option<e5_kernels::Isa>,
    /// Format of the linear layers.
    pub precision: Precision,
    /// Sub-layers kept in f32 whatever `precision` says (mixed precision), named
    /// `layer.{i}.{qkv|attn_out|ffn_up|ffn_down}`.
    pub keep_fp32: Vec<String>,
    /// Static int8: a calibrated input scale per sub-layer (`x ≈ q·s`, `q ∈ [-127, 127]`),
    /// keyed like `keep_fp32`; sub-layers without one quantize activations per token.
    pub activation_scales: Option<std::sync::Arc<std::collections::BTreeMap<String, f32>>>,
    /// Smoothed static int8 (SmoothQuant): per-input-channel factors `s` of a sub-layer
    /// (`[k]`, keyed like `keep_fp32`; each needs its activation scale, which is then the
    /// scale of `x / s`, and a floor: a row beyond its range takes its own scale rather than
    /// clip). The sub-layer's weight columns are multiplied by `s` before they are quantized.
    /// [`crate::quantize::smooth::calibrate`] finds both.
    pub smoothing: Option<std::sync::Arc<std::collections::BTreeMap<String, Vec<f32>>>>,
    pub device: Device,
    /// Keep the first `n` components of each vector (L2-renormalized when the model
    /// normalizes), for Matryoshka-trained models.
    pub dimensions: Option<usize>,
    /// A PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`),
    /// merged into the weights at load.
    pub adapter: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: None,
            long_inputs: LongInputs::Truncate,
            normalize: None,
            residency: Residency::Lazy,
            max_batch_tokens: 4096,
            isa: None,
            precision: Precision::Fp32,
            keep_fp32: Vec::new(),
            activation_scales: None,
            smoothing: None,
            device: Device::Cpu,
            dimensions: None,
            adapter: None,
        }
    }
}

/// One output vector's provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowInfo {
    /// Index of the input this row embeds.
    pub input: usize,
    /// Tokens embedded, specials included.
    pub tokens: usize,
    /// Tokens of the whole input, specials included, before truncation or chunking.
    pub input_tokens: usize,
    /// The input was longer than the model's limit and only its start was embedded.
    pub truncated: bool,
    /// Characters of the input text (without the prefix) covered by this row.
    pub chars: Range<usize>,
}

/// Embeddings of a call: row `i` is `data[i·dim..(i+1)·dim]`.
#[derive(Clone, Debug, Default)]
pub struct Embeddings {
    pub dim: usize,
    pub data: Vec<f32>,
    pub rows: Vec<RowInfo>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn vectors(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
    /// Indices of the inputs that were truncated.
    pub fn truncated(&self) -> impl Iterator<Item = usize> + '_ {
        self.rows.iter().filter(|r| r.truncated).map(|r| r.input)
    }
}

/// Tokens of one input as the model sees them.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Character offsets into the text fed to the tokenizer (prefix included).
    pub offsets: Vec<(usize, usize)>,
    /// Token count before truncation.
    pub untruncated: usize,
}
