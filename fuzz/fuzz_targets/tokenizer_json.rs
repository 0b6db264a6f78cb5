//! Arbitrary `tokenizer.json` text into the compact Unigram tokenizer (and the charsmap
//! check that guards the `tokenizers` fallback); what loads must encode a few texts
//! without panicking, with ids inside the vocabulary or the added tokens.
#![no_main]

use e5::unigram::{check_charsmaps, CompactUnigram};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else { return };
    let _ = check_charsmaps(json);
    if let Ok(Some(t)) = CompactUnigram::from_json(json) {
        for text in ["Hello world", "  héllo\u{3000}wörld  ", "日本語のテキスト", "a\u{0}b\u{fffd}", ""] {
            let e = t.encode(text);
            assert_eq!(e.ids.len(), e.offsets.len());
            assert!(e.prefix + e.suffix <= e.ids.len());
        }
    }
});
