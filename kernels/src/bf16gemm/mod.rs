//! bf16-dot GEMM: `C[M,N] = post(bf16(A)[M,K] · bf16(W)ᵀ + bias)`, f32 accumulation.
//!
//! - Weights: `W` (`[N, K]`) rounded to bfloat16 once at load and packed into panels of
//!   `NR` columns with `K` pairs interleaved, the operand shape of `vdpbf16ps`:
//!   `data[p][kp][j] = (W[p·NR+j][2kp], W[p·NR+j][2kp+1])`, one 32-bit lane per column
//!   (even `k` in the low half), zero-padded past `N` and past an odd `K`.
//! - Activations: each row of `A` rounded to bfloat16 (nearest even, as `vcvtneps2bf16`:
//!   subnormals to signed zero) as it is packed into `MR`-row strips of pairs,
//!   `strip[kp][r] = (A[r][2kp], A[r][2kp+1])`, which the kernel broadcasts.
//! - Arithmetic: every product of two bf16 (8-bit significands) is exact in f32. Each
//!   output element is one f32 chain started from its bias: for each pair, `+ a₁·w₁`
//!   then `+ a₀·w₀`, each rounded to nearest (the order Intel's SDM gives for
//!   `vdpbf16ps`; measured bit-identical on Zen 4). Between `KC` slices (always of even
//!   depth, so pairs never straddle) the partial sum round-trips through `C` exactly. The
//!   chain does not depend on `M`, the row's place in a tile or the thread count, so an
//!   embedding stays bit-identical whatever its batch-mates.
//!
//! Where the SIMD and scalar sums may differ: `vdpbf16ps` treats subnormal inputs as zero
//! and flushes subnormal results (DAZ/FTZ), the twin does neither. The packers never
//! produce a subnormal bf16, so only a product or partial sum below 2⁻¹²⁶ in magnitude
//! can differ, by less than 2⁻¹²⁶ per step.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx512bf16;

use crate::cache::CacheSizes;
use crate::f32gemm::{Blocking, OutputTiles, Post, Prefetch, PrefetchPlan, TileOut, TilePrefetch};
use crate::pages::PanelBuf;
use crate::sync_ptr::SyncPtr;
use crate::tiling::{for_each_strip, for_each_task, gemm_setup};
use crate::Isa;
use std::mem::MaybeUninit;

/// `x` rounded to bfloat16 bits the way `vcvtneps2bf16` does: nearest, ties to even;
/// subnormals (DAZ) to a zero of their sign; NaN stays a (quiet) NaN.
pub fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// One micro-kernel call: `out = post(start + A[mr, 2·pairs] · B[2·pairs, NR])` (see
/// [`TileOut`]).
pub struct Bf16Tile {
    /// `K` pairs in this slice.
    pub pairs: usize,
    /// Activation strip: `pairs × MR` lanes of two bf16.
    pub a: *const u32,
    /// Panel slice: `pairs × NR` lanes of two bf16.
    pub b: *const u32,
    pub out: TileOut,
    /// Software prefetch, one step per pair, as the f32 tile's
    /// (`crate::f32gemm::Tile::prefetch`).
    pub prefetch: TilePrefetch,
}

/// A bf16-dot micro-kernel with its tile shape and its activation rounding. Only
/// [`variants`] and [`crate::Kernels::bf16_dot`] hand one out, after checking that the
/// CPU runs it: that is what makes the safe methods sound.
pub struct Bf16Kernel {
    pub name: &'static str,
    /// The ISA whose prefetch choice the tile takes ([`Prefetch::for_isa`]).
    pub isa: Isa,
    pub mr: usize,
    pub nr: usize,
    pub(crate) run: unsafe fn(&Bf16Tile),
    /// `out[i] = round_bf16(x[i])`, same lengths.
    pub(crate) round: unsafe fn(&[f32], &mut [u16]),
}

impl Bf16Kernel {
    /// Runs the micro-kernel on one tile.
    ///
    /// # Safety
    /// `t` must describe in-bounds memory for an `MR × NR` tile of this kernel.
    pub unsafe fn tile(&self, t: &Bf16Tile) {
        (self.run)(t)
    }

    /// `out[i] = round_bf16(x[i])` on this kernel's ISA (bit-identical to [`round_bf16`]).
    pub fn round_row(&self, x: &[f32], out: &mut [u16]) {
        assert_eq!(x.len(), out.len(), "round_row lengths");
        // SAFETY: the kernel was handed out for a CPU that runs it; lengths checked.
        unsafe { (self.round)(x, out) }
    }

