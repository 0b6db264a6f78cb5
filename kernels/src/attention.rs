//! Multi-head self-attention over a padding-free batch.
//!
//! Tokens of all sequences are concatenated; each (sequence, head) pair is one task that
//! sees only its own sequence, so no mask and no padding exist. Per task, with `L` the
//! sequence length and `d` the head width:
//!
//! ```text
//! S[L, L] = Q[L, d] · (K[L, d] / √d)ᵀ   (f32 micro-kernel tiles, K scaled and packed as
//!                                        rows; S rows 64-byte strided, SCORE_ROW_ALIGN)
//! P       = softmax(S) per row
//! O[L, d] = P[L, L] · V[L, d]           (f32 micro-kernel tiles, V packed as columns)
//! ```
//!
//! The products call the f32 GEMM's micro-kernel tile by tile, with no driver: at `d` ≤ 128
//! both fit L2 whatever `L`, so there is nothing to block, and for a short query the
//! driver's per-call set-up, a packed-weights value per operand and their allocations cost
//! more than the arithmetic (17 tokens, 12 heads, Zen 3: 51 µs per layer through
//! `PackedF32` and the driver, of which the tiles took 31%; `docs/cpu-analysis.md` §25).
//! Each element is the tile's FMA chain over `k` in order from zero, so the result is bit
//! for bit that of [`Kernels::gemm_strided`] on the same packed operands
//! (`kernels/tests/rows.rs` checks it on every ISA).

use crate::f32gemm::{PanelPtr, Tile, TileOut, TilePost, TilePrefetch};
use crate::hot::for_each_index;
use crate::sync_ptr::SyncPtr;
use crate::Kernels;
use std::mem::MaybeUninit;

/// Score rows start this many floats apart (64 bytes, the widest vector). With rows packed
/// at `L` floats, the masked tail store that ends one row's softmax overlaps the vector
/// load that starts the next row's, and the load waits for the store to retire: on an
/// Intel Xeon (Emerald Rapids, AVX-512) 17 softmax rows of 17 took 1.05 µs packed and
/// 0.45 µs at this stride (a scratch A/B alternated in one process), and attention over 17
/// tokens 30.4 µs and 21–23 µs per layer (`rows-isa`).
const SCORE_ROW_ALIGN: usize = 16;

/// The bias of every tile: none. At least the widest tile's `NR` floats.
static ZERO_BIAS: [f32; 64] = [0.0; 64];

/// Shape of one packed-batch attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub hidden: usize,
    pub heads: usize,
}

