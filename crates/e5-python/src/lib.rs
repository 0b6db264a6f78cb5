//! `e5._e5`: the native half of the Python package `e5` (python/e5/__init__.py wraps it).
//!
//! Every call into the library runs with the GIL released (`Python::detach`), so threads
//! sharing one `Model` embed in parallel. Errors become `e5.E5Error` subclasses; a panic
//! inside the library is caught and raised as `E5Error` too, never unwound into Python.

mod errors;

use e5::{
    ChunkOutput, Device, Input, InputKind, LongInputs, Options, OutputPrecision, OutputRanges, Precision, Residency,
    VectorData,
};
use errors::{options_error, to_py, E5Error, InputError, ModelError, OptionsError};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;

/// A loaded model. `Send + Sync`: Python threads may share it.
#[pyclass(module = "e5._e5", frozen)]
struct Model {
    inner: e5::Model,
    /// The truncation report of the most recent `embed` (texts, tokens, truncated indices).
    last: Mutex<Report>,
}

#[derive(Clone, Default)]
struct Report {
    texts: usize,
    rows: usize,
    tokens: usize,
    truncated: Vec<usize>,
    seconds: f64,
}

/// How texts are presented, as `e5 embed` takes it: a kind (`query`, `passage` /
/// `document`, `raw`), a prompt the model declares, or a prompt text; at most one. None of
/// them: the model's default prompt if it declares one, else raw.
fn parse_kind(
    model: &e5::Model,
    kind: Option<&str>,
    prompt_name: Option<&str>,
    prompt: Option<&str>,
) -> PyResult<InputKind> {
    let prompts = &model.config().prompts;
    match (kind, prompt_name, prompt) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            Err(options_error("give at most one of kind, prompt_name and prompt".into()))
        }
        (Some("raw"), ..) => Ok(InputKind::Raw),
        (Some("query"), ..) => Ok(InputKind::Query),
        (Some("passage" | "document"), ..) => Ok(InputKind::Passage),
        (Some(kind), ..) => Err(options_error(format!(
            "unknown kind {kind:?} (expected \"query\", \"passage\" or \"raw\"; prompt_name= for declared prompts)"
        ))),
        (None, Some(name), _) if prompts.named.contains_key(name) => Ok(InputKind::Prompt(name.to_string())),
        (None, Some(name), _) => {
            let known: Vec<&str> = prompts.named.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "no prompts".to_string() } else { known.join(", ") };
            Err(options_error(format!("unknown prompt_name {name:?}: the model declares {known}")))
        }
        (None, None, Some(text)) => Ok(InputKind::Prefix(text.to_string())),
        (None, None, None) => Ok(model.default_kind()),
    }
}

fn parse_device(device: &str) -> PyResult<Device> {
    match device {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => device.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda).ok_or_else(|| {
            options_error(format!("unknown device {device:?} (expected \"cpu\", \"cuda\" or \"cuda:N\")"))
        }),
    }
}

fn parse_long(long_inputs: &str, window: usize, overlap: usize, per_chunk: bool) -> PyResult<LongInputs> {
    let output = if per_chunk { ChunkOutput::PerChunk } else { ChunkOutput::PerInput };
    match long_inputs {
        "truncate" => Ok(LongInputs::Truncate),
        "chunk" => Ok(LongInputs::Chunk { window, overlap, output }),
        _ => Err(options_error(format!("unknown long_inputs {long_inputs:?} (expected \"truncate\" or \"chunk\")"))),
    }
}

