//! `e5 quantize`.

use anyhow::{bail, Context, Result};
use clap::Args;
use e5::quantize::{gptq, quantize_model, read_activation_scales, smooth, QuantizeOptions};
use e5::{resolve_model, Precision};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Source model directory (or Hugging Face id in the local cache).
    #[arg(long, short)]
    model: String,
    /// int8 (per-channel weights, per-row embedding table), f16, bf16, or int4 (group-wise
    /// 4-bit weights, int8 embedding table; int4-g32 / int4-g64 / int4-g128, or int4 with
    /// --group-size).
    #[arg(long, value_parser = |s: &str| Precision::parse(s).map(|_| s.to_string()).ok_or_else(|| format!("unknown precision {s:?}")))]
    precision: String,
    /// int4: input values per weight scale (32, 64 or 128; default 32). It must divide the
    /// input width of every quantized sub-layer.
    #[arg(long, value_name = "N")]
    group_size: Option<usize>,
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
    /// int4 with GPTQ: each weight column's rounding error is compensated in the columns
    /// not yet quantized, from the sub-layer's input correlations on --calibration-texts
    /// (docs/quantization.md, GPTQ). Without it int4 rounds every weight to nearest.
    #[arg(long, requires = "calibration_texts", conflicts_with_all = ["smooth", "activation_scales", "adapter"])]
    gptq: bool,
    /// int4: how the word table is stored: int8 rows (the default) or int4 per group, as the
    /// linear weights (half the table's bytes: 48 MB instead of 96 for e5-small).
    #[arg(long, value_name = "int8|int4", default_value = "int8", value_parser = ["int8", "int4"])]
    word_table: String,
    /// JSONL texts for --smooth or --gptq, as `e5 quant-eval --texts` reads them
    /// ({"text", "kind"}: kind query/short → `query: ` prefix, else `passage: `).
    #[arg(long, value_name = "FILE")]
    calibration_texts: Option<String>,
    /// With --smooth: multiplier (1 to 8) on every searched input scale, so that rows up to
    /// that many times the calibration texts' range keep the static scale (rows beyond it take
    /// their own, never clip; docs/quantization.md, Outlier smoothing).
    #[arg(long, default_value_t = 1.0, requires = "smooth")]
    headroom: f32,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let src = resolve_model(&a.model)?;
    let precision = precision(&a.precision, a.group_size)?;
    if a.word_table == "int4" && (a.smooth || precision.int4_group().is_none()) {
        bail!("--word-table int4 needs an int4 precision");
    }
    if a.calibration_texts.is_some() && !(a.smooth || a.gptq) {
        bail!("--calibration-texts is for --smooth or --gptq");
    }
    let m = match &a.calibration_texts {
        Some(texts) if a.smooth => smoothed(&src, &a, precision, texts),
        _ => {
            let gptq = match &a.calibration_texts {
                Some(texts) if a.gptq => Some(hessians(&src, precision, texts)?),
                _ => None,
            };
            let options = QuantizeOptions {
                precision,
                keep_fp32: a.keep_fp32.clone(),
                activation_scales: a.activation_scales.as_deref().map(read_activation_scales).transpose()?,
                overwrite: a.force,
                adapter: a.adapter.clone(),
                gptq,
                int4_word_table: a.word_table == "int4",
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

/// `--precision` with `--group-size`: `int4 --group-size N` is int4-gN; a group size that
/// contradicts the precision (`int4-g64 --group-size 32`, `int8 --group-size 32`) is refused.
fn precision(name: &str, group: Option<usize>) -> Result<Precision> {
    let named = Precision::parse(name).with_context(|| format!("unknown precision {name:?}"))?;
    let Some(group) = group else { return Ok(named) };
    let int4 =
        Precision::int4(group).with_context(|| format!("--group-size {group}: int4 groups are 32, 64 or 128"))?;
    match named.int4_group() {
        None => bail!("--group-size applies to int4, not {}", named.name()),
        Some(_) if name.trim().eq_ignore_ascii_case("int4") || named == int4 => Ok(int4),
        Some(_) => bail!("--group-size {group} contradicts --precision {name}"),
    }
}

/// The fp32 model's inputs for `--smooth` / `--gptq` calibration.
fn calibration_inputs(texts: &str) -> Result<Vec<crate::quant_eval::corpus::Text>, e5::Error> {
    crate::quant_eval::corpus::read_texts(texts).map_err(|e| e5::Error::Options(format!("{e:#}")))
}

/// `--gptq`: the Hessians of every sub-layer on the calibration texts.
fn hessians(src: &std::path::Path, precision: Precision, texts: &str) -> Result<std::sync::Arc<gptq::Hessians>> {
    if precision.int4_group().is_none() {
        bail!("--gptq writes int4, not {}", precision.name());
    }
    let texts = calibration_inputs(texts)?;
    let inputs: Vec<e5::Input> = texts.iter().map(|t| t.input()).collect();
    let model = e5::Model::load(src, e5::Options::default())?;
    Ok(std::sync::Arc::new(gptq::calibrate(&model, &inputs, 16)?))
}

/// `--smooth`: calibrates on the fp32 model, then writes smoothed static int8.
fn smoothed(
    src: &std::path::Path,
    a: &QuantizeArgs,
    precision: Precision,
    texts: &str,
) -> Result<e5::quantize::Manifest, e5::Error> {
    if precision != Precision::Int8 {
        return Err(e5::Error::Options(format!("--smooth writes int8, not {}", precision.name())));
    }
    let texts = calibration_inputs(texts)?;
    let inputs: Vec<e5::Input> = texts.iter().map(|t| t.input()).collect();
    let model = e5::Model::load(src, e5::Options::default())?;
    let cal = smooth::calibrate(&model, &inputs, &smooth::Search { headroom: a.headroom, ..Default::default() })?;
    smooth::quantize_smoothed(src, &a.out, &cal, a.force)
}
