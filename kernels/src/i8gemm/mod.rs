//! INT8 GEMM: `C[M,N] = post(dequant(Aq[M,K] · Wqᵀ) + bias)`, exact i32 accumulation.
//!
//! - Weights: int8 symmetric per output channel (`w ≈ q·s_n`, `q ∈ [-127, 127]`), packed
//!   once into panels of `NR` columns in groups of 4 along `K` (zero-padded in `N`, `K`),
//!   in the kernel's [`Layout`]:
//!   - `Quads`: `data[p][g][j][0..4] = Wq[p·NR + j][4g..4g+4]`;
//!   - `Pairs`: `data[p][g][h][j][0..2] = Wq[p·NR + j][4g+2h..4g+2h+2]`.
//! - Activations: quantized per row (token) at run time, symmetric, `[-127, 127]`, then
//!   packed into `MR`-row strips: `strip[g][r][0..4]` as i8 (`Quads`) or as i16 (`Pairs`).
//! - Accumulation is exact in i32 on every ISA (|a·w| ≤ 127², K < 130 000), so integer
//!   results are bit-identical across ISAs; only the f32 epilogue
//!   `acc·(s_row·s_col) + bias` rounds.
//!
//! Kernels: AVX-512 VNNI and AVX-VNNI (`vpdpbusd`, unsigned A: `a + 128`, corrected by
//! `128·Σw` per column), AVX2 (`vpmaddwd` on int16 pairs: weights widened in registers,
//! products and pair sums land in i32, so nothing can saturate), NEON dotprod (`sdot`,
//! signed × signed), NEON (`smull` + pairwise add) and the scalar twin.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
#[cfg(target_arch = "x86_64")]
pub mod avxvnni;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "aarch64")]
pub mod neon_dot;

use crate::f32gemm::{Post, TilePost};
use crate::pages::PanelBuf;
use crate::sync_ptr::SyncPtr;
use crate::tiling::{for_each_strip, for_each_task, gemm_setup};
use std::mem::MaybeUninit;

/// One micro-kernel call over the whole of `K`.
pub struct I8Tile {
    /// `K / 4`, rounded up.
    pub groups: usize,
    /// Packed activation strip: `groups × MR × 4` values (`+128` for unsigned kernels; i16
    /// for [`Layout::Pairs`]).
    pub a: *const i8,
    /// Packed weight panel: `groups × NR × 4` bytes.
    pub b: *const i8,
    pub c: *mut f32,
    pub ldc: usize,
    pub mr: usize,
    pub nr: usize,
    /// `MR` activation scales (rows past `mr` are 0).
    pub row_scales: *const f32,
    /// `NR` weight scales, biases and weight column sums of the panel.
    pub col_scales: *const f32,
    pub bias: *const f32,
    pub colsum: *const i32,
    pub post: TilePost,
    /// Software prefetch distance: at each group, the AVX-512 VNNI tile touches the two
    /// lines `prefetch` bytes past its panel loads; 0 for none. The AVX2-class tiles keep
    /// their own fixed distance.
    pub prefetch: usize,
}

/// An ISA's int8 micro-kernel.
#[derive(Clone)]
pub struct I8MicroKernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    /// The kernel multiplies unsigned activations (`a + 128`).
    pub unsigned_a: bool,
    pub layout: Layout,
    pub run: unsafe fn(&I8Tile),
}

/// How a kernel wants each group of 4 `K` values laid out (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// 4 consecutive `K` bytes per column / row (`vpdpbusd`, `sdot`, `smull`, scalar).
    Quads,
    /// 2 consecutive `K` bytes per column, two pair blocks per group; activations as i16
    /// (`vpmaddwd` on sign-extended weights).
    Pairs,
}

impl Layout {
    /// Bytes one row of an activation strip takes per group of 4 `K` values.
    pub fn a_group_bytes(self) -> usize {
        match self {
            Layout::Quads => 4,
            Layout::Pairs => 8,
        }
    }

    /// Offset of `W[col jj][kk]` (`kk` < 4) inside a panel's group of `nr` columns.
    fn w_offset(self, nr: usize, jj: usize, kk: usize) -> usize {
        match self {
            Layout::Quads => jj * 4 + kk,
            Layout::Pairs => (kk / 2) * nr * 2 + jj * 2 + kk % 2,
        }
    }
}

/// `W[N, K]` quantized per output channel and packed for one int8 kernel.
#[derive(Clone)]
pub struct PackedI8 {
    n: usize,
    k: usize,
    nr: usize,
    kernel: &'static str,
    data: PanelBuf<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
    colsum: Vec<i32>,
}

