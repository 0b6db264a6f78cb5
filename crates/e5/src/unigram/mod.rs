//! A memory-compact re-implementation of the `tokenizers` pipeline used by XLM-R style
//! (SentencePiece Unigram) `tokenizer.json` files, e.g. multilingual-e5.
//!
//! `tokenizers` (0.23) keeps ~280 MB resident for XLM-R's 250k-piece vocabulary (its Unigram
//! trie is a hash map per node, plus two more maps of owned strings). This module keeps a
//! breadth-first byte trie (~7 MB) and one `f64` score per piece, and reproduces the
//! `tokenizers` output exactly — ids, tokens, character offsets — for the supported shape:
//!
//! * added tokens with `normalized: false` (matched in the raw text, leftmost-longest,
//!   honouring `single_word`, `lstrip`, `rstrip`);
//! * normalizer: `Precompiled`, `Replace` (regex ` {2,}` or a literal), or a `Sequence` of
//!   those, or none;
//! * pre-tokenizer: `Metaspace` (any replacement char, prepend scheme and split flag) or none;
//! * model: `Unigram` with an `unk_id` (byte fallback supported);
//! * post-processor: `TemplateProcessing` (single-sequence template of special tokens and
//!   `$A`), `RobertaProcessing`, or none.
//!
//! Anything else makes `CompactUnigram::from_json` answer `Ok(None)` so that the caller can
//! fall back to `tokenizers`.

mod added;
mod charsmap;
mod error;
mod normalize;
mod trie;
mod viterbi;

use added::{AddedToken, AddedVocab};
pub use error::UnigramError;
use normalize::{char_matches, NormStr, Normalizer, Referential};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use trie::Trie;
use viterbi::{ModelToken, UnigramModel};

/// A Unigram tokenizer loaded from a tokenizer.json of the supported shape.
pub struct CompactUnigram {
    normalizer: Option<Normalizer>,
    pre_tokenizer: Option<Metaspace>,
    model: UnigramModel,
    added: AddedVocab,
    post: PostProcessor,
    vocab_size: usize,
}

/// One text's tokens, specials included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnigramEncoding {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// character offsets into the input text, (0,0) for specials
    pub offsets: Vec<(usize, usize)>,
    /// number of special tokens added at the start / end by the post-processor
    pub prefix: usize,
    pub suffix: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PrependScheme {
    First,
    Never,
    Always,
}

struct Metaspace {
    replacement: char,
    str_rep: String,
    prepend_scheme: PrependScheme,
    split: bool,
}

enum TemplatePiece {
    Special { ids: Vec<u32>, tokens: Vec<String> },
    SequenceA,
}

enum PostProcessor {
    None,
    Template(Vec<TemplatePiece>),
    Roberta { cls: (String, u32), sep: (String, u32), trim_offsets: bool, add_prefix_space: bool },
}

// ---------------------------------------------------------------------------------------
// JSON

