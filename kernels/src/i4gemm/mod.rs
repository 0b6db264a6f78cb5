//! Group-wise INT4 GEMM: `C[M,N] = post(sa·Σ_g ws[g]·(Aq · Wq)_g + bias)`.
//!
//! - Weights: symmetric 4-bit per group of `G` consecutive `K` values of one output
//!   channel (`w ≈ q·ws[n][g]`, `q ∈ [-8, 7]`, ties to even), `G ∈ {32, 64, 128}`; each
//!   scale is an f16 value where it lies in f16's normal range ([`storable_scale`]). Packed
//!   once into panels of `NR` columns (a multiple of 16), stored offset by 8 as nibbles
//!   `u = q + 8 ∈ [0, 15]`. The scales are kept as f16 when every one of the tensor's is an
//!   f16 value (the normal case), else as f32 ([`ScalePtr`]); the micro-kernels widen f16
//!   scales exactly, so the storage never changes a result. Within a group, each pair `t`
//!   of `K` quads (8 values) and each block `h` of 16 columns is 64 bytes: byte `i` holds
//!   column `16h + i/4`, `k = 8t + i%4` in its low nibble and `k + 4` in its high nibble.
//!   One AND and one shift turn 64 bytes into two quad-major blocks of 16 columns × 4 `k`:
//!   the operand of `vpdpbusd`, of `vpmaddubsw`, and of the scalar twin.
//! - Activations: int8 per row (token) at run time (the int8 path's quantizer), packed
//!   into `MR`-row strips of quads `strip[kq][r][0..4]` (signed), zero-padded to whole
//!   groups, with each row's sum per group (`asum[g][r]`).
//! - Exactness: per group, `Σ u·a − 8·asum = Σ q·a` in i32 (|Σ| ≤ 128·8·127 < 2²⁴, so its
//!   conversion to f32 is exact). Across groups every ISA runs the same f32 chain,
//!   `f = fma(f32(i_g), ws[g], f)` for `g` ascending, then `y = fma(f, sa, bias)`; the
//!   scalar twin uses `f32::mul_add`. Results are therefore bit-identical on every ISA.
//! - Unsigned × signed products never saturate: `vpmaddubsw` pairs reach at most
//!   2·15·127 = 3810, far inside i16, which is why AVX2 needs no VNNI here.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
#[cfg(target_arch = "aarch64")]
pub mod neon_dot;

use crate::f32gemm::{Post, Storage, TilePost};
use crate::pages::PanelBuf;
use crate::sync_ptr::SyncPtr;
use crate::tiling::{for_each_strip, for_each_task, gemm_setup};
use half::f16;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Group sizes the packing supports: whole 8-value quad pairs, bounded so each group's
/// i32 sum stays exact in f32.
pub const GROUP_SIZES: [usize; 3] = [32, 64, 128];

/// One micro-kernel call over the whole of `K`.
pub struct I4Tile {
    /// Weight groups along `K`, and quad pairs (8 values) per group.
    pub groups: usize,
    pub pairs_per_group: usize,
    /// Activation strip: `groups·pairs_per_group·2` quads × `MR` rows × 4 signed bytes.
    pub a: *const i8,
    /// `groups × MR` row sums of the activations per group.
    pub asum: *const i32,
    /// Weight panel: `groups·pairs_per_group × NR/16` blocks of 64 nibble bytes.
    pub b: *const u8,
    /// `groups × NR` weight scales.
    pub w_scales: ScalePtr,
    pub c: *mut f32,
    pub ldc: usize,
    pub mr: usize,
    pub nr: usize,
    /// `MR` activation scales (rows past `mr` are 0), `NR` biases.
    pub row_scales: *const f32,
    pub bias: *const f32,
    pub post: TilePost,
    /// Software prefetch distance: at each quad pair, the AVX-512 VNNI tile touches the two
    /// lines `prefetch` bytes past its panel loads; 0 for none. Other tiles ignore it.
    pub prefetch: usize,
}

