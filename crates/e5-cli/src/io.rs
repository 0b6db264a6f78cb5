//! Reading texts (text or JSONL, strict UTF-8) and writing vectors (JSONL or .npy).

use crate::records::{LineSource, Selection, Source};
use anyhow::{Context, Result};
use e5::OutputPrecision;
use std::io::{Read, Write};

/// Reads all of `path` (`-`: stdin) as bytes.
pub fn read_all(path: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).context("reading stdin")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    }
    Ok(buf)
}

/// Splits input into texts. Text format: one per line (a final newline ends the last line,
/// `\r\n` accepted). JSONL: one JSON string, or an object with a `"text"` string, per line;
/// blank lines are skipped. Invalid UTF-8 or JSON is an error naming the line.
pub fn parse_texts(bytes: &[u8], jsonl: bool) -> Result<Vec<String>> {
    let every = Selection { index: 0, count: 1, skip: 0 };
    let mut source = LineSource::new(bytes, jsonl, "text", every, usize::MAX);
    let mut out = Vec::new();
    while let Some(chunk) = source.next_chunk()? {
        out.extend(chunk.texts);
    }
    Ok(out)
}

/// The non-blank lines of the JSONL file `path` as (1-based line number, value); `what`
/// names the file in the read error, and a malformed line is an error naming its number.
pub fn read_jsonl(path: &str, what: &str) -> Result<Vec<(usize, serde_json::Value)>> {
    let body = std::fs::read_to_string(path).with_context(|| format!("reading {what} {path}"))?;
    body.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let v = serde_json::from_str(line).with_context(|| format!("{path}: line {}: malformed JSON", i + 1))?;
            Ok((i + 1, v))
        })
        .collect()
}

/// Opens `path` for writing (`-`: stdout), buffered.
pub fn open_output(path: &str) -> Result<Box<dyn Write>> {
    Ok(if path == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {path}"))?))
    })
}

/// The header of a version-1.0 `.npy` file holding `[rows, cols]` elements of `precision`
/// (little-endian float32, int8 or uint8). Always 128 bytes, whatever the shape, so a
/// streamed file's row count can be filled in last.
pub fn npy_header(precision: OutputPrecision, rows: usize, cols: usize) -> Vec<u8> {
    let descr = match precision {
        OutputPrecision::Float32 => "<f4",
        OutputPrecision::Int8 | OutputPrecision::Binary => "|i1",
        OutputPrecision::Uint8 | OutputPrecision::Ubinary => "|u1",
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + dict (at most ~100 bytes), spaces and a newline.
    let len = 128 - 10;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend((len as u16).to_le_bytes());
    h.extend(dict.as_bytes());
    h.resize(10 + len - 1, b' ');
    h.push(b'\n');
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_keep_empty_texts_and_strip_cr() {
        assert_eq!(parse_texts(b"a\r\n\nb\n", false).unwrap(), vec!["a", "", "b"]);
        assert_eq!(parse_texts(b"", false).unwrap(), Vec::<String>::new());
        assert_eq!(parse_texts(b"\n", false).unwrap(), vec![""]);
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let e = parse_texts(b"ok\nbad \xff here\n", false).unwrap_err().to_string();
        assert_eq!(e, "line 2: invalid UTF-8 at byte 4");
    }

    #[test]
    fn jsonl_strings_objects_and_errors() {
        assert_eq!(parse_texts(b"\"x\"\n{\"text\": \"y\", \"id\": 3}\n\n", true).unwrap(), vec!["x", "y"]);
        let e = parse_texts(b"\"x\"\n{\"text\": 1}\n", true).unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_texts(b"\"x\"\n\"y\"\n{oops\n", true).unwrap_err().to_string();
        assert!(e.starts_with("line 3: malformed JSON"), "{e}");
    }

    #[test]
    fn npy_header_is_aligned_and_describes_the_shape() {
        let h = npy_header(OutputPrecision::Float32, 3, 384);
        assert_eq!(h.len(), 128);
        assert_eq!(npy_header(OutputPrecision::Float32, usize::MAX, usize::MAX).len(), 128);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'descr': '<f4', 'fortran_order': False, 'shape': (3, 384)"));
        let h = npy_header(OutputPrecision::Ubinary, 3, 48);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'descr': '|u1', 'fortran_order': False, 'shape': (3, 48)"));
        assert_eq!(*h.last().unwrap(), b'\n');
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
    }
}