/// Runs `f` with a panic turned into `E5Error` (a bug in e5, never unwound into Python).
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
        Err(E5Error::new_err(format!("internal error (a bug in e5): {}", msg.unwrap_or_default())))
    })
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (path, precision="fp32", threads=None, device="cpu", long_inputs="truncate", normalize=None, chunk_window=0, chunk_overlap=64, dimensions=None, adapter=None, residency="copy"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: &str,
        precision: &str,
        threads: Option<usize>,
        device: &str,
        long_inputs: &str,
        normalize: Option<bool>,
        chunk_window: usize,
        chunk_overlap: usize,
        dimensions: Option<usize>,
        adapter: Option<std::path::PathBuf>,
        residency: &str,
    ) -> PyResult<Self> {
        let residency = Residency::parse(residency).ok_or_else(|| {
            options_error(format!("unknown residency {residency:?} (expected one of {})", Residency::names()))
        })?;
        let precision = Precision::parse(precision).ok_or_else(|| {
            options_error(format!("unknown precision {precision:?} (expected one of {})", Precision::names()))
        })?;
        let options = Options {
            threads,
            precision,
            device: parse_device(device)?,
            long_inputs: parse_long(long_inputs, chunk_window, chunk_overlap, false)?,
            normalize,
            dimensions,
            adapter,
            residency,
            ..Options::default()
        };
        let path = path.to_string();
        let inner = py.detach(|| guarded(|| e5::Model::load(&path, options).map_err(|e| to_py(e, 0))))?;
        Ok(Model { inner, last: Mutex::new(Report::default()) })
    }

    /// Embedding width.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// What the caller should know about the options as applied to this model (`dimensions`
    /// the model was not trained for, an adapter's unused tensors).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    /// Whether vectors are L2-normalized (the model's setting, or the constructor's).
    #[getter]
    fn normalize(&self) -> bool {
        self.inner.info().normalize
    }

    /// Embeds `texts` in batches of `batch_size`, calling `progress(done, total)` after each
    /// batch; returns a C-contiguous float32 `(len(texts), dim)` array that owns the buffer
    /// the library filled (no copy into numpy).
    #[pyo3(signature = (texts, kind=None, batch_size=32, progress=None, prompt_name=None, prompt=None))]
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        kind: Option<&str>,
        batch_size: usize,
        progress: Option<Bound<'py, PyAny>>,
        prompt_name: Option<&str>,
        prompt: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let kind = parse_kind(&self.inner, kind, prompt_name, prompt)?;
        if batch_size == 0 {
            return Err(options_error("batch_size must be positive".into()));
        }
        let start = std::time::Instant::now();
        let dim = self.inner.dim();
        let mut data = Vec::with_capacity(texts.len() * dim);
        let mut report = Report { texts: texts.len(), ..Report::default() };
        for (b, batch) in texts.chunks(batch_size).enumerate() {
            let base = b * batch_size;
            let emb = py.detach(|| {
                guarded(|| {
                    let inputs: Vec<Input> =
                        batch.iter().map(|t| Input { kind: kind.clone(), text: t.as_str().into() }).collect();
                    self.inner.embed(&inputs).map_err(|e| to_py(e, base))
                })
            })?;
            if emb.rows.len() != batch.len() {
                return Err(options_error(
                    "long_inputs='chunk' with one row per chunk is not supported by encode".into(),
                ));
            }
            for r in &emb.rows {
                report.tokens += r.tokens;
                if r.truncated {
                    report.truncated.push(base + r.input);
                }
            }
            data.extend_from_slice(&emb.data);
            if let Some(p) = &progress {
                p.call1((base + batch.len(), texts.len()))?;
            }
        }
        report.rows = texts.len();
        report.seconds = start.elapsed().as_secs_f64();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = report;
        let n = texts.len();
        PyArray1::from_vec(py, data).reshape([n, dim])
    }

    /// The report of the most recent `embed` on this model: texts, tokens, truncated (the
    /// indices of inputs cut to the model's limit) and seconds.
    fn last_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let d = PyDict::new(py);
        d.set_item("texts", r.texts)?;
        d.set_item("tokens", r.tokens)?;
        d.set_item("truncated", r.truncated)?;
        d.set_item("seconds", r.seconds)?;
        Ok(d)
    }

    /// Tokens of one text as the model sees it (prefix included), before truncation.
    #[pyo3(signature = (text, kind=None, prompt_name=None, prompt=None))]
    fn tokenize<'py>(
        &self,
        py: Python<'py>,
        text: String,
        kind: Option<&str>,
        prompt_name: Option<&str>,
        prompt: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let kind = parse_kind(&self.inner, kind, prompt_name, prompt)?;
        let t =
            py.detach(|| guarded(|| self.inner.tokenize(&Input { kind, text: text.into() }).map_err(|e| to_py(e, 0))))?;
        let d = PyDict::new(py);
        d.set_item("ids", t.ids)?;
        d.set_item("tokens", t.tokens)?;
        d.set_item("offsets", t.offsets)?;
        d.set_item("over_limit", t.untruncated.saturating_sub(self.inner.config().max_tokens))?;
        Ok(d)
    }

    /// The per-dimension ranges stored beside the model (`output_ranges.safetensors`, written by
    /// `e5 calibrate-output`) as a float32 `(2, dim)` array; a missing file is a ModelError
    /// naming it.
    fn output_ranges<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = self.inner.output_ranges().map_err(|e| to_py(e, 0))?;
        ranges_array(py, r)
    }

    /// Architecture, sizes, precision, kernels and memory, as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = self.inner.info();
        let d = PyDict::new(py);
        d.set_item("dir", i.dir.display().to_string())?;
        d.set_item("architecture", i.architecture)?;
        d.set_item("dim", i.dim)?;
        d.set_item("hidden", i.hidden)?;
        d.set_item("layers", i.layers)?;
        d.set_item("heads", i.heads)?;
        d.set_item("intermediate", i.intermediate)?;
        d.set_item("vocab_size", i.vocab_size)?;
        d.set_item("max_tokens", i.max_tokens)?;
        d.set_item("parameters", i.parameters)?;
        d.set_item("dtype", i.dtype)?;
        d.set_item("isa", i.isa.to_string())?;
        d.set_item("int8_kernel", i.int8_kernel)?;
        d.set_item("dispatch", i.dispatch)?;
        d.set_item("precision", i.precision.name())?;
        d.set_item("pooling", i.pooling.to_string())?;
        d.set_item("normalize", i.normalize)?;
        let prompts = &self.inner.config().prompts;
        d.set_item("prompts", prompts.named.clone())?;
        d.set_item("default_prompt_name", prompts.default.clone())?;
        d.set_item("mapped_bytes", i.mapped_bytes)?;
        d.set_item("owned_bytes", i.owned_bytes)?;
        d.set_item("load_seconds", i.load_time.as_secs_f64())?;
        Ok(d)
    }
}

