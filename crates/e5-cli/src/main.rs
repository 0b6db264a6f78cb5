//! `e5`: embed text with multilingual-e5 (or any BERT / XLM-R encoder) from the command line.

mod bench;
mod calibrate_output;
mod embed;
mod info;
mod io;
mod model_args;
mod output;
mod parquet_io;
mod parts;
mod progress;
mod quant_eval;
mod quantize;
mod records;
mod serve;
mod sinks;
mod tokenize;

use clap::{Parser, Subcommand};
use std::io::Write;

#[derive(Parser)]
#[command(
    name = "e5",
    version,
    about = "Fast, faithful CPU text embeddings for multilingual-e5 and other BERT / XLM-R encoders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts (lines, JSONL or Parquet) into vectors (JSONL, .npy or Parquet), streaming.
    Embed(embed::EmbedArgs),
    /// Print token ids and tokens.
    Tokenize(tokenize::TokenizeArgs),
    /// Print architecture, parameter count, dtype and memory.
    Info(info::InfoArgs),
    /// Measure latency and throughput on a workload; prints JSON.
    Bench(bench::BenchArgs),
    /// Write an int8 / f16 / bf16 copy of a model that loads with no re-quantization.
    Quantize(quantize::QuantizeArgs),
    /// Store the per-dimension ranges of the model's vectors over calibration texts, for
    /// `embed --output-precision int8|uint8`.
    CalibrateOutput(calibrate_output::CalibrateOutputArgs),
    /// Measure what quantization does to embeddings, layer by layer.
    QuantEval(quant_eval::QuantEvalArgs),
    /// Serve embeddings over HTTP (OpenAI- and TEI-compatible).
    Serve(serve::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(a) => embed::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Info(a) => info::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::CalibrateOutput(a) => calibrate_output::run(a),
        Command::QuantEval(a) => quant_eval::run(a),
        Command::Serve(a) => serve::run(a),
    };
    if let Err(e) = result {
        // A full or closed stderr cannot be reported anywhere; the exit status still says it.
        let _ = writeln!(std::io::stderr(), "e5: error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each cause once: `e5::Error::Io` already shows
/// its OS error, which the chain would otherwise repeat.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Writes `text` to stdout, reporting a full device or a closed pipe as an error
/// instead of panicking as `println!` does.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
}
