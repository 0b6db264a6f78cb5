//! The dispatch table: one static set of kernels per ISA, chosen once at run time.

use crate::bf16gemm::Bf16Kernel;
use crate::cache::CacheSizes;
use crate::f32gemm::{self, Blocking, MicroKernel, PackedF32, Post, Prefetch, Storage};
use crate::i4gemm::{self, I4MicroKernel, PackedI4};
use crate::i8gemm::{self, ActQuant, I8MicroKernel, PackedI8};
use crate::isa::{Isa, IsaError};
use crate::vector::{self, GeluKind, VectorKernels};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Every kernel of one ISA. Obtained only through [`Kernels::get`] / [`Kernels::detect`],
/// which check that the CPU supports the ISA; that check is what makes the safe methods
/// below sound.
#[derive(Clone)]
pub struct Kernels {
    pub isa: Isa,
    pub(crate) f32_gemm: MicroKernel,
    pub(crate) i8_gemm: I8MicroKernel,
    pub(crate) i4_gemm: I4MicroKernel,
    pub(crate) vector: &'static VectorKernels,
    /// The f32 GEMM blocking, when set by [`Kernels::with_f32_blocking`]; else derived from
    /// the caches.
    f32_blocking: Option<Blocking>,
    /// The int8 tile's prefetch distance, when set by [`Kernels::with_i8_prefetch`]; else
    /// per ISA and vendor.
    i8_prefetch: Option<usize>,
    /// The int4 tile's prefetch distance, when set by [`Kernels::with_i4_prefetch`]; else
    /// per ISA and vendor.
    i4_prefetch: Option<usize>,
}

const fn table(
    isa: Isa,
    f32_gemm: MicroKernel,
    i8_gemm: I8MicroKernel,
    i4_gemm: I4MicroKernel,
    vector: &'static VectorKernels,
) -> Kernels {
    Kernels { isa, f32_gemm, i8_gemm, i4_gemm, vector, f32_blocking: None, i8_prefetch: None, i4_prefetch: None }
}

static SCALAR: Kernels = table(
    Isa::Scalar,
    f32gemm::scalar::KERNEL,
    i8gemm::scalar::KERNEL,
    i4gemm::scalar::KERNEL,
    &vector::scalar::KERNELS,
);
#[cfg(target_arch = "x86_64")]
static AVX2: Kernels =
    table(Isa::Avx2, f32gemm::avx2::KERNEL, i8gemm::avx2::KERNEL, i4gemm::avx2::KERNEL, &vector::avx2::KERNELS);
/// AVX2 with AVX-VNNI (Alder Lake, Zen 5): the same f32 kernels, `vpdpbusd` for int8.
#[cfg(target_arch = "x86_64")]
static AVX2_VNNI: Kernels =
    table(Isa::Avx2, f32gemm::avx2::KERNEL, i8gemm::avxvnni::KERNEL, i4gemm::avx2::KERNEL, &vector::avx2::KERNELS);
/// AVX-512 without VNNI (Skylake-X): int8 and int4 through the AVX2 kernels.
#[cfg(target_arch = "x86_64")]
static AVX512: Kernels =
    table(Isa::Avx512, f32gemm::avx512::KERNEL, i8gemm::avx2::KERNEL, i4gemm::avx2::KERNEL, &vector::avx512::KERNELS);
#[cfg(target_arch = "x86_64")]
static AVX512_VNNI: Kernels = table(
    Isa::Avx512,
    f32gemm::avx512::KERNEL,
    i8gemm::avx512vnni::KERNEL,
    i4gemm::avx512vnni::KERNEL,
    &vector::avx512::KERNELS,
);
/// Without dotprod, int4 runs the scalar twin.
#[cfg(target_arch = "aarch64")]
static NEON: Kernels =
    table(Isa::Neon, f32gemm::neon::KERNEL, i8gemm::neon::KERNEL, i4gemm::scalar::KERNEL, &vector::neon::KERNELS);
