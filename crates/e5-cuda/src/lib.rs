//! Optional CUDA backend for e5: a BERT/XLM-R encoder on the GPU.
//!
//! cuBLAS GEMMs (16-bit operands, f32 accumulation) plus fused NVRTC kernels from
//! `kernels/cuda`. Libraries are loaded dynamically, so this crate builds and its
//! tests run without a CUDA toolkit; without a driver every entry point returns
//! [`CudaError`]. See README.md for the design.

mod config;
mod device;
mod encoder;
mod error;
mod gemm;
mod kernels;

pub use config::{EncoderWeights, GpuPrecision, LayerWeights};
pub use device::{probe, DeviceInfo};
pub use encoder::CudaEncoder;
pub use error::CudaError;
