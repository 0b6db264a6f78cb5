//! Multi-head self-attention over a padding-free batch.
//!
//! Tokens of all sequences are concatenated; each (sequence, head) pair is one task that
//! sees only its own sequence, so no mask and no padding exist. Per task, with `L` the
//! sequence length and `d` the head width:
//!
//! ```text
//! S[L, L] = Q[L, d] · (K[L, d] / √d)ᵀ   (packed GEMM, K scaled and packed as rows;
//!                                        rows 64-byte strided, see SCORE_ROW_ALIGN)
//! P       = softmax(S) per row
//! O[L, d] = P[L, L] · V[L, d]           (packed GEMM, V packed as columns)
//! ```

use crate::dispatch::filled;
use crate::f32gemm::{self, PackedF32, Post};
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
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let op = SyncPtr(out.as_mut_ptr());
        let tasks: Vec<(usize, usize)> = (0..seqs.len() - 1)
            .filter(|&s| seqs[s + 1] > seqs[s])
            .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
            .collect();
        for_each_index(tasks.len(), |i| {
            let (s, hd) = tasks[i];
            let (start, len) = (seqs[s], seqs[s + 1] - seqs[s]);
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            let q = &rows[hd * d..];
            // 1/√d folded into K: one rounding per K element instead of a pass over S.
            let k = PackedF32::from_rows_scaled(self, &rows[h + hd * d..], len, d, 3 * h, None, scale);
            let v = PackedF32::from_cols(self, &rows[2 * h + hd * d..], len, d, 3 * h);
            let ld = len.next_multiple_of(SCORE_ROW_ALIGN);
            let mut p = filled(len * ld, |c| {
                // The padding columns, zeroed so that every element is written; never read.
                c.chunks_exact_mut(ld).for_each(|row| row[len..].fill(MaybeUninit::new(0.0)));
                f32gemm::gemm(self, q, 3 * h, len, &k, Post::None, c, ld, false)
            });
            for row in p.chunks_exact_mut(ld) {
                self.softmax(&mut row[..len]);
            }
            // SAFETY: task (s, hd) alone writes rows start..start+len, columns hd·d..(hd+1)·d.
            let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(start * h + hd * d), (len - 1) * h + d) };
            self.gemm_strided(&p, ld, len, &v, Post::None, o, h, false);
        });
    }
}
