//! Parity of `e5::unigram::CompactUnigram` with the `tokenizers` crate on XLM-R style
//! tokenizer.json files, plus load-time and resident-memory measurements.

use e5::unigram::{CompactUnigram, UnigramEncoding};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn e5_small_json() -> PathBuf {
    let p = root().join("models/multilingual-e5-small/tokenizer.json");
    assert!(p.exists(), "{} is missing: run bash tools/setup-models.sh", p.display());
    p
}

fn tiny_json() -> PathBuf {
    root().join("tests/fixtures/tiny-xlmr/tokenizer.json")
}

/// What e5's `TextTokenizer::encode` produces with `tokenizers`.
fn reference(tok: &tokenizers::Tokenizer, text: &str) -> UnigramEncoding {
    let enc = tok.encode_char_offsets(text, true).expect("tokenizers encode");
    let special = enc.get_special_tokens_mask();
    let prefix = special.iter().take_while(|&&s| s == 1).count();
    let suffix = special[prefix..].iter().rev().take_while(|&&s| s == 1).count();
    UnigramEncoding {
        ids: enc.get_ids().to_vec(),
        tokens: enc.get_tokens().to_vec(),
        offsets: enc.get_offsets().to_vec(),
        prefix,
        suffix,
    }
}

fn load_reference(path: &Path) -> tokenizers::Tokenizer {
    let mut t = tokenizers::Tokenizer::from_file(path).expect("tokenizers load");
    t.with_padding(None);
    t.with_truncation(None).unwrap();
    t
}

fn fixture_texts() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["multilingual.jsonl", "tokenizer_edge_cases.jsonl"] {
        let p = root().join("tests/fixtures/texts").join(f);
        let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for line in s.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(v["text"].as_str().expect("text field").to_owned());
        }
    }
    assert!(out.len() >= 100, "fixture texts missing");
    out
}

// ---------------------------------------------------------------------------------------
// seeded generator (xorshift64*)

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// Code point ranges (inclusive) from many scripts and awkward categories.
const RANGES: &[(u32, u32)] = &[
    (0x20, 0x7E),       // ASCII
    (0xA0, 0x24F),      // Latin-1, Latin extended
    (0x0, 0x1F),        // C0 controls
    (0x7F, 0x9F),       // DEL, C1 controls
    (0x300, 0x36F),     // combining diacritics
    (0x370, 0x3FF),     // Greek
    (0x400, 0x4FF),     // Cyrillic
    (0x590, 0x5FF),     // Hebrew
    (0x600, 0x6FF),     // Arabic
    (0x900, 0x97F),     // Devanagari
    (0xB80, 0xBFF),     // Tamil
    (0xE00, 0xE7F),     // Thai
    (0x1100, 0x11FF),   // Hangul Jamo
    (0x1200, 0x137F),   // Ethiopic
    (0x1E00, 0x1EFF),   // Latin extended additional
    (0x2000, 0x206F),   // general punctuation (spaces, ZW chars, bidi marks)
    (0x2070, 0x209F),   // super/subscripts
    (0x2100, 0x218F),   // letterlike, number forms (™, Ⅻ)
    (0x2460, 0x24FF),   // enclosed alphanumerics
    (0x3000, 0x303F),   // CJK punctuation, U+3000
    (0x3040, 0x30FF),   // kana
    (0x3130, 0x318F),   // Hangul compatibility Jamo
    (0x3200, 0x33FF),   // enclosed CJK, CJK compatibility (㍿)
    (0x4E00, 0x9FFF),   // CJK
    (0xAC00, 0xD7A3),   // Hangul syllables
    (0xE000, 0xE0FF),   // private use
    (0xFB00, 0xFB4F),   // ligatures, Hebrew presentation forms
    (0xFE00, 0xFE0F),   // variation selectors
    (0xFE70, 0xFEFF),   // Arabic presentation forms, BOM
    (0xFF00, 0xFFEF),   // full-width / half-width forms
    (0xFFF0, 0xFFFD),   // specials
    (0x1D400, 0x1D7FF), // mathematical alphanumerics
    (0x1F1E6, 0x1F1FF), // regional indicators
    (0x1F300, 0x1FAFF), // emoji
    (0x20000, 0x2A6DF), // CJK extension B
    (0xE0000, 0xE007F), // tags
];