/// Symmetric per-row quantization to `[-127, 127]` (ties to even): returns the scale
/// (`x ≈ q·scale`). The scalar twin of the activation path in `gemm`.
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> f32 {
    quantize_row_with(&crate::vector::scalar::KERNELS, x, q)
}

pub(crate) fn quantize_row_with(v: &crate::vector::VectorKernels, x: &[f32], q: &mut [i8]) -> f32 {
    // SAFETY: `v` belongs to a supported ISA (see `VectorKernels`).
    let scale = scale_for_max(unsafe { (v.abs_max)(x) });
    // SAFETY: as above; the caller's lengths match (checked by the kernel).
    unsafe { (v.quantize_i8)(x, inv_of(scale), q) };
    scale
}

/// The scale of a row whose `max |x|` is `amax`: 0 for an all-zero row, NaN when `amax` is
/// not finite (the row quantizes to zeros, see [`inv_of`]), else `amax / 127`.
fn scale_for_max(amax: f32) -> f32 {
    if amax.is_finite() {
        amax / 127.0
    } else {
        f32::NAN
    }
}

/// The multiplier that quantizes `x ≈ q·scale` (clipping to `[-127, 127]`): `1 / scale`, or
/// 0 (every `q` zero) for a scale that is 0 or NaN.
fn inv_of(scale: f32) -> f32 {
    if scale > 0.0 {
        1.0 / scale
    } else {
        0.0
    }
}

/// How activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActQuant<'a> {
    /// One scale per row (token), from its max |x|, computed at run time.
    Dynamic,
    /// One calibrated scale for the whole tensor; values beyond `127·scale` clip.
    Static(f32),
    /// Static with per-channel smoothing (SmoothQuant): `x[j] ≈ q[j]·scale·s[j]`, where the
    /// weights' input column `j` was multiplied by `s[j]` before they were quantized.
    /// `inv[j] = 1 / (s[j]·scale)` (`[k]`); `x[j]·inv[j]` is rounded to `q[j]`.
    ///
    /// The scale is a floor, not a ceiling: a row with some `|x[j]·inv[j]| > 127` (outside
    /// the calibrated range) takes its own scale `scale · max_j |x[j]·inv[j]| / 127`, as
    /// dynamic int8 would, instead of clipping. Smoothing evens out the channels' ranges, so
    /// a fresh input that exceeds any one channel's calibrated maximum would otherwise clip.
    Smoothed { scale: f32, inv: &'a [f32] },
}

impl PackedI8 {
    /// Quantizes `w` (`[n, k]`, row stride `k`) per output channel and packs it.
    pub fn quantize(kern: &crate::Kernels, w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        assert!(w.len() >= n * k, "weight slice too short for [{n}, {k}]");
        let mut q = vec![0i8; n * k];
        let scales: Vec<f32> =
            (0..n).map(|j| kern.quantize_row(&w[j * k..(j + 1) * k], &mut q[j * k..(j + 1) * k])).collect();
        Self::from_quantized(kern, &q, &scales, n, k, bias)
    }

    /// Packs already-quantized weights `q` (`[n, k]`, values in `[-127, 127]`) with their
    /// per-channel `scales`.
    pub fn from_quantized(
        kern: &crate::Kernels,
        q: &[i8],
        scales: &[f32],
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
    ) -> Self {
        assert!(q.len() >= n * k && scales.len() == n, "quantized weights / scales do not match [{n}, {k}]");
        let ik = &kern.i8_gemm;
        let nr = ik.nr;
        let (panels, groups) = (n.div_ceil(nr), k.div_ceil(4));
        let mut data = vec![0i8; panels * groups * nr * 4];
        let mut colsum = vec![0i32; panels * nr];
        for j in 0..n {
            let (p, jj) = (j / nr, j % nr);
            for c in 0..k {
                let v = q[j * k + c];
                data[(p * groups + c / 4) * nr * 4 + ik.layout.w_offset(nr, jj, c % 4)] = v;
                colsum[j] += v as i32;
            }
        }
        let mut padded_scales = vec![0.0; panels * nr];
        padded_scales[..n].copy_from_slice(scales);
        let mut padded_bias = vec![0.0; panels * nr];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias length");
            padded_bias[..n].copy_from_slice(b);
        }
        PackedI8 { n, k, nr, kernel: ik.name, data: data.into(), scales: padded_scales, bias: padded_bias, colsum }
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn k(&self) -> usize {
        self.k
    }
    /// The same weights moved onto 2 MiB pages (`kernels/src/pages.rs`), for weights that
    /// live as long as a model: fewer TLB misses where batch 1 streams them. Results are
    /// unchanged (without transparent huge pages, only the speed gain is lost).
    pub fn into_huge_pages(self) -> Self {
        PackedI8 { data: self.data.into_huge_pages(), ..self }
    }

