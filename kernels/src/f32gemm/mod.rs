//! Packed f32 GEMM: `C[M,N] = A[M,K] · Wᵀ + bias`, then an optional fused epilogue.
//!
//! `W` is `[N, K]` (PyTorch `Linear` layout) packed once into panels of `NR` output
//! columns: panel `p` holds `K` rows of `NR` floats, `data[p][k][j] = W[p·NR + j][k]`,
//! zero-padded past `N`. `A` is read in place (`MR` rows side by side), unless its row
//! stride is a multiple of 4 KiB: then those rows would alias in L1, and `A` is packed
//! once per call into `MR`-row strips (`strip[k][r]`).
//!
//! Blocking: each task (a block of at most `MC` rows × a group of panels) runs, for each
//! `KC` slice of `K`, for each chunk of at most `NC` panels, for each `MR` strip, for each
//! panel, the micro-kernel on an `MR × NR` tile of `C` held in registers. The `MR × KC`
//! strip of `A` stays in L1 across the chunk's panels, and the chunk's panel slices in L2
//! across the strips. (Half-width panels widened into a buffer run panel-outer instead, so
//! each is widened once per block.)
//!
//! Determinism: every output element is one FMA chain over `k` in order, started from its
//! bias; between `KC` slices the partial sum is stored to `C` and reloaded exactly. The
//! chain does not depend on `M`, on the element's place in a tile, or on how tiles are
//! shared among threads, so an embedding is bit-identical whatever its batch-mates and
//! thread count.

mod prefetch;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::cache::CacheSizes;
use crate::pages::PanelBuf;
use crate::sync_ptr::SyncPtr;
use crate::tiling::{for_each_strip, for_each_task, gemm_setup};
use crate::vector::GeluKind;
use crate::Isa;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use std::mem::MaybeUninit;
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
pub(crate) use prefetch::x86::{touch, INTO_L1, INTO_L2, NO_PREFETCH};
pub(crate) use prefetch::PrefetchPlan;
pub use prefetch::{Fill, Prefetch, TilePrefetch};

/// What happens to a finished tile before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Post<'a> {
    None,
    Gelu(GeluKind),
    /// `C += R`, `R` laid out like `C` (same row stride).
    Residual(&'a [f32]),
}

/// The raw form of [`Post`] a micro-kernel sees.
///
/// An 8-byte tag, so that the payloads start 8-byte aligned. With Rust's one-byte tag, the
/// GEMM task loop copied bytes 1..8 into each tile's arguments as two overlapping 4-byte
/// moves through the stack, and the second load could not be forwarded from the two stores
/// before it: a third of the loop's samples on Zen 3 stalled there (`perf annotate`).
/// With the wide tag, `layer-gemm 536 2 15` (shared GEMMs) ran at 1.04× the rate of
/// before (median of 6 alternated runs; end to end within the noise).
#[derive(Clone, Copy)]
#[repr(u64)]
pub enum TilePost {
    None,
    Gelu(GeluKind),
    Residual { r: *const f32, ldr: usize },
}
// SAFETY: the residual pointer is only read, from disjoint tiles.
unsafe impl Send for TilePost {}
unsafe impl Sync for TilePost {}

impl TilePost {
    /// The raw form of `post` for a `[m, n]` output of row stride `ldc`.
    pub(crate) fn new(post: Post<'_>, m: usize, n: usize, ldc: usize) -> Self {
        match post {
            Post::None => TilePost::None,
            Post::Gelu(g) => TilePost::Gelu(g),
            Post::Residual(r) => {
                assert!(r.len() >= (m - 1) * ldc + n, "residual too short for [{m}, {n}]");
                TilePost::Residual { r: r.as_ptr(), ldr: ldc }
            }
        }
    }

    /// The same epilogue for the tile whose top-left element is `(i, j)`.
    pub(crate) fn at(self, i: usize, j: usize) -> Self {
        match self {
            // SAFETY: the caller's tile lies inside the `[m, n]` output `new` checked.
            TilePost::Residual { r, ldr } => TilePost::Residual { r: unsafe { r.add(i * ldr + j) }, ldr },
            other => other,
        }
    }
}

