//! `e5 embed`: streams texts (lines, JSONL or Parquet) through the model in bounded chunks and
//! writes vectors (JSONL, .npy or Parquet) as it goes; `--shard` and `--resume` split and
//! continue corpus jobs.

use crate::model_args::{ChunkOutputArg, KindArgs, LongArg, LongArgs, ModelArgs};
use crate::output::Output;
use crate::parquet_io::{ParquetSink, ParquetSource};
use crate::parts::Parts;
use crate::progress::{Progress, Stats};
use crate::records::{parse_shard, Chunk, Chunker, LineSource, Selection, Source};
use crate::sinks::{JsonlSink, NpySink, Sink};
use anyhow::{bail, Context, Result};
use arrow_schema::Schema;
use clap::{Args, ValueEnum};
use e5::{Embeddings, Input, Model, OutputPrecision};
use std::path::Path;

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    long: LongArgs,
    #[command(flatten)]
    kind: KindArgs,
    /// Input file, `-` for stdin.
    #[arg(long, short, default_value = "-")]
    input: String,
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    input_format: InputFormat,
    /// JSONL: the field holding the text; the other fields pass through to JSONL output.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Parquet: the string column holding the text; the other columns pass through.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Output file, `-` for stdout. A file appears only once complete.
    #[arg(long, short, default_value = "-")]
    output: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
    /// float32, or sentence-transformers' compact forms: int8 / uint8 (one byte per dimension,
    /// from the ranges `e5 calibrate-output` stores beside the model), binary / ubinary (sign
    /// bits packed 8 per byte; binary is ubinary − 128 as int8).
    #[arg(long, default_value = "float32", value_parser = parse_output_precision)]
    output_precision: OutputPrecision,
    /// Texts per call to the encoder.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Do not L2-normalize the vectors.
    #[arg(long)]
    no_normalize: bool,
    /// Embed only shard I of N (0-based): the records r with r % N == I, so N machines split
    /// a job with no coordinator.
    #[arg(long, value_parser = parse_shard, value_name = "I/N")]
    shard: Option<(usize, usize)>,
    /// Write the output in parts (OUTPUT.parts/) and, when rerun, continue after the last
    /// complete part; the parts are joined into OUTPUT at the end.
    #[arg(long)]
    resume: bool,
    /// With --resume: input records per part.
    #[arg(long, default_value_t = 10_000)]
    part_records: usize,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum InputFormat {
    Text,
    Jsonl,
    Parquet,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum OutputFormat {
    Jsonl,
    Npy,
    Parquet,
}

/// Records read, embedded and written at a time (bounds memory with the 16 MiB text cap).
const CHUNK_RECORDS: usize = 1024;

pub fn run(a: EmbedArgs) -> Result<()> {
    check_flags(&a)?;
    let mut options = a.model.options();
    options.long_inputs = a.long.long_inputs();
    if a.no_normalize {
        options.normalize = Some(false);
    }
    let model = a.model.load(options)?;
    check_chunking(&model, &a.long)?;
    if a.output_precision.needs_ranges() {
        model.output_ranges().with_context(|| format!("--output-precision {}", a.output_precision.name()))?;
    }
    let (index, count) = a.shard.unwrap_or((0, 1));
    let mut select = Selection { index, count, skip: 0 };
    let mut stats = Stats::default();
    if !a.resume {
        let (source, passthrough) = open_source(&a, select, CHUNK_RECORDS)?;
        let mut sink = open_sink(&a, Output::open(&a.output)?, &passthrough, model.dim(), true)?;
        let mut chunks = Chunker::new(source);
        let mut progress = Progress::new(chunks.source.as_ref());
        while let Some(chunk) = chunks.next(CHUNK_RECORDS)? {
            let emb = embed_chunk(&model, &a, &chunk, &mut stats, &progress)?;
            sink.write(&chunk, &emb.rows, &model.quantize(emb.data, a.output_precision)?)?;
            progress.update(chunks.source.as_ref(), &stats);
        }
        progress.finish();
        sink.finish()?;
        return stats.report();
    }
    let out = Path::new(&a.output);
    let parts = Parts::open(out, extension(a.format, a.output_precision), &job(&a))?;
    select.skip = parts.done * a.part_records;
    let (source, passthrough) = open_source(&a, select, CHUNK_RECORDS.min(a.part_records))?;
    let mut chunks = Chunker::new(source);
    let mut progress = Progress::new(chunks.source.as_ref());
    for i in parts.done.. {
        let Some(mut chunk) = chunks.next(CHUNK_RECORDS.min(a.part_records))? else { break };
        let mut sink = open_sink(&a, parts.output(i)?, &passthrough, model.dim(), false)?;
        let mut left = a.part_records;
        loop {
            left -= chunk.texts.len();
            let emb = embed_chunk(&model, &a, &chunk, &mut stats, &progress)?;
            sink.write(&chunk, &emb.rows, &model.quantize(emb.data, a.output_precision)?)?;
            progress.update(chunks.source.as_ref(), &stats);
            if left == 0 {
                break;
            }
            match chunks.next(CHUNK_RECORDS.min(left))? {
                Some(c) => chunk = c,
                None => break,
            }
        }
        sink.finish()?;
    }
    progress.finish();
    match a.format {
        OutputFormat::Jsonl => parts.concatenate(out, b"")?,
        OutputFormat::Npy => {
            let p = a.output_precision;
            let rows = parts.bytes()? as usize / p.bytes_per_vector(model.dim());
            parts.concatenate(out, &crate::io::npy_header(p, rows, p.width(model.dim())))?
        }
        OutputFormat::Parquet => crate::parquet_io::join(
            &parts.all(),
            Output::open(&a.output)?,
            &passthrough,
            a.output_precision,
            model.dim(),
        )?,
    }
    parts.remove()?;
    stats.report()
}

/// Flag combinations refused before the model loads or any input is read.
fn check_flags(a: &EmbedArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be positive");
    let per_chunk = a.long.long == LongArg::Chunk && a.long.chunk_output == ChunkOutputArg::Chunk;
    if per_chunk && a.format != OutputFormat::Jsonl {
        bail!("--chunk-output chunk writes JSONL rows with spans; use --format jsonl");
    }
    match (a.input_format, a.format) {
        (InputFormat::Jsonl, OutputFormat::Parquet) => {
            bail!("JSONL input writes JSONL or npy output (its fields pass through as JSON); convert the corpus to Parquet for Parquet output")
        }
        (InputFormat::Parquet, OutputFormat::Jsonl) => {
            bail!("Parquet input writes Parquet or npy output (its columns pass through as columns); use --format parquet")
        }
        _ => {}
    }
    if a.resume {
        anyhow::ensure!(a.output != "-", "--resume needs an output file (-o FILE)");
        anyhow::ensure!(a.part_records > 0, "--part-records must be positive");
    }
    Ok(())
}

/// With `--long chunk`, the window and overlap must fit the model: checked before any input.
fn check_chunking(model: &Model, long: &LongArgs) -> Result<()> {
    if long.long != LongArg::Chunk {
        return Ok(());
    }
    let specials = model.tokenize(&Input::raw("")).context("tokenizing the empty text")?.ids.len();
    let room = model.config().max_tokens.saturating_sub(specials);
    let window = if long.chunk_window == 0 { room } else { long.chunk_window.min(room) };
    anyhow::ensure!(window > 0, "the model's limit of {} tokens leaves no room for text", model.config().max_tokens);
    anyhow::ensure!(
        long.chunk_overlap < window,
        "--chunk-overlap {} must be smaller than the chunk window ({window} tokens{})",
        long.chunk_overlap,
        if long.chunk_window == 0 || long.chunk_window > room { ", the model's room for text" } else { "" }
    );
    Ok(())
}

/// The input's records in chunks of at most `chunk` (a `--resume` part never waits on more input
/// than it holds), and the schema of the columns that pass through (Parquet).
fn open_source(a: &EmbedArgs, select: Selection, chunk: usize) -> Result<(Box<dyn Source>, Schema)> {
    if a.input_format == InputFormat::Parquet {
        let s = ParquetSource::open(&a.input, &a.text_column, select, chunk)?;
        let schema = (*s.passthrough_schema()).clone();
        return Ok((Box::new(s), schema));
    }
    let jsonl = a.input_format == InputFormat::Jsonl;
    let source: Box<dyn Source> = if a.input == "-" {
        Box::new(LineSource::new(std::io::stdin().lock(), jsonl, &a.text_field, select, chunk))
    } else {
        let file = std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut s =
            LineSource::new(std::io::BufReader::with_capacity(1 << 20, file), jsonl, &a.text_field, select, chunk);
        s.bytes_total = size;
        Box::new(s)
    };
    Ok((source, Schema::empty()))
}

/// `header`: a .npy file gets its header (a `--resume` part holds raw rows).
fn open_sink(a: &EmbedArgs, out: Output, passthrough: &Schema, dim: usize, header: bool) -> Result<Box<dyn Sink>> {
    let per_chunk = a.long.long == LongArg::Chunk && a.long.chunk_output == ChunkOutputArg::Chunk;
    Ok(match a.format {
        OutputFormat::Jsonl => Box::new(JsonlSink { out, per_chunk }),
        OutputFormat::Npy => Box::new(NpySink::new(out, a.output_precision, a.output_precision.width(dim), header)?),
        OutputFormat::Parquet => Box::new(ParquetSink::new(out, passthrough, a.output_precision, dim)?),
    })
}

/// The file extension of `--resume` parts (`.npy` parts are raw rows).
fn extension(f: OutputFormat, p: OutputPrecision) -> &'static str {
    match (f, p) {
        (OutputFormat::Jsonl, _) => "jsonl",
        (OutputFormat::Npy, OutputPrecision::Float32) => "f32",
        (OutputFormat::Npy, OutputPrecision::Int8 | OutputPrecision::Binary) => "i8",
        (OutputFormat::Npy, OutputPrecision::Uint8 | OutputPrecision::Ubinary) => "u8",
        (OutputFormat::Parquet, _) => "parquet",
    }
}

