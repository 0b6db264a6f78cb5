//! Vector writers of `e5 embed`: JSONL (bare arrays for text input; the input object's other
//! fields plus `"embedding"` for JSONL input; numbers, or integers for the compact output
//! precisions) and `.npy` (`[rows, width]` float32, int8 or uint8).

use crate::io::npy_header;
use crate::output::Output;
use crate::records::{Chunk, Extra};
use anyhow::{bail, Result};
use e5::{OutputPrecision, OutputVectors, RowInfo, VectorData};
use std::io::Write;

/// Receives the vectors of consecutive chunks: row `k` of `vectors` is the vector of
/// `rows[k]`, and `rows[k].input` indexes `chunk.texts`.
pub trait Sink {
    fn write(&mut self, chunk: &Chunk, rows: &[RowInfo], vectors: &OutputVectors) -> Result<()>;
    /// Completes the output (a file is renamed into place).
    fn finish(self: Box<Self>) -> Result<()>;
}

pub struct JsonlSink {
    pub out: Output,
    /// One line per chunk of a long input, with its `input` (0-based line), `chars` and `tokens`.
    pub per_chunk: bool,
}

impl Sink for JsonlSink {
    fn write(&mut self, chunk: &Chunk, rows: &[RowInfo], vectors: &OutputVectors) -> Result<()> {
        let w = self.out.writer();
        for (k, row) in rows.iter().enumerate() {
            let v = Row { vectors, k };
            let line = chunk.lines[row.input];
            let mut obj = match &chunk.extra {
                Extra::Json(fields) => fields[row.input].clone().unwrap_or_default(),
                Extra::None if !self.per_chunk => {
                    write_vector(w, v)?;
                    w.write_all(b"\n")?;
                    continue;
                }
                _ => Default::default(),
            };
            for key in ["embedding", "input", "chars", "tokens"].into_iter().take(if self.per_chunk { 4 } else { 1 }) {
                if obj.contains_key(key) {
                    bail!("line {line}: the input already has a field {key:?}, which the output would overwrite");
                }
            }
            if self.per_chunk {
                obj.insert("input".into(), (line - 1).into());
                obj.insert("chars".into(), serde_json::json!([row.chars.start, row.chars.end]));
                obj.insert("tokens".into(), row.tokens.into());
            }
            // The object's fields, then "embedding" written as f32 (shortest round-trip form).
            let fields = serde_json::to_string(&obj)?;
            w.write_all(&fields.as_bytes()[..fields.len() - 1])?;
            w.write_all(if obj.is_empty() { b"\"embedding\":" } else { b",\"embedding\":" })?;
            write_vector(w, v)?;
            w.write_all(b"}\n")?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.out.finish()
    }
}

/// Row `k` of `vectors`.
#[derive(Clone, Copy)]
struct Row<'a> {
    vectors: &'a OutputVectors,
    k: usize,
}

/// A JSON array: f32 in shortest round-trip form, or integers.
fn write_vector(w: &mut dyn Write, v: Row) -> Result<()> {
    let span = v.k * v.vectors.width..(v.k + 1) * v.vectors.width;
    match &v.vectors.data {
        VectorData::F32(x) => serde_json::to_writer(&mut *w, &x[span])?,
        VectorData::I8(x) => serde_json::to_writer(&mut *w, &x[span])?,
        VectorData::U8(x) => serde_json::to_writer(&mut *w, &x[span])?,
    }
    Ok(())
}

/// Rows of `width` elements of `precision`; with `header`, a `.npy` header whose row count is
/// filled in at the end (it has a fixed size), so the rows stream. Without, raw rows (a
/// `--resume` part).
pub struct NpySink {
    pub out: Output,
    pub precision: OutputPrecision,
    pub width: usize,
    pub rows: usize,
    pub header: bool,
}

impl NpySink {
    pub fn new(mut out: Output, precision: OutputPrecision, width: usize, header: bool) -> Result<Self> {
        if header {
            if matches!(out, Output::Stdout(_)) {
                bail!("--format npy needs a file (-o FILE): its header holds the row count, known only at the end");
            }
            out.writer().write_all(&npy_header(precision, 0, width))?;
        }
        Ok(NpySink { out, precision, width, rows: 0, header })
    }
}

impl Sink for NpySink {
    fn write(&mut self, _chunk: &Chunk, rows: &[RowInfo], vectors: &OutputVectors) -> Result<()> {
        self.out.writer().write_all(&vectors.le_bytes())?;
        self.rows += rows.len();
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if self.header {
            self.out.rewrite_start(&npy_header(self.precision, self.rows, self.width))?;
        }
        self.out.finish()
    }
}