/// The output side of one f32-output micro-kernel call (the f32 and bf16-dot tiles):
/// `C[mr, nr] = post(start + …)`, where `start` is the bias (first `K` slice) or `C`
/// itself (later slices).
#[derive(Clone, Copy)]
pub struct TileOut {
    /// `NR` floats (zeros when the layer has no bias).
    pub bias: *const f32,
    pub c: *mut f32,
    pub ldc: usize,
    /// Valid rows (1..=MR) and columns (1..=NR) of the tile.
    pub mr: usize,
    pub nr: usize,
    /// Start from the partial sums in `C` instead of the bias.
    pub accumulate: bool,
    /// Applied only on the last `K` slice.
    pub post: TilePost,
}

/// `C[m, n]` (row stride `ldc`) as a driver cuts it into `MR × NR` tiles, with the bias
/// (padded to whole panels) and the epilogue of the whole GEMM. Shared by the f32 and
/// bf16-dot drivers.
pub(crate) struct OutputTiles<'a> {
    pub c: SyncPtr,
    pub ldc: usize,
    pub n: usize,
    pub tile: (usize, usize),
    pub bias: &'a [f32],
    pub post: TilePost,
}

impl OutputTiles<'_> {
    /// The tile at row `i` and panel `p` of a task whose rows end at `rows_end`, in `K`
    /// slice `ks` of `k_slices`: onto the bias first, onto the partial sums after, with the
    /// epilogue on the last slice only.
    pub(crate) fn at(&self, i: usize, rows_end: usize, p: usize, (ks, k_slices): (usize, usize)) -> TileOut {
        let (mr, nr) = self.tile;
        TileOut {
            bias: self.bias[p * nr..].as_ptr(),
            // SAFETY: `gemm_setup` checked that `C` covers `[m, n]`; tiles of distinct
            // (rows, panel) never overlap.
            c: unsafe { self.c.get().add(i * self.ldc + p * nr) },
            ldc: self.ldc,
            mr: mr.min(rows_end - i),
            nr: nr.min(self.n - p * nr),
            accumulate: ks > 0,
            post: if ks + 1 < k_slices { TilePost::None } else { self.post.at(i, p * nr) },
        }
    }
}

/// One micro-kernel call: `out = post(start + A[mr, k] · B[k, NR])` (see [`TileOut`]).
pub struct Tile {
    pub k: usize,
    /// `A[r][k]` is at `a + r·row_stride + k·k_stride`: a packed strip (`1`, `MR`) or
    /// rows read in place (`lda`, `1`).
    pub a: *const f32,
    pub row_stride: usize,
    pub k_stride: usize,
    /// One packed panel slice: `k` steps of `NR` values.
    pub b: PanelPtr,
    pub out: TileOut,
    /// Software prefetch, one step per `k` step (AVX2 touches the first line of each step
    /// only; NEON and the scalar twin none).
    pub prefetch: TilePrefetch,
}

/// A packed panel slice in its stored element type.
#[derive(Clone, Copy, Debug)]
pub enum PanelPtr {
    F32(*const f32),
    /// IEEE half bits, widened (exactly) by the micro-kernel as it loads them.
    F16(*const u16),
    /// bfloat16 bits, likewise.
    Bf16(*const u16),
}

impl PanelPtr {
    /// The panel of a micro-kernel without `half_panels`, which only ever gets f32.
    pub fn f32(self) -> *const f32 {
        match self {
            PanelPtr::F32(p) => p,
            other => unreachable!("{other:?} passed to an f32-only micro-kernel"),
        }
    }
}

/// An ISA's micro-kernel and its tile shape.
#[derive(Clone)]
pub struct MicroKernel {
    pub mr: usize,
    pub nr: usize,
    /// `run` also takes half-width panels (`PanelPtr::F16` / `Bf16`) and widens them in
    /// registers; otherwise the driver widens each panel slice into an f32 buffer first.
    pub half_panels: bool,
    pub run: unsafe fn(&Tile),
}

/// Element type in which packed weights are stored; arithmetic is always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    F32,
    /// IEEE half: half the memory and bandwidth, 11-bit mantissa.
    F16,
    /// bfloat16: half the memory, f32's range, 8-bit mantissa.
    Bf16,
}

/// Panel data in its storage type.
#[derive(Clone)]
enum Panels {
    F32(PanelBuf<f32>),
    F16(PanelBuf<f16>),
    Bf16(PanelBuf<bf16>),
}

/// `W[N, K]` packed into `NR`-wide panels for one ISA, with its bias padded alike.
#[derive(Clone)]
pub struct PackedF32 {
    n: usize,
    k: usize,
    nr: usize,
    isa: Isa,
    data: Panels,
    bias: Vec<f32>,
}

