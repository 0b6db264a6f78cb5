//! Pure-CPU tests: run everywhere, no GPU or CUDA libraries needed.
mod common;

use e5_arch::{GeluKind, Pooling, PoolingMode};
use e5_cuda::{probe, CudaEncoder, CudaError, GpuPrecision};

#[test]
fn wrong_slice_length_names_the_tensor() {
    let mut model = common::Model::new(common::config(GeluKind::Erf, Pooling::single(PoolingMode::Mean)));
    model.layers[1].t[7].pop(); // ffn_up_bias
    let err = CudaEncoder::new(model.cfg.clone(), &model.weights(), GpuPrecision::F16, 0).err().expect("shape error");
    match err {
        CudaError::Shape { tensor, expected, got } => {
            assert_eq!(tensor, "layers.1.ffn_up_bias");
            assert_eq!((expected, got), (128, 127));
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn wrong_layer_count_and_bad_config_are_rejected() {
    let model = common::Model::new(common::config(GeluKind::Erf, Pooling::single(PoolingMode::Mean)));
    let mut w = model.weights();
    w.layers.pop();
    let err = CudaEncoder::new(model.cfg.clone(), &w, GpuPrecision::F16, 0).err();
    assert!(matches!(err, Some(CudaError::Shape { ref tensor, expected: 2, got: 1 }) if tensor == "layers"));

    let mut cfg = model.cfg.clone();
    cfg.heads = 3; // 64 / 3 is not a supported head dim
    let err = CudaEncoder::new(cfg, &model.weights(), GpuPrecision::F16, 0).err();
    assert!(matches!(err, Some(CudaError::InvalidInput(_))), "{err:?}");
}

#[test]
fn probe_returns_an_error_instead_of_panicking() {
    match probe(0) {
        Ok(info) => eprintln!("CUDA device present: {info:?}"),
        Err(e @ (CudaError::NoDriver(_) | CudaError::NoDevice)) => {
            assert!(!e.to_string().is_empty());
            eprintln!("probe without a usable driver: {e}");
        }
        Err(other) => panic!("unexpected probe error: {other}"),
    }
}
