//! `e5 calibrate-output`: the per-dimension ranges of a model's output vectors over
//! representative texts, stored beside the model (`output_ranges.safetensors`), which
//! `e5 embed --output-precision int8|uint8` (and the library and Python) quantize with.

use crate::model_args::{KindArgs, ModelArgs};
use anyhow::{Context, Result};
use clap::Args;
use e5::{Input, OutputRanges};

#[derive(Args)]
pub struct CalibrateOutputArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    kind: KindArgs,
    /// Calibration texts, one per line (`-`: stdin): a sample of the documents the vectors
    /// will be made of (E5: pass `--kind passage`).
    #[arg(long)]
    texts: String,
    /// The texts are JSONL: a JSON string, or an object with a "text" string, per line.
    #[arg(long)]
    jsonl: bool,
    /// Calibrate for `e5 embed --no-normalize` (raw pooled vectors).
    #[arg(long)]
    no_normalize: bool,
    /// Replace ranges the model directory already has.
    #[arg(long)]
    force: bool,
    /// Texts per call to the encoder.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

/// sentence-transformers warns below this many calibration vectors.
const FEW_VECTORS: usize = 100;

pub fn run(a: CalibrateOutputArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be positive");
    let texts = crate::io::parse_texts(&crate::io::read_all(&a.texts)?, a.jsonl)
        .with_context(|| format!("reading {}", a.texts))?;
    anyhow::ensure!(!texts.is_empty(), "{}: no calibration texts", a.texts);
    let mut options = a.model.options();
    if a.no_normalize {
        options.normalize = Some(false);
    }
    let model = a.model.load(options)?;
    let info = model.info();
    let path = info.dir.join(OutputRanges::FILE);
    anyhow::ensure!(a.force || !path.exists(), "{} exists (pass --force to replace it)", path.display());
    let kind = a.kind.kind(&model)?;
    let mut ranges = OutputRanges::empty(model.dim(), info.normalize);
    let mut truncated = 0;
    for (b, batch) in texts.chunks(a.batch_size).enumerate() {
        let inputs: Vec<Input> = batch.iter().map(|t| Input { kind: kind.clone(), text: t.as_str().into() }).collect();
        let emb = model.embed(&inputs).map_err(|e| match e {
            e5::Error::Input { index, message } => anyhow::anyhow!("text {}: {message}", b * a.batch_size + index + 1),
            e => e.into(),
        })?;
        truncated += emb.truncated().count();
        ranges.observe(&emb.data)?;
    }
    if truncated > 0 {
        eprintln!("e5: {truncated} calibration text(s) longer than the model's limit were truncated");
    }
    if ranges.vectors < FEW_VECTORS {
        eprintln!("e5: warning: ranges from {} vectors; {FEW_VECTORS} or more give steadier ones", ranges.vectors);
    }
    let written = ranges.save(&info.dir)?;
    eprintln!(
        "e5: wrote {} ({} vectors, {} dimensions, {})",
        written.display(),
        ranges.vectors,
        ranges.dim(),
        if ranges.normalized { "normalized" } else { "not normalized" }
    );
    Ok(())
}