impl PackedF32 {
    /// Packs `n` rows of `k` floats (row stride `ldw`): `W[j][c] = w[j·ldw + c]`.
    pub fn from_rows(kern: &crate::Kernels, w: &[f32], n: usize, k: usize, ldw: usize, bias: Option<&[f32]>) -> Self {
        Self::from_rows_scaled(kern, w, n, k, ldw, bias, 1.0)
    }

    /// [`PackedF32::from_rows`] of `s·W` (one rounding per element; `s = 1` is exact).
    pub(crate) fn from_rows_scaled(
        kern: &crate::Kernels,
        w: &[f32],
        n: usize,
        k: usize,
        ldw: usize,
        bias: Option<&[f32]>,
        s: f32,
    ) -> Self {
        assert!(n == 0 || w.len() >= (n - 1) * ldw + k, "weight slice too short for [{n}, {k}]");
        Self::pack_with(kern, n, k, bias, |p, c, (nr, cols), row| {
            row.extend((p * nr..p * nr + cols).map(|j| s * w[j * ldw + c]))
        })
    }

    /// Packs the transpose of `k` rows of `n` floats (row stride `ldv`): `W[j][c] = v[c·ldv + j]`.
    pub fn from_cols(kern: &crate::Kernels, v: &[f32], k: usize, n: usize, ldv: usize) -> Self {
        assert!(k == 0 || v.len() >= (k - 1) * ldv + n, "slice too short for [{k}, {n}]");
        Self::pack_with(kern, n, k, None, |p, c, (nr, cols), row| row.extend_from_slice(&v[c * ldv + p * nr..][..cols]))
    }

    /// Packs panel row by panel row, each written once, in order, with no zero-fill pass
    /// first (attention packs `K` and `V` per sequence and head, ~300 times per short
    /// query): `row(p, c, (NR, cols), data)` appends `W[p·NR + j][c]` for `j < cols`, the
    /// panel's real columns; zeros pad it to `NR`.
    fn pack_with(
        kern: &crate::Kernels,
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
        row: impl Fn(usize, usize, (usize, usize), &mut Vec<f32>),
    ) -> Self {
        let nr = kern.f32_gemm.nr;
        let panels = n.div_ceil(nr);
        let mut data = Vec::with_capacity(panels * nr * k);
        for p in 0..panels {
            let cols = nr.min(n - p * nr);
            for c in 0..k {
                row(p, c, (nr, cols), &mut data);
                data.resize(data.len() + nr - cols, 0.0);
            }
        }
        let mut padded = vec![0.0; panels * nr];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias length");
            padded[..n].copy_from_slice(b);
        }
        PackedF32 { n, k, nr, isa: kern.isa, data: Panels::F32(data.into()), bias: padded }
    }

    /// The same panels stored as `storage` (rounded to nearest).
    pub fn stored_as(self, storage: Storage) -> Self {
        let data = match (storage, self.data) {
            (Storage::F16, Panels::F32(d)) => {
                Panels::F16(d.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>().into())
            }
            (Storage::Bf16, Panels::F32(d)) => {
                Panels::Bf16(d.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>().into())
            }
            (_, d) => d,
        };
        PackedF32 { data, ..self }
    }

    /// The same weights moved onto 2 MiB pages (`kernels/src/pages.rs`), for weights that
    /// live as long as a model: fewer TLB misses where batch 1 streams them. Results are
    /// unchanged (without transparent huge pages, only the speed gain is lost).
    pub fn into_huge_pages(self) -> Self {
        let data = match self.data {
            Panels::F32(d) => Panels::F32(d.into_huge_pages()),
            Panels::F16(d) => Panels::F16(d.into_huge_pages()),
            Panels::Bf16(d) => Panels::Bf16(d.into_huge_pages()),
        };
        PackedF32 { data, ..self }
    }

    pub fn storage(&self) -> Storage {
        match self.data {
            Panels::F32(_) => Storage::F32,
            Panels::F16(_) => Storage::F16,
            Panels::Bf16(_) => Storage::Bf16,
        }
    }

    /// Panel `p`'s slice `k0..k0 + kc`: in place when stored as f32 or when the micro-kernel
    /// widens half-width values itself (`in_register`), else widened into `buf`.
    fn panel(
        &self,
        kern: &crate::Kernels,
        p: usize,
        k0: usize,
        kc: usize,
        in_register: bool,
        buf: &mut Vec<f32>,
    ) -> PanelPtr {
        let at = p * self.k * self.nr + k0 * self.nr;
        let len = kc * self.nr;
        let bits: &[u16] = match &self.data {
            Panels::F32(d) => return PanelPtr::F32(d[at..].as_ptr()),
            Panels::F16(d) => d[at..at + len].reinterpret_cast(),
            Panels::Bf16(d) => d[at..at + len].reinterpret_cast(),
        };
        if in_register {
            return match self.storage() {
                Storage::Bf16 => PanelPtr::Bf16(bits.as_ptr()),
                _ => PanelPtr::F16(bits.as_ptr()),
            };
        }
        buf.resize(len, 0.0);
        kern.widen(self.storage(), bits, buf);
        PanelPtr::F32(buf.as_ptr())
    }

    /// Address of panel `p`'s row `k0` as stored.
    fn panel_addr(&self, p: usize, k0: usize) -> *const u8 {
        let at = (p * self.k + k0) * self.nr;
        match &self.data {
            Panels::F32(d) => d[at..].as_ptr().cast(),
            Panels::F16(d) => d[at..].as_ptr().cast(),
            Panels::Bf16(d) => d[at..].as_ptr().cast(),
        }
    }

    /// Bytes of one panel row (`NR` weights) as stored.
    fn panel_row_bytes(&self) -> usize {
        self.nr * if self.storage() == Storage::F32 { 4 } else { 2 }
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn isa(&self) -> Isa {
        self.isa
    }
    /// Bytes held by the packed weights and bias.
    pub fn bytes(&self) -> usize {
        let data = match &self.data {
            Panels::F32(d) => d.len() * 4,
            Panels::F16(d) => d.len() * 2,
            Panels::Bf16(d) => d.len() * 2,
        };
        data + self.bias.len() * 4
    }
}