    /// Cache blocking: the f32 tile's rule, with 2 bytes per value of `A` and `W`, and the
    /// f32 tile's prefetch choice for the same ISA.
    pub fn blocking(&self) -> Blocking {
        Blocking { prefetch: Prefetch::for_isa(self.isa), ..Blocking::derive(self.mr, self.nr, 2, CacheSizes::get()) }
    }
}

/// Every bf16-dot kernel this CPU can run, the scalar twin first.
pub fn variants() -> Vec<&'static Bf16Kernel> {
    #[allow(unused_mut)]
    let mut out = vec![&scalar::KERNEL];
    #[cfg(target_arch = "x86_64")]
    if avx512bf16::supported() {
        out.push(&avx512bf16::KERNEL);
    }
    out
}

/// `W[N, K]` rounded to bf16 and packed in pairs for one bf16-dot kernel.
#[derive(Clone)]
pub struct PackedBf16 {
    n: usize,
    k: usize,
    kernel: &'static Bf16Kernel,
    /// `panels × ⌈K/2⌉ × NR` lanes.
    data: PanelBuf<u32>,
    bias: Vec<f32>,
}

impl PackedBf16 {
    /// Packs `n` rows of `k` floats (row stride `ldw`), each rounded with [`round_bf16`].
    pub fn from_rows(
        kernel: &'static Bf16Kernel,
        w: &[f32],
        n: usize,
        k: usize,
        ldw: usize,
        bias: Option<&[f32]>,
    ) -> Self {
        assert!(n == 0 || w.len() >= (n - 1) * ldw + k, "weight slice too short for [{n}, {k}]");
        let (nr, pairs) = (kernel.nr, k.div_ceil(2));
        let panels = n.div_ceil(nr);
        let mut data = vec![0u32; panels * pairs * nr];
        let mut row = vec![0u16; 2 * pairs];
        for j in 0..n {
            kernel.round_row(&w[j * ldw..j * ldw + k], &mut row[..k]);
            let panel = &mut data[(j / nr) * pairs * nr..][..pairs * nr];
            for (kp, pair) in row.chunks_exact(2).enumerate() {
                panel[kp * nr + j % nr] = pair[0] as u32 | (pair[1] as u32) << 16;
            }
        }
        let mut padded = vec![0.0; panels * nr];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias length");
            padded[..n].copy_from_slice(b);
        }
        PackedBf16 { n, k, kernel, data: data.into(), bias: padded }
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn k(&self) -> usize {
        self.k
    }
    /// The kernel the panels were packed for (and that runs them).
    pub fn kernel(&self) -> &'static Bf16Kernel {
        self.kernel
    }
    /// The same weights moved onto 2 MiB pages (`kernels/src/pages.rs`), for weights that
    /// live as long as a model: fewer TLB misses where batch 1 streams them. Results are
    /// unchanged (without transparent huge pages, only the speed gain is lost).
    pub fn into_huge_pages(self) -> Self {
        PackedBf16 { data: self.data.into_huge_pages(), ..self }
    }

    /// Bytes held by the packed weights and bias.
    pub fn bytes(&self) -> usize {
        4 * (self.data.len() + self.bias.len())
    }

    /// `C[m, n] = post(A[m, k] · Wᵀ + bias)`, contiguous rows, threaded over the rayon pool.
    pub fn gemm(&self, a: &[f32], m: usize, post: Post<'_>, c: &mut [f32]) {
        self.gemm_blocked(self.kernel.blocking(), a, m, post, c);
    }

    /// [`PackedBf16::gemm`] blocked as `blocking` instead of the kernel's own: for
    /// benchmarks that compare blockings or prefetch choices in one process (`stream-gemm
    /// … bf16`). Results are bit-identical whatever the blocking; only speed changes.
    ///
    /// # Panics
    /// If `blocking.kc` or `blocking.nc` is 0, or `blocking.mc` is not a positive multiple
    /// of the tile height.
    pub fn gemm_blocked(&self, blocking: Blocking, a: &[f32], m: usize, post: Post<'_>, c: &mut [f32]) {
        blocking.assert_fits(self.kernel.mr);
        gemm(a, self.k, m, self, blocking, post, crate::dispatch::as_uninit(c), self.n, true);
    }

    /// [`PackedBf16::gemm`] into a new `[m, n]` vector, with no zero-fill pass.
    pub fn gemm_to_vec(&self, a: &[f32], m: usize, post: Post<'_>) -> Vec<f32> {
        let blocking = self.kernel.blocking();
        crate::dispatch::filled(m * self.n, |c| gemm(a, self.k, m, self, blocking, post, c, self.n, true))
    }
}

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// Rounds the rows of `A` to bf16 and packs them into `MR`-row strips of pairs,
/// `strip[kp][r]` (rows past `m` and the odd-`K` pad are zero): strip `s`, pair `kp` is
/// at `(s·⌈K/2⌉ + kp)·MR`. `parallel`: see [`for_each_strip`] (here, on the Intel Xeon,
/// two threads, `M` 48–192 ran 1–6% faster than on the calling thread; `M` = 17 even).
fn pack_a(kernel: &Bf16Kernel, a: &[f32], lda: usize, m: usize, k: usize, parallel: bool) -> Vec<u32> {
    let (mr, pairs) = (kernel.mr, k.div_ceil(2));
    let mut out = vec![0u32; m.div_ceil(mr) * pairs * mr];
    let dst = SyncPtr(out.as_mut_ptr());
    let pack = |s: usize| {
        // SAFETY: strip `s` lies inside `out`, and this task alone writes it.
        let strip = unsafe { std::slice::from_raw_parts_mut(dst.get().add(s * pairs * mr), pairs * mr) };
        let mut row = vec![0u16; 2 * pairs];
        for r in 0..mr.min(m - s * mr) {
            kernel.round_row(&a[(s * mr + r) * lda..][..k], &mut row[..k]);
            for (lane, pair) in strip[r..].iter_mut().step_by(mr).zip(row.chunks_exact(2)) {
                *lane = pair[0] as u32 | (pair[1] as u32) << 16;
            }
        }
    };
    for_each_strip(m.div_ceil(mr), parallel, pack);
    out
}

