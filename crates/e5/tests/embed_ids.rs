//! `Model::embed_ids`: token sequences from `Model::tokenize` embed bit-identically to
//! their texts, alone or batched, and bad sequences are named by index.

use e5::{Error, Input, Model, Options};

fn tiny() -> Model {
    let dir = format!("{}/../../tests/fixtures/tiny-xlmr", env!("CARGO_MANIFEST_DIR"));
    Model::load(dir, Options::default()).unwrap()
}

#[test]
fn ids_from_tokenize_embed_like_their_text() {
    let model = tiny();
    let texts = [Input::query("hello world"), Input::passage("a longer passage about nothing much"), Input::raw("")];
    let by_text = model.embed(&texts).unwrap();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| model.tokenize(t).unwrap().ids).collect();
    let seqs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let by_ids = model.embed_ids(&seqs).unwrap();
    assert_eq!(by_ids.data, by_text.data);
    for (i, row) in by_ids.rows.iter().enumerate() {
        assert_eq!((row.input, row.tokens, row.truncated), (i, ids[i].len(), false));
    }
    let alone = model.embed_ids(&seqs[1..2]).unwrap();
    assert_eq!(alone.vector(0), by_text.vector(1));
}

#[test]
fn bad_sequences_are_named_by_index() {
    let model = tiny();
    let max = model.info().max_tokens;
    let vocab = model.info().vocab_size as u32;
    let long = vec![5u32; max + 1];
    for (seqs, needle) in [
        (vec![&[0u32, 2][..], &[][..]], "empty"),
        (vec![&[0u32, 2][..], &long[..]], "limit"),
        (vec![&[0u32, 2][..], &[0, vocab, 2][..]], "outside"),
    ] {
        match model.embed_ids(&seqs) {
            Err(Error::Input { index: 1, message }) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected an input error at index 1, got {other:?}"),
        }
    }
}
