use super::*;

const CLS: u32 = 0;
const SEP: u32 = 2;

/// `[CLS] t0 … t(n-1) [SEP]`; content token `i` covers characters `2i..2i + 1` of the
/// tokenized text.
fn encoded(n: usize) -> Encoded {
    let mut ids = vec![CLS];
    ids.extend((0..n as u32).map(|i| 10 + i % 1000));
    ids.push(SEP);
    let mut offsets = vec![(0, 0)];
    offsets.extend((0..n).map(|i| (2 * i, 2 * i + 1)));
    offsets.push((0, 0));
    Encoded {
        tokens: ids.iter().map(|i| i.to_string()).collect(),
        total: ids.len(),
        ids,
        offsets,
        prefix: 1,
        suffix: 1,
    }
}

fn planner(max_tokens: usize, long_inputs: LongInputs) -> Planner {
    Planner { max_tokens, vocab: 2000, long_inputs }
}

fn chunk(window: usize, overlap: usize) -> LongInputs {
    LongInputs::Chunk { window, overlap, output: ChunkOutput::PerChunk }
}

#[test]
fn compose_prefixes_strips_and_shifts_offsets_to_the_callers_text() {
    assert_eq!(compose("query: ", "how far"), ("query: how far".to_string(), -7));
    assert_eq!(compose("", " \u{1c} x \n"), ("x".to_string(), 3));
    assert_eq!(compose("passage: ", ""), ("passage:".to_string(), -9));
}

#[test]
fn an_input_that_fits_is_one_whole_piece() {
    let pieces = planner(10, LongInputs::Truncate).plan(3, &encoded(5), 0, 9, 0).unwrap();
    assert_eq!(pieces.len(), 1);
    let p = &pieces[0];
    assert_eq!(p.ids, encoded(5).ids);
    assert_eq!(p.row, RowInfo { input: 3, tokens: 7, input_tokens: 7, truncated: false, chars: 0..9 });
}

#[test]
fn truncation_keeps_the_specials_and_reports_the_span() {
    let pieces = planner(10, LongInputs::Truncate).plan(0, &encoded(20), -7, 40, 0).unwrap();
    assert_eq!(pieces.len(), 1);
    let p = &pieces[0];
    assert_eq!(p.ids.len(), 10);
    assert_eq!((p.ids[0], p.ids[9]), (CLS, SEP));
    assert_eq!(&p.ids[1..9], &encoded(20).ids[1..9]);
    // Content tokens 0..8 cover characters 0..15 of the tokenized text, shifted by -7 (the
    // prefix) and clamped at the caller's first character.
    assert_eq!(p.row, RowInfo { input: 0, tokens: 10, input_tokens: 22, truncated: true, chars: 0..8 });
}

#[test]
fn chunks_are_overlapping_windows_that_cover_every_token() {
    let enc = encoded(20);
    let pieces = planner(10, chunk(5, 2)).plan(1, &enc, 0, 40, 0).unwrap();
    // Windows start every 5 - 2 = 3 content tokens: 0, 3, …, 15 (the last ends at 20).
    let starts: Vec<usize> = (0..6).map(|k| 3 * k).collect();
    assert_eq!(pieces.len(), starts.len());
    for (p, &a) in pieces.iter().zip(&starts) {
        let b = (a + 5).min(20);
        assert_eq!(p.ids.len(), b - a + 2);
        assert_eq!(&p.ids[1..p.ids.len() - 1], &enc.ids[1 + a..1 + b]);
        assert_eq!(p.row.chars, 2 * a..2 * (b - 1) + 1);
        assert_eq!((p.row.input, p.row.input_tokens, p.row.truncated), (1, 22, false));
    }
    // Window 0: as many content tokens as fit (10 - 2 specials).
    let pieces = planner(10, chunk(0, 0)).plan(0, &enc, 0, 40, 0).unwrap();
    assert_eq!(pieces.iter().map(|p| p.ids.len() - 2).collect::<Vec<_>>(), vec![8, 8, 4]);
}

#[test]
fn the_prompt_opens_every_chunk_and_only_the_text_is_cut() {
    // Content tokens 0..3 are the prompt "p: " (characters 0..5, shift -6 to the caller's text).
    let enc = encoded(23);
    let pieces = planner(10, chunk(0, 2)).plan(0, &enc, -6, 40, 3).unwrap();
    // 10 - 2 specials - 3 prompt tokens: windows of 5 text tokens starting every 3.
    let starts = [3, 6, 9, 12, 15, 18];
    assert_eq!(pieces.len(), starts.len());
    for (p, &a) in pieces.iter().zip(&starts) {
        let b = (a + 5).min(23);
        let want: Vec<u32> =
            [CLS].iter().chain(&enc.ids[1..4]).chain(&enc.ids[1 + a..1 + b]).chain(&[SEP]).copied().collect();
        assert_eq!(p.ids, want);
        assert_eq!(p.row.chars, 2 * a - 6..2 * (b - 1) + 1 - 6, "the span is the chunk's text, not its prompt");
    }
    // Truncation keeps the prompt and the text's start, as before.
    let t = planner(10, LongInputs::Truncate).plan(0, &enc, -6, 40, 3).unwrap();
    assert_eq!(t[0].ids[..9], enc.ids[..9]);
    // A prompt that leaves no room for text is an error, not a piece of prompt alone.
    let e = planner(6, chunk(0, 0)).plan(4, &enc, 0, 40, 4).err().unwrap();
    assert!(e.to_string().contains("no room for text after the prompt"), "{e}");
}

