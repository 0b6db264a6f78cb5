//! Library presence checks and device discovery. cudarc (dynamic loading) panics
//! when a library is missing, so every entry point checks presence first.

use std::sync::Arc;

use cudarc::driver::sys::CUresult;
use cudarc::driver::{result, CudaContext};

use crate::CudaError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Bytes.
    pub total_memory: usize,
    pub compute_capability: (i32, i32),
}

fn missing(lib: &str) -> CudaError {
    CudaError::NoDriver(format!(
        "{lib} could not be loaded (install the NVIDIA driver / CUDA 12 libraries or add them to LD_LIBRARY_PATH)"
    ))
}

/// The driver library is loadable.
fn require_driver() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen the library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(missing("libcuda"))
    }
}

/// NVRTC and cuBLAS are loadable (needed by the encoder, not by `probe`).
pub(crate) fn require_compute_libs() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen the libraries.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(missing("libnvrtc"));
    }
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(missing("libcublas"));
    }
    Ok(())
}

/// Initializes the driver and retains the primary context of `ordinal`.
pub(crate) fn open(ordinal: usize) -> Result<Arc<CudaContext>, CudaError> {
    require_driver()?;
    match result::init() {
        Ok(()) => {}
        Err(e) if e.0 == CUresult::CUDA_ERROR_NO_DEVICE => return Err(CudaError::NoDevice),
        Err(e) => return Err(CudaError::NoDriver(format!("cuInit failed: {e:?}"))),
    }
    let count = CudaContext::device_count()?;
    if count <= 0 {
        return Err(CudaError::NoDevice);
    }
    if ordinal >= count as usize {
        return Err(CudaError::InvalidInput(format!("device ordinal {ordinal} out of range ({count} devices)")));
    }
    Ok(CudaContext::new(ordinal)?)
}

/// Describes device `ordinal`; a clear error (never a panic) without driver or device.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let ctx = open(ordinal)?;
    Ok(DeviceInfo {
        ordinal: ctx.ordinal(),
        name: ctx.name()?,
        total_memory: ctx.total_mem()?,
        compute_capability: ctx.compute_capability()?,
    })
}