/// A string borrowed from the JSON text when it has no escapes.
struct JsonStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `model.vocab`: a list of `[piece, score]` (Unigram) or anything else (other models).
enum VocabJson<'a> {
    Unigram(Vec<(JsonStr<'a>, f64)>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for VocabJson<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VocabJson<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a vocabulary")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<(JsonStr<'de>, f64)>()? {
                    v.push(item);
                }
                Ok(VocabJson::Unigram(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(VocabJson::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct ModelJson<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    unk_id: Option<usize>,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(borrow, default)]
    vocab: Option<VocabJson<'a>>,
}

#[derive(Deserialize)]
struct AddedTokenJson {
    #[allow(dead_code)]
    id: u32,
    content: String,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default = "yes")]
    normalized: bool,
    #[serde(default)]
    special: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct TokenizerJson<'a> {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenJson>,
    #[serde(default)]
    normalizer: Option<Value>,
    #[serde(default)]
    pre_tokenizer: Option<Value>,
    #[serde(default)]
    post_processor: Option<Value>,
    #[serde(borrow)]
    model: ModelJson<'a>,
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// Ok(None): a shape we do not reproduce.
fn parse_normalizer(v: &Value) -> Result<Option<Normalizer>, String> {
    match type_of(v) {
        Some("Sequence") => {
            let list = v.get("normalizers").and_then(Value::as_array).ok_or("Sequence without normalizers")?;
            let mut out = Vec::with_capacity(list.len());
            for x in list {
                match parse_normalizer(x)? {
                    Some(n) => out.push(n),
                    None => return Ok(None),
                }
            }
            Ok(Some(Normalizer::Sequence(out)))
        }
        Some("Precompiled") => {
            let Some(b64) = v.get("precompiled_charsmap").and_then(Value::as_str) else {
                return Ok(None);
            };
            let p = charsmap::parse(b64)?;
            Ok(Some(Normalizer::Precompiled(Box::new(p))))
        }
        Some("Replace") => {
            let content = v.get("content").and_then(Value::as_str).ok_or("Replace without content")?.to_owned();
            let pattern = v.get("pattern").ok_or("Replace without pattern")?;
            if let Some(re) = pattern.get("Regex").and_then(Value::as_str) {
                if re == " {2,}" {
                    return Ok(Some(Normalizer::ReplaceSpaceRuns { content }));
                }
                return Ok(None);
            }
            if let Some(s) = pattern.get("String").and_then(Value::as_str) {
                if s.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Normalizer::ReplaceLiteral { pattern: s.to_owned(), content }));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn parse_metaspace(v: &Value) -> Result<Option<Metaspace>, String> {
    if type_of(v) != Some("Metaspace") {
        return Ok(None);
    }
    let rep = v.get("replacement").and_then(Value::as_str).ok_or("Metaspace without replacement")?;
    let mut chars = rep.chars();
    let replacement = match (chars.next(), chars.next()) {
        (Some(c), None) => c,
        _ => return Err("Metaspace replacement must be one character".into()),
    };
    let mut prepend_scheme = match v.get("prepend_scheme") {
        None | Some(Value::Null) => PrependScheme::Always,
        Some(Value::String(s)) => match s.as_str() {
            "always" => PrependScheme::Always,
            "first" => PrependScheme::First,
            "never" => PrependScheme::Never,
            other => return Err(format!("unknown prepend_scheme {other:?}")),
        },
        Some(_) => return Err("bad prepend_scheme".into()),
    };
    if v.get("add_prefix_space").and_then(Value::as_bool) == Some(false) {
        if prepend_scheme != PrependScheme::Never {
            return Err("add_prefix_space does not match declared prepend_scheme".into());
        }
        prepend_scheme = PrependScheme::Never;
    }
    let split = v.get("split").and_then(Value::as_bool).unwrap_or(true);
    Ok(Some(Metaspace { replacement, str_rep: replacement.to_string(), prepend_scheme, split }))
}

fn parse_post(v: &Value) -> Result<Option<PostProcessor>, String> {
    match type_of(v) {
        Some("TemplateProcessing") => {
            let specials =
                v.get("special_tokens").and_then(Value::as_object).ok_or("template without special_tokens")?;
            let single = v.get("single").and_then(Value::as_array).ok_or("template without single")?;
            let mut pieces = Vec::with_capacity(single.len());
            for p in single {
                if let Some(s) = p.get("SpecialToken") {
                    let id = s.get("id").and_then(Value::as_str).ok_or("SpecialToken without id")?;
                    let tok = specials.get(id).ok_or_else(|| format!("missing special token {id}"))?;
                    let ids: Vec<u32> = tok
                        .get("ids")
                        .and_then(Value::as_array)
                        .ok_or("special token without ids")?
                        .iter()
                        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or("special token id is not a u32"))
                        .collect::<Result<_, _>>()?;
                    let tokens: Vec<String> = tok
                        .get("tokens")
                        .and_then(Value::as_array)
                        .ok_or("special token without tokens")?
                        .iter()
                        .map(|x| x.as_str().map(str::to_owned).ok_or("bad token"))
                        .collect::<Result<_, _>>()?;
                    if ids.len() != tokens.len() {
                        return Err("special token ids and tokens differ in length".into());
                    }
                    pieces.push(TemplatePiece::Special { ids, tokens });
                } else if let Some(s) = p.get("Sequence") {
                    match s.get("id").and_then(Value::as_str) {
                        Some("A") => pieces.push(TemplatePiece::SequenceA),
                        _ => return Ok(None),
                    }
                } else {
                    return Ok(None);
                }
            }
            Ok(Some(PostProcessor::Template(pieces)))
        }
        Some("RobertaProcessing") => {
            let pair = |k: &str| -> Result<(String, u32), String> {
                let a = v.get(k).and_then(Value::as_array).ok_or_else(|| format!("RobertaProcessing without {k}"))?;
                let id = a.get(1).and_then(Value::as_u64).and_then(|x| u32::try_from(x).ok());
                match (a.first().and_then(Value::as_str), id, a.len()) {
                    (Some(s), Some(id), 2) => Ok((s.to_owned(), id)),
                    _ => Err(format!("bad RobertaProcessing {k}")),
                }
            };
            Ok(Some(PostProcessor::Roberta {
                cls: pair("cls")?,
                sep: pair("sep")?,
                trim_offsets: v.get("trim_offsets").and_then(Value::as_bool).unwrap_or(true),
                add_prefix_space: v.get("add_prefix_space").and_then(Value::as_bool).unwrap_or(true),
            }))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------

impl Metaspace {
    /// `Metaspace::pre_tokenize` on one split.
    fn pre_tokenize(&self, mut n: NormStr) -> Vec<NormStr> {
        let matches = char_matches(n.get(), ' ');
        n.replace_matches(&matches, &self.str_rep);
        match self.prepend_scheme {
            PrependScheme::Always => {
                if !n.get().starts_with(self.replacement) {
                    n.prepend(&self.str_rep);
                }
            }
            PrependScheme::First => {
                if !n.get().starts_with(self.replacement) && n.offsets_original().0 == 0 {
                    n.prepend(&self.str_rep);
                }
            }
            PrependScheme::Never => {}
        }
        if self.split {
            n.split_merged_with_next(self.replacement)
        } else {
            vec![n]
        }
    }
}

/// `BytesToCharOffsetConverter`.
struct CharOffsets {
    /// char index of every byte of the text
    map: Vec<usize>,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let mut map = Vec::with_capacity(text.len());
        for (i, (_, c)) in text.char_indices().enumerate() {
            for _ in 0..c.len_utf8() {
                map.push(i);
            }
        }
        CharOffsets { map }
    }

    fn convert(&self, offsets: (usize, usize)) -> Option<(usize, usize)> {
        match (self.map.get(offsets.0), self.map.get(offsets.1)) {
            (Some(&start), Some(&end)) => Some((start, end)),
            (Some(&start), None) => {
                let last = offsets.1.checked_sub(1).and_then(|i| self.map.get(i)).copied().unwrap_or(start + 1);
                Some((start, last + 1))
            }
            _ => None,
        }
    }
}

/// `pre_tokenizers::byte_level::process_offsets` (used by `RobertaProcessing` with
/// `trim_offsets`).
fn trim_offsets(tokens: &[String], offsets: &mut [(usize, usize)], add_prefix_space: bool) {
    const BYTE_LEVEL_SPACE: char = '\u{120}';
    for (i, (token, offsets)) in tokens.iter().zip(offsets.iter_mut()).enumerate() {
        let is_space = |c: &char| *c == BYTE_LEVEL_SPACE || c.is_whitespace();
        let mut leading_spaces = token.chars().take_while(is_space).count();
        let trailing_spaces = token.chars().rev().take_while(is_space).count();
        if leading_spaces > 0 || trailing_spaces > 0 {
            if leading_spaces > 0 {
                let is_first = i == 0 || offsets.0 == 0;
                if is_first && add_prefix_space && leading_spaces == 1 {
                    leading_spaces = 0;
                }
                offsets.0 = std::cmp::min(offsets.0 + leading_spaces, offsets.1);
            }
            if trailing_spaces > 0 && offsets.1 >= trailing_spaces {
                offsets.1 = std::cmp::max(offsets.1 - trailing_spaces, offsets.0);
            }
        }
    }
}

/// Checks every `Precompiled` normalizer in a `tokenizer.json` before the `tokenizers`
/// crate (which does not bound the charsmap) reads it.
pub fn check_charsmaps(json: &str) -> Result<(), String> {
    fn walk(v: &Value) -> Result<(), String> {
        match v {
            Value::Object(o) => {
                if let (Some("Precompiled"), Some(b64)) =
                    (type_of(v), o.get("precompiled_charsmap").and_then(Value::as_str))
                {
                    charsmap::parse(b64)?;
                }
                o.values().try_for_each(walk)
            }
            Value::Array(a) => a.iter().try_for_each(walk),
            _ => Ok(()),
        }
    }
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    v.get("normalizer").map_or(Ok(()), walk)
}

impl CompactUnigram {
    /// Ok(None) when the JSON is a valid tokenizer but not of the supported shape (caller falls back to `tokenizers`); Err on malformed content.
    pub fn from_json(json: &str) -> Result<Option<Self>, UnigramError> {
        let file: TokenizerJson = serde_json::from_str(json).map_err(|e| UnigramError::Json(e.to_string()))?;
        if let Some(v) = &file.version {
            if v != "1.0" {
                return Err(UnigramError::Version(v.clone()));
            }
        }
        let vocab_err = |m: &str| Err(UnigramError::Vocab(m.into()));

        // --- model
        if file.model.kind.as_deref() != Some("Unigram") {
            return Ok(None);
        }
        let vocab = match file.model.vocab {
            Some(VocabJson::Unigram(v)) => v,
            Some(VocabJson::Other) => return vocab_err("Unigram vocab must be a list"),
            None => return vocab_err("Missing vocab"),
        };
        let unk_id = match file.model.unk_id {
            // without unk_id `tokenizers` fails on unknown characters; leave that to it
            None => return Ok(None),
            Some(u) if vocab.is_empty() => return vocab_err(&format!("unk_id {u} with an empty vocabulary")),
            Some(u) if u >= vocab.len() => return vocab_err("The `unk_id` is larger than vocabulary size"),
            Some(u) => u as u32,
        };
        if vocab.len() >= u32::MAX as usize {
            return vocab_err("vocabulary too large");
        }
        let mut scores = Vec::with_capacity(vocab.len());
        let mut min_score = f64::INFINITY;
        for (_, s) in &vocab {
            scores.push(*s);
            if *s < min_score {
                min_score = *s;
            }
        }
        let keys: Vec<(&[u8], u32)> = vocab.iter().enumerate().map(|(i, (p, _))| (p.0.as_bytes(), i as u32)).collect();
        let trie = Trie::build(keys).map_err(UnigramError::Vocab)?;
        drop(vocab);
        let mut byte_ids = Box::new([u32::MAX; 256]);
        if file.model.byte_fallback {
            for (b, slot) in byte_ids.iter_mut().enumerate() {
                if let Some(id) = trie.get(format!("<0x{b:02X}>").as_bytes()) {
                    *slot = id;
                }
            }
        }
        let model = UnigramModel { trie, scores, min_score, unk_id, byte_fallback: file.model.byte_fallback, byte_ids };

        // --- normalizer, pre-tokenizer, post-processor
        let normalizer = match &file.normalizer {
            None | Some(Value::Null) => None,
            Some(v) => match parse_normalizer(v).map_err(UnigramError::Normalizer)? {
                Some(n) => Some(n),
                None => return Ok(None),
            },
        };
        let pre_tokenizer = match &file.pre_tokenizer {
            None | Some(Value::Null) => None,
            Some(v) => match parse_metaspace(v).map_err(UnigramError::PreTokenizer)? {
                Some(m) => Some(m),
                None => return Ok(None),
            },
        };
        let post = match &file.post_processor {
            None | Some(Value::Null) => PostProcessor::None,
            Some(v) => match parse_post(v).map_err(UnigramError::PostProcessor)? {
                Some(p) => p,
                None => return Ok(None),
            },
        };

        // --- added tokens (`AddedVocabulary::add_tokens`, called once with all of them)
        let model_len = model.vocab_len() as u32;
        let mut next_id = model_len;
        let mut added_map: HashMap<String, u32> = HashMap::new();
        let mut added_r: BTreeMap<u32, AddedTokenJson> = BTreeMap::new();
        for t in file.added_tokens {
            if t.content.is_empty() {
                continue;
            }
            if let Some(id) = added_map.get(&t.content) {
                if let Some(old) = added_r.get(id) {
                    if (old.single_word, old.lstrip, old.rstrip, old.normalized, old.special)
                        == (t.single_word, t.lstrip, t.rstrip, t.normalized, t.special)
                    {
                        continue;
                    }
                }
            }
            let new_id = match added_map.get(&t.content).copied().or_else(|| model.trie.get(t.content.as_bytes())) {
                Some(id) => id,
                None => {
                    next_id += 1;
                    next_id - 1
                }
            };
            added_map.insert(t.content.clone(), new_id);
            added_r.insert(new_id, t);
        }
        let mut tokens = Vec::new();
        for (id, t) in &added_r {
            if t.normalized {
                // tokens matched after normalization: not reproduced here
                return Ok(None);
            }
            tokens.push(AddedToken {
                content: t.content.clone(),
                id: *id,
                single_word: t.single_word,
                lstrip: t.lstrip,
                rstrip: t.rstrip,
            });
        }
        let overlapping = added_map.keys().filter(|k| model.trie.get(k.as_bytes()).is_some()).count();
        let vocab_size = model.vocab_len() + added_map.len() - overlapping;

        let out = CompactUnigram { normalizer, pre_tokenizer, model, added: AddedVocab { tokens }, post, vocab_size };
        // Loading allocates and frees ~20 MB of short-lived buffers (the parsed vocabulary,
        // the trie construction queue); hand the freed pages back to the OS so that they do
        // not stay resident in glibc's heap.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(Some(out))
    }

    /// Size of the vocabulary, added tokens included (`get_vocab_size(true)`).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Heap bytes held by the vocabulary structures (trie and scores).
    pub fn heap_bytes(&self) -> usize {
        self.model.trie.heap_bytes() + 8 * self.model.scores.capacity()
    }

    /// Encodes one text with special tokens added and no truncation, like
    /// `tokenizers::Tokenizer::encode_char_offsets(text, true)`.
    pub fn encode(&self, text: &str) -> UnigramEncoding {
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        let mut offsets = Vec::new();
        let mut model_tokens: Vec<ModelToken> = Vec::new();
        for (added_id, (s, e)) in self.added.find_matches(text) {
            if s == e {
                continue;
            }
            if let Some(id) = added_id {
                ids.push(id);
                tokens.push(text[s..e].to_owned());
                offsets.push((s, e));
                continue;
            }
            let mut n = NormStr::new(&text[s..e]);
            n.original_shift = s;
            if let Some(norm) = &self.normalizer {
                norm.normalize(&mut n);
            }
            if n.is_empty() {
                continue;
            }
            let n = n.slice_normalized(0..n.len()).expect("AddedVocabulary bad split");
            if n.is_empty() {
                continue;
            }
            let words = match &self.pre_tokenizer {
                Some(m) => m.pre_tokenize(n),
                None => vec![n],
            };
            for w in words.into_iter().filter(|w| !w.is_empty()) {
                self.model.tokenize(w.get(), &mut model_tokens);
                let shift = w.offsets_original().0;
                for t in model_tokens.drain(..) {
                    let o = match w.convert_offsets(Referential::Normalized, t.offsets.0..t.offsets.1) {
                        Some(r) => (shift + r.start, shift + r.end),
                        None => t.offsets,
                    };
                    ids.push(t.id);
                    tokens.push(t.value);
                    offsets.push(o);
                }
            }
        }
        if !offsets.is_empty() {
            let conv = CharOffsets::new(text);
            for o in offsets.iter_mut() {
                *o = conv.convert(*o).unwrap_or(*o);
            }
        }

        // post-processing
        let mut out = UnigramEncoding { ids: vec![], tokens: vec![], offsets: vec![], prefix: 0, suffix: 0 };
        let mut mask: Vec<bool> = Vec::new();
        let push_special = |out: &mut UnigramEncoding, mask: &mut Vec<bool>, id: u32, tok: &str| {
            out.ids.push(id);
            out.tokens.push(tok.to_owned());
            out.offsets.push((0, 0));
            mask.push(true);
        };
        match &self.post {
            PostProcessor::None => {
                mask = vec![false; ids.len()];
                out.ids = ids;
                out.tokens = tokens;
                out.offsets = offsets;
            }
            PostProcessor::Template(pieces) => {
                for p in pieces {
                    match p {
                        TemplatePiece::Special { ids: sids, tokens: stoks } => {
                            for (id, tok) in sids.iter().zip(stoks) {
                                push_special(&mut out, &mut mask, *id, tok);
                            }
                        }
                        TemplatePiece::SequenceA => {
                            out.ids.extend_from_slice(&ids);
                            out.tokens.extend(tokens.iter().cloned());
                            out.offsets.extend_from_slice(&offsets);
                            mask.extend(std::iter::repeat_n(false, ids.len()));
                        }
                    }
                }
            }
            PostProcessor::Roberta { cls, sep, trim_offsets: trim, add_prefix_space } => {
                if *trim {
                    trim_offsets(&tokens, &mut offsets, *add_prefix_space);
                }
                push_special(&mut out, &mut mask, cls.1, &cls.0);
                mask.extend(std::iter::repeat_n(false, ids.len()));
                out.ids.extend_from_slice(&ids);
                out.tokens.extend(tokens);
                out.offsets.extend_from_slice(&offsets);
                push_special(&mut out, &mut mask, sep.1, &sep.0);
            }
        }
        out.prefix = mask.iter().take_while(|&&s| s).count();
        out.suffix = mask[out.prefix..].iter().rev().take_while(|&&s| s).count();
        out
    }
}
