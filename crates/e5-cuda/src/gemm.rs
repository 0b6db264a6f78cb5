//! cuBLAS GEMM for `Linear` layers: 16-bit operands, f32 output and accumulation.

use std::sync::Arc;

use cudarc::cublas::result::gemm_ex;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use crate::{CudaError, GpuPrecision};

pub(crate) struct Gemm {
    blas: CudaBlas,
    stream: Arc<CudaStream>,
    dtype: cudaDataType,
}

impl Gemm {
    pub fn new(stream: Arc<CudaStream>, precision: GpuPrecision) -> Result<Self, CudaError> {
        let dtype = match precision {
            GpuPrecision::F16 => cudaDataType::CUDA_R_16F,
            GpuPrecision::Bf16 => cudaDataType::CUDA_R_16BF,
        };
        Ok(Gemm { blas: CudaBlas::new(stream.clone())?, stream, dtype })
    }

    /// Row-major `y[rows, n] = x[rows, k] · w[n, k]ᵀ` (bias is fused into the next
    /// kernel). In cuBLAS column-major terms: `yᵀ (n×rows) = wᵀᵀ (n×k) · xᵀ (k×rows)`.
    /// Slices may be longer than needed (grow-only workspace).
    pub fn linear(
        &self,
        x: &CudaSlice<u16>,
        w: &CudaSlice<u16>,
        y: &mut CudaSlice<f32>,
        rows: usize,
        n: usize,
        k: usize,
    ) -> Result<(), CudaError> {
        debug_assert!(x.len() >= rows * k && w.len() == n * k && y.len() >= rows * n);
        let int = |v: usize| i32::try_from(v).map_err(|_| CudaError::InvalidInput(format!("GEMM dim {v} too large")));
        let (m_, n_, k_) = (int(n)?, int(rows)?, int(k)?);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (wp, _w) = w.device_ptr(&self.stream);
        let (xp, _x) = x.device_ptr(&self.stream);
        let (yp, _y) = y.device_ptr_mut(&self.stream);
        // SAFETY: pointers are live device allocations of at least the sizes above,
        // all used on the stream the handle is bound to.
        unsafe {
            gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                m_,
                n_,
                k_,
                (&alpha as *const f32).cast(),
                wp as *const _,
                self.dtype,
                k_,
                xp as *const _,
                self.dtype,
                k_,
                (&beta as *const f32).cast(),
                yp as *mut _,
                cudaDataType::CUDA_R_32F,
                m_,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )?;
        }
        Ok(())
    }
}
