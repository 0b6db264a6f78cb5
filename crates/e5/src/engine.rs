//! [`Model`]: load a model directory, then embed texts.
//!
//! ```text
//! text ─▶ plan ─▶ backend ─▶ pool ─▶ assemble
//! ```
//! [`crate::plan`] turns inputs into sequences and sub-batches, a [`Backend`] (CPU or CUDA,
//! chosen here at load) runs and pools them, and the planner assembles the rows.

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::config::FromDir;
use crate::error::{Error, Result};
use crate::head::OutputHead;
use crate::info::ModelInfo;
use crate::input::*;
use crate::model::{LinearFormats, Tap};
use crate::output::{OutputPrecision, OutputRanges, OutputVectors};
use crate::plan::{self, Piece, Planner};
use crate::source::resolve_model;
use crate::tokenize::TextTokenizer;
use crate::weights::Checkpoint;
use e5_arch::ModelConfig;
use e5_kernels::Kernels;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
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
    /// What the caller should know about the options (`Options::dimensions` on a model
    /// without Matryoshka training).
    warnings: Vec<String>,
    load_time: Duration,
    /// [`OutputRanges::FILE`], read on the first int8 / uint8 [`Model::quantize`].
    output_ranges: OnceLock<OutputRanges>,
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
        let mut checkpoint = Checkpoint::open(&dir)?;
        crate::validate::check_layer_count(&dir, &checkpoint, cfg.layers)?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(Error::VocabMismatch { tokenizer: tokenizer.vocab_size(), embeddings: cfg.vocab_size });
        }
        let mut options = options;
        let stored = stored_format(&dir, &checkpoint, &mut options)?;
        let normalize = options.normalize.unwrap_or(cfg.head.normalize);
        let mut warnings = dimension_warnings(&cfg, options.dimensions)?;
        if let Some(adapter) = &options.adapter {
            if crate::quantize::read_manifest(&dir)?.is_some() {
                let msg = format!(
                    "{} is quantized: merge the adapter into the float model (e5 quantize --adapter)",
                    dir.display()
                );
                return Err(Error::Options(msg));
            }
            let merged = crate::adapter::merge(adapter, &checkpoint, &dir)?;
            checkpoint.set_overrides(merged.tensors);
            warnings.extend(merged.warnings);
        }
        let (backend, backend_name): (Box<dyn Backend>, _) = match options.device {
            Device::Cpu => {
                let formats = LinearFormats {
                    keep_fp32: &stored.keep_fp32,
                    activation_scales: stored.scales.as_deref(),
                    smoothing: stored.smoothing.as_deref(),
                };
                let head = OutputHead::load(&dir, &cfg, normalize)?;
                let load = || CpuBackend::load(&dir, &checkpoint, &cfg, kern, &options, formats, head);
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
            warnings,
            load_time: start.elapsed(),
            output_ranges: OnceLock::new(),
        })
    }

    /// The model directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was loaded with (precision as run).
    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn kernels(&self) -> &'static Kernels {
        self.kern
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// What an input that names no prompt gets: the model's `default_prompt_name`
    /// (config_sentence_transformers.json) when it declares one, else no prompt.
    pub fn default_kind(&self) -> InputKind {
        self.cfg.prompts.default.clone().map_or(InputKind::Raw, InputKind::Prompt)
    }

    /// Embedding width: `Options::dimensions`, else the model's output width.
    pub fn dim(&self) -> usize {
        self.options.dimensions.unwrap_or(self.cfg.head.width(self.cfg.hidden))
    }

    /// Warnings about the options as applied to this model, for the caller to show.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `rows` (`[n, width]`) cut to [`Model::dim`] components, renormalized when the model
    /// normalizes.
    fn truncate(&self, rows: Vec<f32>) -> Vec<f32> {
        cut_rows(self.kern, rows, self.cfg.head.width(self.cfg.hidden), self.dim(), self.normalize)
    }

    /// Checks a per-call output width for this model, as `Options::dimensions` is checked at
    /// load: an error outside 1..=the model's output width, and the warnings to show where
    /// the model declares no Matryoshka training for it.
    pub fn check_dimensions(&self, dimensions: usize) -> Result<Vec<String>> {
        dimension_warnings(&self.cfg, Some(dimensions))
    }

    /// `embeddings` cut to their first `dimensions` components, renormalized when the model
    /// normalizes: per call, without reloading. Bit-identical to loading with
    /// `Options::dimensions` for every row that is not a merge of chunks
    /// (`ChunkOutput::PerInput` cuts each chunk before merging).
    pub fn cut(&self, embeddings: Embeddings, dimensions: usize) -> Result<Embeddings> {
        if dimensions == 0 || dimensions > embeddings.dim {
            let msg = format!("dimensions {dimensions} must be between 1 and the vectors' width {}", embeddings.dim);
            return Err(Error::Options(msg));
        }
        let data = cut_rows(self.kern, embeddings.data, embeddings.dim, dimensions, self.normalize);
        Ok(Embeddings { dim: dimensions, data, rows: embeddings.rows })
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
            dispatch: self.kern.dispatch_reason(),
            precision: self.options.precision,
            dim: self.dim(),
            pooling: c.head.pooling.clone(),
            dense: c.head.dense.len(),
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

    /// The prompt prepended to input `index`.
    fn prompt<'s>(&'s self, index: usize, input: &'s Input<'_>) -> Result<&'s str> {
        let p = &self.cfg.prompts;
        Ok(match &input.kind {
            InputKind::Query => &p.query,
            InputKind::Passage => &p.passage,
            InputKind::Raw => "",
            InputKind::Prefix(text) => text,
            InputKind::Prompt(name) => p.named.get(name).ok_or_else(|| {
                let known: Vec<&str> = p.named.keys().map(|k| k.as_str()).collect();
                let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                Error::Input {
                    index,
                    message: format!("the model declares no prompt named {name:?} (it declares {known})"),
                }
            })?,
        })
    }

    /// Leading tokens of a sequence that starts with `prompt` that belong to it, as
    /// sentence-transformers counts them for `include_prompt: false`: the tokens of the
    /// prompt alone, leading special tokens included, without its trailing special token.
    fn prompt_tokens(&self, prompt: &str) -> Result<usize> {
        if prompt.is_empty() {
            return Ok(0);
        }
        let enc = self.tokenizer.encode(&plan::compose(prompt, "").0, usize::MAX)?;
        Ok(enc.ids.len() - usize::from(enc.suffix > 0))
    }

    /// Tokens of one input, before any truncation.
    pub fn tokenize(&self, input: &Input<'_>) -> Result<Tokens> {
        let enc = self.tokenizer.encode(&plan::compose(self.prompt(0, input)?, &input.text).0, usize::MAX)?;
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
            let vectors = self.truncate(self.backend.run(&pieces)?);
            let out =
                plan::assemble(self.kern, self.dim(), pieces, vectors, self.planner.merges_chunks(), self.normalize);
            crate::validate::check_rows_finite(&out)?;
            Ok(out)
        })
    }

    /// The sequences the encoder runs for one input, per [`LongInputs`].
    fn plan(&self, index: usize, input: &Input<'_>) -> Result<Vec<Piece>> {
        let prompt = self.prompt(index, input)?;
        let (text, shift) = plan::compose(prompt, &input.text);
        // Truncation keeps at most `max_tokens` content tokens; chunking needs them all.
        let keep = match self.planner.long_inputs {
            LongInputs::Truncate => self.planner.max_tokens,
            LongInputs::Chunk { .. } => usize::MAX,
        };
        let enc = self.tokenizer.encode(&text, keep)?;
        // The prompt opens every piece (each chunk is presented as the input is), and is
        // left out of pooling under `include_prompt: false`. Tokenizing it alone costs a
        // little: only where pooling or chunking needs it.
        let include = self.cfg.head.pooling.include_prompt;
        let chunked = keep == usize::MAX && enc.total > self.planner.max_tokens;
        let lead = if include && !chunked { 0 } else { self.prompt_tokens(prompt)? };
        let chars = input.text.chars().count();
        let mut pieces = self.planner.plan(index, &enc, shift, chars, lead.saturating_sub(enc.prefix))?;
        let skip = if include { 0 } else { lead };
        pieces.iter_mut().for_each(|p| p.skip = skip);
        Ok(pieces)
    }

    /// The per-dimension ranges of int8 / uint8 output vectors stored beside the model
    /// ([`OutputRanges::FILE`], written by `e5 calibrate-output`), read once; a missing file, or
    /// ranges calibrated for other dimensions or normalization, is an error naming the file.
    pub fn output_ranges(&self) -> Result<&OutputRanges> {
        if let Some(r) = self.output_ranges.get() {
            return Ok(r);
        }
        let r = OutputRanges::load(&self.dir)?;
        r.check_fits(self.dim(), self.normalize, &self.dir)?;
        Ok(self.output_ranges.get_or_init(|| r))
    }

    /// `vectors` as [`Model::embed`] returns them (`[n, dim]`) in `precision`, exactly as
    /// sentence-transformers' `quantize_embeddings` writes them ([`crate::output`]); int8 /
    /// uint8 use [`Model::output_ranges`]. Each row depends on its own vector only.
    pub fn quantize(&self, vectors: Vec<f32>, precision: OutputPrecision) -> Result<OutputVectors> {
        let ranges = if precision.needs_ranges() { Some(self.output_ranges()?) } else { None };
        crate::output::quantize(vectors, self.dim(), precision, ranges)
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
        let skips: Vec<usize> = pieces.iter().map(|p| p.skip).collect();
        install(&self.pool, || self.backend.trace(&ids, &seqs, &skips, tap))?;
        Ok((ids, seqs))
    }
}

