//! The library surface: explicit prefixes, model resolution, introspection.

use e5::{Input, Model, Options};
use e5_tests::*;

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
}

#[test]
fn query_and_passage_prefixes_are_explicit() {
    let m = Model::load(built_model("multilingual-e5-small"), Options::default()).unwrap();
    let q = m.embed(&[Input::query("how to bake bread"), Input::raw("query: how to bake bread")]).unwrap();
    assert_eq!(q.vector(0), q.vector(1));
    let p = m
        .embed(&[Input::passage("Bread is baked at 220 °C."), Input::raw("passage: Bread is baked at 220 °C.")])
        .unwrap();
    assert_eq!(p.vector(0), p.vector(1));
    let raw = m.embed(&[Input::raw("how to bake bread")]).unwrap();
    assert_ne!(raw.vector(0), q.vector(0));
    // Character spans refer to the caller's text, not the prefixed one.
    assert_eq!(q.rows[0].chars, 0.."how to bake bread".len());
}

#[test]
fn e5_retrieval_sanity() {
    let m = Model::load(built_model("multilingual-e5-small"), Options::default()).unwrap();
    let out = m
        .embed(&[
            Input::query("how much protein should a female eat"),
            Input::passage("As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day."),
            Input::passage("Definition of summit for English Language Learners: the highest point of a mountain."),
        ])
        .unwrap();
    let dot = |a: usize, b: usize| out.vector(a).iter().zip(out.vector(b)).map(|(x, y)| x * y).sum::<f32>();
    assert!(dot(0, 1) > dot(0, 2) + 0.05, "{} vs {}", dot(0, 1), dot(0, 2));
}

#[test]
fn hugging_face_cache_names_resolve_locally() {
    let hf = tempfile::tempdir().unwrap();
    let repo = hf.path().join("hub/models--acme--tiny-bert");
    let snap = repo.join("snapshots/0123abc");
    std::fs::create_dir_all(&snap).unwrap();
    for e in std::fs::read_dir(fixture("tiny-bert")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, snap.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abc\n").unwrap();
    // SAFETY (edition 2021: set_var is safe): tests in this binary do not read HF_HUB_CACHE concurrently.
    std::env::set_var("HF_HUB_CACHE", hf.path().join("hub"));
    assert_eq!(e5::resolve_model("acme/tiny-bert").unwrap(), snap);
    let e = e5::resolve_model("acme/absent").unwrap_err().to_string();
    assert!(e.contains("never downloads") && e.contains("acme/absent"), "{e}");
    let e = e5::resolve_model("no-such-dir").unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn info_reports_shape_and_memory() {
    let m = Model::load(built_model("multilingual-e5-small"), Options::default()).unwrap();
    let i = m.info();
    assert_eq!((i.architecture, i.hidden, i.layers, i.heads, i.vocab_size), ("BertModel", 384, 12, 12, 250037));
    assert_eq!(i.max_tokens, 512);
    assert!((117_000_000..118_000_000).contains(&i.parameters), "{}", i.parameters);
    assert_eq!(i.embedding_table_bytes, 250037 * 384 * 4);
}

#[test]
fn prefetch_and_lock_residency_load_and_embed_alike() {
    let lazy = Model::load(fixture("tiny-xlmr"), Options::default()).unwrap();
    let want = lazy.embed(&[Input::raw("resident")]).unwrap();
    for residency in [e5::Residency::Prefetch, e5::Residency::Lock] {
        let m = Model::load(fixture("tiny-xlmr"), Options { residency, ..Options::default() }).unwrap();
        assert_eq!(m.embed(&[Input::raw("resident")]).unwrap().data, want.data, "{residency:?}");
    }
}
