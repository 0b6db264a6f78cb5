//! GPU tests; each prints `skipped: no CUDA device (<reason>)` and passes when no
//! usable driver/device/libraries are present.
mod common;

use e5_arch::{GeluKind as Gelu, Pooling};
use e5_cuda::{probe, CudaEncoder, CudaError, GpuPrecision};

/// The encoder, or `None` after printing the skip line.
fn encoder(model: &common::Model, precision: GpuPrecision) -> Option<CudaEncoder> {
    if let Err(e) = probe(0) {
        eprintln!("skipped: no CUDA device ({e})");
        return None;
    }
    match CudaEncoder::new(model.cfg.clone(), &model.weights(), precision, 0) {
        Ok(enc) => Some(enc),
        Err(e @ (CudaError::NoDriver(_) | CudaError::NoDevice)) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
        Err(e) => panic!("CudaEncoder::new failed: {e}"),
    }
}

const LENGTHS: [usize; 12] = [1, 2, 5, 16, 17, 31, 64, 65, 100, 129, 256, 300];

/// Batch of LENGTHS texts: (ids, offsets, per-text ids).
fn batch() -> (Vec<u32>, Vec<usize>, Vec<Vec<u32>>) {
    let texts: Vec<Vec<u32>> = LENGTHS.iter().enumerate().map(|(k, &n)| common::tokens(k, n)).collect();
    let mut offsets = vec![0];
    for t in &texts {
        offsets.push(offsets.last().unwrap() + t.len());
    }
    (texts.concat(), offsets, texts)
}

fn parity(gelu: Gelu, pooling: Pooling, precision: GpuPrecision, min_cos: f32) {
    let model = common::Model::new(common::config(gelu, pooling));
    let Some(enc) = encoder(&model, precision) else {
        return;
    };
    let (ids, offsets, texts) = batch();
    let out = enc.embed(&ids, &offsets).unwrap();
    let h = model.cfg.hidden;
    assert_eq!(out.len(), texts.len() * h);
    for (k, t) in texts.iter().enumerate() {
        let cos = common::cosine(&out[k * h..(k + 1) * h], &model.reference(t));
        assert!(cos >= min_cos, "text {k} (len {}): cosine {cos}", t.len());
    }
}

#[test]
fn matches_cpu_reference_f16() {
    parity(Gelu::Erf, Pooling::Mean, GpuPrecision::F16, 0.9999);
}

#[test]
fn matches_cpu_reference_bf16_tanh_cls() {
    parity(Gelu::Tanh, Pooling::Cls, GpuPrecision::Bf16, 0.999);
}

#[test]
fn batch_independent() {
    let model = common::Model::new(common::config(Gelu::Erf, Pooling::Mean));
    let Some(enc) = encoder(&model, GpuPrecision::F16) else {
        return;
    };
    let (ids, offsets, texts) = batch();
    let batched = enc.embed(&ids, &offsets).unwrap();
    let h = model.cfg.hidden;
    for (k, t) in texts.iter().enumerate() {
        let alone = enc.embed(t, &[0, t.len()]).unwrap();
        let cos = common::cosine(&alone, &batched[k * h..(k + 1) * h]);
        assert!(cos >= 0.99999, "text {k}: cosine {cos}");
    }
    assert!(enc.embed(&[], &[0]).unwrap().is_empty());
    assert!(matches!(enc.embed(&[common::VOCAB as u32], &[0, 1]), Err(CudaError::InvalidInput(_))));
}
