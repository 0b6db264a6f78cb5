//! [`Model`]: load a model directory, then embed texts.
//!
//! ```text
//! text ─▶ plan ─▶ backend ─▶ pool ─▶ assemble
//! ```
//! [`crate::plan`] turns inputs into sequences and sub-batches, a [`Backend`] (CPU or CUDA,
//! chosen here at load) runs and pools them, and the planner assembles the rows.

use crate::backend::cpu::{CpuBackend, LinearFormats};
use crate::backend::Backend;
use crate::config::FromDir;
use crate::error::{Error, Result};
use crate::info::ModelInfo;
use crate::input::*;
use crate::model::Tap;
use crate::plan::{self, Piece, Planner};
use crate::source::resolve_model;
use crate::tokenize::TextTokenizer;
use crate::weights::Checkpoint;
use e5_arch::ModelConfig;
use e5_kernels::Kernels;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod ids;

/// A loaded embedding model. `Send + Sync`: share it (e.g. in an `Arc`) and embed from
/// many threads at once.
pub struct Model {
    dir: PathBuf,
    cfg: ModelConfig,
    backend: Box<dyn Backend>,
    backend_name: &'static str,
    planner: Planner,
    tokenizer: TextTokenizer,
    /// CPU kernels: assembling rows, and reported by [`Model::info`].
    kern: &'static Kernels,
    mapped_bytes: usize,
    pool: Option<rayon::ThreadPool>,
    options: Options,
    normalize: bool,
    load_time: Duration,
}

