//! Inputs over the model's limit are never cut silently: truncation is reported, and
//! chunking embeds all of the text.

use e5::{ChunkOutput, Input, LongInputs, Model, Options};
use e5_tests::*;

fn tiny(long_inputs: LongInputs) -> Model {
    Model::load(fixture("tiny-bert"), Options { long_inputs, ..Options::default() }).unwrap()
}

#[test]
fn truncation_is_reported_with_token_counts() {
    let m = tiny(LongInputs::Truncate);
    let long = "human rights ".repeat(100);
    let out = m.embed(&[Input::raw("short"), Input::raw(long.as_str())]).unwrap();
    assert_eq!(out.truncated().collect::<Vec<_>>(), vec![1]);
    let r = &out.rows[1];
    assert_eq!(r.tokens, m.config().max_tokens);
    assert!(r.input_tokens > r.tokens);
    assert!(r.chars.end < long.trim().chars().count() && r.chars.start == 0, "{:?}", r.chars);
    assert!(!out.rows[0].truncated && out.rows[0].input_tokens == out.rows[0].tokens);
}

#[test]
fn chunks_cover_the_text_with_overlap_and_char_spans() {
    let text = "Everyone has the right to life, liberty and security of person. ".repeat(20);
    let m = tiny(LongInputs::Chunk { window: 40, overlap: 8, output: ChunkOutput::PerChunk });
    let out = m.embed(&[Input::raw("x"), Input::raw(text.as_str())]).unwrap();
    let chunks: Vec<_> = out.rows.iter().filter(|r| r.input == 1).collect();
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    assert_eq!(chunks[0].chars.start, 0);
    assert_eq!(chunks.last().unwrap().chars.end, text.trim_end().chars().count());
    for w in chunks.windows(2) {
        assert!(w[1].chars.start < w[0].chars.end, "consecutive chunks overlap: {:?} {:?}", w[0].chars, w[1].chars);
        assert!(w[1].chars.start > w[0].chars.start);
    }
    assert!(chunks.iter().all(|c| c.tokens <= 42 && !c.truncated));
    // Each chunk's vector is the embedding of that span alone.
    let c = chunks[1];
    let span: String = text.chars().skip(c.chars.start).take(c.chars.end - c.chars.start).collect();
    let alone = tiny(LongInputs::Truncate).embed(&[Input::raw(span.as_str())]).unwrap();
    let i = out.rows.iter().position(|r| r == c).unwrap();
    assert!(cosine(alone.vector(0), out.vector(i)) > 0.999, "chunk vector vs its span embedded alone");
}

#[test]
fn every_chunk_of_a_query_is_presented_as_a_query() {
    let text = "Everyone has the right to life, liberty and security of person. ".repeat(20);
    let m = tiny(LongInputs::Chunk { window: 40, overlap: 8, output: ChunkOutput::PerChunk });
    let out = m.embed(&[Input::query(text.as_str())]).unwrap();
    // Each chunk holds the prefix's tokens besides its 40-token window and the specials.
    let prefix = m.tokenize(&Input::query("")).unwrap().ids.len() - 2;
    assert!(prefix > 0 && out.len() > 3);
    assert!(out.rows[..out.len() - 1].iter().all(|r| r.tokens == 40 + 2 + prefix), "{:?}", out.rows);
    // A later chunk embeds like its span alone as a query.
    let c = &out.rows[2];
    let span: String = text.chars().skip(c.chars.start).take(c.chars.end - c.chars.start).collect();
    let alone = tiny(LongInputs::Truncate).embed(&[Input::query(span.as_str())]).unwrap();
    assert!(cosine(alone.vector(0), out.vector(2)) > 0.999, "chunk 2 vs its span embedded alone as a query");
}

#[test]
fn per_input_chunking_is_the_weighted_mean_of_chunks() {
    let text = "All human beings are born free and equal in dignity and rights. ".repeat(15);
    let per_chunk = tiny(LongInputs::Chunk { window: 30, overlap: 5, output: ChunkOutput::PerChunk })
        .embed(&[Input::raw(text.as_str())])
        .unwrap();
    let per_input = tiny(LongInputs::Chunk { window: 30, overlap: 5, output: ChunkOutput::PerInput })
        .embed(&[Input::raw(text.as_str())])
        .unwrap();
    assert_eq!(per_input.len(), 1);
    let total: usize = per_chunk.rows.iter().map(|r| r.tokens).sum();
    let mut mean = vec![0.0f32; per_chunk.dim];
    for (r, v) in per_chunk.rows.iter().zip(per_chunk.vectors()) {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x * r.tokens as f32 / total as f32);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    mean.iter_mut().for_each(|x| *x /= norm);
    assert!(max_abs_diff(&mean, per_input.vector(0)) < 1e-6);
    assert!((per_input.vector(0).iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn a_one_megabyte_text_follows_the_rules() {
    let text = "Ünïcödé text, 中文 and emoji 🎉 in one long line. ".repeat(20_000);
    assert!(text.len() > 1_000_000);
    let t = tiny(LongInputs::Truncate).embed(&[Input::raw(text.as_str())]).unwrap();
    assert!(t.rows[0].truncated && t.rows[0].input_tokens > 100_000);
    let c = tiny(LongInputs::Chunk { window: 0, overlap: 0, output: ChunkOutput::PerInput })
        .embed(&[Input::raw(text.as_str())])
        .unwrap();
    assert_eq!(c.len(), 1);
    assert!(c.vector(0).iter().all(|x| x.is_finite()));
    assert_eq!(c.rows[0].chars.end, text.trim_end().chars().count());
}

#[test]
fn empty_and_whitespace_texts_still_get_vectors() {
    let m = tiny(LongInputs::Truncate);
    let out = m.embed(&[Input::raw(""), Input::raw("   "), Input::query("")]).unwrap();
    assert_eq!(out.len(), 3);
    for v in out.vectors() {
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert_eq!(out.vector(0), out.vector(1), "surrounding whitespace is stripped, as sentence-transformers does");
    assert!(m.embed(&[]).unwrap().is_empty());
}

#[test]
fn bad_chunk_options_are_errors() {
    let m = tiny(LongInputs::Chunk { window: 10, overlap: 10, output: ChunkOutput::PerInput });
    let e = m.embed(&[Input::raw("word ".repeat(200))]).unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
}