impl Kernels {
    /// `qkv`: `[T, 3H]` rows of (query | key | value); `seqs`: prefix offsets, `n + 1`
    /// entries ending at `T`; `out`: `[T, H]` attention output before the projection.
    pub fn attention(&self, qkv: &[f32], seqs: &[usize], shape: AttentionShape, out: &mut [f32]) {
        let AttentionShape { hidden: h, heads } = shape;
        assert!(heads > 0 && h % heads == 0, "hidden {h} not divisible by {heads} heads");
        let t = *seqs.last().unwrap_or(&0);
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]) && seqs.first() == Some(&0), "offsets");
        assert!(qkv.len() == t * 3 * h && out.len() == t * h, "attention buffers");
        assert!(self.f32_gemm.nr <= ZERO_BIAS.len(), "tile wider than its zero bias");
        let d = h / heads;
        if d == 0 {
            return;
        }
        let op = SyncPtr(out.as_mut_ptr());
        let tasks: Vec<(usize, usize)> = (0..seqs.len() - 1)
            .filter(|&s| seqs[s + 1] > seqs[s])
            .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
            .collect();
        for_each_index(tasks.len(), |i| {
            let (s, hd) = tasks[i];
            let (start, len) = (seqs[s], seqs[s + 1] - seqs[s]);
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            // SAFETY: task (s, hd) alone writes rows start..start+len, columns hd·d..(hd+1)·d
            // of `out`, which holds all `T` rows of `H`.
            unsafe { self.attend(rows, len, (h, d, hd), op.get().add(start * h + hd * d)) }
        });
    }

    /// One (sequence, head): `rows` holds the sequence's `[L, 3H]` (query | key | value)
    /// rows; writes `O[L, d]` at `o` (row stride `H`).
    ///
    /// # Safety
    /// `o` must be valid for writes of `L` rows of `d` floats, `H` apart.
    unsafe fn attend(&self, rows: &[f32], len: usize, (h, d, hd): (usize, usize, usize), o: *mut f32) {
        let (mr, nr) = (self.f32_gemm.mr, self.f32_gemm.nr);
        let (key_panels, value_panels) = (len.div_ceil(nr), d.div_ceil(nr));
        let ld = len.next_multiple_of(SCORE_ROW_ALIGN);
        // One allocation per task: packed K (`[key_panels][d][NR]`), S (`[L][ld]`; the
        // padding columns zeroed, never read), packed V (`[value_panels][L][NR]`).
        let (k_len, s_len) = (key_panels * d * nr, len * ld);
        let mut buf = Box::<[f32]>::new_uninit_slice(k_len + s_len + value_panels * len * nr);
        let (kp, rest) = buf.split_at_mut(k_len);
        let (sp, vp) = rest.split_at_mut(s_len);
        sp.chunks_exact_mut(ld).for_each(|row| row[len..].fill(MaybeUninit::new(0.0)));
        // 1/√d folded into K: one rounding per K element instead of a pass over S.
        let scale = 1.0 / (d as f32).sqrt();
        pack_transposed(kp, rows, (len, d, 3 * h), h + hd * d, nr, scale);
        pack_columns(vp, rows, (len, d, 3 * h), 2 * h + hd * d, nr);
        let (kp, sp, vp) = (kp.as_ptr().cast::<f32>(), sp.as_mut_ptr().cast::<f32>(), vp.as_ptr().cast::<f32>());
        let tile = |a: *const f32, lda: usize, k: usize, b: *const f32, c: *mut f32, ldc: usize, (m, n)| {
            let out =
                TileOut { bias: ZERO_BIAS.as_ptr(), c, ldc, mr: m, nr: n, accumulate: false, post: TilePost::None };
            let t = Tile { k, a, row_stride: lda, k_stride: 1, b: PanelPtr::F32(b), out, prefetch: TilePrefetch::NONE };
            // SAFETY: the table exists only for a supported ISA; callers pass in-bounds tiles.
            unsafe { (self.f32_gemm.run)(&t) }
        };
        for i in (0..len).step_by(mr) {
            for p in 0..key_panels {
                let shape = (mr.min(len - i), nr.min(len - p * nr));
                tile(
                    rows[i * 3 * h + hd * d..].as_ptr(),
                    3 * h,
                    d,
                    kp.add(p * d * nr),
                    sp.add(i * ld + p * nr),
                    ld,
                    shape,
                );
            }
        }
        // SAFETY: the tiles above wrote columns 0..L of every row of S, the fill the rest.
        self.softmax_rows(unsafe { std::slice::from_raw_parts_mut(sp, (len - 1) * ld + len) }, len, len, ld);
        for i in (0..len).step_by(mr) {
            for p in 0..value_panels {
                let shape = (mr.min(len - i), nr.min(d - p * nr));
                tile(sp.add(i * ld), ld, len, vp.add(p * len * nr), o.add(i * h + p * nr), h, shape);
            }
        }
    }
}

/// `panels[p][c][j] = s · x[(p·NR + j)·ld + at + c]` for the `[L, d]` block of `x` at
/// column `at` (row stride `ld`): its rows as `NR`-wide panels of columns, zeros past `L`.
fn pack_transposed(
    panels: &mut [MaybeUninit<f32>],
    x: &[f32],
    (len, d, ld): (usize, usize, usize),
    at: usize,
    nr: usize,
    s: f32,
) {
    for (p, panel) in panels.chunks_exact_mut(d * nr).enumerate() {
        let keys = nr.min(len - p * nr);
        let block = &x[p * nr * ld + at..][..(keys - 1) * ld + d];
        for (c, row) in panel.chunks_exact_mut(nr).enumerate() {
            for (j, dst) in row[..keys].iter_mut().enumerate() {
                dst.write(s * block[j * ld + c]);
            }
            row[keys..].fill(MaybeUninit::new(0.0));
        }
    }
}

/// `panels[p][k][j] = x[k·ld + at + p·NR + j]` for the `[L, d]` block of `x` at column `at`
/// (row stride `ld`): its columns as `NR`-wide panels of `L` rows, zeros past `d`.
fn pack_columns(panels: &mut [MaybeUninit<f32>], x: &[f32], (len, d, ld): (usize, usize, usize), at: usize, nr: usize) {
    for (p, panel) in panels.chunks_exact_mut(len * nr).enumerate() {
        let cols = nr.min(d - p * nr);
        for (k, dst) in panel.chunks_exact_mut(nr).enumerate() {
            let src = &x[k * ld + at + p * nr..][..cols];
            // SAFETY: `dst` holds `NR ≥ cols` floats; f32 and MaybeUninit<f32> share a layout.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<f32>(), cols) };
            dst[cols..].fill(MaybeUninit::new(0.0));
        }
    }
}
