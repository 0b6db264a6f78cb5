//! [`Model`]: load a model directory, then embed texts.

use crate::config::FromDir;
use e5_arch::ModelConfig;
use crate::error::{Error, Result};
use crate::input::*;
use crate::lanes::Lanes;
use crate::model::{Encoder, Tap};
use crate::source::resolve_model;
use crate::tokenize::TextTokenizer;
use crate::weights::Checkpoint;
use e5_kernels::{Isa, Kernels};
use rayon::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A loaded embedding model. `Send + Sync`: share it (e.g. in an `Arc`) and embed from
/// many threads at once.
pub struct Model {
    dir: PathBuf,
    encoder: Encoder,
    tokenizer: TextTokenizer,
    mapped_bytes: usize,
    pool: Option<rayon::ThreadPool>,
    /// Per-thread lanes for large batches (`None` with one thread).
    lanes: Option<Lanes>,
    options: Options,
    normalize: bool,
    load_time: Duration,
    #[cfg(feature = "cuda")]
    gpu: Option<e5_cuda::CudaEncoder>,
}

/// One sequence the encoder runs: a whole input, its truncated start, or one chunk.
struct Piece {
    ids: Vec<u32>,
    row: RowInfo,
}

/// What [`Model::info`] reports.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub dir: PathBuf,
    pub architecture: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab_size: usize,
    pub max_tokens: usize,
    pub parameters: usize,
    /// Checkpoint dtype (`float32`, `float16`, `bfloat16`).
    pub dtype: String,
    pub isa: Isa,
    /// The int8 micro-kernel in use (`avx512-vnni`, `avx2-madd16`, …).
    pub int8_kernel: &'static str,
    pub precision: Precision,
    pub pooling: e5_kernels::Pooling,
    pub normalize: bool,
    /// Bytes of the memory-mapped checkpoint files.
    pub mapped_bytes: usize,
    /// Bytes of the word-embedding table, read in place from the map.
    pub embedding_table_bytes: usize,
    /// Bytes e5 holds itself (packed weights, norms, position table).
    pub owned_bytes: usize,
    pub load_time: Duration,
}