fn ranges_array<'py>(py: Python<'py>, r: &OutputRanges) -> PyResult<Bound<'py, PyArray2<f32>>> {
    PyArray1::from_vec(py, [r.min.as_slice(), r.max.as_slice()].concat()).reshape([2, r.dim()])
}

/// The row-major values of a float32 `(n, dim)` array (copied when not C-contiguous).
fn rows_of(a: &PyReadonlyArray2<'_, f32>) -> Vec<f32> {
    match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    }
}

/// float32 `(n, dim)` vectors in `precision` (sentence-transformers' `quantize_embeddings`,
/// computed by the library): an int8 / uint8 `(n, dim)` or `(n, ceil(dim/8))` array, or the
/// vectors unchanged. int8 / uint8 need `ranges`, float32 `(2, dim)`.
#[pyfunction]
#[pyo3(signature = (vectors, precision, ranges=None))]
fn quantize<'py>(
    py: Python<'py>,
    vectors: PyReadonlyArray2<'py, f32>,
    precision: &str,
    ranges: Option<PyReadonlyArray2<'py, f32>>,
) -> PyResult<Bound<'py, PyAny>> {
    let precision = OutputPrecision::parse(precision).ok_or_else(|| {
        options_error(format!("unknown output precision {precision:?} (expected one of {})", OutputPrecision::names()))
    })?;
    let (n, dim) = (vectors.shape()[0], vectors.shape()[1]);
    let ranges = match ranges {
        None => None,
        Some(r) if r.shape() == [2, dim] => {
            let v = rows_of(&r);
            Some(OutputRanges::from_bounds(v[..dim].to_vec(), v[dim..].to_vec(), true).map_err(|e| to_py(e, 0))?)
        }
        Some(r) => return Err(options_error(format!("ranges must have shape (2, {dim}), got {:?}", r.shape()))),
    };
    if dim == 0 {
        return Err(options_error("vectors have no dimensions".into()));
    }
    let data = rows_of(&vectors);
    let q = py.detach(|| e5::output::quantize(data, dim, precision, ranges.as_ref())).map_err(|e| to_py(e, 0))?;
    let shape = [n, q.width];
    Ok(match q.data {
        VectorData::F32(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        VectorData::I8(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        VectorData::U8(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
    })
}

/// The per-dimension `(2, dim)` ranges of float32 `(n, dim)` calibration vectors (the
/// minima, then the maxima), as the library computes them for `e5 calibrate-output`.
#[pyfunction]
fn calibrate_ranges<'py>(py: Python<'py>, vectors: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let dim = vectors.shape()[1];
    if vectors.shape()[0] == 0 || dim == 0 {
        return Err(options_error(format!("no calibration vectors (shape {:?})", vectors.shape())));
    }
    let r = OutputRanges::calibrate(&rows_of(&vectors), dim, true).map_err(|e| to_py(e, 0))?;
    ranges_array(py, &r)
}

#[pymodule]
fn _e5(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(calibrate_ranges, m)?)?;
    m.add("E5Error", py.get_type::<E5Error>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("OptionsError", py.get_type::<OptionsError>())?;
    Ok(())
}