/// `rows` (`[n, width]`) cut to their first `dim` components, each L2-renormalized when
/// `normalize`.
fn cut_rows(kern: &Kernels, rows: Vec<f32>, width: usize, dim: usize, normalize: bool) -> Vec<f32> {
    if dim == width {
        return rows;
    }
    let mut out: Vec<f32> = rows.chunks_exact(width).flat_map(|r| &r[..dim]).copied().collect();
    if normalize {
        for v in out.chunks_exact_mut(dim) {
            let norm = kern.dot(v, v).sqrt();
            kern.scale(v, 1.0 / norm.max(1e-12));
        }
    }
    out
}

/// Checks `dimensions` against the model's output width; warns when the model declares no
/// Matryoshka training for it.
fn dimension_warnings(cfg: &ModelConfig, dimensions: Option<usize>) -> Result<Vec<String>> {
    let Some(d) = dimensions else { return Ok(Vec::new()) };
    let width = cfg.head.width(cfg.hidden);
    if d == 0 || d > width {
        return Err(Error::Options(format!("dimensions {d} must be between 1 and the model's output width {width}")));
    }
    Ok(match &cfg.head.matryoshka_dims {
        _ if d == width => Vec::new(),
        None => vec![format!(
            "the model declares no Matryoshka training (no matryoshka_dims in its README.md): \
             its vectors cut to {d} of {width} dimensions may lose much of their quality"
        )],
        Some(dims) if !dims.contains(&d) => {
            vec![format!("{d} is not one of the dimensions the model was trained to be cut to ({dims:?})")]
        }
        Some(_) => Vec::new(),
    })
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

/// How a model directory's linear layers are stored, or the options' choice for a float one.
struct StoredFormat {
    keep_fp32: Vec<String>,
    /// Static int8 input scales by sub-layer.
    scales: Option<Arc<BTreeMap<String, f32>>>,
    /// Static int8 smoothing factors by sub-layer.
    smoothing: Option<Arc<BTreeMap<String, Vec<f32>>>>,
}

/// A directory written by `e5 quantize` runs in its stored precision (sets
/// `options.precision`), with the sub-layers it kept in f32, its static activation scales
/// (else the options') and its smoothing factors.
fn stored_format(dir: &Path, checkpoint: &Checkpoint, options: &mut Options) -> Result<StoredFormat> {
    let Some(m) = crate::quantize::read_manifest(dir)? else {
        return Ok(StoredFormat {
            keep_fp32: options.keep_fp32.clone(),
            scales: options.activation_scales.clone(),
            smoothing: options.smoothing.clone(),
        });
    };
    let stored = crate::quantize::verify(&m, checkpoint)?;
    if options.precision != Precision::Fp32 && options.precision != stored {
        let (name, want) = (stored.name(), options.precision.name());
        return Err(Error::Options(format!("{} is quantized as {name}; it cannot run as {want}", dir.display())));
    }
    if options.smoothing.is_some() {
        let msg =
            format!("{} is quantized: smoothing is applied when quantizing (e5 quantize --smooth)", dir.display());
        return Err(Error::Options(msg));
    }
    options.precision = stored;
    let scales = crate::quantize::activation_scales(&m, checkpoint)?.or(options.activation_scales.clone());
    let smoothing = crate::quantize::stored_smoothing(&m, checkpoint)?;
    Ok(StoredFormat { keep_fp32: m.keep_fp32, scales, smoothing })
}