/// NEON with dotprod (Cortex-A76+, Neoverse, Apple M): the same f32 kernels, `sdot` for int8.
#[cfg(target_arch = "aarch64")]
static NEON_DOT: Kernels =
    table(Isa::Neon, f32gemm::neon::KERNEL, i8gemm::neon_dot::KERNEL, i4gemm::neon_dot::KERNEL, &vector::neon::KERNELS);

impl Kernels {
    /// The table of `isa`, or an error if this CPU lacks it.
    pub fn get(isa: Isa) -> Result<&'static Kernels, IsaError> {
        if !isa.is_supported() {
            return Err(IsaError::Unsupported(isa));
        }
        Ok(match isa {
            Isa::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if std::arch::is_x86_feature_detected!("avxvnni") => &AVX2_VNNI,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &AVX2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if std::arch::is_x86_feature_detected!("avx512vnni") => &AVX512_VNNI,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &AVX512,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon if std::arch::is_aarch64_feature_detected!("dotprod") => &NEON_DOT,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &NEON,
            #[allow(unreachable_patterns)]
            other => return Err(IsaError::Unsupported(other)),
        })
    }

    /// The process-wide table: `E5_ISA` if set, else the best ISA. Decided once.
    pub fn detect() -> Result<&'static Kernels, IsaError> {
        static CHOSEN: OnceLock<Result<&'static Kernels, IsaError>> = OnceLock::new();
        CHOSEN.get_or_init(|| Isa::from_env().and_then(Kernels::get)).clone()
    }

    /// Every table this CPU can run: each micro-kernel variant, not only the ones [`Kernels::get`]
    /// picks (on an AVX-512 VNNI CPU also AVX2 with `avx2-madd16` and AVX-512 with
    /// `avx2-madd16`), so tests check every variant against its scalar twin.
    pub fn variants() -> Vec<&'static Kernels> {
        #[allow(unused_mut)]
        let mut out = vec![&SCALAR];
        #[cfg(target_arch = "x86_64")]
        {
            let vnni = std::arch::is_x86_feature_detected!("avxvnni");
            let vnni512 = std::arch::is_x86_feature_detected!("avx512vnni");
            let have = |isa: Isa, extra: bool| isa.is_supported() && extra;
            let candidates = [
                (&AVX2, have(Isa::Avx2, true)),
                (&AVX2_VNNI, have(Isa::Avx2, vnni)),
                (&AVX512, have(Isa::Avx512, true)),
                (&AVX512_VNNI, have(Isa::Avx512, vnni512)),
            ];
            out.extend(candidates.into_iter().filter(|c| c.1).map(|c| c.0));
        }
        #[cfg(target_arch = "aarch64")]
        {
            let dot = std::arch::is_aarch64_feature_detected!("dotprod");
            let candidates = [(&NEON, Isa::Neon.is_supported()), (&NEON_DOT, Isa::Neon.is_supported() && dot)];
            out.extend(candidates.into_iter().filter(|c| c.1).map(|c| c.0));
        }
        out
    }

    /// Why this table is the one in use, in a line for `e5 info` and `e5 bench`: forced or
    /// detected, the CPU features behind the f32 and int8 kernels, and the f32 blocking
    /// derived from the cache sizes.
    pub fn dispatch_reason(&self) -> String {
        let forced = std::env::var(crate::ISA_ENV).is_ok_and(|v| !v.trim().is_empty());
        let how = if forced {
            format!("forced by {}", crate::ISA_ENV)
        } else if self.isa == Isa::best() {
            "the widest vector ISA this CPU has".to_string()
        } else {
            "requested by the caller".to_string()
        };
        let caches = CacheSizes::get();
        let b = self.f32_blocking();
        let from = if self.f32_blocking.is_some() { "set by the caller, not derived from" } else { "from" };
        // Only the AVX-512 VNNI int8 and int4 tiles take a prefetch distance.
        let vnni = |name: &str, bytes: usize| match (name, bytes) {
            ("avx512-vnni", 0) => format!("{name}, no prefetch"),
            ("avx512-vnni", bytes) => format!("{name}, prefetch {bytes} B ahead"),
            _ => name.to_string(),
        };
        let int8 = vnni(self.i8_gemm.name, self.i8_prefetch());
        let int4 = vnni(self.i4_gemm.name, self.i4_prefetch());
        format!(
            "{} ({how}); f32 {}x{} tile, KC {} MC {} NC {} {from} L2 {} KiB{}, {}; int8 {}; int4 {}; {}",
            self.isa,
            self.f32_gemm.mr,
            self.f32_gemm.nr,
            b.kc,
            b.mc,
            b.nc,
            caches.l2 >> 10,
            if caches.detected { "" } else { " (not reported: assumed)" },
            b.prefetch.describe(),
            int8,
            int4,
            self.bf16_reason(),
        )
    }

    /// How `--precision bf16` runs on this table: the bf16-dot kernel, or `None` for the
    /// widening path (bf16 panels widened to f32 for the f32 GEMM). `E5_BF16` (`dot` or
    /// `widen`) forces either, else the dot kernel wherever this table has one (AVX-512 on a
    /// CPU with AVX512-BF16) and it is the faster path: on AMD. On Zen 4 the dot kernel met
    /// the fp32 targets (`docs/cpu-analysis.md` §11). On the Intel Xeon (Emerald Rapids),
    /// `e5 bench --precision bf16`, two threads, 3 rounds alternated: widening ran every
    /// column faster (batch 1 4.8–5.4 against 7.9–8.8 ms, queries 210–247 against 168–188/s,
    /// passages 6.4–7.5 against 5.3–6.1/s), and it keeps activations in f32. Decided once
    /// per process and table.
    pub fn bf16_dot(&self) -> Result<Option<&'static Bf16Kernel>, IsaError> {
        let own = self.bf16_dot_kernel();
        match bf16_env()? {
            Some(Bf16Path::Widen) => Ok(None),
            Some(Bf16Path::Dot) => own.map(Some).ok_or(IsaError::Bf16DotUnsupported(self.isa)),
            None => Ok(own.filter(|_| crate::isa::amd_cpu())),
        }
    }

    /// The bf16-dot kernel this table can run, whatever `E5_BF16` says.
    fn bf16_dot_kernel(&self) -> Option<&'static Bf16Kernel> {
        #[cfg(target_arch = "x86_64")]
        if self.isa == Isa::Avx512 && crate::bf16gemm::avx512bf16::supported() {
            return Some(&crate::bf16gemm::avx512bf16::KERNEL);
        }
        None
    }

    /// The bf16 part of [`Kernels::dispatch_reason`].
    fn bf16_reason(&self) -> String {
        let forced = bf16_env().is_ok_and(|p| p.is_some());
        match (self.bf16_dot(), forced) {
            (Ok(Some(k)), forced) => {
                let b = k.blocking();
                let why =
                    if forced { format!("forced by {}", crate::BF16_ENV) } else { "the CPU has AVX512-BF16".into() };
                format!(
                    "bf16 {}-dot {}x{} tile, KC {} MC {} NC {}, {} ({why})",
                    k.name,
                    k.mr,
                    k.nr,
                    b.kc,
                    b.mc,
                    b.nc,
                    b.prefetch.describe()
                )
            }
            (Ok(None), true) => format!("bf16 widened to f32 (forced by {})", crate::BF16_ENV),
            (Ok(None), false) if self.bf16_dot_kernel().is_some() => {
                "bf16 widened to f32 (faster than the AVX512-BF16 dot kernel on this non-AMD CPU)".to_string()
            }
            (Ok(None), false) => format!("bf16 widened to f32 (no AVX512-BF16 kernel on the {} path)", self.isa),
            (Err(e), _) => format!("bf16: {e}"),
        }
    }

    /// The table's f32 and int8 micro-kernels, for benchmarks that time a single tile.
    pub fn micro_kernels(&self) -> (&MicroKernel, &I8MicroKernel) {
        (&self.f32_gemm, &self.i8_gemm)
    }

    /// Tile shape `(MR, NR)` of the f32 micro-kernel.
    pub fn f32_tile(&self) -> (usize, usize) {
        (self.f32_gemm.mr, self.f32_gemm.nr)
    }

    /// The f32 GEMM's cache blocking: set by [`Kernels::with_f32_blocking`], else derived
    /// from this tile and the CPU's L2 ([`Blocking::derive`]), prefetching as
    /// [`Prefetch::for_isa`] chooses.
    pub fn f32_blocking(&self) -> Blocking {
        let (mr, nr) = self.f32_tile();
        self.f32_blocking.unwrap_or_else(|| Blocking {
            prefetch: Prefetch::for_isa(self.isa),
            ..Blocking::derive(mr, nr, 4, CacheSizes::get())
        })
    }

    /// The int8 micro-kernel's software prefetch distance in bytes ([`I8Tile::prefetch`]),
    /// unless [`Kernels::with_i8_prefetch`] set one, for the AVX-512 VNNI tile: 2048 bytes
    /// ahead on Intel (and any non-AMD CPU), 4096 on AMD; other tiles take none. On the
    /// Intel Xeon (Emerald Rapids), two threads:
    /// - `e5 bench --precision int8`, 6 rounds of processes alternated with and without a
    ///   prefetch (512 bytes): queries 1.02–1.35× and passages 1.03–1.39× faster in every
    ///   round, batch 1 faster in 4 of 6 (median 0.93× the latency);
    /// - the 48 int8 GEMMs of e5-small with streamed weights, distances alternated call by
    ///   call. On 4 KiB pages 512 to 4096 bytes read within ~3% of each other, with no
    ///   consistent winner. On 2 MiB pages, as the model's weights now are, 2048 bytes took
    ///   0.94–0.98× the time of 512 at 17 rows (four runs of 9 rounds, either listed first,
    ///   won 8 or 9 of 9), 0.99× at 1 row and 0.98× at 128 (`docs/cpu-analysis.md` §18):
    ///   further ahead pays once the prefetches no longer cross 4 KiB pages.
    ///
    /// On Zen 4, the 48 streamed GEMMs on 2 MiB pages (`stream-gemm M 2 9 0.3 int8`),
    /// time ÷ none's at 4096 bytes: 0.82–0.89 at 6–32 rows, 0.94 at 4, 0.98–0.99 at 128 and
    /// 536, 1.01 at 1; 8192 within 4% of 4096 either way; at 4–32 rows 2048 0.84–1.00 and
    /// 512 0.92–1.00 (`docs/cpu-analysis.md` §27).
    ///
    /// [`I8Tile::prefetch`]: crate::i8gemm::I8Tile::prefetch
    pub fn i8_prefetch(&self) -> usize {
        self.i8_prefetch.unwrap_or_else(|| self.vnni_prefetch())
    }

    /// The derived distance of [`Kernels::i8_prefetch`] and [`Kernels::i4_prefetch`].
    fn vnni_prefetch(&self) -> usize {
        match self.isa {
            Isa::Avx512 if crate::isa::amd_cpu() => 4096,
            Isa::Avx512 => 2048,
            _ => 0,
        }
    }

    /// This table with the f32 GEMM blocked as `b` instead: for benchmarks that compare
    /// blockings in one process (`gemm-isa … blocking=`). Results are bit-identical
    /// whatever the blocking (partial sums round-trip through `C` exactly); only speed
    /// changes. Packed weights stay valid: they depend on the ISA, not on the blocking.
    ///
    /// # Panics
    /// If `b.kc` or `b.nc` is 0, or `b.mc` is not a positive multiple of the tile height.
    pub fn with_f32_blocking(&self, b: Blocking) -> Kernels {
        b.assert_fits(self.f32_gemm.mr);
        Kernels { f32_blocking: Some(b), ..self.clone() }
    }

    /// This table with the int8 tile prefetching `bytes` ahead (0: none) instead: for
    /// benchmarks that compare distances in one process (`stream-gemm … int8`). Only
    /// speed changes; kernels without software prefetch ignore it.
    pub fn with_i8_prefetch(&self, bytes: usize) -> Kernels {
        Kernels { i8_prefetch: Some(bytes), ..self.clone() }
    }

    /// The int4 micro-kernel's software prefetch distance in bytes (`I4Tile::prefetch`),
    /// unless [`Kernels::with_i4_prefetch`] set one: the int8 tile's derived distance
    /// ([`Kernels::i8_prefetch`]; only the AVX-512 VNNI tiles take one). Both tiles read a
    /// 128-byte weight block per step at about the same rate. On Zen 4, the 48 streamed
    /// int4-g32 GEMMs of e5-small (`stream-gemm M 2 9 0.3 int4`), none's time ÷ 4096
    /// bytes': 1.056 at 4 rows, 1.02–1.10 at 8, 1.070–1.075 at 17, 1.024–1.047 at 32,
    /// 1.00–1.01 at 1 and 128; 2048 and 8192 within 3% of 4096. Prefetching in a task's
    /// first strip only (the later strips reread its panels from L2) read within 1.3% of
    /// every strip, so every strip does, as in the int8 tile (`docs/cpu-analysis.md` §28).
    pub fn i4_prefetch(&self) -> usize {
        self.i4_prefetch.unwrap_or_else(|| self.vnni_prefetch())
    }

    /// This table with the int4 tile prefetching `bytes` ahead (0: none) instead, as
    /// [`Kernels::with_i8_prefetch`] for the int8 tile.
    pub fn with_i4_prefetch(&self, bytes: usize) -> Kernels {
        Kernels { i4_prefetch: Some(bytes), ..self.clone() }
    }

    /// `C[m, n] = post(A[m, k] · Wᵀ + bias)`, contiguous rows, threaded over the rayon pool.
    pub fn gemm(&self, a: &[f32], m: usize, w: &PackedF32, post: Post<'_>, c: &mut [f32]) {
        f32gemm::gemm(self, a, w.k(), m, w, post, as_uninit(c), w.n(), true);
    }

    /// [`Kernels::gemm`] into a new `[m, n]` vector, with no zero-fill pass.
    pub fn gemm_to_vec(&self, a: &[f32], m: usize, w: &PackedF32, post: Post<'_>) -> Vec<f32> {
        filled(m * w.n(), |c| f32gemm::gemm(self, a, w.k(), m, w, post, c, w.n(), true))
    }

    /// [`Kernels::gemm_i8_quantized`] into a new `[m, n]` vector, with no zero-fill pass.
    pub fn gemm_i8_to_vec(&self, a: &[f32], m: usize, w: &PackedI8, act: ActQuant<'_>, post: Post<'_>) -> Vec<f32> {
        filled(m * w.n(), |c| i8gemm::gemm(self, a, w.k(), m, w, act, post, c, w.n(), true))
    }

    /// Name of the int8 micro-kernel (`avx512-vnni`, `avx-vnni`, `avx2-madd16`, `neon-sdot`, `neon-smull`, `scalar`).
    pub fn int8_kernel(&self) -> &'static str {
        self.i8_gemm.name
    }

    /// Name of the int4 micro-kernel (`avx512-vnni`, `avx2-maddubs`, `neon-sdot`, `scalar`).
    pub fn int4_kernel(&self) -> &'static str {
        self.i4_gemm.name
    }

    /// `C[m, n] = post(Σ_g ws[g]·(quant(A) · Wq)_g + bias)`: group-wise int4 weights, `A`
    /// quantized to int8 per row at run time, exact i32 per group; threaded over the pool.
    pub fn gemm_i4(&self, a: &[f32], m: usize, w: &PackedI4, post: Post<'_>, c: &mut [f32]) {
        i4gemm::gemm(self, a, w.k(), m, w, post, as_uninit(c), w.n(), true);
    }

    /// [`Kernels::gemm_i4`] into a new `[m, n]` vector, with no zero-fill pass.
    pub fn gemm_i4_to_vec(&self, a: &[f32], m: usize, w: &PackedI4, post: Post<'_>) -> Vec<f32> {
        filled(m * w.n(), |c| i4gemm::gemm(self, a, w.k(), m, w, post, c, w.n(), true))
    }

    /// `C[m, n] = post(dequant(quant(A) · Wqᵀ) + bias)`: `A` quantized per row at run time,
    /// exact i32 accumulation; threaded over the rayon pool.
    pub fn gemm_i8(&self, a: &[f32], m: usize, w: &PackedI8, post: Post<'_>, c: &mut [f32]) {
        self.gemm_i8_quantized(a, m, w, ActQuant::Dynamic, post, c);
    }

    /// Symmetric per-row int8 quantization on this table's ISA: bit-identical to the scalar
    /// [`i8gemm::quantize_row`], as the activation path of [`Kernels::gemm_i8`] uses it.
    pub fn quantize_row(&self, x: &[f32], q: &mut [i8]) -> f32 {
        i8gemm::quantize_row_with(self.vector, x, q)
    }

    /// [`Kernels::gemm_i8`] with activations quantized as `act` (per row, static per tensor,
    /// or static with per-channel smoothing).
    pub fn gemm_i8_quantized(
        &self,
        a: &[f32],
        m: usize,
        w: &PackedI8,
        act: ActQuant<'_>,
        post: Post<'_>,
        c: &mut [f32],
    ) {
        i8gemm::gemm(self, a, w.k(), m, w, act, post, as_uninit(c), w.n(), true);
    }

    /// [`Kernels::gemm`] with row strides, on the calling thread unless `parallel`.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_strided(
        &self,
        a: &[f32],
        lda: usize,
        m: usize,
        w: &PackedF32,
        post: Post<'_>,
        c: &mut [f32],
        ldc: usize,
        parallel: bool,
    ) {
        f32gemm::gemm(self, a, lda, m, w, post, as_uninit(c), ldc, parallel);
    }

    pub fn gelu(&self, kind: GeluKind, x: &mut [f32]) {
        // SAFETY: the table's ISA is supported (see the type's docs).
        unsafe {
            match kind {
                GeluKind::Erf => (self.vector.gelu_erf)(x),
                GeluKind::Tanh => (self.vector.gelu_tanh)(x),
            }
        }
    }

    /// Numerically stable softmax of one row, in place.
    pub fn softmax(&self, x: &mut [f32]) {
        let n = x.len();
        // SAFETY: the table's ISA is supported.
        unsafe { vector::softmax_row_by_row(self.vector, x, 1, n, n) }
    }

    /// [`Kernels::softmax`] of `rows` rows of `len` floats, `ld` apart, bit for bit; AVX2
    /// runs three rows' chains at once.
    ///
    /// # Panics
    /// If the rows overrun `x` or `len > ld`.
    pub fn softmax_rows(&self, x: &mut [f32], rows: usize, len: usize, ld: usize) {
        // SAFETY: the table's ISA is supported; the kernel checks the rows lie in `x`.
        unsafe { (self.vector.softmax_rows)(x, rows, len, ld) }
    }

    pub fn scale(&self, x: &mut [f32], s: f32) {
        // SAFETY: the table's ISA is supported.
        unsafe { (self.vector.scale)(x, s) }
    }

    /// `y += a·x`.
    pub fn axpy(&self, y: &mut [f32], a: f32, x: &[f32]) {
        assert_eq!(y.len(), x.len(), "axpy lengths");
        // SAFETY: the table's ISA is supported; lengths checked.
        unsafe { (self.vector.axpy)(y, a, x) }
    }

    /// Column sums of `rows` (`[R, out.len()]`, `R ≥ 0`): `out[j] = Σ_r rows[r][j]`, each
    /// column summed in row order, bit-identical on every ISA.
    pub fn sum_rows(&self, rows: &[f32], out: &mut [f32]) {
        if out.is_empty() {
            assert!(rows.is_empty(), "sum_rows: {} values into zero columns", rows.len());
            return;
        }
        assert_eq!(rows.len() % out.len(), 0, "sum_rows: {} values are not rows of {}", rows.len(), out.len());
        // SAFETY: the table's ISA is supported; shapes checked.
        unsafe { (self.vector.sum_rows)(rows, out) }
    }

    /// `max |x[i]|` over the non-NaN elements (0 for none): the row kernel of dynamic
    /// activation scales ([`Kernels::quantize_row`]).
    pub fn abs_max(&self, x: &[f32]) -> f32 {
        // SAFETY: the table's ISA is supported.
        unsafe { (self.vector.abs_max)(x) }
    }

    /// `q[i] = clamp(round_ties_even(x[i]·inv), -127, 127)`, NaN → 0: the row kernel of
    /// activation quantization.
    pub fn quantize_i8(&self, x: &[f32], inv: f32, q: &mut [i8]) {
        assert_eq!(x.len(), q.len(), "quantize_i8 lengths");
        // SAFETY: the table's ISA is supported; lengths checked.
        unsafe { (self.vector.quantize_i8)(x, inv, q) }
    }

    /// [`quantize_i8`](Self::quantize_i8) in cells of 4 at `stride` bytes, each XORed with
    /// `flip`: see [`VectorKernels::quantize_i8_cells`](crate::vector::VectorKernels).
    ///
    /// # Panics
    /// If `stride < 4` or a cell would fall outside `q`.
    pub fn quantize_i8_cells(&self, x: &[f32], inv: f32, flip: u32, q: &mut [i8], stride: usize) {
        // SAFETY: `i8` and `MaybeUninit<i8>` share their layout, and the kernel writes only
        // initialized values.
        let q = unsafe { &mut *(std::ptr::from_mut(q) as *mut [std::mem::MaybeUninit<i8>]) };
        // SAFETY: the table's ISA is supported; the kernel checks that the cells fit `q`.
        unsafe { (self.vector.quantize_i8_cells)(x, inv, flip, q, stride) }
    }

    /// `dst[i] = src[i]` for 16-bit floats stored as `storage` (`F16` or `Bf16` bits).
    ///
    /// # Panics
    /// If the lengths differ or `storage` is `F32`.
    pub fn widen(&self, storage: Storage, src: &[u16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "widen lengths");
        let f = match storage {
            Storage::F16 => self.vector.widen_f16,
            Storage::Bf16 => self.vector.widen_bf16,
            Storage::F32 => panic!("widen: f32 storage is already f32"),
        };
        // SAFETY: the table's ISA is supported; lengths checked.
        unsafe { f(src, dst) }
    }

    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot lengths");
        // SAFETY: the table's ISA is supported; lengths checked.
        unsafe { (self.vector.dot)(a, b) }
    }

    /// `row = LayerNorm(row + residual)·gamma + beta` for every row of width `gamma.len()`,
    /// threaded over rows.
    pub fn layernorm_rows(&self, x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
        let w = gamma.len();
        assert!(w > 0 && beta.len() == w && x.len().is_multiple_of(w), "layernorm shapes");
        if let Some(r) = residual {
            assert_eq!(r.len(), x.len(), "layernorm residual length");
        }
        let f = self.vector.layernorm;
        crate::hot::for_each_chunk_mut(x, w, 16, |i, x| {
            let r = residual.map(|r| &r[i * w..][..w]);
            // SAFETY: the table's ISA is supported; every slice has width `w`.
            unsafe { f(x, r, gamma, beta, eps) }
        });
    }
}

