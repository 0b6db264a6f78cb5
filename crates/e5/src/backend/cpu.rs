//! The CPU backend: the encoder of `crate::model` on `e5-kernels`, large batches split
//! into data-parallel lanes.

use super::{Backend, Memory, Supports};
use crate::error::{Error, Result};
use crate::head::OutputHead;
use crate::input::{Options, Precision, Residency};
use crate::lanes::Lanes;
use crate::model::{Encoder, LinearFormats, Site, Tap};
use crate::plan::{pack, sub_batches, Piece};
use crate::weights::Checkpoint;
use e5_arch::ModelConfig;
use e5_kernels::Kernels;
use std::path::Path;

pub(crate) const SUPPORTS: Supports = Supports {
    name: "the CPU backend",
    precisions: &Precision::ALL,
    keep_fp32: true,
    activation_scales: true,
    residency: true,
};

pub(crate) struct CpuBackend {
    encoder: Encoder,
    /// Per-thread lanes for large batches (`None` with one thread).
    lanes: Option<Lanes>,
    max_batch_tokens: usize,
    head: OutputHead,
}

impl CpuBackend {
    /// Packs every layer (call it on the model's thread pool: packing is parallel).
    pub fn load(
        dir: &Path,
        ck: &Checkpoint,
        cfg: &ModelConfig,
        kern: &'static Kernels,
        options: &Options,
        formats: LinearFormats<'_>,
        head: OutputHead,
    ) -> Result<Self> {
        SUPPORTS.check(options)?;
        let mut encoder = Encoder::load(ck, cfg.clone(), kern, options.precision, &formats)?;
        if options.residency == Residency::Copy {
            encoder.embeddings.words.copy_to_memory()?;
        }
        let words = &encoder.embeddings.words;
        match options.residency {
            Residency::Lazy | Residency::Copy => {}
            Residency::Prefetch => words.prefetch(),
            Residency::Lock => {
                words.prefetch();
                words.lock().map_err(|e| {
                    Error::Options(format!(
                        "residency lock: mlock of the {} MiB embedding table failed ({e}) in {}; raise the locked-memory limit (`ulimit -l`, RLIMIT_MEMLOCK) or use another residency",
                        words.bytes() >> 20,
                        dir.display()
                    ))
                })?;
            }
        }
        let threads = options.threads.unwrap_or_else(rayon::current_num_threads);
        let lanes = if threads >= 2 { Some(Lanes::new(threads)?) } else { None };
        Ok(CpuBackend { encoder, lanes, max_batch_tokens: options.max_batch_tokens, head })
    }

    /// Vectors of `pieces[group]`, in group order, in sub-batches of at most `max_tokens`.
    fn run_group(&self, pieces: &[Piece], group: &[usize], max_tokens: usize) -> Vec<f32> {
        let h = self.head.width();
        let mut out = vec![0.0; group.len() * h];
        let mut done = 0;
        for batch in sub_batches(pieces, group, max_tokens) {
            let (ids, seqs) = pack(batch.iter().map(|&i| pieces[i].ids.as_slice()));
            let hidden = self.encoder.forward(&ids, &seqs, &mut |_, _| {});
            let rows = &mut out[done * h..(done + batch.len()) * h];
            let skips: Vec<usize> = batch.iter().map(|&i| pieces[i].skip).collect();
            self.head.apply(self.encoder.kern, &hidden, &seqs, &skips, rows);
            done += batch.len();
        }
        out
    }
}

impl Backend for CpuBackend {
    /// On lanes when the batch is large and even enough, else with every kernel split
    /// among the threads.
    fn run(&self, pieces: &[Piece]) -> Result<Vec<f32>> {
        let all: Vec<usize> = (0..pieces.len()).collect();
        let tokens: Vec<usize> = pieces.iter().map(|p| p.ids.len()).collect();
        let costs: Vec<f64> = tokens.iter().map(|&t| self.encoder.cfg.forward_flops(t)).collect();
        let Some((lanes, groups)) = self.lanes.as_ref().and_then(|l| Some((l, l.split(&tokens, &costs)?))) else {
            // Every kernel split among the threads: keep them spinning between kernels.
            return Ok(e5_kernels::with_hot_workers(|| self.run_group(pieces, &all, self.max_batch_tokens)));
        };
        // Lanes share the token budget, so peak activation memory stays that of one batch.
        let budget = (self.max_batch_tokens / groups.len()).max(1);
        let h = self.head.width();
        let mut out = vec![0.0; pieces.len() * h];
        for (group, vectors) in groups.iter().zip(lanes.run(&groups, |g| self.run_group(pieces, g, budget))) {
            for (&i, v) in group.iter().zip(vectors.chunks_exact(h)) {
                out[i * h..(i + 1) * h].copy_from_slice(v);
            }
        }
        Ok(out)
    }

    fn trace(&self, ids: &[u32], seqs: &[usize], skips: &[usize], tap: &mut Tap<'_>) -> Result<()> {
        let hidden = self.encoder.forward(ids, seqs, tap);
        let mut rows = vec![0.0; seqs.len().saturating_sub(1) * self.head.width()];
        self.head.apply(self.encoder.kern, &hidden, seqs, skips, &mut rows);
        tap(Site::Pooled, &rows);
        Ok(())
    }

    fn memory(&self) -> Memory {
        Memory { embedding_table_bytes: self.encoder.embeddings.words.bytes(), owned_bytes: self.encoder.owned_bytes() }
    }

    fn check_unchanged(&self) -> Result<()> {
        self.encoder.embeddings.words.check_unchanged()
    }

    fn evict(&self) -> std::io::Result<()> {
        self.encoder.embeddings.words.evict()
    }
}