fn parse_output_precision(s: &str) -> Result<OutputPrecision, String> {
    OutputPrecision::parse(s)
        .ok_or_else(|| format!("unknown output precision {s:?} (expected one of {})", OutputPrecision::names()))
}

/// What a `--resume` run must share with the run that wrote the parts.
fn job(a: &EmbedArgs) -> serde_json::Value {
    let input = std::fs::canonicalize(&a.input).map(|p| p.display().to_string()).unwrap_or_else(|_| a.input.clone());
    let input_size = std::fs::metadata(&a.input).map(|m| m.len()).ok();
    serde_json::json!({
        "input": input,
        "input_size": input_size,
        "input_format": format!("{:?}", a.input_format),
        "text": if a.input_format == InputFormat::Parquet { &a.text_column } else { &a.text_field },
        "model": a.model.model,
        "precision": a.model.precision().name(),
        "kind": a.kind.describe(),
        "dimensions": a.model.dimensions,
        "long": format!("{:?}", a.long.long_inputs()),
        "normalize": !a.no_normalize,
        "format": format!("{:?}", a.format),
        "output_precision": a.output_precision.name(),
        "shard": a.shard,
        "part_records": a.part_records,
    })
}

/// The vectors of `chunk`, in `--batch-size` calls; `rows[k].input` indexes the chunk. An
/// input error names the input's line (or row); truncations are reported on stderr.
fn embed_chunk(
    model: &Model,
    a: &EmbedArgs,
    chunk: &Chunk,
    stats: &mut Stats,
    progress: &Progress,
) -> Result<Embeddings> {
    let mut out = Embeddings { dim: model.dim(), ..Default::default() };
    let kind = a.kind.kind(model)?;
    for (b, batch) in chunk.texts.chunks(a.batch_size).enumerate() {
        let base = b * a.batch_size;
        let inputs: Vec<Input> = batch.iter().map(|t| Input { kind: kind.clone(), text: t.as_str().into() }).collect();
        let emb = model.embed(&inputs).map_err(|e| match e {
            e5::Error::Input { index, message } => {
                anyhow::anyhow!("{} {}: {message}", chunk.unit, chunk.lines[base + index])
            }
            e => e.into(),
        })?;
        for mut row in emb.rows {
            row.input += base;
            stats.count(&row);
            if row.truncated {
                progress.warn(&format!(
                    "e5: input on {} {} truncated from {} to {} tokens (use --long chunk to embed all of it)",
                    chunk.unit, chunk.lines[row.input], row.input_tokens, row.tokens
                ))?;
            }
            out.rows.push(row);
        }
        out.data.extend_from_slice(&emb.data);
    }
    stats.texts += chunk.texts.len();
    Ok(out)
}