/// A path `E5_BF16` forces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bf16Path {
    Dot,
    Widen,
}

/// `E5_BF16`, read once: `None` when unset or empty.
fn bf16_env() -> Result<Option<Bf16Path>, IsaError> {
    static CHOSEN: OnceLock<Result<Option<Bf16Path>, IsaError>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| match std::env::var(crate::BF16_ENV) {
            Ok(v) if v.trim().eq_ignore_ascii_case("dot") => Ok(Some(Bf16Path::Dot)),
            Ok(v) if v.trim().eq_ignore_ascii_case("widen") => Ok(Some(Bf16Path::Widen)),
            Ok(v) if !v.trim().is_empty() => Err(IsaError::UnknownBf16(v)),
            _ => Ok(None),
        })
        .clone()
}

/// `c` seen as possibly uninitialized: the GEMM drivers only ever store finished values.
pub(crate) fn as_uninit(c: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; nothing writes an uninitialized value through the result.
    unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// A `len`-element vector that `fill` writes in full (a GEMM's `C[m, n]`, row stride `n`,
/// or a strided `C` whose padding columns `fill` writes itself).
pub(crate) fn filled(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` writes every element: the GEMM drivers store every element of the
    // `C[m, n]` they are given (their tiles cover it), and callers with a row stride past
    // `n` write the padding.
    unsafe { v.set_len(len) };
    v
}