/// A tile's weight scales in their stored type.
#[derive(Clone, Copy, Debug)]
pub enum ScalePtr {
    F32(*const f32),
    /// IEEE half bits, widened (exactly) to f32 by the micro-kernel, per group.
    F16(*const u16),
}

impl ScalePtr {
    /// Scale `i` as f32 (the scalar twin's load).
    ///
    /// # Safety
    /// Element `i` must be in bounds.
    #[inline]
    pub(crate) unsafe fn get(self, i: usize) -> f32 {
        match self {
            ScalePtr::F32(p) => *p.add(i),
            ScalePtr::F16(p) => f16::from_bits(*p.add(i)).to_f32(),
        }
    }
}

/// An ISA's int4 micro-kernel.
#[derive(Clone)]
pub struct I4MicroKernel {
    pub name: &'static str,
    pub mr: usize,
    /// A multiple of 16 (the packing's column block).
    pub nr: usize,
    pub run: unsafe fn(&I4Tile),
}

/// `W[N, K]` quantized to 4 bits per group and packed for one int4 kernel.
#[derive(Clone)]
pub struct PackedI4 {
    n: usize,
    k: usize,
    group: usize,
    nr: usize,
    kernel: &'static str,
    data: PanelBuf<u8>,
    scales: Scales,
    bias: Vec<f32>,
}

/// Packed scales, `[panel][group][NR]`: 2 bytes each when all of them are f16 values
/// (every scale [`storable_scale`] makes in f16's normal range, zero padding included),
/// else 4 (a tensor with a scale outside that range).
#[derive(Clone)]
enum Scales {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Scales {
    fn new(scales: Vec<f32>) -> Self {
        match scales.iter().all(|&s| f16_exact(s)) {
            true => Scales::F16(scales.iter().map(|&s| f16::from_f32(s)).collect()),
            false => Scales::F32(scales),
        }
    }

