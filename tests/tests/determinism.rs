//! An embedding must not depend on its batch-mates or the thread count: bit-identical.

use e5::{Input, Model, Options, Precision};
use e5_tests::*;

fn texts() -> Vec<String> {
    let r = Reference::load(&fixture("reference/e5-small.safetensors"));
    // 32 mixed-length texts: short queries, long passages (some over the limit), edge cases.
    let mut t: Vec<String> = r.texts.iter().step_by(4).take(32).cloned().collect();
    t.sort_by_key(|s| std::cmp::Reverse(s.len() % 7));
    t
}

fn load_as(precision: Precision, threads: usize, max_batch_tokens: usize) -> Model {
    let opts = Options { precision, threads: Some(threads), max_batch_tokens, ..Options::default() };
    Model::load(built_model("multilingual-e5-small"), opts).unwrap()
}

fn load(threads: usize, max_batch_tokens: usize) -> Model {
    load_as(Precision::Fp32, threads, max_batch_tokens)
}

#[test]
fn alone_or_in_a_batch_of_32_with_1_or_2_threads_is_bit_identical() {
    let texts = texts();
    assert_eq!(texts.len(), 32);
    let inputs: Vec<Input> = texts.iter().map(|t| Input::raw(t.as_str())).collect();
    // Quantized activations are per token, so the quantized paths keep the guarantee too;
    // bf16 runs the bf16-dot kernel on AMD CPUs with AVX512-BF16 (activations rounded per
    // element), else the widening path.
    for precision in [Precision::Fp32, Precision::Bf16, Precision::Int8, Precision::Int4G32] {
        let one = load_as(precision, 1, 16 * 1024);
        let two = load_as(precision, 2, 16 * 1024);
        let batch1 = one.embed(&inputs).unwrap();
        let batch2 = two.embed(&inputs).unwrap();
        let p = precision.name();
        assert_eq!(batch1.data, batch2.data, "{p}: 1 vs 2 threads");
        // Smaller sub-batches change the batch-mates of every text.
        let split = load_as(precision, 2, 700).embed(&inputs).unwrap();
        assert_eq!(batch1.data, split.data, "{p}: different sub-batching");
        for (i, input) in inputs.iter().enumerate().step_by(3) {
            let alone = one.embed(std::slice::from_ref(input)).unwrap();
            assert_eq!(alone.vector(0), batch2.vector(i), "{p}: text {i} alone (1 thread) vs in batch (2 threads)");
        }
        let reversed: Vec<Input> = inputs.iter().rev().cloned().collect();
        let rev = two.embed(&reversed).unwrap();
        for i in 0..inputs.len() {
            assert_eq!(rev.vector(inputs.len() - 1 - i), batch1.vector(i), "{p}: text {i} in reversed order");
        }
    }
}

#[test]
fn concurrent_callers_share_one_model() {
    let model = std::sync::Arc::new(load(2, 16 * 1024));
    let want = model.embed(&[Input::query("shared model")]).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = model.clone();
            std::thread::spawn(move || m.embed(&[Input::query("shared model")]).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().data, want.data);
    }
}

/// Balanced batches run on per-thread lanes (each lane its own encoder pass); a text's
/// vector must match the one computed alone with one thread, whatever the lane count.
#[test]
fn lanes_match_one_thread_bit_for_bit() {
    let r = Reference::load(&fixture("reference/e5-small.safetensors"));
    // 48 short texts of similar length: even enough for lanes with 2 and 3 threads.
    let mut texts: Vec<&str> = r.texts.iter().map(String::as_str).filter(|t| (20..120).contains(&t.len())).collect();
    texts.truncate(48);
    assert!(texts.len() >= 24, "only {} short texts in the reference", texts.len());
    let inputs: Vec<Input> = texts.iter().map(|t| Input::query(*t)).collect();
    let one = load(1, 16 * 1024);
    let want: Vec<Vec<f32>> =
        inputs.iter().map(|x| one.embed(std::slice::from_ref(x)).unwrap().vector(0).to_vec()).collect();
    for threads in [2, 3] {
        let got = load(threads, 16 * 1024).embed(&inputs).unwrap();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(got.vector(i), &w[..], "text {i} with {threads} threads");
        }
    }
}
