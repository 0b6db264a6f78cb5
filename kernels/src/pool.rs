//! Pooling of a padding-free batch into one vector per sequence.

use crate::Kernels;

/// How token vectors become one sequence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over every token of the sequence (specials included, as sentence-transformers).
    Mean,
    /// The first token.
    Cls,
}

impl Kernels {
    /// `hidden`: `[T, width]`; `seqs`: `n + 1` prefix offsets; `out`: `[n, width]`.
    /// With `normalize`, each output row is scaled to unit L2 norm (`x / max(‖x‖, 1e-12)`).
    pub fn pool(&self, hidden: &[f32], width: usize, seqs: &[usize], mode: Pooling, normalize: bool, out: &mut [f32]) {
        let n = seqs.len().saturating_sub(1);
        assert!(out.len() == n * width && hidden.len() >= seqs.last().copied().unwrap_or(0) * width, "pool shapes");
        crate::hot::for_each_chunk_mut(out, width, 1, |s, o| {
            let (a, b) = (seqs[s], seqs[s + 1]);
            o.fill(0.0);
            if b > a {
                match mode {
                    Pooling::Cls => o.copy_from_slice(&hidden[a * width..(a + 1) * width]),
                    Pooling::Mean => {
                        self.sum_rows(&hidden[a * width..b * width], o);
                        self.scale(o, 1.0 / (b - a) as f32);
                    }
                }
            }
            if normalize {
                let norm = self.dot(o, o).sqrt();
                self.scale(o, 1.0 / norm.max(1e-12));
            }
        });
    }
}
