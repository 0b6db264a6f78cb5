//! The CLI's input reader (`crates/e5-cli/src/io.rs`, compiled in here since the CLI is a
//! binary crate) on arbitrary bytes, as text lines and as JSONL: an answer, never a panic.
//! In text mode every line is one text.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/e5-cli/src/io.rs"]
mod io;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(texts) = io::parse_texts(data, false) {
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        let lines = if data.is_empty() { 0 } else { body.split(|&b| b == b'\n').count() };
        assert_eq!(texts.len(), lines);
    }
    let _ = io::parse_texts(data, true);
});
