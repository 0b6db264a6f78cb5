//! Streaming input for `e5 embed`: texts in bounded chunks, each with its input line and, for
//! JSONL objects, every field but the text (passed through to the output).

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::io::BufRead;

/// A run of consecutive input records (after sharding). `lines[i]` is the 1-based input line
/// (text, JSONL) or row (Parquet) of `texts[i]`, for errors and reports.
pub struct Chunk {
    pub texts: Vec<String>,
    pub lines: Vec<usize>,
    pub extra: Extra,
    /// What `lines` count: "line" or "row".
    pub unit: &'static str,
}

impl Chunk {
    /// Splits off the records from `at` on.
    pub fn split_off(&mut self, at: usize) -> Chunk {
        let extra = match &mut self.extra {
            Extra::None => Extra::None,
            Extra::Json(v) => Extra::Json(v.split_off(at)),
            Extra::Arrow(b) => {
                let tail = b.slice(at, b.num_rows() - at);
                *b = b.slice(0, at);
                Extra::Arrow(tail)
            }
        };
        Chunk { texts: self.texts.split_off(at), lines: self.lines.split_off(at), extra, unit: self.unit }
    }
}

/// What passes through to the output beside each vector.
pub enum Extra {
    /// Plain text lines: nothing.
    None,
    /// JSONL: the object without its text field (`None` for a line that is a bare string).
    Json(Vec<Option<Map<String, Value>>>),
    /// Parquet: the batch's other columns.
    Arrow(arrow_array::RecordBatch),
}

/// A source of chunks; `None` at the end of the input.
pub trait Source {
    fn next_chunk(&mut self) -> Result<Option<Chunk>>;
    /// Progress through the input (bytes or rows) and its total, 0 when unknown.
    fn position(&self) -> (u64, u64);
}

/// Chunks of at most `max` records (the last of a `--resume` part may ask for fewer).
pub struct Chunker {
    pub source: Box<dyn Source>,
    pending: Option<Chunk>,
}

impl Chunker {
    pub fn new(source: Box<dyn Source>) -> Self {
        Chunker { source, pending: None }
    }

    pub fn next(&mut self, max: usize) -> Result<Option<Chunk>> {
        let Some(mut chunk) = self.pending.take().map_or_else(|| self.source.next_chunk(), |c| Ok(Some(c)))? else {
            return Ok(None);
        };
        if chunk.texts.len() > max {
            self.pending = Some(chunk.split_off(max));
        }
        Ok(Some(chunk))
    }
}

/// Which records a run takes: record `r` (0-based, in input order) belongs to shard
/// `r % count == index`; the first `skip` taken records are dropped (`--resume`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    pub index: usize,
    pub count: usize,
    pub skip: usize,
}

impl Selection {
    /// Counts record `r` and says whether the run takes it.
    pub fn take(&mut self, r: usize) -> bool {
        if r % self.count != self.index {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }
}

/// Parses `--shard I/N` (0 ≤ I < N).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("invalid shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Text lines or JSONL records from a byte stream, read line by line (memory: one chunk).
pub struct LineSource<R> {
    input: R,
    jsonl: bool,
    text_field: String,
    select: Selection,
    chunk_records: usize,
    chunk_bytes: usize,
    line: usize,
    record: usize,
    buf: Vec<u8>,
    bytes_read: u64,
    /// The input's size in bytes, 0 when unknown (stdin).
    pub bytes_total: u64,
}

impl<R: BufRead> LineSource<R> {
    pub fn new(input: R, jsonl: bool, text_field: &str, select: Selection, chunk_records: usize) -> Self {
        LineSource {
            input,
            jsonl,
            text_field: text_field.to_string(),
            select,
            chunk_records,
            chunk_bytes: 16 << 20,
            line: 0,
            record: 0,
            buf: Vec::new(),
            bytes_read: 0,
            bytes_total: 0,
        }
    }

    /// Reads the next line into `buf` and returns its length without `\n` / `\r\n`, or
    /// `None` at the end; a final newline ends the last line rather than starting an empty one.
    fn next_line(&mut self) -> Result<Option<usize>> {
        self.buf.clear();
        let n = self.input.read_until(b'\n', &mut self.buf).context("reading the input")?;
        if n == 0 {
            return Ok(None);
        }
        self.bytes_read += n as u64;
        self.line += 1;
        let mut line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some(line.len()))
    }
}