impl Model {
    /// Loads a model directory or a Hugging Face id (`intfloat/multilingual-e5-small`)
    /// found in the local HF cache.
    pub fn load(spec: impl AsRef<Path>, options: Options) -> Result<Model> {
        let start = Instant::now();
        let spec = spec.as_ref();
        let dir = if spec.is_dir() { spec.to_path_buf() } else { resolve_model(&spec.to_string_lossy())? };
        #[cfg(not(feature = "cuda"))]
        if let Device::Cuda(_) = options.device {
            return Err(Error::Options("this build of e5 has no CUDA support (rebuild with --features cuda)".into()));
        }
        let kern = match options.isa {
            Some(isa) => Kernels::get(isa)?,
            None => Kernels::detect()?,
        };
        if options.max_batch_tokens == 0 {
            return Err(Error::Options("max_batch_tokens must be positive".into()));
        }
        let pool = thread_pool(options.threads)?;
        let lanes = match options.device {
            Device::Cpu => Lanes::new(options.threads.unwrap_or_else(rayon::current_num_threads))?,
            Device::Cuda(_) => None, // the GPU runs every batch itself
        };
        let cfg = ModelConfig::from_dir(&dir)?;
        let tokenizer = TextTokenizer::open(&dir)?;
        let checkpoint = Checkpoint::open(&dir)?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(Error::VocabMismatch { tokenizer: tokenizer.vocab_size(), embeddings: cfg.vocab_size });
        }
        let mut options = options;
        let (keep_fp32, scales) = stored_format(&dir, &checkpoint, &mut options)?;
        let load = || Encoder::load(&checkpoint, cfg.clone(), kern, options.precision, &keep_fp32, scales.as_deref());
        let encoder = match &pool {
            Some(p) => p.install(load)?,
            None => load()?,
        };
        let words = &encoder.embeddings.words;
        match options.residency {
            Residency::Lazy => {}
            Residency::Prefetch => words.prefetch(),
            Residency::Lock => {
                words.prefetch();
                words.lock().map_err(|e| Error::io(dir.join("model.safetensors"), e))?;
            }
        }
        let normalize = options.normalize.unwrap_or(cfg.normalize);
        #[cfg(feature = "cuda")]
        let gpu = match options.device {
            Device::Cpu => None,
            Device::Cuda(n) => {
                Some(crate::cuda::load(&checkpoint, &cfg, normalize, options.precision == Precision::Bf16, n)?)
            }
        };
        Ok(Model {
            #[cfg(feature = "cuda")]
            gpu,
            dir,
            mapped_bytes: checkpoint.mapped_bytes(),
            encoder,
            tokenizer,
            pool,
            lanes,
            options,
            normalize,
            load_time: start.elapsed(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.encoder.cfg
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.encoder.cfg.hidden
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.encoder.cfg;
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
            isa: self.encoder.kern.isa,
            int8_kernel: self.encoder.kern.int8_kernel(),
            precision: self.options.precision,
            pooling: c.pooling,
            normalize: self.normalize,
            mapped_bytes: self.mapped_bytes,
            embedding_table_bytes: self.encoder.embeddings.words.bytes(),
            owned_bytes: self.encoder.owned_bytes(),
            load_time: self.load_time,
        }
    }

    fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// The text the tokenizer sees — prefix + text, stripped of surrounding whitespace as
    /// sentence-transformers does — and the shift from its character offsets to the
    /// caller's text (`caller = offset + shift`).
    fn compose(&self, input: &Input<'_>) -> (String, isize) {
        let prefix = match input.kind {
            InputKind::Query => self.encoder.cfg.query_prefix.as_str(),
            InputKind::Passage => self.encoder.cfg.passage_prefix.as_str(),
            InputKind::Raw => "",
        };
        let full = format!("{prefix}{}", input.text);
        // Python's str.isspace also counts the information separators U+001C..U+001F.
        let space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
        let stripped = full.trim_matches(space);
        let lead = full[..full.len() - full.trim_start_matches(space).len()].chars().count();
        (stripped.to_string(), lead as isize - prefix.chars().count() as isize)
    }

    /// Drops the memory-mapped embedding table from memory and the page cache, as a
    /// machine that pages out cold file-backed memory would (pages locked with
    /// `Residency::Lock` stay). For measuring first-call latency on cold weights.
    pub fn evict_mapped_weights(&self) -> Result<()> {
        self.encoder.embeddings.words.evict().map_err(|e| Error::io(&self.dir, e))
    }

    /// Tokens of one input, before any truncation.
    pub fn tokenize(&self, input: &Input<'_>) -> Result<Tokens> {
        let enc = self.tokenizer.encode(&self.compose(input).0)?;
        Ok(Tokens { untruncated: enc.ids.len(), ids: enc.ids, tokens: enc.tokens, offsets: enc.offsets })
    }

    /// Embeds `inputs`. Each vector depends only on its own input: batch-mates and the
    /// thread count do not change a single bit.
    pub fn embed(&self, inputs: &[Input<'_>]) -> Result<Embeddings> {
        self.install(|| {
            let plans: Vec<Vec<Piece>> =
                inputs.par_iter().enumerate().map(|(i, input)| self.plan(i, input)).collect::<Result<_>>()?;
            let pieces: Vec<Piece> = plans.into_iter().flatten().collect();
            let vectors = self.run(&pieces)?;
            Ok(self.assemble(pieces, vectors))
        })
    }

    /// Splits one input into the sequences the encoder runs, per [`LongInputs`].
    fn plan(&self, index: usize, input: &Input<'_>) -> Result<Vec<Piece>> {
        let (text, shift) = self.compose(input);
        let enc = self.tokenizer.encode(&text)?;
        let vocab = self.encoder.embeddings.words.rows();
        if let Some(bad) = enc.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Input {
                index,
                message: format!("token id {bad} is outside the embedding table ({vocab} rows)"),
            });
        }
        let max = self.encoder.cfg.max_tokens;
        let (total, content) = (enc.ids.len(), enc.content());
        let room = max.checked_sub(enc.prefix + enc.suffix).filter(|&r| r > 0).ok_or_else(|| Error::Input {
            index,
            message: format!("the model's limit of {max} tokens leaves no room for text"),
        })?;
        let to_caller = |c: usize| (c as isize + shift).max(0) as usize;
        let chars = |a: usize, b: usize| -> Range<usize> {
            if a >= b {
                return 0..0;
            }
            to_caller(enc.offsets[a].0)..to_caller(enc.offsets[b - 1].1)
        };
        let text_chars = input.text.chars().count();
        let piece = |a: usize, b: usize, truncated: bool, chars: Range<usize>| {
            let ids: Vec<u32> =
                enc.ids[..enc.prefix].iter().chain(&enc.ids[a..b]).chain(&enc.ids[content.end..]).copied().collect();
            Piece { row: RowInfo { input: index, tokens: ids.len(), input_tokens: total, truncated, chars }, ids }
        };
        if total <= max {
            return Ok(vec![piece(content.start, content.end, false, 0..text_chars)]);
        }
        match self.options.long_inputs {
            LongInputs::Truncate => {
                let end = content.start + room;
                Ok(vec![piece(content.start, end, true, chars(content.start, end))])
            }
            LongInputs::Chunk { window, overlap, .. } => {
                let w = if window == 0 { room } else { window.min(room) };
                if overlap >= w {
                    return Err(Error::Options(format!("chunk overlap {overlap} must be smaller than the window {w}")));
                }
                let mut out = Vec::new();
                let mut a = content.start;
                loop {
                    let b = (a + w).min(content.end);
                    out.push(piece(a, b, false, chars(a, b)));
                    if b == content.end {
                        return Ok(out);
                    }
                    a += w - overlap;
                }
            }
        }
    }

