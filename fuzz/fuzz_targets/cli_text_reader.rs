//! The CLI's streaming input reader (`crates/e5-cli/src/records.rs`, compiled in here since
//! the CLI is a binary crate) on arbitrary bytes, as text lines and as JSONL, in chunks of
//! three records: an answer, never a panic. In text mode every line is one text, numbered
//! from 1 in order across chunks; JSONL records keep increasing line numbers.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/e5-cli/src/records.rs"]
mod records;

use libfuzzer_sys::fuzz_target;
use records::{LineSource, Selection, Source};

/// Every record's (line number, text) until the end or the first error.
fn read(data: &[u8], jsonl: bool) -> Result<Vec<(usize, String)>, String> {
    let every = Selection { index: 0, count: 1, skip: 0 };
    let mut source = LineSource::new(data, jsonl, "text", every, 3);
    let mut out = Vec::new();
    while let Some(chunk) = source.next_chunk().map_err(|e| e.to_string())? {
        assert!(!chunk.texts.is_empty() && chunk.texts.len() <= 3);
        assert_eq!(chunk.texts.len(), chunk.lines.len());
        out.extend(chunk.lines.into_iter().zip(chunk.texts));
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    match read(data, false) {
        Ok(records) => {
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            let lines = if data.is_empty() { 0 } else { body.split(|&b| b == b'\n').count() };
            assert_eq!(records.len(), lines);
            assert!(records.iter().enumerate().all(|(i, (n, _))| *n == i + 1));
        }
        Err(e) => assert!(e.starts_with("line "), "{e}"),
    }
    match read(data, true) {
        Ok(records) => assert!(records.windows(2).all(|w| w[0].0 < w[1].0)),
        Err(e) => assert!(e.starts_with("line ") || e.starts_with("reading"), "{e}"),
    }
});
