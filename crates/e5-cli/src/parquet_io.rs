//! Parquet in and out for `e5 embed`: texts from a string column, every other column passed
//! through, and the vectors as a column named `embedding`: `FixedSizeList<float32>[dim]`, or
//! for the compact output precisions `FixedSizeList<int8 | uint8>[dim]` (int8, uint8),
//! `FixedSizeList<int8>[dim/8]` (binary) and `FixedSizeBinary(dim/8)` (ubinary).

use crate::output::Output;
use crate::records::{Chunk, Extra, Selection, Source};
use crate::sinks::Sink;
use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Int8Array, RecordBatch,
    RecordBatchReader, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use e5::{OutputPrecision, OutputVectors, RowInfo, VectorData};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use std::sync::Arc;

/// Rows of a Parquet file in batches of at most `chunk_records` (memory: one batch).
pub struct ParquetSource {
    reader: ParquetRecordBatchReader,
    text: usize,
    column: String,
    select: Selection,
    row: usize,
    rows_total: u64,
    rows_read: u64,
}

impl ParquetSource {
    pub fn open(path: &str, column: &str, select: Selection, chunk_records: usize) -> Result<Self> {
        anyhow::ensure!(path != "-", "--input-format parquet needs a file (-i FILE), not stdin");
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| format!("{path}: not a Parquet file"))?;
        let schema = builder.schema().clone();
        let text = schema.index_of(column).map_err(|_| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            anyhow::anyhow!(
                "{path}: no column {column:?} (columns: {}); choose it with --text-column",
                names.join(", ")
            )
        })?;
        if !matches!(schema.field(text).data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
            bail!("{path}: column {column:?} holds {}, not strings", schema.field(text).data_type());
        }
        let rows_total = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let reader = builder.with_batch_size(chunk_records).build()?;
        Ok(ParquetSource { reader, text, column: column.into(), select, row: 0, rows_total, rows_read: 0 })
    }

    /// The schema of the columns that pass through (all but the text column).
    pub fn passthrough_schema(&self) -> SchemaRef {
        let s = self.reader.schema();
        Arc::new(Schema::new(
            s.fields().iter().enumerate().filter(|(i, _)| *i != self.text).map(|(_, f)| f.clone()).collect::<Vec<_>>(),
        ))
    }
}

impl Source for ParquetSource {
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        for batch in self.reader.by_ref() {
            let batch = batch.context("reading the Parquet input")?;
            let n = batch.num_rows();
            let first = self.row;
            self.row += n;
            self.rows_read += n as u64;
            let keep: Vec<bool> = (first..first + n).map(|r| self.select.take(r)).collect();
            let lines: Vec<usize> = keep.iter().enumerate().filter(|(_, &k)| k).map(|(i, _)| first + i + 1).collect();
            if lines.is_empty() {
                continue;
            }
            let batch = arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))?;
            let texts = strings(batch.column(self.text), &lines, &self.column)?;
            let others: Vec<usize> = (0..batch.num_columns()).filter(|&i| i != self.text).collect();
            return Ok(Some(Chunk { texts, lines, extra: Extra::Arrow(batch.project(&others)?), unit: "row" }));
        }
        Ok(None)
    }

    fn position(&self) -> (u64, u64) {
        (self.rows_read, self.rows_total)
    }
}

/// The values of a string column; a null is an error naming its row.
fn strings(col: &ArrayRef, rows: &[usize], name: &str) -> Result<Vec<String>> {
    if let Some(i) = (0..col.len()).find(|&i| col.is_null(i)) {
        bail!("row {}: column {name:?} is null", rows[i]);
    }
    Ok(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect(),
        DataType::LargeUtf8 => col.as_string::<i64>().iter().map(|s| s.unwrap_or_default().to_string()).collect(),
        _ => col.as_string_view().iter().map(|s| s.unwrap_or_default().to_string()).collect(),
    })
}

/// Batches of the passed-through columns plus `embedding`.
pub struct ParquetSink {
    writer: ArrowWriter<Output>,
    schema: SchemaRef,
}

impl ParquetSink {
    pub fn new(out: Output, passthrough: &Schema, precision: OutputPrecision, dim: usize) -> Result<Self> {
        let schema = output_schema(passthrough, precision, dim)?;
        Ok(ParquetSink { writer: ArrowWriter::try_new(out, schema.clone(), None)?, schema })
    }
}

/// The Arrow type of the `embedding` column of `dim`-component vectors in `precision`.
fn vector_type(precision: OutputPrecision, dim: usize) -> DataType {
    let width = precision.width(dim) as i32;
    let list = |item: DataType| DataType::FixedSizeList(Arc::new(Field::new("item", item, false)), width);
    match precision {
        OutputPrecision::Float32 => list(DataType::Float32),
        OutputPrecision::Int8 | OutputPrecision::Binary => list(DataType::Int8),
        OutputPrecision::Uint8 => list(DataType::UInt8),
        OutputPrecision::Ubinary => DataType::FixedSizeBinary(width),
    }
}

/// The passed-through columns plus `embedding` ([`vector_type`]).
fn output_schema(passthrough: &Schema, precision: OutputPrecision, dim: usize) -> Result<SchemaRef> {
    if passthrough.index_of("embedding").is_ok() {
        bail!("the input already has a column \"embedding\", which the output would overwrite");
    }
    let mut fields: Vec<_> = passthrough.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("embedding", vector_type(precision, dim), false)));
    Ok(Arc::new(Schema::new(fields)))
}

/// The `embedding` column of `vectors`, of the type `field` declares.
fn vector_column(field: &Field, vectors: &OutputVectors) -> Result<ArrayRef> {
    let width = vectors.width as i32;
    if let DataType::FixedSizeBinary(_) = field.data_type() {
        let VectorData::U8(v) = &vectors.data else { bail!("ubinary vectors are bytes") };
        return Ok(Arc::new(FixedSizeBinaryArray::try_new(width, v.clone().into(), None)?));
    }
    let DataType::FixedSizeList(item, _) = field.data_type() else { bail!("embedding is a list or binary column") };
    let values: ArrayRef = match &vectors.data {
        VectorData::F32(v) => Arc::new(Float32Array::from(v.clone())),
        VectorData::I8(v) => Arc::new(Int8Array::from(v.clone())),
        VectorData::U8(v) => Arc::new(UInt8Array::from(v.clone())),
    };
    Ok(Arc::new(FixedSizeListArray::try_new(item.clone(), width, values, None)?))
}

/// Joins the Parquet files `parts` (written by [`ParquetSink`]) into one, batch by batch.
pub fn join(
    parts: &[std::path::PathBuf],
    out: Output,
    passthrough: &Schema,
    precision: OutputPrecision,
    dim: usize,
) -> Result<()> {
    let mut writer = ArrowWriter::try_new(out, output_schema(passthrough, precision, dim)?, None)?;
    for p in parts {
        let file = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            writer.write(&batch?)?;
        }
    }
    writer.into_inner()?.finish()
}

impl Sink for ParquetSink {
    fn write(&mut self, chunk: &Chunk, rows: &[RowInfo], vectors: &OutputVectors) -> Result<()> {
        anyhow::ensure!(rows.len() == chunk.texts.len(), "Parquet output has one row per input (--chunk-output input)");
        let mut columns: Vec<ArrayRef> = match &chunk.extra {
            Extra::Arrow(b) => b.columns().to_vec(),
            _ => Vec::new(),
        };
        let field = self.schema.fields().last().expect("the schema ends with embedding");
        columns.push(vector_column(field, vectors)?);
        self.writer.write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.writer.into_inner()?.finish()
    }
}