impl<R: BufRead> Source for LineSource<R> {
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let (mut texts, mut lines, mut extra, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0);
        while texts.len() < self.chunk_records && bytes < self.chunk_bytes {
            let (jsonl, n) = (self.jsonl, self.line + 1);
            let Some(len) = self.next_line()? else { break };
            let raw = &self.buf[..len];
            if n == 1 && raw.starts_with(b"\xEF\xBB\xBF") && jsonl {
                bail!("line 1: starts with a UTF-8 byte-order mark (BOM), which JSON does not allow; save the file without it");
            }
            if jsonl && raw.iter().all(u8::is_ascii_whitespace) {
                continue; // blank JSONL lines are not records
            }
            let record = self.record;
            self.record += 1;
            if !self.select.take(record) {
                continue;
            }
            let text = std::str::from_utf8(raw)
                .map_err(|e| anyhow::anyhow!("line {n}: invalid UTF-8 at byte {}", e.valid_up_to()))?;
            bytes += text.len();
            if jsonl {
                let (t, rest) = split_record(text, &self.text_field).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
                texts.push(t);
                extra.push(rest);
            } else {
                texts.push(text.to_string());
            }
            lines.push(n);
        }
        if texts.is_empty() {
            return Ok(None);
        }
        let extra = if self.jsonl { Extra::Json(extra) } else { Extra::None };
        Ok(Some(Chunk { texts, lines, extra, unit: "line" }))
    }

    fn position(&self) -> (u64, u64) {
        (self.bytes_read, self.bytes_total)
    }
}

/// A JSONL record: a JSON string, or an object whose `field` is a string (the other fields
/// are returned to pass through).
fn split_record(line: &str, field: &str) -> Result<(String, Option<Map<String, Value>>), String> {
    match serde_json::from_str::<Value>(line) {
        Err(e) => Err(format!("malformed JSON: {e}")),
        Ok(Value::String(s)) => Ok((s, None)),
        Ok(Value::Object(mut o)) => match o.remove(field) {
            Some(Value::String(s)) => Ok((s, Some(o))),
            Some(v) => Err(format!("field {field:?} is not a string but {}", kind_of(&v))),
            None => Err(format!("no {field:?} field (choose the text field with --text-field)")),
        },
        Ok(v) => Err(format!("expected a JSON string or an object with a {field:?} field, found {}", kind_of(&v))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], jsonl: bool, select: Selection) -> Result<Vec<(usize, String)>> {
        let mut s = LineSource::new(input, jsonl, "text", select, 2);
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk()? {
            assert!(c.texts.len() <= 2);
            out.extend(c.lines.into_iter().zip(c.texts));
        }
        Ok(out)
    }

    const ALL: Selection = Selection { index: 0, count: 1, skip: 0 };

    #[test]
    fn text_lines_keep_empty_texts_and_strip_cr() {
        let got = all(b"a\r\n\nb\n", false, ALL).unwrap();
        assert_eq!(got, vec![(1, "a".into()), (2, "".into()), (3, "b".into())]);
        assert!(all(b"", false, ALL).unwrap().is_empty());
        assert_eq!(all(b"\n", false, ALL).unwrap(), vec![(1, "".into())]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = all(b"ok\nfine\nbad \xff here\n", false, ALL).unwrap_err().to_string();
        assert_eq!(e, "line 3: invalid UTF-8 at byte 4");
        let e = all(b"\"x\"\n\n{\"text\": 1}\n", true, ALL).unwrap_err().to_string();
        assert_eq!(e, "line 3: field \"text\" is not a string but a number");
        let e = all(b"\"x\"\n{\"body\": \"y\"}\n", true, ALL).unwrap_err().to_string();
        assert!(e.starts_with("line 2: no \"text\" field"), "{e}");
        let e = all(b"\"x\"\n\"y\"\n{oops\n", true, ALL).unwrap_err().to_string();
        assert!(e.starts_with("line 3: malformed JSON"), "{e}");
        let e = all(b"\xEF\xBB\xBF\"x\"\n", true, ALL).unwrap_err().to_string();
        assert!(e.contains("byte-order mark"), "{e}");
    }

    #[test]
    fn jsonl_fields_pass_through_and_blank_lines_are_skipped() {
        let mut s =
            LineSource::new(&b"\"x\"\n\n{\"id\": 7, \"text\": \"y\", \"tag\": [1]}\n"[..], true, "text", ALL, 10);
        let c = s.next_chunk().unwrap().unwrap();
        assert_eq!((c.texts, c.lines), (vec!["x".to_string(), "y".into()], vec![1, 3]));
        let Extra::Json(rest) = c.extra else { panic!("JSONL gives JSON extras") };
        assert_eq!(rest[0], None);
        assert_eq!(serde_json::to_string(rest[1].as_ref().unwrap()).unwrap(), r#"{"id":7,"tag":[1]}"#);
    }

    #[test]
    fn shards_partition_the_records_and_skip_counts_taken_ones() {
        let input = b"0\n1\n2\n3\n4\n5\n6\n";
        let mut seen = Vec::new();
        for index in 0..3 {
            let got = all(input, false, Selection { index, count: 3, skip: 0 }).unwrap();
            assert!(got.iter().all(|(l, t)| (l - 1) % 3 == index && t == &(l - 1).to_string()));
            seen.extend(got);
        }
        seen.sort();
        assert_eq!(seen.len(), 7);
        let got = all(input, false, Selection { index: 1, count: 2, skip: 2 }).unwrap();
        assert_eq!(got, vec![(6, "5".into())]);
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err() && parse_shard("0/0").is_err() && parse_shard("x").is_err());
    }
}
