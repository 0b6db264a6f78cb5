//! Instruction-set selection: detected once, optionally forced with `E5_ISA`.

use std::fmt;

/// A SIMD instruction set that has its own kernel implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust; the reference twin of every SIMD kernel.
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C).
    Avx2,
    /// x86-64 AVX-512F/BW/VL (+ VNNI for int8 where present).
    Avx512,
    /// aarch64 NEON (+ dotprod for int8 where present).
    Neon,
}

/// The variable that forces an instruction set: `scalar`, `avx2`, `avx512` or `neon`.
pub const ISA_ENV: &str = "E5_ISA";

/// The variable that forces how `--precision bf16` runs: `dot` (the AVX512-BF16 kernel)
/// or `widen` (bf16 weights widened to f32 for the f32 GEMM).
pub const BF16_ENV: &str = "E5_BF16";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsaError {
    /// The value is not an ISA name.
    Unknown(String),
    /// The ISA exists but this CPU lacks it.
    Unsupported(Isa),
    /// `E5_BF16` is neither `dot` nor `widen`.
    UnknownBf16(String),
    /// `E5_BF16=dot` on a table without the bf16-dot kernel (no AVX512-BF16, or another ISA forced).
    Bf16DotUnsupported(Isa),
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsaError::Unknown(s) => {
                write!(f, "{ISA_ENV}={s:?} is not an instruction set (expected scalar, avx2, avx512 or neon)")
            }
            IsaError::Unsupported(isa) => {
                write!(f, "{ISA_ENV}={isa} was requested but this CPU does not support it")
            }
            IsaError::UnknownBf16(s) => write!(f, "{BF16_ENV}={s:?} is not a bf16 path (expected dot or widen)"),
            IsaError::Bf16DotUnsupported(isa) => write!(
                f,
                "{BF16_ENV}=dot was requested but the {isa} kernels have no bf16-dot GEMM (it needs AVX-512 with \
                 AVX512-BF16)"
            ),
        }
    }
}

impl std::error::Error for IsaError {}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    pub fn parse(s: &str) -> Result<Isa, IsaError> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| IsaError::Unknown(s.to_string()))
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every ISA this CPU supports, scalar first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest supported ISA.
    pub fn best() -> Isa {
        *Isa::available().last().expect("scalar is always available")
    }

    /// `E5_ISA` if set (an error if unknown or unsupported), else [`Isa::best`].
    pub fn from_env() -> Result<Isa, IsaError> {
        match std::env::var(ISA_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let isa = Isa::parse(&v)?;
                if isa.is_supported() {
                    Ok(isa)
                } else {
                    Err(IsaError::Unsupported(isa))
                }
            }
            _ => Ok(Isa::best()),
        }
    }
}

/// Whether this is an AMD CPU (CPUID vendor `AuthenticAMD`): some driver choices were
/// measured to differ between AMD's and Intel's cores (see [`crate::Blocking`]). Read
/// once: in a VM each `CPUID` traps to the hypervisor, microseconds a call.
pub(crate) fn amd_cpu() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let v = std::arch::x86_64::__cpuid(0);
            let name: Vec<u8> = [v.ebx, v.edx, v.ecx].iter().flat_map(|r| r.to_le_bytes()).collect();
            name == b"AuthenticAMD"
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}
