//! `e5 embed`.

use crate::io::*;
use crate::model_args::{ChunkOutputArg, KindArg, LongArg, LongArgs, ModelArgs};
use anyhow::Result;
use clap::{Args, ValueEnum};
use e5::Input;
use std::io::{IsTerminal, Write};

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    long: LongArgs,
    /// How texts are presented: raw (as is), query ("query: " prefix) or passage ("passage: ").
    #[arg(long, value_enum, default_value_t = KindArg::Raw)]
    kind: KindArg,
    /// Input file, `-` for stdin.
    #[arg(long, short, default_value = "-")]
    input: String,
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    input_format: InputFormat,
    /// Output file, `-` for stdout.
    #[arg(long, short, default_value = "-")]
    output: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
    /// Texts per call to the encoder.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Do not L2-normalize the vectors.
    #[arg(long)]
    no_normalize: bool,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum InputFormat {
    Text,
    Jsonl,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Jsonl,
    Npy,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be positive");
    let per_chunk = a.long.long == LongArg::Chunk && a.long.chunk_output == ChunkOutputArg::Chunk;
    anyhow::ensure!(
        !(per_chunk && a.format == OutputFormat::Npy),
        "--chunk-output chunk writes JSONL rows with spans; use --format jsonl"
    );
    let texts = parse_texts(&read_all(&a.input)?, a.input_format == InputFormat::Jsonl)?;
    let mut options = a.model.options();
    options.long_inputs = a.long.long_inputs();
    if a.no_normalize {
        options.normalize = Some(false);
    }
    let model = a.model.load(options)?;
    let mut out = open_output(&a.output)?;
    if a.format == OutputFormat::Npy {
        out.write_all(&npy_header(texts.len(), model.dim()))?;
    }
    let progress = (std::io::stderr().is_terminal() && texts.len() > 256).then(|| {
        let bar = indicatif::ProgressBar::new(texts.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} texts  {per_sec}  eta {eta}").unwrap(),
        );
        bar
    });
    for (b, batch) in texts.chunks(a.batch_size).enumerate() {
        let base = b * a.batch_size;
        let inputs: Vec<Input> = batch.iter().map(|t| Input { kind: a.kind.kind(), text: t.as_str().into() }).collect();
        let emb = model.embed(&inputs)?;
        for (row, v) in emb.rows.iter().zip(emb.vectors()) {
            let line = base + row.input + 1;
            if row.truncated {
                eprintln!(
                    "e5: input on line {line} truncated from {} to {} tokens (use --long chunk to embed all of it)",
                    row.input_tokens, row.tokens
                );
            }
            match (a.format, per_chunk) {
                (OutputFormat::Npy, _) => write_npy_row(&mut out, v)?,
                (OutputFormat::Jsonl, false) => write_jsonl_row(&mut out, v)?,
                (OutputFormat::Jsonl, true) => {
                    let obj = serde_json::json!({ "input": line - 1, "chars": [row.chars.start, row.chars.end], "tokens": row.tokens, "embedding": v });
                    serde_json::to_writer(&mut out, &obj)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        if let Some(p) = &progress {
            p.inc(batch.len() as u64);
        }
    }
    out.flush()?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    Ok(())
}
