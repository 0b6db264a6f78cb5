//! # e5-kernels
//!
//! Compute kernels for transformer encoders, knowing nothing of models: a packed f32 GEMM
//! with fused epilogues, padding-free multi-head attention, LayerNorm, GELU, softmax and
//! pooling. Each has an AVX-512, AVX2+FMA, NEON and scalar implementation; the CPU's
//! features are detected once into a [`Kernels`] table (`E5_ISA` forces one).
//!
//! See `kernels/README.md` for tile shapes, packing and the determinism contract.

pub mod attention;
pub mod bf16gemm;
pub mod cache;
mod dispatch;
pub mod f32gemm;
mod hot;
pub mod i4gemm;
pub mod i8gemm;
pub mod isa;
mod pages;
pub mod peak;
pub mod pool;
mod sync_ptr;
mod tiling;
pub mod vector;

pub use attention::AttentionShape;
pub use bf16gemm::{Bf16Kernel, PackedBf16};
pub use cache::CacheSizes;
pub use dispatch::Kernels;
pub use f32gemm::{Blocking, PackedF32, Post, Prefetch, Storage};
pub use hot::{for_each_chunk_mut, for_each_index, with_hot_workers};
pub use i4gemm::PackedI4;
pub use i8gemm::{ActQuant, PackedI8};
pub use isa::{Isa, IsaError, BF16_ENV, ISA_ENV};
pub use pages::HUGE_PAGES_ENV;
pub use peak::FmaProbe;
pub use pool::Pooling;
pub use vector::GeluKind;
