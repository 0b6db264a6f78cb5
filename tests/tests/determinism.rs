//! An embedding must not depend on its batch-mates or the thread count: bit-identical.

use e5::{Input, Model, Options};
use e5_tests::*;

fn texts() -> Vec<String> {
    let r = Reference::load(&fixture("reference/e5-small.safetensors"));
    // 32 mixed-length texts: short queries, long passages (some over the limit), edge cases.
    let mut t: Vec<String> = r.texts.iter().step_by(4).take(32).cloned().collect();
    t.sort_by_key(|s| std::cmp::Reverse(s.len() % 7));
    t
}

fn load(threads: usize, max_batch_tokens: usize) -> Model {
    let opts = Options { threads: Some(threads), max_batch_tokens, ..Options::default() };
    Model::load(built_model("multilingual-e5-small"), opts).unwrap()
}

#[test]
fn alone_or_in_a_batch_of_32_with_1_or_2_threads_is_bit_identical() {
    let texts = texts();
    assert_eq!(texts.len(), 32);
    let inputs: Vec<Input> = texts.iter().map(|t| Input::raw(t.as_str())).collect();
    let one = load(1, 16 * 1024);
    let two = load(2, 16 * 1024);
    let batch1 = one.embed(&inputs).unwrap();
    let batch2 = two.embed(&inputs).unwrap();
    assert_eq!(batch1.data, batch2.data, "1 vs 2 threads");
    // Smaller sub-batches change the batch-mates of every text.
    let split = load(2, 700).embed(&inputs).unwrap();
    assert_eq!(batch1.data, split.data, "different sub-batching");
    for (i, input) in inputs.iter().enumerate().step_by(3) {
        let alone = one.embed(std::slice::from_ref(input)).unwrap();
        assert_eq!(alone.vector(0), batch2.vector(i), "text {i} alone (1 thread) vs in batch (2 threads)");
    }
    let reversed: Vec<Input> = inputs.iter().rev().cloned().collect();
    let rev = two.embed(&reversed).unwrap();
    for i in 0..inputs.len() {
        assert_eq!(rev.vector(inputs.len() - 1 - i), batch1.vector(i), "text {i} in reversed order");
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
