//! Multi-head self-attention over a padding-free batch.
//!
//! Tokens of all sequences are concatenated; each (sequence, head) pair is one task that
//! sees only its own sequence, so no mask and no padding exist. Per task, with `L` the
//! sequence length and `d` the head width:
//!
//! ```text
//! S[L, L] = Q[L, d] · (K[L, d] / √d)ᵀ   (packed GEMM, K scaled and packed as rows)
//! P       = softmax(S) per row
//! O[L, d] = P[L, L] · V[L, d]           (packed GEMM, V packed as columns)
//! ```

use crate::dispatch::filled;
use crate::f32gemm::{self, PackedF32, Post};
use crate::hot::for_each_index;
use crate::sync_ptr::SyncPtr;
use crate::Kernels;

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
            let mut p = filled(len * len, |c| f32gemm::gemm(self, q, 3 * h, len, &k, Post::None, c, len, false));
            for row in p.chunks_exact_mut(len) {
                self.softmax(row);
            }
            // SAFETY: task (s, hd) alone writes rows start..start+len, columns hd·d..(hd+1)·d.
            let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(start * h + hd * d), (len - 1) * h + d) };
            self.gemm_strided(&p, len, len, &v, Post::None, o, h, false);
        });
    }
}