const SPECIALS: &[&str] = &[
    "<s>",
    "</s>",
    "<mask>",
    "<unk>",
    "<pad>",
    "<s",
    "</s",
    "<mask",
    "mask>",
    "<S>",
    "< s>",
    "＜s＞",
    "＜mask＞",
    "<<s>>",
    "<s></s>",
    "<mask><mask>",
];

const WHITES: &[&str] = &[
    " ", " ", " ", "\t", "\n", "\r\n", "\u{3000}", "\u{a0}", "\u{200b}", "\u{feff}", "\u{2009}", "\u{202f}",
    "\u{2028}", "\u{85}", "\u{b}", "\u{c}",
];

const ZWJ: &[&str] = &[
    "👨\u{200d}👩\u{200d}👧\u{200d}👦",
    "🏳\u{fe0f}\u{200d}🌈",
    "👩🏽\u{200d}💻",
    "🧑\u{200d}🤝\u{200d}🧑",
    "❤\u{fe0f}",
    "🇯🇵",
    "1\u{fe0f}\u{20e3}",
    "e\u{301}\u{302}\u{303}",
    "각\u{1100}\u{1161}\u{11a8}",
    "क\u{94d}\u{200d}ष",
    "ﷺ",
    "ﬃ",
    "™",
    "…",
];

fn random_char(rng: &mut Rng) -> char {
    loop {
        let (lo, hi) = rng.pick(RANGES);
        let c = lo + (rng.next() % u64::from(hi - lo + 1)) as u32;
        if let Some(ch) = char::from_u32(c) {
            return ch;
        }
    }
}

fn random_substring(rng: &mut Rng, texts: &[String]) -> String {
    let t: Vec<char> = texts[rng.below(texts.len())].chars().collect();
    if t.is_empty() {
        return String::new();
    }
    let a = rng.below(t.len());
    let len = 1 + rng.below(40.min(t.len() - a));
    t[a..a + len].iter().collect()
}