    /// The scales from element `at` on.
    fn at(&self, at: usize) -> ScalePtr {
        match self {
            Scales::F16(s) => ScalePtr::F16(s[at..].as_ptr().cast()),
            Scales::F32(s) => ScalePtr::F32(s[at..].as_ptr()),
        }
    }
}

/// A scale as the search tries it and a file stores it: rounded to the nearest f16 when it
/// lies in f16's normal range, so that 2 bytes store it and load back the very same f32;
/// kept in f32 outside that range.
pub fn storable_scale(s: f32) -> f32 {
    match (f16::MIN_POSITIVE.to_f32()..=f16::MAX.to_f32()).contains(&s) {
        true => f16::from_f32(s).to_f32(),
        false => s,
    }
}

/// Whether `s` survives f16 and back bit for bit (NaN payloads and signed zeros included).
pub fn f16_exact(s: f32) -> bool {
    f16::from_f32(s).to_f32().to_bits() == s.to_bits()
}

/// The 4-bit level of `v` at `scale`: `round_ties_even(v / scale)` clamped to `[-8, 7]`; NaN → 0.
///
/// The 16th level, −8, costs nothing in the kernels (the nibble `u = q + 8` is 0) and gives
/// the negative side of a group one more step: on multilingual-e5-small (int4-g32, 380
/// evaluated texts) the mean cosine to fp32 rises from 0.99677 to 0.99773 with [-7, 7]
/// → [-8, 7], the scale search unchanged.
pub fn level(v: f32, scale: f32) -> i8 {
    level_f32(v, scale) as i8
}

/// [`level`] as an f32 (a whole number in `[-8, 7]`), in straight-line arithmetic.
///
/// `round_ties_even` is a library call on x86-64 without SSE4.1 (the scale search made 17
/// per weight, most of a model's int4 load time). Adding and removing 1.5·2²³ rounds to
/// nearest-even exactly for |t| < 2²², so the quotient is clamped first: every value past
/// an end rounds onto or past it either way. A NaN quotient (`v` NaN, or 0 / 0) stays NaN
/// through both clamps and becomes 0, as `NaN as i8` does.
#[inline]
fn level_f32(v: f32, scale: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    let t = (v / scale).clamp(-9.0, 8.0);
    let l = ((t + SHIFT) - SHIFT).clamp(-8.0, 7.0);
    if l.is_nan() {
        0.0
    } else {
        l
    }
}

/// Divisors of `amax` the scale search tries: 7, 7.125, …, 9.
const CANDIDATES: usize = 17;

/// 4-bit quantization of one group with a symmetric scale: `x ≈ q·scale`, `q ∈ [-8, 7]`, ties to even,
/// NaN → 0. Returns the scale (0 for an all-zero group).
///
/// The scale is the one of `amax / d`, `d ∈ {7, 7.125, …, 9}` (each made
/// [`storable_scale`]), with the least squared error
/// (the first on a tie): with only 15 levels, clipping the one or two largest values of a
/// group often buys a finer step for all the others. On multilingual-e5-small (int4, groups
/// of 32) this search lifts the SQNR of the last layer's output from 14.6 dB (absmax alone,
/// `d = 7`) to 19.2 dB, and the worst text's cosine to fp32 from 0.974 to 0.993.
pub fn quantize_group(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().filter(|v| !v.is_nan()).fold(0.0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return if amax == 0.0 { 0.0 } else { f32::NAN };
    }
    let scales: [f32; CANDIDATES] = std::array::from_fn(|i| storable_scale(amax / (7.0 + 0.125 * i as f32)));
    // All candidates side by side, value by value: each error is still summed in value
    // order (the sum a candidate-by-candidate loop gives, bit for bit), but as 17
    // independent f64 chains instead of one, and no candidate's levels are kept.
    let mut errors = [0.0f64; CANDIDATES];
    for &v in x.iter().filter(|v| !v.is_nan()) {
        for (error, &scale) in errors.iter_mut().zip(&scales) {
            *error += (v as f64 - (level_f32(v, scale) * scale) as f64).powi(2);
        }
    }
    let mut best = (0.0f32, f64::INFINITY);
    for (&scale, &error) in scales.iter().zip(&errors) {
        if error < best.1 {
            best = (scale, error);
        }
    }
    q.iter_mut().zip(x).for_each(|(q, &v)| *q = level(v, best.0));
    best.0
}

impl PackedI4 {
    /// Quantizes `w` (`[n, k]`, row stride `k`) per group of `group` values and packs it.
    ///
    /// # Panics
    /// If `group` is not one of [`GROUP_SIZES`] or a slice is too short.
    pub fn quantize(kern: &crate::Kernels, w: &[f32], n: usize, k: usize, group: usize, bias: Option<&[f32]>) -> Self {
        let (q, scales) = Self::quantize_levels(w, n, k, group);
        Self::from_quantized(kern, &q, &scales, n, k, group, bias)
    }

    /// The levels and scales [`PackedI4::quantize`] packs: `q` is `[n][groups·group]` (`K`
    /// zero-padded to whole groups), `scales` is `[n][groups]` (NaN for a group holding a
    /// non-finite value).
    ///
    /// # Panics
    /// As [`PackedI4::quantize`].
    pub fn quantize_levels(w: &[f32], n: usize, k: usize, group: usize) -> (Vec<i8>, Vec<f32>) {
        assert!(GROUP_SIZES.contains(&group), "int4 group size {group} (expected 32, 64 or 128)");
        assert!(w.len() >= n * k, "weight slice too short for [{n}, {k}]");
        let groups = k.div_ceil(group);
        let mut q = vec![0i8; n * groups * group];
        let mut scales = vec![0.0f32; n * groups];
        // One output channel per task: the scale search is the bulk of a model's load time.
        q.par_chunks_mut(groups * group).zip(scales.par_chunks_mut(groups)).enumerate().for_each(|(j, (q, scales))| {
            for (g, scale) in scales.iter_mut().enumerate() {
                let (lo, hi) = (g * group, ((g + 1) * group).min(k));
                *scale = quantize_group(&w[j * k + lo..j * k + hi], &mut q[g * group..][..hi - lo]);
            }
        });
        (q, scales)
    }

