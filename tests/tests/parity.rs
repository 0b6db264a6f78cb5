//! fp32 parity with sentence-transformers / HF transformers: token ids identical, every
//! embedding within 1e-5 per component and cosine ≥ 0.99999, tiny models' per-layer hidden
//! states within 1e-5. Run under every ISA this CPU has.

use e5::{Input, Isa, Model, Options, Site};
use e5_tests::*;
use std::path::Path;

const MAX_DIFF: f32 = 1e-5;
const MIN_COSINE: f64 = 0.99999;

fn model(dir: &Path, isa: Isa) -> Model {
    Model::load(dir, Options { isa: Some(isa), ..Options::default() })
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Token ids and embeddings of every reference text, on one ISA.
#[allow(clippy::needless_range_loop)] // `i` indexes five parallel tables
fn check_embeddings(dir: &Path, reference: &Path, isa: Isa, limit: usize) {
    let m = model(dir, isa);
    let r = Reference::load(reference);
    let n = r.texts.len().min(limit);
    let inputs: Vec<Input> = r.texts[..n].iter().map(|t| Input::raw(t.as_str())).collect();
    let out = m.embed(&inputs).unwrap();
    let (mut worst_diff, mut worst_cos) = (0.0f32, 1.0f64);
    for (i, input) in inputs.iter().enumerate() {
        let toks = m.tokenize(input).unwrap();
        assert_eq!(toks.ids.len(), r.untruncated[i], "{isa} text {i} {:?}: untruncated length", r.texts[i]);
        let row = &out.rows[i];
        assert_eq!(row.truncated, r.untruncated[i] > r.ids[i].len(), "{isa} text {i}: truncation flag");
        assert_eq!(row.tokens, r.ids[i].len(), "{isa} text {i}: tokens embedded");
        // Truncation keeps the first tokens and the closing special.
        let want = &r.ids[i];
        let kept: Vec<u32> = toks.ids[..want.len() - 1].iter().chain(toks.ids.last()).copied().collect();
        assert_eq!(&kept, want, "{isa} text {i} {:?}: ids", r.texts[i]);
        let d = max_abs_diff(out.vector(i), &r.embeddings[i]);
        let c = cosine(out.vector(i), &r.embeddings[i]);
        assert!(d <= MAX_DIFF && c >= MIN_COSINE, "{isa} text {i} {:?}: max diff {d:e}, cosine {c}", r.texts[i]);
        worst_diff = worst_diff.max(d);
        worst_cos = worst_cos.min(c);
    }
    eprintln!("{} on {isa}: {n} texts, max |diff| {worst_diff:.2e}, min cosine {worst_cos:.7}", dir.display());
}

/// Per-layer hidden states of a tiny model against HF `output_hidden_states`.
fn check_hidden_states(name: &str) {
    let dir = fixture(name);
    let r = Reference::load(&dir.join("reference.safetensors"));
    let want = r.hidden_states.as_ref().expect("tiny references carry hidden states");
    for isa in Isa::available() {
        let m = model(&dir, isa);
        let inputs: Vec<Input> = r.texts.iter().map(|t| Input::raw(t.as_str())).collect();
        let mut got: Vec<Option<Vec<f32>>> = vec![None; want.len()];
        let (ids, _) = m
            .trace(&inputs, &mut |site, x| match site {
                Site::Embeddings => got[0] = Some(x.to_vec()),
                Site::Output(i) => got[i + 1] = Some(x.to_vec()),
                _ => {}
            })
            .unwrap();
        assert_eq!(ids, r.ids.concat(), "{name} {isa}: batch ids");
        for (layer, (g, w)) in got.iter().zip(want).enumerate() {
            let d = max_abs_diff(g.as_ref().expect("every layer observed"), w);
            assert!(d <= MAX_DIFF, "{name} {isa}: hidden state {layer} max diff {d:e}");
        }
    }
}

#[test]
fn tiny_bert_hidden_states() {
    check_hidden_states("tiny-bert");
}

#[test]
fn tiny_xlmr_hidden_states() {
    check_hidden_states("tiny-xlmr");
}

#[test]
fn tiny_bert_f16_prefixed_hidden_states() {
    check_hidden_states("tiny-bert-f16");
}

#[test]
fn tiny_models_embeddings_on_every_isa() {
    for name in ["tiny-bert", "tiny-xlmr", "tiny-bert-f16"] {
        for isa in Isa::available() {
            check_embeddings(&fixture(name), &fixture(name).join("reference.safetensors"), isa, usize::MAX);
        }
    }
}

#[test]
fn multilingual_e5_small_matches_sentence_transformers() {
    check_embeddings(
        &built_model("multilingual-e5-small"),
        &fixture("reference/e5-small.safetensors"),
        Isa::best(),
        usize::MAX,
    );
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    check_embeddings(
        &built_model("all-MiniLM-L6-v2"),
        &fixture("reference/minilm.safetensors"),
        Isa::best(),
        usize::MAX,
    );
}

/// multilingual-e5-small on one ISA: a slice of the reference set covers each path end to
/// end (the scalar path is slow).
fn check_e5_small(isa: Isa) {
    check_embeddings(&built_model("multilingual-e5-small"), &fixture("reference/e5-small.safetensors"), isa, 24);
}

/// Apart from the scalar twin, so that `tools/cross-test.sh` can run this one alone under
/// qemu: the scalar path is the same Rust code on every architecture, and emulated it took
/// most of the 281 s the two took there.
#[test]
fn e5_small_on_every_vector_isa() {
    let isas: Vec<Isa> = Isa::available().into_iter().filter(|&isa| isa != Isa::Scalar).collect();
    if isas.is_empty() {
        eprintln!("skipped: this CPU has no vector ISA (the scalar twin has its own test)");
    }
    for isa in isas {
        check_e5_small(isa);
    }
}

#[test]
fn e5_small_on_the_scalar_twin() {
    check_e5_small(Isa::Scalar);
}