fn generate(rng: &mut Rng, texts: &[String]) -> String {
    let mut s = String::new();
    let parts = 1 + rng.below(8);
    for _ in 0..parts {
        match rng.below(10) {
            0 | 1 => s.push_str(&random_substring(rng, texts)),
            2 | 3 => {
                for _ in 0..1 + rng.below(6) {
                    s.push(random_char(rng));
                }
            }
            4 => {
                for _ in 0..1 + rng.below(5) {
                    s.push_str(rng.pick(WHITES));
                }
            }
            5 => {
                let sp = rng.below(4);
                if sp & 1 == 1 {
                    s.push_str(rng.pick(&[" ", "  ", "\t", "\u{3000}", "\n"]));
                }
                s.push_str(rng.pick(SPECIALS));
                if sp & 2 == 2 {
                    s.push_str(rng.pick(&[" ", "  ", "\t", "\u{3000}", "\n"]));
                }
            }
            6 => s.push_str(rng.pick(ZWJ)),
            7 => {
                let words = [
                    "the",
                    "Hello",
                    "e5",
                    "42",
                    "3.14",
                    "co-op",
                    "naïve",
                    "ÆSIR",
                    "I'm",
                    "x",
                    "...",
                    "!!",
                    "--",
                    "@user",
                    "#tag",
                    "https://example.com/a?b=c",
                ];
                s.push_str(rng.pick(&words));
            }
            8 => s.push(' '),
            _ => {
                // full text with prefixes
                let p = rng.pick(&["query: ", "passage: ", ""]);
                s.push_str(p);
                s.push_str(&random_substring(rng, texts));
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------

fn check_parity(path: &Path, generated: usize, seed: u64) {
    let json = std::fs::read_to_string(path).unwrap();
    let t0 = Instant::now();
    let compact = CompactUnigram::from_json(&json).expect("from_json").expect("supported shape");
    let load_compact = t0.elapsed();
    let t0 = Instant::now();
    let reference_tok = load_reference(path);
    let load_ref = t0.elapsed();
    eprintln!(
        "{}: from_json {:.1} ms, tokenizers load {:.1} ms; vocab structures {:.1} MB",
        path.display(),
        load_compact.as_secs_f64() * 1e3,
        load_ref.as_secs_f64() * 1e3,
        compact.heap_bytes() as f64 / 1e6,
    );
    assert_eq!(compact.vocab_size(), reference_tok.get_vocab_size(true), "vocab_size");

    let texts = fixture_texts();
    let mut inputs: Vec<String> = vec![String::new(), " ".into(), "  ".into(), "\u{200b}".into(), "<mask>".into()];
    for t in &texts {
        inputs.push(t.clone());
        inputs.push(format!("query: {t}"));
        inputs.push(format!("passage: {t}"));
    }
    let mut rng = Rng(seed);
    for _ in 0..generated {
        inputs.push(generate(&mut rng, &texts));
    }

    let mut mismatches = 0;
    let mut tokens = 0usize;
    let (mut t_ref, mut t_compact) = (0f64, 0f64);
    for text in &inputs {
        let a = Instant::now();
        let want = reference(&reference_tok, text);
        t_ref += a.elapsed().as_secs_f64();
        let a = Instant::now();
        let got = compact.encode(text);
        t_compact += a.elapsed().as_secs_f64();
        tokens += want.ids.len();
        if got != want {
            mismatches += 1;
            if mismatches <= 20 {
                eprintln!("MISMATCH for text {text:?}");
                eprintln!("  tokenizers: {want:?}");
                eprintln!("  compact:    {got:?}");
            }
        }
    }
    eprintln!(
        "{}: compared {} strings ({} fixture-derived, {} generated), {} tokens; {} mismatches; encode time tokenizers {:.0} ms, compact {:.0} ms",
        path.display(),
        inputs.len(),
        inputs.len() - generated,
        generated,
        tokens,
        mismatches,
        t_ref * 1e3,
        t_compact * 1e3
    );
    assert_eq!(mismatches, 0, "{mismatches} of {} strings differ from tokenizers", inputs.len());
}

#[test]
fn parity_tiny_xlmr() {
    check_parity(&tiny_json(), 20_000, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn parity_multilingual_e5_small() {
    check_parity(&e5_small_json(), 20_000, 0xD1B5_4A32_D192_ED03);
}

#[test]
fn unsupported_shapes_fall_back() {
    let json = std::fs::read_to_string(tiny_json()).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"});
    assert!(CompactUnigram::from_json(&v.to_string()).unwrap().is_none());
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["model"] = serde_json::json!({"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}});
    assert!(CompactUnigram::from_json(&v.to_string()).unwrap().is_none());
    assert!(CompactUnigram::from_json("{not json").is_err());
}

// ---------------------------------------------------------------------------------------
// resident memory, measured in a fresh child process for each tokenizer

fn vm_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// Runs only as a child of `resident_memory_after_loading`.
#[test]
fn memory_probe_child() {
    let Ok(which) = std::env::var("E5_UNIGRAM_MEM_PROBE") else { return };
    let path = e5_small_json();
    let before = vm_rss_kb();
    let json = std::fs::read_to_string(&path).unwrap();
    let t0 = Instant::now();
    let keep: Box<dyn std::any::Any> = if which == "compact" {
        let c = CompactUnigram::from_json(&json).unwrap().unwrap();
        Box::new(c)
    } else {
        let t = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
        Box::new(t)
    };
    let load = t0.elapsed();
    drop(json);
    let after = vm_rss_kb();
    std::hint::black_box(&keep);
    println!("MEMPROBE {which} rss_delta_kb={} load_ms={:.1}", after.saturating_sub(before), load.as_secs_f64() * 1e3);
}

#[test]
fn resident_memory_after_loading() {
    let _ = e5_small_json();
    if std::env::var("E5_UNIGRAM_MEM_PROBE").is_ok() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut res = std::collections::HashMap::new();
    for which in ["compact", "tokenizers"] {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "memory_probe_child", "--nocapture", "--test-threads=1"])
            .env("E5_UNIGRAM_MEM_PROBE", which)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stdout
            .lines()
            .find_map(|l| l.find("MEMPROBE").map(|k| &l[k..]))
            .unwrap_or_else(|| panic!("probe failed: {stdout}\n{stderr}"));
        eprintln!("{line}");
        let kb: u64 = line.split("rss_delta_kb=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        res.insert(which, kb);
    }
    eprintln!(
        "resident after loading multilingual-e5-small tokenizer: compact {:.1} MB, tokenizers {:.1} MB",
        res["compact"] as f64 / 1024.0,
        res["tokenizers"] as f64 / 1024.0
    );
    assert!(res["compact"] < 32 * 1024, "compact tokenizer holds {} kB resident", res["compact"]);
}

/// Other configurations of the supported shape (tiny vocabulary, edited JSON): Roberta
/// post-processing, other Metaspace settings, no normalizer, added-token flags.
#[test]
fn parity_config_variants() {
    use serde_json::json;
    let json = std::fs::read_to_string(tiny_json()).unwrap();
    let base: serde_json::Value = serde_json::from_str(&json).unwrap();
    let texts = fixture_texts();
    #[allow(clippy::type_complexity)] // a table of named JSON edits
    let edits: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>)> = vec![
        (
            "roberta",
            Box::new(
                |v| v["post_processor"] = json!({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": true, "add_prefix_space": true}),
            ),
        ),
        ("no post-processor", Box::new(|v| v["post_processor"] = serde_json::Value::Null)),
        ("prepend first", Box::new(|v| v["pre_tokenizer"]["prepend_scheme"] = json!("first"))),
        (
            "prepend never, no split",
            Box::new(|v| {
                v["pre_tokenizer"]["prepend_scheme"] = json!("never");
                v["pre_tokenizer"]["split"] = json!(false);
            }),
        ),
        ("no normalizer", Box::new(|v| v["normalizer"] = serde_json::Value::Null)),
        ("precompiled only", Box::new(|v| v["normalizer"] = v["normalizer"]["normalizers"][0].clone())),
        (
            "added-token flags",
            Box::new(|v| {
                let a = v["added_tokens"].as_array_mut().unwrap();
                a[0]["rstrip"] = json!(true);
                a[1]["lstrip"] = json!(true);
                a[1]["rstrip"] = json!(true);
                a[2]["single_word"] = json!(true);
                a[3]["single_word"] = json!(true);
                a[3]["lstrip"] = json!(true);
                a.push(json!({"id": 500, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true}));
                a.push(json!({"id": 501, "content": "<mas", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}));
            }),
        ),
    ];
    let mut failed = vec![];
    for (name, edit) in &edits {
        let mut v = base.clone();
        edit(&mut v);
        let s = v.to_string();
        let compact = CompactUnigram::from_json(&s).unwrap().unwrap_or_else(|| panic!("{name}: unsupported"));
        let mut reference_tok = tokenizers::Tokenizer::from_bytes(s.as_bytes()).unwrap();
        reference_tok.with_padding(None);
        reference_tok.with_truncation(None).unwrap();
        assert_eq!(compact.vocab_size(), reference_tok.get_vocab_size(true), "{name}: vocab_size");
        let mut rng = Rng(0x1234_5678 ^ name.len() as u64);
        let mut inputs: Vec<String> = texts.clone();
        inputs.extend((0..3000).map(|_| generate(&mut rng, &texts)));
        let mut bad = 0;
        for text in &inputs {
            let want = reference(&reference_tok, text);
            let got = compact.encode(text);
            if got != want {
                bad += 1;
                if bad <= 5 {
                    eprintln!("{name}: MISMATCH for text {text:?}\n  tokenizers: {want:?}\n  compact:    {got:?}");
                }
            }
        }
        eprintln!("variant {name}: {} strings, {bad} mismatches", inputs.len());
        if bad > 0 {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "variants with mismatches: {failed:?}");
}