/// Cache blocking of the driver for one micro-kernel, derived from its tile height and
/// the CPU's data caches. Results never depend on it (partial sums round-trip through `C`
/// exactly), only speed does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Depth of a `K` slice.
    pub kc: usize,
    /// Rows of `A` per task block, a multiple of `MR`.
    pub mc: usize,
    /// Panels per chunk: a task runs its strips over one chunk of its panels at a time, so
    /// that the chunk's `KC`-deep slices stay in L2 while every strip passes over them.
    pub nc: usize,
    /// What the micro-kernel prefetches (see [`Tile::prefetch`]; `PrefetchPlan` places it).
    pub prefetch: Prefetch,
}

impl Blocking {
    /// The blocking of a tile with `a_bytes`-wide operands (4 for f32, 2 for bf16-dot), in
    /// strip-outer order (a task's panel slices come from L2 for each of its strips; the
    /// strip streams through L1 once per panel):
    /// - `KC`: the deepest power of two up to 1024 at which one tile's operands for a slice,
    ///   the `MR × KC` strip and the `KC × NR` panel slice, take at most a quarter of L2,
    ///   leaving the rest for the task's other panel slices: 1024 for the x86 f32 and
    ///   bf16-dot tiles with 1 MiB of L2. Each slice costs every tile a `C` round trip and
    ///   its set-up, so deeper is better while the panels stay in L2. On Zen 4 (two threads,
    ///   alternated rounds of the `gemm-report` shapes at `M` ≥ 128): AVX-512 f32 at 1024
    ///   gained 2–6 points of the FMA peak over 256 on 13 of the 14 `K` ≥ 768 shapes (one
    ///   lost 1); AVX2 at 1024 within 1% of 512 or up to 7% faster; bf16-dot at 1024 faster
    ///   than 512 on all 10 `K` ≥ 1024 shapes in one run (0–9%), 8 of 10 in another.
    /// - `MC`: 16 strips. The block is not meant to stay cached: each strip is read once per
    ///   slice per task. On Zen 4, 8 AVX2 strips (48 rows) ran up to 20% slower at `M` = 512
    ///   than 16, and 32 alike; 10 AVX-512 strips 5–12% slower at `M` = 128 (two uneven
    ///   blocks instead of one).
    /// - `NC`: as many panels as take half of L2 at `KC` deep (8 for the AVX-512 f32 tile
    ///   with 2 MiB of L2, 4 with 1 MiB). Unchunked, a task's whole panel group (22 panels,
    ///   2.8 MiB, at `M` = 512, `N` = 4096) was re-read from L3 by every strip. On an Intel
    ///   Xeon (Emerald Rapids, 2 MiB L2; two threads, variants alternated call by call,
    ///   `gemm-isa … blocking=`): that shape ran 1.14× and 1.21× faster at `NC` 8 than
    ///   unchunked in two runs, `NC` 4 alike, 16 in between; the other `M` ≥ 128 shapes,
    ///   whose tasks hold ≤ 8 panels, within the ±5% noise.
    /// - `prefetch`: `NextPanelShares`, which [`crate::Kernels::f32_blocking`] replaces by
    ///   its per-ISA, per-vendor choice.
    pub fn derive(mr: usize, nr: usize, a_bytes: usize, caches: CacheSizes) -> Blocking {
        let kc = caches.l2 / 4 / ((mr + nr) * a_bytes);
        let kc = (1usize << kc.max(1).ilog2()).clamp(64, 1024);
        Blocking {
            kc,
            mc: 16 * mr,
            nc: (caches.l2 / 2 / (kc * nr * a_bytes)).max(1),
            prefetch: Prefetch::NextPanelShares,
        }
    }

