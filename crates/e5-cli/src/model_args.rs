//! Flags shared by every subcommand that loads a model.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use e5::{ChunkOutput, Device, InputKind, LongInputs, Model, Options, Precision, Residency};

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model directory (HF layout) or Hugging Face id found in the local HF cache.
    #[arg(long, short)]
    pub model: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Embedding table: lazy, prefetch (read at load), lock (mlock) — read in place from the
    /// mapped file — or copy (private memory; survives the file being rewritten in place).
    #[arg(long, value_enum, default_value_t = ResidencyArg::Lazy)]
    pub residency: ResidencyArg,
    /// Linear-layer format: fp32, f16, bf16 (half-width weights; bf16 dot products with f32 sums on AMD CPUs with AVX512-BF16, else widened to f32 (faster on Intel); `E5_BF16=dot|widen` forces), int8 (dynamic), or int4-g32 / int4-g64 / int4-g128 (group-wise 4-bit weights, quantized at load unless `e5 quantize` wrote them; `int4` = int4-g32). Default: fp32 on the CPU, f16 on CUDA.
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<Precision>,
    /// Sub-layers kept in f32 (mixed precision), e.g. `layer.11.ffn_down`; repeat or comma-separate.
    #[arg(long, value_delimiter = ',')]
    pub keep_fp32: Vec<String>,
    /// Where the encoder runs: cpu, or cuda / cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: Device,
    /// Keep the first N components of each vector, renormalized (Matryoshka-trained models).
    #[arg(long, value_name = "N")]
    pub dimensions: Option<usize>,
    /// A PEFT LoRA adapter directory, merged into the weights at load.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<std::path::PathBuf>,
}

fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device {s:?} (expected cpu, cuda or cuda:N)")),
    }
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("unknown precision {s:?} (expected one of {})", Precision::names()))
}

#[derive(Args, Clone)]
pub struct LongArgs {
    /// Inputs over the model's limit: truncate (reported on stderr) or chunk.
    #[arg(long, value_enum, default_value_t = LongArg::Truncate)]
    pub long: LongArg,
    /// Chunk window in tokens (0: the model's limit).
    #[arg(long, default_value_t = 0)]
    pub chunk_window: usize,
    /// Tokens shared by consecutive chunks.
    #[arg(long, default_value_t = 64)]
    pub chunk_overlap: usize,
    /// With --long chunk: one vector per input (token-weighted mean) or per chunk.
    #[arg(long, value_enum, default_value_t = ChunkOutputArg::Input)]
    pub chunk_output: ChunkOutputArg,
}

#[derive(ValueEnum, Clone, Copy)]
pub enum ResidencyArg {
    Lazy,
    Prefetch,
    Lock,
    Copy,
}

