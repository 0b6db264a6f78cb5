//! `config.json` plus the sentence-transformers module files, split from one input at
//! `\n====\n` (config.json, modules.json, 1_Pooling/config.json, sentence_bert_config.json,
//! config_sentence_transformers.json), beside the tiny BERT's weights and tokenizer:
//! `Model::load` must answer, never panic, and a config it accepts must be within the
//! documented bounds.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const FILES: [&str; 5] = [
    "config.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| common::scratch("tiny-bert")).path();
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let parts: Vec<&[u8]> = data.split_str_sep(b"\n====\n");
    for (i, f) in FILES.iter().enumerate() {
        let p = dir.join(f);
        match parts.get(i) {
            Some(b) => std::fs::write(&p, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    let options = e5::Options { threads: Some(1), ..e5::Options::default() };
    if let Ok(m) = e5::Model::load(dir, options) {
        let c = m.config();
        assert!(c.hidden % c.heads == 0 && c.layers >= 1 && c.layers <= 1024);
        assert!(c.max_tokens >= 1 && c.position_offset + c.max_tokens <= c.max_positions);
        assert!(c.layer_norm_eps.is_normal() && c.layer_norm_eps > 0.0);
        let _ = (c.parameters(), c.forward_flops(c.max_tokens));
    }
});

trait SplitSep {
    fn split_str_sep<'a>(&'a self, sep: &[u8]) -> Vec<&'a [u8]>;
}

impl SplitSep for [u8] {
    fn split_str_sep<'a>(&'a self, sep: &[u8]) -> Vec<&'a [u8]> {
        let (mut out, mut rest) = (Vec::new(), self);
        while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
            out.push(&rest[..i]);
            rest = &rest[i + sep.len()..];
        }
        out.push(rest);
        out
    }
}
