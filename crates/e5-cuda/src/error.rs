//! Error type of the CUDA backend. cudarc errors are flattened into strings so the
//! public API does not expose cudarc types.

/// Everything that can go wrong in the CUDA backend; no operation panics on a
/// missing driver, library or device.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A CUDA shared library (driver, NVRTC or cuBLAS) could not be loaded or initialized.
    #[error("CUDA unavailable: {0}")]
    NoDriver(String),
    /// The driver loaded but reports no usable device.
    #[error("no CUDA device found")]
    NoDevice,
    /// NVRTC rejected the kernel source.
    #[error("NVRTC failed to compile {kernel}: {log}")]
    Nvrtc { kernel: String, log: String },
    #[error("cuBLAS error: {0}")]
    Cublas(String),
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// Bytes needed vs bytes free on the device.
    #[error("not enough GPU memory: need {needed} bytes, {free} bytes free")]
    OutOfMemory { needed: usize, free: usize },
    /// A weight slice does not have the length implied by the config.
    #[error("tensor {tensor}: expected {expected} elements, got {got}")]
    Shape { tensor: String, expected: usize, got: usize },
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::Driver(format!("{e:?}"))
    }
}

impl From<cudarc::cublas::result::CublasError> for CudaError {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        CudaError::Cublas(format!("{e:?}"))
    }
}