impl ResidencyArg {
    pub fn value(self) -> Residency {
        match self {
            ResidencyArg::Lazy => Residency::Lazy,
            ResidencyArg::Prefetch => Residency::Prefetch,
            ResidencyArg::Lock => Residency::Lock,
            ResidencyArg::Copy => Residency::Copy,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum LongArg {
    Truncate,
    Chunk,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutputArg {
    Input,
    Chunk,
}

#[derive(ValueEnum, Clone, Copy)]
pub enum KindArg {
    Raw,
    Query,
    Passage,
}

/// How texts are presented: a kind, a declared prompt, or a prompt text.
#[derive(Args, Clone)]
pub struct KindArgs {
    /// raw (as is), query or passage (the model's query / document prompt: "query: " /
    /// "passage: " for E5). Default: the model's default prompt if it declares one, else raw.
    #[arg(long, value_enum, conflicts_with_all = ["prompt_name", "prompt"])]
    pub kind: Option<KindArg>,
    /// A prompt the model declares (`e5 info` lists them).
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_name: Option<String>,
    /// A text prepended as the prompt, e.g. an instruction.
    #[arg(long)]
    pub prompt: Option<String>,
}

impl KindArgs {
    /// The kind for `model`; an unknown prompt name is an error.
    pub fn kind(&self, model: &Model) -> Result<InputKind> {
        let prompts = &model.config().prompts;
        Ok(match (&self.kind, &self.prompt_name, &self.prompt) {
            (Some(k), ..) => k.value(),
            (None, Some(name), _) => {
                if !prompts.named.contains_key(name) {
                    let known: Vec<&str> = prompts.named.keys().map(|k| k.as_str()).collect();
                    anyhow::bail!("--prompt-name {name:?}: the model declares {}", list_or_none(&known));
                }
                InputKind::Prompt(name.clone())
            }
            (None, None, Some(text)) => InputKind::Prefix(text.clone()),
            (None, None, None) => model.default_kind(),
        })
    }

    /// The flags as given (for `--resume` job descriptions).
    pub fn describe(&self) -> String {
        let kind = self.kind.map(|k| format!("{:?}", k.value()));
        format!("kind {kind:?}, prompt name {:?}, prompt {:?}", self.prompt_name, self.prompt)
    }
}

impl KindArg {
    pub fn value(self) -> InputKind {
        match self {
            KindArg::Raw => InputKind::Raw,
            KindArg::Query => InputKind::Query,
            KindArg::Passage => InputKind::Passage,
        }
    }
}

pub fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "no prompts".into()
    } else {
        items.join(", ")
    }
}

impl LongArgs {
    pub fn long_inputs(&self) -> LongInputs {
        match self.long {
            LongArg::Truncate => LongInputs::Truncate,
            LongArg::Chunk => LongInputs::Chunk {
                window: self.chunk_window,
                overlap: self.chunk_overlap,
                output: match self.chunk_output {
                    ChunkOutputArg::Input => ChunkOutput::PerInput,
                    ChunkOutputArg::Chunk => ChunkOutput::PerChunk,
                },
            },
        }
    }
}

impl ModelArgs {
    pub fn residency_name(&self) -> &'static str {
        match self.residency {
            ResidencyArg::Lazy => "lazy",
            ResidencyArg::Prefetch => "prefetch",
            ResidencyArg::Lock => "lock",
            ResidencyArg::Copy => "copy",
        }
    }

    /// `--precision`, else the device's own default: the CPU computes in fp32, the CUDA
    /// backend in f16 (it has no fp32 path, and refuses one rather than run another).
    pub fn precision(&self) -> Precision {
        self.precision.unwrap_or(match self.device {
            Device::Cpu => Precision::Fp32,
            Device::Cuda(_) => Precision::F16,
        })
    }

    pub fn options(&self) -> Options {
        Options {
            threads: self.threads,
            residency: self.residency.value(),
            precision: self.precision(),
            keep_fp32: self.keep_fp32.clone(),
            device: self.device,
            dimensions: self.dimensions,
            adapter: self.adapter.clone(),
            ..Options::default()
        }
    }

    /// Loads the model and prints its warnings on stderr.
    pub fn load(&self, options: Options) -> Result<Model> {
        let model = Model::load(&self.model, options).with_context(|| format!("loading model {}", self.model))?;
        for w in model.warnings() {
            eprintln!("e5: warning: {w}");
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        model: ModelArgs,
    }

    fn precision(args: &[&str]) -> Precision {
        Cli::try_parse_from([&["e5", "--model", "m"], args].concat()).unwrap().model.precision()
    }

    #[test]
    fn the_default_precision_is_the_devices_own() {
        assert_eq!(precision(&[]), Precision::Fp32);
        assert_eq!(precision(&["--device", "cuda"]), Precision::F16);
        assert_eq!(precision(&["--device", "cuda:1"]), Precision::F16);
        assert_eq!(precision(&["--device", "cuda", "--precision", "bf16"]), Precision::Bf16);
        assert_eq!(precision(&["--precision", "int8"]), Precision::Int8);
    }
}