    /// Panics unless this blocking fits a tile of `mr` rows: `KC` and `NC` positive, `MC` a
    /// positive multiple of `mr` (for blockings set by hand, as benchmarks do).
    pub(crate) fn assert_fits(self, mr: usize) {
        let ok = self.kc > 0 && self.nc > 0 && self.mc > 0 && self.mc.is_multiple_of(mr);
        assert!(ok, "blocking {self:?} for a {mr}-row tile");
    }

    /// `panels` in chunks of at most `NC`, in order.
    pub(crate) fn panel_chunks(self, panels: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        panels.clone().step_by(self.nc).map(move |p| p..(p + self.nc).min(panels.end))
    }

    /// Depth of the `K` slices for a `K`-deep product: one slice up to 1.5·`KC` (an uneven
    /// tail slice of under half `KC` would pay the `C` round trip and tile set-up for
    /// little work), else equal slices of at most `KC`.
    pub(crate) fn k_slice(self, k: usize) -> usize {
        if 2 * k <= 3 * self.kc {
            k.max(1)
        } else {
            k.div_ceil(k.div_ceil(self.kc))
        }
    }
}

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// Packs all of `A` into `MR`-row strips, `strip[k][r]`, so a micro-kernel reads one
/// contiguous stream: strip `s` starts at `s·MR·K` and holds its `rows` real rows (`MR`, or
/// fewer in the last strip) side by side, depth `k0` at `k0·rows` into it. No padding rows:
/// at `M` = 1 the copy is `K` floats, not `MR·K`. Done once per call and shared by every
/// task.
///
/// Each strip is written in 64-deep chunks (3 KiB at `MR` 12, in L1 while its rows are
/// scattered into it), row by row, so the reads of `A` are contiguous; every element is
/// written once, with no zero-fill pass first. `parallel`: see [`for_each_strip`].
fn pack_a(a: &[f32], lda: usize, m: usize, k: usize, mr: usize, parallel: bool) -> Vec<f32> {
    const CHUNK: usize = 64;
    let mut out = Vec::<f32>::with_capacity(m * k);
    let dst = SyncPtr(out.as_mut_ptr());
    let pack = |s: usize| {
        let rows = mr.min(m - s * mr);
        // SAFETY: strip `s` (`rows·k` floats at `s·MR·k`) lies inside the capacity, and
        // this task alone writes it.
        let strip =
            unsafe { std::slice::from_raw_parts_mut(dst.get().add(s * mr * k).cast::<MaybeUninit<f32>>(), rows * k) };
        for c0 in (0..k).step_by(CHUNK) {
            let cols = CHUNK.min(k - c0);
            let chunk = &mut strip[c0 * rows..(c0 + cols) * rows];
            for r in 0..rows {
                let src = &a[(s * mr + r) * lda + c0..][..cols];
                chunk.iter_mut().skip(r).step_by(rows).zip(src).for_each(|(d, &v)| _ = d.write(v));
            }
        }
    };
    for_each_strip(m.div_ceil(mr), parallel, pack);
    // SAFETY: `pack` wrote every element of every strip, and the strips tile `m·k`.
    unsafe { out.set_len(m * k) };
    out
}