    /// Packs quantized weights: `q` is `[n][groups·group]` (`K` zero-padded to whole groups,
    /// values in `[-8, 7]`), `scales` is `[n][groups]`.
    pub fn from_quantized(
        kern: &crate::Kernels,
        q: &[i8],
        scales: &[f32],
        n: usize,
        k: usize,
        group: usize,
        bias: Option<&[f32]>,
    ) -> Self {
        let ik = &kern.i4_gemm;
        let (nr, groups) = (ik.nr, k.div_ceil(group));
        let kp = groups * group;
        assert!(q.len() >= n * kp && scales.len() >= n * groups, "int4 weights / scales do not match [{n}, {k}]");
        let panels = n.div_ceil(nr);
        let mut data = vec![0x88u8; panels * kp * nr / 2];
        let mut packed_scales = vec![0.0f32; panels * groups * nr];
        for j in 0..n {
            let (p, jj) = (j / nr, j % nr);
            let (h, col) = (jj / 16, jj % 16);
            for c in 0..kp {
                let (pair, kk) = (c / 8, c % 8);
                let at = p * kp * nr / 2 + (pair * (nr / 16) + h) * 64 + col * 4 + kk % 4;
                let u = (q[j * kp + c].clamp(-8, 7) + 8) as u8;
                let (keep, put) = if kk < 4 { (0xF0, u) } else { (0x0F, u << 4) };
                data[at] = (data[at] & keep) | put;
            }
            for g in 0..groups {
                packed_scales[(p * groups + g) * nr + jj] = scales[j * groups + g];
            }
        }
        let mut padded_bias = vec![0.0; panels * nr];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias length");
            padded_bias[..n].copy_from_slice(b);
        }
        PackedI4 {
            n,
            k,
            group,
            nr,
            kernel: ik.name,
            data: data.into(),
            scales: Scales::new(packed_scales),
            bias: padded_bias,
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn group(&self) -> usize {
        self.group
    }
    /// The type the scales are kept in: [`Storage::F16`] unless a scale is no f16 value.
    pub fn scale_storage(&self) -> Storage {
        match self.scales {
            Scales::F16(_) => Storage::F16,
            Scales::F32(_) => Storage::F32,
        }
    }
    /// The same weights moved onto 2 MiB pages (`kernels/src/pages.rs`), for weights that
    /// live as long as a model: fewer TLB misses where batch 1 streams them. Results are
    /// unchanged (without transparent huge pages, only the speed gain is lost).
    pub fn into_huge_pages(self) -> Self {
        PackedI4 { data: self.data.into_huge_pages(), ..self }
    }

    /// Bytes held by the packed nibbles, scales and bias.
    pub fn bytes(&self) -> usize {
        let scales = match &self.scales {
            Scales::F16(s) => 2 * s.len(),
            Scales::F32(s) => 4 * s.len(),
        };
        self.data.len() + scales + 4 * self.bias.len()
    }
}

/// Rows of `A` per parallel block, and the size below which one thread is cheaper.
const MC: usize = 96;
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Quantizes the rows of `A` (int8, per row) and packs them into `MR`-row quad strips
/// padded to `kp` values; returns the strips, the per-group row sums and the row scales.
/// `parallel`: see [`for_each_strip`]. Run on the calling thread below 64 rows (until
/// f7c2bc1), e5-small's 48 GEMMs (int4-g32) took 3–4% longer at 17 rows, 5% at 24 and
/// 7–8% at 40 (Intel Xeon, two threads, alternated in one process; `docs/cpu-analysis.md`
/// §19).
fn quantize_pack_a(
    kern: &crate::Kernels,
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    group: usize,
    parallel: bool,
) -> (Vec<i8>, Vec<i32>, Vec<f32>) {
    let (mr, groups) = (kern.i4_gemm.mr, k.div_ceil(group));
    let quads = groups * group / 4;
    let strips = m.div_ceil(mr);
    let (strip_len, sum_len) = (quads * mr * 4, groups * mr);
    let mut packed = vec![0i8; strips * strip_len];
    let mut sums = vec![0i32; strips * sum_len];
    let mut scales = vec![0.0f32; strips * mr];
    let (out, sum_out, sc_out) =
        (SyncPtr(packed.as_mut_ptr()), SyncPtr(sums.as_mut_ptr()), SyncPtr(scales.as_mut_ptr()));
    let work = |s: usize| {
        // SAFETY: strip `s` owns `[s·len, (s+1)·len)` of each buffer, and each `s` is one
        // task's, so no two slices overlap.
        let (strip, sum, sc) = unsafe {
            (
                std::slice::from_raw_parts_mut(out.get().add(s * strip_len), strip_len),
                std::slice::from_raw_parts_mut(sum_out.get().add(s * sum_len), sum_len),
                std::slice::from_raw_parts_mut(sc_out.get().add(s * mr), mr),
            )
        };
        let mut q = vec![0i8; quads * 4];
        for r in 0..mr.min(m - s * mr) {
            sc[r] = kern.quantize_row(&a[(s * mr + r) * lda..][..k], &mut q[..k]);
            for (g, vals) in q.chunks_exact(group).enumerate() {
                sum[g * mr + r] = vals.iter().map(|&v| v as i32).sum();
            }
            for (v, d) in q.chunks_exact(4).zip(strip[r * 4..].chunks_mut(mr * 4)) {
                d[..4].copy_from_slice(v);
            }
        }
    };
    for_each_strip(strips, parallel, work);
    (packed, sums, scales)
}

/// `C[m, n] = post(int4 GEMM)` with strides `lda`, `ldc`; every element of `C[m, n]` is
/// written (so `C` may start uninitialized).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    kern: &crate::Kernels,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &PackedI4,
    post: Post<'_>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    parallel: bool,
) {
    let ik = &kern.i4_gemm;
    assert_eq!(w.kernel, ik.name, "int4 weights packed for {} used with {}", w.kernel, ik.name);
    let (n, k) = (w.n, w.k);
    let Some((post, threads)) = gemm_setup(a.len(), lda, m, k, c.len(), ldc, n, post, parallel, PARALLEL_MIN_MACS)
    else {
        return;
    };
    let (strips, sums, row_scales) = quantize_pack_a(kern, a, lda, m, k, w.group, threads > 1);
    let (mr, nr, groups) = (ik.mr, w.nr, k.div_ceil(w.group));
    let (quads, kp) = (groups * w.group / 4, groups * w.group);
    let cp = SyncPtr(c.as_mut_ptr().cast::<f32>());
    let ahead = kern.i4_prefetch();
    for_each_task(m, mr, MC, n.div_ceil(nr), threads, |rows, panels| {
        for i in rows.clone().step_by(mr) {
            let s = i / mr;
            for p in panels.clone() {
                let tile = I4Tile {
                    groups,
                    pairs_per_group: w.group / 8,
                    a: strips[s * quads * mr * 4..].as_ptr(),
                    asum: sums[s * groups * mr..].as_ptr(),
                    b: w.data[p * kp * nr / 2..].as_ptr(),
                    w_scales: w.scales.at(p * groups * nr),
                    // SAFETY: tiles of distinct (rows, panel) never overlap; bounds asserted above.
                    c: unsafe { cp.get().add(i * ldc + p * nr) },
                    ldc,
                    mr: mr.min(rows.end - i),
                    nr: nr.min(n - p * nr),
                    row_scales: row_scales[s * mr..].as_ptr(),
                    bias: w.bias[p * nr..].as_ptr(),
                    post: post.at(i, p * nr),
                    prefetch: ahead,
                };
                // SAFETY: the table exists only for a supported ISA; the tile is in bounds.
                unsafe { (ik.run)(&tile) };
            }
        }
    });
}