/// Depth of the `K` slices: [`Blocking`]'s, rounded up to whole pairs.
fn k_slice(blocking: Blocking, k: usize) -> usize {
    blocking.k_slice(k).next_multiple_of(2)
}

/// `C[m, n] = post(bf16(A)[m, k] · Wᵀ + bias)` with strides `lda`, `ldc`, blocked as
/// `blocking`. Every element of `C[m, n]` is written (so `C` may start uninitialized);
/// none is read before it is.
///
/// Order as in the f32 driver: per task (a block of at most `MC` rows × a group of
/// panels), per `KC` slice, strip-outer (the strip stays in L1 across the task's panels);
/// a task of at most 4 strips runs one slice, panel-outer (the strips sharing a panel run
/// back to back while it streams in). The tiles prefetch as the f32 driver's do
/// ([`PrefetchPlan`]), one 128-byte panel row per pair.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    a: &[f32],
    lda: usize,
    m: usize,
    w: &PackedBf16,
    blocking: Blocking,
    post: Post<'_>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    parallel: bool,
) {
    let (n, k, kernel) = (w.n, w.k, w.kernel);
    let Some((post, threads)) = gemm_setup(a.len(), lda, m, k, c.len(), ldc, n, post, parallel, PARALLEL_MIN_MACS)
    else {
        return;
    };
    let (mr, nr, pairs) = (kernel.mr, kernel.nr, k.div_ceil(2));
    let strips = pack_a(kernel, a, lda, m, k, threads > 1);
    let out = OutputTiles { c: SyncPtr(c.as_mut_ptr().cast()), ldc, n, tile: (mr, nr), bias: &w.bias, post };
    let last_panel = n.div_ceil(nr) - 1;
    for_each_task(m, mr, blocking.mc, n.div_ceil(nr), threads, |rows, panels| {
        let few_strips = rows.len() <= 4 * mr;
        let kc_max = if few_strips { 2 * pairs.max(1) } else { k_slice(blocking, k) };
        let k_slices = k.div_ceil(kc_max).max(1);
        for ks in 0..k_slices {
            let (p0, pc) = (ks * kc_max / 2, (kc_max / 2).min(pairs - ks * kc_max / 2));
            let panel = |p: usize| w.data[(p * pairs + p0) * nr..].as_ptr();
            let plan = PrefetchPlan::new(blocking.prefetch, mr, rows.clone(), 4 * nr, pc);
            let run = |p: usize, i: usize, prefetch: TilePrefetch| {
                let tile = Bf16Tile {
                    pairs: pc,
                    a: strips[((i / mr) * pairs + p0) * mr..].as_ptr(),
                    b: panel(p),
                    out: out.at(i, rows.end, p, (ks, k_slices)),
                    prefetch,
                };
                // SAFETY: the kernel was handed out for this CPU; the tile is in bounds.
                unsafe { kernel.tile(&tile) };
            };
            if few_strips {
                for p in panels.clone() {
                    let (here, next) = (panel(p).cast(), panel((p + 1).min(last_panel)).cast());
                    rows.clone().step_by(mr).for_each(|i| run(p, i, plan.share(here, next, i)));
                }
            } else {
                for chunk in blocking.panel_chunks(panels.clone()) {
                    for i in rows.clone().step_by(mr) {
                        chunk.clone().for_each(|p| run(p, i, plan.ahead(panel(p).cast(), i)));
                    }
                }
            }
        }
    });
}