    /// Pooled (and, per the model, normalized) vectors of `pieces`, `[n, H]`: on lanes when
    /// the batch is large and even enough, else with every kernel split among the threads.
    fn run(&self, pieces: &[Piece]) -> Result<Vec<f32>> {
        let all: Vec<usize> = (0..pieces.len()).collect();
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            let mut out = Vec::with_capacity(pieces.len() * self.dim());
            for batch in sub_batches(pieces, &all, self.options.max_batch_tokens) {
                let (ids, seqs) = pack(batch.iter().map(|&i| pieces[i].ids.as_slice()));
                out.extend(gpu.embed(&ids, &seqs).map_err(|e| Error::Options(format!("CUDA: {e}")))?);
            }
            return Ok(out);
        }
        let tokens: Vec<usize> = pieces.iter().map(|p| p.ids.len()).collect();
        let costs: Vec<f64> = tokens.iter().map(|&t| self.encoder.cfg.forward_flops(t)).collect();
        let Some((lanes, groups)) = self.lanes.as_ref().and_then(|l| Some((l, l.split(&tokens, &costs)?))) else {
            // Every kernel split among the threads: keep them spinning between kernels.
            return Ok(e5_kernels::with_hot_workers(|| self.run_group(pieces, &all, self.options.max_batch_tokens)));
        };
        // Lanes share the token budget, so peak activation memory stays that of one batch.
        let budget = (self.options.max_batch_tokens / groups.len()).max(1);
        let h = self.dim();
        let mut out = vec![0.0; pieces.len() * h];
        for (group, vectors) in groups.iter().zip(lanes.run(&groups, |g| self.run_group(pieces, g, budget))) {
            for (&i, v) in group.iter().zip(vectors.chunks_exact(h)) {
                out[i * h..(i + 1) * h].copy_from_slice(v);
            }
        }
        Ok(out)
    }

    /// Vectors of `pieces[group]`, in group order, in sub-batches of at most `max_tokens`.
    fn run_group(&self, pieces: &[Piece], group: &[usize], max_tokens: usize) -> Vec<f32> {
        let h = self.dim();
        let mut out = vec![0.0; group.len() * h];
        let mut done = 0;
        for batch in sub_batches(pieces, group, max_tokens) {
            let (ids, seqs) = pack(batch.iter().map(|&i| pieces[i].ids.as_slice()));
            let hidden = self.encoder.forward(&ids, &seqs, &mut |_, _| {});
            let rows = &mut out[done * h..(done + batch.len()) * h];
            self.encoder.kern.pool(&hidden, h, &seqs, self.encoder.cfg.pooling, self.normalize, rows);
            done += batch.len();
        }
        out
    }

    /// Rows in input order; with `ChunkOutput::PerInput`, an input's chunks are merged into
    /// their token-weighted mean, renormalized.
    fn assemble(&self, pieces: Vec<Piece>, vectors: Vec<f32>) -> Embeddings {
        let h = self.dim();
        let per_input = matches!(self.options.long_inputs, LongInputs::Chunk { output: ChunkOutput::PerInput, .. });
        if !per_input {
            return Embeddings { dim: h, data: vectors, rows: pieces.into_iter().map(|p| p.row).collect() };
        }
        let kern = self.encoder.kern;
        let mut out = Embeddings { dim: h, ..Default::default() };
        let mut i = 0;
        while i < pieces.len() {
            let input = pieces[i].row.input;
            let j = i + pieces[i..].iter().take_while(|p| p.row.input == input).count();
            let mut v = vec![0.0; h];
            let weight: usize = pieces[i..j].iter().map(|p| p.row.tokens).sum();
            for (p, k) in pieces[i..j].iter().zip(i..j) {
                kern.axpy(&mut v, p.row.tokens as f32 / weight as f32, &vectors[k * h..(k + 1) * h]);
            }
            if self.normalize && j - i > 1 {
                let norm = kern.dot(&v, &v).sqrt();
                kern.scale(&mut v, 1.0 / norm.max(1e-12));
            }
            let first = &pieces[i].row;
            let last = &pieces[j - 1].row;
            out.rows.push(RowInfo {
                input,
                tokens: weight,
                input_tokens: first.input_tokens,
                truncated: false,
                chars: first.chars.start..last.chars.end,
            });
            out.data.extend(v);
            i = j;
        }
        out
    }

    /// Runs `inputs` (truncated to the model's limit) through the encoder as one
    /// padding-free batch, showing every intermediate activation to `tap`. Returns the
    /// batch's token ids and sequence offsets. For parity tests and quantization studies.
    pub fn trace(&self, inputs: &[Input<'_>], tap: &mut Tap<'_>) -> Result<(Vec<u32>, Vec<usize>)> {
        let pieces: Vec<Piece> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| self.plan(i, x))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flat_map(|p| p.into_iter().take(1))
            .collect();
        let (ids, seqs) = pack(pieces.iter().map(|p| p.ids.as_slice()));
        // The tap need not be `Send`, so this runs on rayon's global pool.
        self.encoder.forward(&ids, &seqs, tap);
        Ok((ids, seqs))
    }
}

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

