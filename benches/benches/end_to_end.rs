//! End-to-end criterion benchmark: multilingual-e5-small on the frozen workload
//! (`benches/workload.jsonl`), one query at batch 1, 32 queries, and 8 long passages, in
//! every precision. Needs `models/multilingual-e5-small` (`bash tools/setup-models.sh`).
//!
//! `cargo bench -p e5-benches --bench end_to_end`; `e5 bench` reports the same phases as JSON.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use e5::{Input, Model, Options, Precision};
use std::time::Duration;

fn workload() -> (Vec<String>, Vec<String>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("workload.jsonl")).expect("benches/workload.jsonl");
    let (mut q, mut p) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["text"].as_str().unwrap().to_string();
        if v["kind"] == "passage" {
            p.push(t)
        } else {
            q.push(t)
        }
    }
    (q, p)
}

fn end_to_end(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/multilingual-e5-small");
    assert!(dir.join("model.safetensors").exists(), "{} is missing: run `bash tools/setup-models.sh`", dir.display());
    let (queries, passages) = workload();
    let mut g = c.benchmark_group("e5-small");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(10);
    for precision in Precision::ALL {
        let model = Model::load(&dir, Options { precision, ..Options::default() }).unwrap();
        let q: Vec<Input> = queries.iter().map(|t| Input::query(t.as_str())).collect();
        let p: Vec<Input> = passages.iter().take(8).map(|t| Input::passage(t.as_str())).collect();
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("query_batch1", precision.name()), |b| {
            b.iter(|| model.embed(&q[..1]).unwrap())
        });
        g.throughput(Throughput::Elements(32));
        g.bench_function(BenchmarkId::new("queries_batch32", precision.name()), |b| {
            b.iter(|| model.embed(&q[..32]).unwrap())
        });
        g.throughput(Throughput::Elements(8));
        g.bench_function(BenchmarkId::new("passages_batch8", precision.name()), |b| {
            b.iter(|| model.embed(&p).unwrap())
        });
    }
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