/// `C[m, n] = post(A[m, k] · Wᵀ + bias)` with strides `lda`, `ldc`. Every element of
/// `C[m, n]` is written (so `C` may start uninitialized); none is read before it is.
///
/// # Panics
/// If `w` was packed for another ISA or a slice is too short for its shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    kern: &crate::Kernels,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &PackedF32,
    post: Post<'_>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    parallel: bool,
) {
    let (n, k) = (w.n, w.k);
    let mk = &kern.f32_gemm;
    assert_eq!(w.isa, kern.isa, "weights packed for {} used with {} kernels", w.isa, kern.isa);
    let Some((post, threads)) = gemm_setup(a.len(), lda, m, k, c.len(), ldc, n, post, parallel, PARALLEL_MIN_MACS)
    else {
        return;
    };
    let (mr, nr) = (mk.mr, mk.nr);
    let out = OutputTiles { c: SyncPtr(c.as_mut_ptr().cast()), ldc, n, tile: (mr, nr), bias: &w.bias, post };
    let blocking = kern.f32_blocking();
    // Rows whose stride is a multiple of 4 KiB alias in L1 when read side by side: pack
    // those; read the others in place.
    let packed = if k > 0 && lda.is_multiple_of(1024) { pack_a(a, lda, m, k, mr, threads > 1) } else { Vec::new() };
    let (row_bytes, last_panel) = (w.panel_row_bytes(), n.div_ceil(nr) - 1);
    for_each_task(m, mr, blocking.mc, n.div_ceil(nr), threads, |rows, panels| {
        let mut converted = Vec::new();
        // Few strips reuse a panel slice too little for K blocking to pay; one slice keeps
        // each panel a single sequential stream. (Results do not depend on the slicing:
        // partial sums round-trip through C exactly.) Nor does a widened copy of a
        // half-width panel pay: kernels that can widen as they load do it per strip.
        let few_strips = rows.len() <= 4 * mr;
        let in_register = few_strips && mk.half_panels;
        let kc_max = if few_strips { k.max(1) } else { blocking.k_slice(k) };
        let k_slices = k.div_ceil(kc_max).max(1);
        for ks in 0..k_slices {
            let (k0, kc) = (ks * kc_max, kc_max.min(k - ks * kc_max));
            let tile_at = |p: usize, i: usize, b: PanelPtr, prefetch: TilePrefetch| {
                let (a, row_stride, k_stride) = match packed.is_empty() {
                    true => (a[i * lda + k0..].as_ptr(), lda, 1),
                    false => {
                        let rows = mr.min(m - i);
                        (packed[i * k + k0 * rows..].as_ptr(), 1, rows)
                    }
                };
                let tile =
                    Tile { k: kc, a, row_stride, k_stride, b, out: out.at(i, rows.end, p, (ks, k_slices)), prefetch };
                // SAFETY: the table exists only for a supported ISA; the tile is in bounds.
                unsafe { (mk.run)(&tile) };
            };
            // Where each tile's kernel prefetches (one panel row's lines per `k` step).
            let plan = PrefetchPlan::new(blocking.prefetch, mr, rows.clone(), row_bytes, kc);
            if few_strips || w.storage() != Storage::F32 && !in_register {
                // Panel-outer: the strips sharing panel `p` run back to back (a widened copy
                // is made once). At batch 1 the weights stream from DRAM or L3, and this
                // overlaps that stream with every strip's arithmetic instead of the first
                // one's only: fp32 batch-1 latency 6–11% lower than strip-outer (in-process
                // A/B). Each strip prefetches its share of panel `p + 1` where the choice
                // has shares ([`PrefetchPlan::share`]; `docs/cpu-analysis.md` §20).
                let share =
                    |p: usize, i: usize| plan.share(w.panel_addr(p, k0), w.panel_addr((p + 1).min(last_panel), k0), i);
                for p in panels.clone() {
                    let b = w.panel(kern, p, k0, kc, in_register, &mut converted);
                    for i in rows.clone().step_by(mr) {
                        tile_at(p, i, b, share(p, i));
                    }
                }
            } else {
                // Strip-outer: the `MR × KC` strip of `A` stays in L1 across the task's
                // panels. Measured ~5% faster at batch 32 than panel-outer, which kept the
                // panel in L1 but needed the whole `MC × KC` block in L2 beside the weights.
                for chunk in blocking.panel_chunks(panels.clone()) {
                    for i in rows.clone().step_by(mr) {
                        for p in chunk.clone() {
                            let b = w.panel(kern, p, k0, kc, in_register, &mut converted);
                            tile_at(p, i, b, plan.ahead(w.panel_addr(p, k0), i));
                        }
                    }
                }
            }
        }
    });
}