/// A directory written by `e5 quantize` runs in its stored precision (sets
/// `options.precision`); returns the sub-layers kept in f32 and the static activation scales.
fn stored_format(
    dir: &Path,
    checkpoint: &Checkpoint,
    options: &mut Options,
) -> Result<(Vec<String>, Option<std::sync::Arc<std::collections::BTreeMap<String, f32>>>)> {
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

/// Concatenated ids and their `n + 1` prefix offsets.
fn pack<'a>(seqs: impl Iterator<Item = &'a [u32]>) -> (Vec<u32>, Vec<usize>) {
    let (mut ids, mut offsets) = (Vec::new(), vec![0]);
    for s in seqs {
        ids.extend_from_slice(s);
        offsets.push(ids.len());
    }
    (ids, offsets)
}

/// `group` cut greedily into runs of at most `max_tokens` tokens (a longer piece runs alone).
fn sub_batches<'g>(pieces: &[Piece], group: &'g [usize], max_tokens: usize) -> Vec<&'g [usize]> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < group.len() {
        let (mut end, mut tokens) = (start, 0);
        while end < group.len() && (end == start || tokens + pieces[group[end]].ids.len() <= max_tokens) {
            tokens += pieces[group[end]].ids.len();
            end += 1;
        }
        batches.push(&group[start..end]);
        start = end;
    }
    batches
}
