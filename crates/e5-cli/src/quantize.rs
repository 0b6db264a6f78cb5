//! `e5 quantize`.

use anyhow::{Context, Result};
use clap::Args;
use e5::quantize::{quantize_model, read_activation_scales, smooth, QuantizeOptions};
use e5::{resolve_model, Precision};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Source model directory (or Hugging Face id in the local cache).
    #[arg(long, short)]
    model: String,
    /// int8 (per-channel weights, per-row embedding table), f16 or bf16.
    #[arg(long, value_parser = |s: &str| Precision::parse(s).ok_or_else(|| format!("unknown precision {s:?}")))]
    precision: Precision,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Sub-layers kept in f32, e.g. `layer.11.ffn_down`; repeat or comma-separate.
    #[arg(long, value_delimiter = ',')]
    keep_fp32: Vec<String>,
    /// Static int8: a JSON object of calibrated input scales per sub-layer
    /// (`{"layer.0.qkv": 0.031, ...}`, as `e5 quant-eval` writes them).
    #[arg(long)]
    activation_scales: Option<PathBuf>,
    /// Replace an existing non-empty output directory (never the source model).
    #[arg(long)]
    force: bool,
    /// A PEFT LoRA adapter directory, merged into the weights before quantizing.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Smoothed static int8 (SmoothQuant): calibrate per-channel smoothing factors and input
    /// scales on --calibration-texts, and store them with the smoothed int8 weights.
    #[arg(long, requires = "calibration_texts", conflicts_with_all = ["activation_scales", "keep_fp32", "adapter"])]
    smooth: bool,
    /// JSONL texts for --smooth, as `e5 quant-eval --texts` reads them ({"text", "kind"}:
    /// kind query/short → `query: ` prefix, else `passage: `).
    #[arg(long, value_name = "FILE", requires = "smooth")]
    calibration_texts: Option<String>,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let src = resolve_model(&a.model)?;
    let m = match &a.calibration_texts {
        Some(texts) => smoothed(&src, &a, texts),
        None => {
            let options = QuantizeOptions {
                precision: a.precision,
                keep_fp32: a.keep_fp32.clone(),
                activation_scales: a.activation_scales.as_deref().map(read_activation_scales).transpose()?,
                overwrite: a.force,
                adapter: a.adapter.clone(),
                ..QuantizeOptions::default()
            };
            quantize_model(&src, &a.out, &options)
        }
    }
    .with_context(|| format!("quantizing {}", a.model))?;
    let bytes = std::fs::metadata(a.out.join("model.safetensors"))?.len();
    let _ = writeln!(
        std::io::stderr(),
        "e5: wrote {} ({} tensors, {:.1} MiB, precision {}; manifest {})",
        a.out.display(),
        m.tensors.len(),
        bytes as f64 / (1 << 20) as f64,
        m.precision,
        e5::quantize::MANIFEST
    );
    Ok(())
}

/// `--smooth`: calibrates on the fp32 model, then writes smoothed static int8.
fn smoothed(src: &std::path::Path, a: &QuantizeArgs, texts: &str) -> Result<e5::quantize::Manifest, e5::Error> {
    if a.precision != Precision::Int8 {
        return Err(e5::Error::Options(format!("--smooth writes int8, not {}", a.precision.name())));
    }
    let texts = crate::quant_eval::corpus::read_texts(texts).map_err(|e| e5::Error::Options(format!("{e:#}")))?;
    let inputs: Vec<e5::Input> = texts.iter().map(|t| t.input()).collect();
    let model = e5::Model::load(src, e5::Options::default())?;
    let cal = smooth::calibrate(&model, &inputs, &smooth::Search::default())?;
    smooth::quantize_smoothed(src, &a.out, &cal, a.force)
}