    /// Bytes held by the packed weights, scales, bias and column sums.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * (self.scales.len() + self.bias.len() + self.colsum.len())
    }
}

/// Rows of `A` per parallel block.
const MC: usize = 96;
/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Quantizes the rows of `A` and packs them into `MR`-row strips; returns the strips and
/// the per-row scales (padded to whole strips with 0). Every byte of the strips is written
/// once (rows of `A`, then padding rows that read as zero), so they start uninitialized.
///
/// `parallel`: see [`for_each_strip`] (a strip's rows share cache lines: 4 bytes of each
/// row per 48-byte group).
fn quantize_pack_a(
    kern: &crate::Kernels,
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    act: ActQuant<'_>,
    parallel: bool,
) -> (Vec<i8>, Vec<f32>) {
    if let ActQuant::Smoothed { inv, .. } = act {
        assert_eq!(inv.len(), k, "smoothing multipliers do not match k = {k}");
    }
    let ik = &kern.i8_gemm;
    let (mr, groups, ab) = (ik.mr, k.div_ceil(4), ik.layout.a_group_bytes());
    let (strips, strip_len) = (m.div_ceil(mr), groups * mr * ab);
    let mut packed = Vec::<i8>::with_capacity(strips * strip_len);
    let mut scales = vec![0.0f32; strips * mr];
    // Unsigned kernels read `q + 128`: each byte flipped by the shift, 4 at a time.
    let shift = if ik.unsigned_a { 128u8 as i8 } else { 0 };
    let flip = u32::from_ne_bytes([shift as u8; 4]);
    let (out, sc) = (SyncPtr(packed.as_mut_ptr()), SyncPtr(scales.as_mut_ptr()));
    let work = |s: usize| {
        // SAFETY: strip `s` lies inside the capacity, and this task alone writes it and
        // its `MR` scales.
        let strip = unsafe { std::slice::from_raw_parts_mut(out.get().add(s * strip_len).cast(), strip_len) };
        let scales = unsafe { std::slice::from_raw_parts_mut(sc.get().add(s * mr), mr) };
        let mut q = vec![0i8; if ik.layout == Layout::Pairs { k } else { 0 }];
        let mut wide = vec![0i16; if ik.layout == Layout::Pairs { groups * 4 } else { 0 }];
        // The smoothed row, in L1: scaling it channel-wise, checking its range and quantizing
        // it read `x` from memory once, against twice (max |x|, then quantize) for dynamic.
        let mut smoothed = vec![0f32; if matches!(act, ActQuant::Smoothed { .. }) { k } else { 0 }];
        for (r, scale) in scales.iter_mut().enumerate() {
            // Row `r`'s group `g` is the `ab` bytes at `(g·MR + r)·ab` of the strip.
            let cells = &mut strip[r * ab..];
            if s * mr + r >= m {
                // Padding rows read as zero: bytes of the shift alone, which the kernel
                // removes (unsigned kernels all take quads), else zeros.
                // SAFETY: `cells` holds every cell of the row.
                unsafe {
                    match ik.layout {
                        Layout::Quads => put_cells(cells, mr * ab, groups, |_| flip),
                        Layout::Pairs => put_cells(cells, mr * ab, groups, |_| 0u64),
                    }
                }
                continue;
            }
            let row = &a[(s * mr + r) * lda..][..k];
            // `x ≈ q·scale`, `q = x·inv`: in the smoothed units for `Smoothed`.
            let (x, inv) = match act {
                ActQuant::Dynamic => {
                    // SAFETY: `kern.vector` belongs to a supported ISA (see `VectorKernels`).
                    *scale = scale_for_max(unsafe { (kern.vector.abs_max)(row) });
                    (row, inv_of(*scale))
                }
                ActQuant::Static(s) => {
                    *scale = s;
                    (row, inv_of(s))
                }
                ActQuant::Smoothed { scale: floor, inv } => {
                    smoothed.iter_mut().zip(row.iter().zip(inv)).for_each(|(y, (x, i))| *y = x * i);
                    // SAFETY: as above.
                    let amax = unsafe { (kern.vector.abs_max)(&smoothed) };
                    if amax > 127.0 {
                        // Out of the calibrated range: the row's own scale (NaN for ±inf).
                        let own = scale_for_max(amax);
                        *scale = floor * own;
                        (&smoothed[..], inv_of(own))
                    } else {
                        *scale = floor;
                        (&smoothed[..], 1.0)
                    }
                }
            };
            match ik.layout {
                // SAFETY: as above; `cells` holds every cell of the row.
                Layout::Quads => unsafe { (kern.vector.quantize_i8_cells)(x, inv, flip, cells, mr * ab) },
                // i16 in native byte order, as the kernel loads it: quantized, widened in one
                // (vectorized) pass, then moved 8 bytes per group.
                Layout::Pairs => {
                    // SAFETY: as above; lengths match.
                    unsafe { (kern.vector.quantize_i8)(x, inv, &mut q) };
                    wide.iter_mut().zip(&q).for_each(|(w, &v)| *w = v as i16);
                    let wp = wide.as_ptr().cast::<u64>();
                    // SAFETY: `wide` holds `groups` runs of 4 i16; `cells` every cell.
                    unsafe { put_cells(cells, mr * ab, groups, |g| wp.add(g).read_unaligned()) };
                }
            }
        }
    };
    for_each_strip(strips, parallel, work);
    // SAFETY: the tasks wrote every byte: `groups` cells of `ab` bytes for each of the
    // strips' `MR` rows (real or padding).
    unsafe { packed.set_len(strips * strip_len) };
    (packed, scales)
}