#[test]
fn bad_plans_are_errors() {
    let e = planner(10, chunk(4, 4)).plan(0, &encoded(20), 0, 40, 0).err().unwrap();
    assert!(e.to_string().contains("overlap 4 must be smaller than the window 4"), "{e}");
    let e = planner(2, LongInputs::Truncate).plan(5, &encoded(3), 0, 6, 0).err().unwrap();
    assert!(matches!(e, Error::Input { index: 5, .. }) && e.to_string().contains("no room"), "{e}");
    let p = Planner { vocab: 12, ..planner(10, LongInputs::Truncate) };
    let e = p.plan(2, &encoded(5), 0, 9, 0).err().unwrap();
    assert!(e.to_string().contains("token id 12 is outside the embedding table (12 rows)"), "{e}");
}

#[test]
fn an_empty_input_is_its_specials() {
    let pieces = planner(512, chunk(0, 0)).plan(0, &encoded(0), 0, 0, 0).unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].ids, vec![CLS, SEP]);
    assert_eq!(pieces[0].row.chars, 0..0);
}

#[test]
fn a_megabyte_input_is_truncated_once_or_chunked_completely() {
    // About what 1 MB of text tokenizes to.
    let n = 300_000;
    let enc = encoded(n);
    let truncated = planner(512, LongInputs::Truncate).plan(0, &enc, 0, 2 * n, 0).unwrap();
    assert_eq!((truncated.len(), truncated[0].ids.len(), truncated[0].row.input_tokens), (1, 512, n + 2));
    let chunks = planner(512, chunk(0, 0)).plan(0, &enc, 0, 2 * n, 0).unwrap();
    assert_eq!(chunks.len(), n.div_ceil(510));
    assert_eq!(chunks.iter().map(|p| p.ids.len() - 2).sum::<usize>(), n);
    assert_eq!(chunks.last().unwrap().row.chars.end, 2 * (n - 1) + 1);
}

fn piece(input: usize, tokens: usize) -> Piece {
    Piece {
        ids: vec![1; tokens],
        row: RowInfo { input, tokens, input_tokens: tokens, truncated: false, chars: 10 * input..10 * input + tokens },
        skip: 0,
    }
}

#[test]
fn sub_batches_respect_the_token_budget_and_pack_concatenates() {
    let pieces: Vec<Piece> = [3, 4, 10, 2, 2].iter().map(|&t| piece(0, t)).collect();
    let group: Vec<usize> = (0..5).collect();
    // 3 + 4 fit in 7; 10 runs alone although over budget; 2 + 2.
    assert_eq!(sub_batches(&pieces, &group, 7), vec![&[0, 1][..], &[2], &[3, 4]]);
    assert_eq!(sub_batches(&pieces, &[4, 0], 100), vec![&[4, 0][..]]);
    assert!(sub_batches(&pieces, &[], 7).is_empty());
    let (ids, offsets) = pack([&[5, 6][..], &[7]].into_iter());
    assert_eq!((ids, offsets), (vec![5, 6, 7], vec![0, 2, 3]));
}

#[test]
fn assemble_merges_chunks_by_token_weight_and_renormalizes() {
    let kern = Kernels::detect().unwrap();
    // Input 0: chunks of 3 and 1 tokens; input 1: one piece.
    let pieces = vec![piece(0, 3), piece(0, 1), piece(1, 2)];
    let vectors = vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
    let merged = assemble(kern, 2, pieces, vectors.clone(), true, true);
    assert_eq!(merged.len(), 2);
    let norm = (0.75f32 * 0.75 + 0.25 * 0.25).sqrt();
    let v = merged.vector(0);
    assert!((v[0] - 0.75 / norm).abs() < 1e-6 && (v[1] - 0.25 / norm).abs() < 1e-6, "{v:?}");
    assert_eq!(merged.vector(1), &[0.6, 0.8]);
    assert_eq!((merged.rows[0].tokens, merged.rows[0].chars.clone()), (4, 0..1));
    let per_chunk = assemble(kern, 2, vec![piece(0, 3), piece(0, 1), piece(1, 2)], vectors.clone(), false, true);
    assert_eq!((per_chunk.len(), per_chunk.data), (3, vectors));
    // Unnormalized models keep the weighted mean as is.
    let raw = assemble(kern, 2, vec![piece(0, 3), piece(0, 1)], vec![2.0, 0.0, 0.0, 2.0], true, false);
    assert_eq!(raw.vector(0), &[1.5, 0.5]);
}