impl Model {
    /// Loads a model directory or a Hugging Face id (`intfloat/multilingual-e5-small`)
    /// found in the local HF cache.
    pub fn load(spec: impl AsRef<Path>, options: Options) -> Result<Model> {
        let start = Instant::now();
        let spec = spec.as_ref();
        let dir = if spec.is_dir() { spec.to_path_buf() } else { resolve_model(&spec.to_string_lossy())? };
        #[cfg(not(feature = "cuda"))]
        if let Device::Cuda(n) = options.device {
            let (backend, option) =
                ("this build of e5".into(), format!("CUDA device {n} (rebuild with --features cuda)"));
            return Err(Error::Unsupported { backend, option });
        }
        let kern = match options.isa {
            Some(isa) => Kernels::get(isa)?,
            None => Kernels::detect()?,
        };
        if options.max_batch_tokens == 0 {
            return Err(Error::Options("max_batch_tokens must be positive".into()));
        }
        if let Some(n) = options.threads.filter(|n| !(1..=MAX_THREADS).contains(n)) {
            return Err(Error::Options(format!("threads {n} is outside 1..={MAX_THREADS}")));
        }
        let pool = thread_pool(options.threads)?;
        let cfg = ModelConfig::from_dir(&dir)?;
        let tokenizer = TextTokenizer::open(&dir)?;
        let checkpoint = Checkpoint::open(&dir)?;
        crate::validate::check_layer_count(&dir, &checkpoint, cfg.layers)?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(Error::VocabMismatch { tokenizer: tokenizer.vocab_size(), embeddings: cfg.vocab_size });
        }
        let mut options = options;
        let (keep_fp32, scales) = stored_format(&dir, &checkpoint, &mut options)?;
        let normalize = options.normalize.unwrap_or(cfg.normalize);
        let (backend, backend_name): (Box<dyn Backend>, _) = match options.device {
            Device::Cpu => {
                let formats = LinearFormats { keep_fp32: &keep_fp32, activation_scales: scales.as_deref() };
                let load = || CpuBackend::load(&dir, &checkpoint, &cfg, kern, &options, formats, normalize);
                (Box::new(install(&pool, load)?), "cpu")
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => {
                (Box::new(crate::backend::cuda::CudaBackend::load(&checkpoint, &cfg, &options, normalize, n)?), "cuda")
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => unreachable!("refused above"),
        };
        let planner = Planner { max_tokens: cfg.max_tokens, vocab: cfg.vocab_size, long_inputs: options.long_inputs };
        Ok(Model {
            dir,
            mapped_bytes: checkpoint.mapped_bytes(),
            cfg,
            backend,
            backend_name,
            planner,
            tokenizer,
            kern,
            pool,
            options,
            normalize,
            load_time: start.elapsed(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.cfg.hidden
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.cfg;
        let memory = self.backend.memory();
        ModelInfo {
            dir: self.dir.clone(),
            architecture: c.architecture.name(),
            hidden: c.hidden,
            layers: c.layers,
            heads: c.heads,
            intermediate: c.intermediate,
            vocab_size: c.vocab_size,
            max_tokens: c.max_tokens,
            parameters: c.parameters(),
            dtype: c.dtype.clone(),
            isa: self.kern.isa,
            int8_kernel: self.kern.int8_kernel(),
            precision: self.options.precision,
            pooling: c.pooling,
            normalize: self.normalize,
            mapped_bytes: self.mapped_bytes,
            embedding_table_bytes: memory.embedding_table_bytes,
            owned_bytes: memory.owned_bytes,
            load_time: self.load_time,
            backend: self.backend_name,
        }
    }

    /// Drops the memory-mapped embedding table from memory and the page cache, as a
    /// machine that pages out cold file-backed memory would (pages locked with
    /// `Residency::Lock` stay). For measuring first-call latency on cold weights.
    pub fn evict_mapped_weights(&self) -> Result<()> {
        self.backend.evict().map_err(|e| Error::io(&self.dir, e))
    }

    /// The tokenizer's text for `input` and the shift back to the caller's offsets.
    fn compose(&self, input: &Input<'_>) -> (String, isize) {
        let prefix = match input.kind {
            InputKind::Query => self.cfg.query_prefix.as_str(),
            InputKind::Passage => self.cfg.passage_prefix.as_str(),
            InputKind::Raw => "",
        };
        plan::compose(prefix, &input.text)
    }

    /// Tokens of one input, before any truncation.
    pub fn tokenize(&self, input: &Input<'_>) -> Result<Tokens> {
        let enc = self.tokenizer.encode(&self.compose(input).0, usize::MAX)?;
        Ok(Tokens { untruncated: enc.total, ids: enc.ids, tokens: enc.tokens, offsets: enc.offsets })
    }

    /// Embeds `inputs`. Each vector depends only on its own input: batch-mates and the
    /// thread count do not change a single bit.
    pub fn embed(&self, inputs: &[Input<'_>]) -> Result<Embeddings> {
        // A table read in place must come from the file as loaded, before and after.
        self.backend.check_unchanged()?;
        let out = self.embed_unchecked(inputs)?;
        self.backend.check_unchanged()?;
        Ok(out)
    }

    fn embed_unchecked(&self, inputs: &[Input<'_>]) -> Result<Embeddings> {
        install(&self.pool, || {
            let plans: Vec<Vec<Piece>> =
                inputs.par_iter().enumerate().map(|(i, input)| self.plan(i, input)).collect::<Result<_>>()?;
            let pieces: Vec<Piece> = plans.into_iter().flatten().collect();
            let vectors = self.backend.run(&pieces)?;
            let out =
                plan::assemble(self.kern, self.dim(), pieces, vectors, self.planner.merges_chunks(), self.normalize);
            crate::validate::check_rows_finite(&out)?;
            Ok(out)
        })
    }

    /// The sequences the encoder runs for one input, per [`LongInputs`].
    fn plan(&self, index: usize, input: &Input<'_>) -> Result<Vec<Piece>> {
        let (text, shift) = self.compose(input);
        // Truncation keeps at most `max_tokens` content tokens; chunking needs them all.
        let keep = match self.planner.long_inputs {
            LongInputs::Truncate => self.planner.max_tokens,
            LongInputs::Chunk { .. } => usize::MAX,
        };
        let enc = self.tokenizer.encode(&text, keep)?;
        self.planner.plan(index, &enc, shift, input.text.chars().count())
    }

    /// Runs `inputs` (truncated to the model's limit) through the encoder as one
    /// padding-free batch on the model's threads, showing every intermediate activation
    /// and the pooled rows to `tap`. Returns the batch's token ids and sequence offsets. For
    /// parity tests and quantization studies.
    pub fn trace(&self, inputs: &[Input<'_>], tap: &mut Tap<'_>) -> Result<(Vec<u32>, Vec<usize>)> {
        let pieces: Vec<Piece> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| self.plan(i, x))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flat_map(|p| p.into_iter().take(1))
            .collect();
        let (ids, seqs) = plan::pack(pieces.iter().map(|p| p.ids.as_slice()));
        install(&self.pool, || self.backend.trace(&ids, &seqs, tap))?;
        Ok((ids, seqs))
    }
}

/// `f` on `pool`, or on the caller's pool without one.
fn install<T: Send>(pool: &Option<rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Most worker threads a model may ask for: beyond the cores they only cost memory, and a
/// few thousand exhaust the process's maps ("failed to allocate an alternative stack").
pub(crate) const MAX_THREADS: usize = 1024;

/// A private pool of `threads` workers, or `None` for rayon's global pool.
fn thread_pool(threads: Option<usize>) -> Result<Option<rayon::ThreadPool>> {
    match threads {
        None => Ok(None),
        Some(0) => Err(Error::Options("threads must be positive".into())),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("e5-{i}"))
            .build()
            .map(Some)
            .map_err(|e| Error::Options(format!("thread pool: {e}"))),
    }
}

/// The sub-layers kept in f32 and the static int8 input scales by sub-layer.
type StoredFormat = (Vec<String>, Option<std::sync::Arc<std::collections::BTreeMap<String, f32>>>);

/// A directory written by `e5 quantize` runs in its stored precision (sets
/// `options.precision`); returns the sub-layers kept in f32 and the static activation scales.
fn stored_format(dir: &Path, checkpoint: &Checkpoint, options: &mut Options) -> Result<StoredFormat> {
    let Some(m) = crate::quantize::read_manifest(dir)? else {
        return Ok((options.keep_fp32.clone(), options.activation_scales.clone()));
    };
    let stored = crate::quantize::verify(&m, checkpoint)?;
    if options.precision != Precision::Fp32 && options.precision != stored {
        let (name, want) = (stored.name(), options.precision.name());
        return Err(Error::Options(format!("{} is quantized as {name}; it cannot run as {want}", dir.display())));
    }
    options.precision = stored;
    let scales = crate::quantize::activation_scales(&m, checkpoint)?.or(options.activation_scales.clone());
    Ok((m.keep_fp32, scales))
}