/// Writes `v(g)` for `g` in `0..cells` at byte `g·stride` of `dst`, unaligned: one row's
/// cells in an activation strip.
///
/// # Safety
/// `dst` must hold every cell: `(cells - 1)·stride + size_of::<T>()` bytes.
#[inline(always)]
unsafe fn put_cells<T>(dst: &mut [MaybeUninit<i8>], stride: usize, cells: usize, v: impl Fn(usize) -> T) {
    let mut p = dst.as_mut_ptr();
    for g in 0..cells {
        p.cast::<T>().write_unaligned(v(g));
        p = p.add(stride);
    }
}

/// `C[m, n] = post(dequant(quant(A) · Wqᵀ) + bias)` with strides `lda`, `ldc`. Every
/// element of `C[m, n]` is written (so `C` may start uninitialized).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    kern: &crate::Kernels,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &PackedI8,
    act: ActQuant<'_>,
    post: Post<'_>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    parallel: bool,
) {
    let (ik, prefetch) = (&kern.i8_gemm, kern.i8_prefetch());
    assert_eq!(w.kernel, ik.name, "int8 weights packed for {} used with {}", w.kernel, ik.name);
    let (n, k) = (w.n, w.k);
    let Some((post, threads)) = gemm_setup(a.len(), lda, m, k, c.len(), ldc, n, post, parallel, PARALLEL_MIN_MACS)
    else {
        return;
    };
    let (strips, row_scales) = quantize_pack_a(kern, a, lda, m, k, act, threads > 1);
    let (mr, nr, groups_k) = (ik.mr, w.nr, k.div_ceil(4));
    let cp = SyncPtr(c.as_mut_ptr().cast::<f32>());
    for_each_task(m, mr, MC, n.div_ceil(nr), threads, |rows, panels| {
        // Strip-outer: a task's activation strip (up to 18 KiB of i16 at K = 1536) stays in
        // L1 across its panels, which come from L2 (at e5-small's shapes a task's panels
        // fit). Panel-outer kept a panel in L1 instead, but then the whole i16 block of `MC`
        // rows (295 KiB at K = 1536) had to stay in L2 beside the weights: batch-32 int8
        // ran ~5% slower.
        for i in rows.clone().step_by(mr) {
            for p in panels.clone() {
                let s = i / mr;
                let tile = I8Tile {
                    groups: groups_k,
                    a: strips[s * groups_k * mr * ik.layout.a_group_bytes()..].as_ptr(),
                    b: w.data[p * groups_k * nr * 4..].as_ptr(),
                    // SAFETY: tiles of distinct (rows, panel) never overlap; bounds asserted above.
                    c: unsafe { cp.get().add(i * ldc + p * nr) },
                    ldc,
                    mr: mr.min(rows.end - i),
                    nr: nr.min(n - p * nr),
                    row_scales: row_scales[s * mr..].as_ptr(),
                    col_scales: w.scales[p * nr..].as_ptr(),
                    bias: w.bias[p * nr..].as_ptr(),
                    colsum: w.colsum[p * nr..].as_ptr(),
                    post: post.at(i, p * nr),
                    prefetch,
                };
                // SAFETY: the table exists only for a supported ISA; the tile is in bounds.
                unsafe { (ik.run)(&tile) };
            }
        }
    });
}
