//! Differential: the compact XLM-R tokenizer against the `tokenizers` crate on arbitrary
//! UTF-8, identical ids and character offsets. The tokenizer is `$E5_FUZZ_TOKENIZER`
//! (e.g. models/multilingual-e5-small/tokenizer.json, the real 250k-piece one), else the
//! tiny XLM-R fixture's.
#![no_main]

#[path = "common.rs"]
mod common;

use e5::unigram::CompactUnigram;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PAIR: OnceLock<(CompactUnigram, tokenizers::Tokenizer)> = OnceLock::new();

fn pair() -> &'static (CompactUnigram, tokenizers::Tokenizer) {
    PAIR.get_or_init(|| {
        let path = std::env::var_os("E5_FUZZ_TOKENIZER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| common::fixture("tiny-xlmr").join("tokenizer.json"));
        let json = std::fs::read_to_string(&path).unwrap();
        let compact = CompactUnigram::from_json(&json).unwrap().expect("an XLM-R Unigram tokenizer");
        let mut hf: tokenizers::Tokenizer = json.parse().unwrap();
        hf.with_padding(None);
        hf.with_truncation(None).unwrap();
        (compact, hf)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (compact, hf) = pair();
    let ours = compact.encode(text);
    let theirs = hf.encode_char_offsets(text, true).unwrap();
    assert_eq!(ours.ids, theirs.get_ids(), "ids of {text:?}");
    assert_eq!(ours.offsets, theirs.get_offsets(), "offsets of {text:?}");
});
