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
    /// Linear-layer format: fp32, f16, bf16 (half-width weights, f32 math), int8 (dynamic), or int4-g32 / int4-g64 / int4-g128 (group-wise 4-bit weights quantized at load; `int4` = int4-g32).
    #[arg(long, default_value = "fp32", value_parser = parse_precision)]
    pub precision: Precision,
    /// Sub-layers kept in f32 (mixed precision), e.g. `layer.11.ffn_down`; repeat or comma-separate.
    #[arg(long, value_delimiter = ',')]
    pub keep_fp32: Vec<String>,
    /// Where the encoder runs: cpu, or cuda / cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: Device,
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

impl KindArg {
    pub fn kind(self) -> InputKind {
        match self {
            KindArg::Raw => InputKind::Raw,
            KindArg::Query => InputKind::Query,
            KindArg::Passage => InputKind::Passage,
        }
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

    pub fn options(&self) -> Options {
        Options {
            threads: self.threads,
            residency: match self.residency {
                ResidencyArg::Lazy => Residency::Lazy,
                ResidencyArg::Prefetch => Residency::Prefetch,
                ResidencyArg::Lock => Residency::Lock,
                ResidencyArg::Copy => Residency::Copy,
            },
            precision: self.precision,
            keep_fp32: self.keep_fp32.clone(),
            device: self.device,
            ..Options::default()
        }
    }

    pub fn load(&self, options: Options) -> Result<Model> {
        Model::load(&self.model, options).with_context(|| format!("loading model {}", self.model))
    }
}
