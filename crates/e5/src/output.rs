//! Compact output vectors, bit for bit sentence-transformers' `quantize_embeddings(precision=…)`
//! (`tests/tests/output_vectors/mod.rs` holds them to its outputs), with the int8 / uint8 ranges
//! calibrated once and stored beside the model.
//!
//! For a `[n, dim]` block of f32 vectors:
//! - `int8` / `uint8`: per dimension `j`, `start = min_j`, `step = (max_j − min_j) / 255` (1 where
//!   that is 0), `q = clamp(floor((x − start) / step), 0, 255)`, all in f32 as numpy computes it;
//!   `uint8` stores `q`, `int8` stores `q − 128`. `[n, dim]`, one byte per component.
//! - `ubinary`: the bits `x > 0`, 8 per byte, the first dimension in the most significant bit
//!   (`numpy.packbits`), the last byte zero-padded: `[n, ceil(dim / 8)]`; `binary` is each byte
//!   − 128 as int8. Needs no ranges.

use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The numeric form of output vectors (sentence-transformers' `precision=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputPrecision {
    #[default]
    Float32,
    /// One signed byte per component, from calibrated per-dimension ranges.
    Int8,
    /// One unsigned byte per component, from calibrated per-dimension ranges.
    Uint8,
    /// Sign bits packed 8 per byte, stored − 128 as int8 (for int8 vector stores).
    Binary,
    /// Sign bits packed 8 per byte (Hamming-distance indexes: FAISS, usearch, Qdrant).
    Ubinary,
}

impl OutputPrecision {
    pub const ALL: [OutputPrecision; 5] = [
        OutputPrecision::Float32,
        OutputPrecision::Int8,
        OutputPrecision::Uint8,
        OutputPrecision::Binary,
        OutputPrecision::Ubinary,
    ];

    /// sentence-transformers' name.
    pub fn name(self) -> &'static str {
        match self {
            OutputPrecision::Float32 => "float32",
            OutputPrecision::Int8 => "int8",
            OutputPrecision::Uint8 => "uint8",
            OutputPrecision::Binary => "binary",
            OutputPrecision::Ubinary => "ubinary",
        }
    }

    pub fn parse(s: &str) -> Option<OutputPrecision> {
        let s = s.trim().to_ascii_lowercase();
        OutputPrecision::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The names `parse` takes, for error messages.
    pub fn names() -> String {
        OutputPrecision::ALL.map(|p| p.name()).join(", ")
    }

    /// Whether this precision needs calibrated per-dimension ranges.
    pub fn needs_ranges(self) -> bool {
        matches!(self, OutputPrecision::Int8 | OutputPrecision::Uint8)
    }

    /// Elements per output row for `dim`-component vectors.
    pub fn width(self, dim: usize) -> usize {
        match self {
            OutputPrecision::Binary | OutputPrecision::Ubinary => dim.div_ceil(8),
            _ => dim,
        }
    }

    /// Bytes of one output row for `dim`-component vectors.
    pub fn bytes_per_vector(self, dim: usize) -> usize {
        match self {
            OutputPrecision::Float32 => 4 * dim,
            p => p.width(dim),
        }
    }
}

/// Per-dimension `[min, max]` of a calibration set's vectors: sentence-transformers' `ranges`
/// (`[2, dim]`). Stored beside the model as [`OutputRanges::FILE`].
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRanges {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
    /// Vectors observed (0 for ranges given as bounds).
    pub vectors: usize,
    /// Whether the vectors were L2-normalized (ranges of raw pooled vectors fit no normalized
    /// vector, and the reverse).
    pub normalized: bool,
}

const FORMAT: &str = "e5-output-ranges/1";

impl OutputRanges {
    /// File name in the model directory: safetensors, tensor `ranges` F32 `[2, dim]` (row 0 the
    /// minima, row 1 the maxima: `safetensors.numpy.load_file(f)["ranges"]` is the `ranges`
    /// argument of sentence-transformers), metadata `format`, `vectors`, `normalized`.
    pub const FILE: &'static str = "output_ranges.safetensors";

    /// Ranges that have seen nothing yet; [`OutputRanges::observe`] widens them.
    pub fn empty(dim: usize, normalized: bool) -> OutputRanges {
        OutputRanges { min: vec![f32::INFINITY; dim], max: vec![f32::NEG_INFINITY; dim], vectors: 0, normalized }
    }

    /// Ranges given as bounds (sentence-transformers' `ranges` argument): finite, `min ≤ max`.
    pub fn from_bounds(min: Vec<f32>, max: Vec<f32>, normalized: bool) -> Result<OutputRanges> {
        let r = OutputRanges { min, max, vectors: 0, normalized };
        r.check_bounds().map_err(Error::Options)?;
        Ok(r)
    }

    /// Every dimension a finite interval, and at least one dimension.
    fn check_bounds(&self) -> std::result::Result<(), String> {
        let (min, max) = (&self.min, &self.max);
        if min.is_empty() || min.len() != max.len() {
            return Err(format!("ranges of {} minima and {} maxima", min.len(), max.len()));
        }
        match (0..min.len()).find(|&j| !(min[j].is_finite() && max[j].is_finite() && min[j] <= max[j])) {
            Some(j) => Err(format!("dimension {j}: range [{}, {}] is not a finite interval", min[j], max[j])),
            None => Ok(()),
        }
    }

    /// The ranges of `vectors` (`[n, dim]`, row-major).
    pub fn calibrate(vectors: &[f32], dim: usize, normalized: bool) -> Result<OutputRanges> {
        let mut r = OutputRanges::empty(dim, normalized);
        r.observe(vectors)?;
        Ok(r)
    }

    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Widens the ranges to cover `vectors` (`[n, dim]`); every value must be finite.
    pub fn observe(&mut self, vectors: &[f32]) -> Result<()> {
        let dim = self.dim();
        check_block(vectors.len(), dim)?;
        if let Some(i) = vectors.iter().position(|x| !x.is_finite()) {
            return Err(Error::Options(format!("calibration vector {} holds {}", i / dim, vectors[i])));
        }
        for row in vectors.chunks_exact(dim) {
            for (j, &x) in row.iter().enumerate() {
                self.min[j] = self.min[j].min(x);
                self.max[j] = self.max[j].max(x);
            }
        }
        self.vectors += vectors.len() / dim;
        Ok(())
    }

    /// Writes `dir/`[`OutputRanges::FILE`] (through a temporary file renamed into place).
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        if self.vectors == 0 {
            return Err(Error::Options("no calibration vectors: only calibrated ranges are stored".into()));
        }
        let path = dir.join(Self::FILE);
        let bytes: Vec<u8> = self.min.iter().chain(&self.max).flat_map(|x| x.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![2, self.dim()], &bytes).expect("shape matches bytes");
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("vectors".to_string(), self.vectors.to_string()),
            ("normalized".to_string(), self.normalized.to_string()),
        ]);
        let tmp = dir.join(format!(".{}.e5-tmp-{}", Self::FILE, std::process::id()));
        safetensors::serialize_to_file([("ranges", view)], Some(meta), &tmp)
            .map_err(|e| Error::Safetensors { path: tmp.clone(), message: e.to_string() })?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })?;
        Ok(path)
    }

    /// Reads `dir/`[`OutputRanges::FILE`]; a missing file is an error that says how to make it.
    pub fn load(dir: &Path) -> Result<OutputRanges> {
        let path = dir.join(Self::FILE);
        if !crate::validate::present(&path) {
            return Err(Error::config(
                &path,
                "not found: int8 / uint8 output vectors need per-dimension ranges calibrated on \
                 representative texts (e5 calibrate-output --model DIR --texts FILE writes them)",
            ));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut crate::validate::open_regular(&path)?, &mut bytes)
            .map_err(|e| Error::io(&path, e))?;
        let bad = |message: String| Error::config(&path, message);
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::Safetensors { path: path.clone(), message: e.to_string() })?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!("format {:?}, expected {FORMAT:?}", meta.get("format"))));
        }
        let vectors: usize = meta.get("vectors").and_then(|v| v.parse().ok()).unwrap_or(0);
        let normalized = match meta.get("normalized").map(String::as_str) {
            Some("true") => true,
            Some("false") => false,
            other => return Err(bad(format!("metadata normalized {other:?}, expected \"true\" or \"false\""))),
        };
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::Safetensors { path: path.clone(), message: e.to_string() })?;
        let t = st.tensor("ranges").map_err(|_| Error::MissingTensor { path: path.clone(), name: "ranges".into() })?;
        let dim = match t.shape() {
            [2, d] if *d > 0 && t.dtype() == Dtype::F32 => *d,
            s => return Err(bad(format!("tensor \"ranges\" is {:?} {s:?}, expected F32 [2, dim]", t.dtype()))),
        };
        let v: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        if vectors == 0 {
            return Err(bad("metadata vectors is missing or 0".into()));
        }
        let r = OutputRanges { min: v[..dim].to_vec(), max: v[dim..].to_vec(), vectors, normalized };
        r.check_bounds().map_err(bad)?;
        Ok(r)
    }

    /// The ranges must fit vectors of `dim` components, normalized or not.
    pub(crate) fn check_fits(&self, dim: usize, normalized: bool, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        if self.dim() != dim {
            let msg = format!(
                "ranges of {} dimensions, but the model's vectors have {dim} (Options::dimensions): \
                 calibrate with the same dimensions",
                self.dim()
            );
            return Err(Error::config(&path, msg));
        }
        if self.normalized != normalized {
            let (was, is) = if self.normalized { ("normalized", "raw") } else { ("raw", "normalized") };
            let msg =
                format!("ranges of {was} vectors, but the model's vectors are {is}: calibrate with the same setting");
            return Err(Error::config(&path, msg));
        }
        Ok(())
    }
}

/// Output vectors in one precision: `width` elements per row ([`OutputPrecision::width`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputVectors {
    pub precision: OutputPrecision,
    pub width: usize,
    pub data: VectorData,
}

/// The elements of [`OutputVectors`]: f32 (`float32`), i8 (`int8`, `binary`) or u8 (`uint8`,
/// `ubinary`).
#[derive(Clone, Debug, PartialEq)]
pub enum VectorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl OutputVectors {
    pub fn rows(&self) -> usize {
        let n = match &self.data {
            VectorData::F32(v) => v.len(),
            VectorData::I8(v) => v.len(),
            VectorData::U8(v) => v.len(),
        };
        n / self.width.max(1)
    }

    /// The elements, little-endian (the body of a `.npy` file).
    pub fn le_bytes(&self) -> Vec<u8> {
        match &self.data {
            VectorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            VectorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            VectorData::U8(v) => v.clone(),
        }
    }
}

fn check_block(len: usize, dim: usize) -> Result<()> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(Error::Options(format!("{len} values are no whole number of {dim}-component vectors")));
    }
    Ok(())
}

/// `vectors` (`[n, dim]`, row-major) in `precision`; `int8` / `uint8` need `ranges` of `dim`
/// dimensions. `float32` returns the vectors as they are.
pub fn quantize(
    vectors: Vec<f32>,
    dim: usize,
    precision: OutputPrecision,
    ranges: Option<&OutputRanges>,
) -> Result<OutputVectors> {
    check_block(vectors.len(), dim)?;
    if let Some(i) = vectors.iter().position(|x| x.is_nan()) {
        return Err(Error::Input { index: i / dim, message: format!("component {} is NaN", i % dim) });
    }
    let width = precision.width(dim);
    let levels = || -> Result<Vec<u8>> {
        let r = ranges.ok_or_else(|| {
            Error::Options(format!("{} output needs per-dimension ranges (OutputRanges)", precision.name()))
        })?;
        r.check_bounds().map_err(Error::Options)?;
        if r.dim() != dim {
            return Err(Error::Options(format!("ranges of {} dimensions for {dim}-component vectors", r.dim())));
        }
        Ok(levels(&vectors, r))
    };
    let data = match precision {
        OutputPrecision::Float32 => VectorData::F32(vectors),
        OutputPrecision::Uint8 => VectorData::U8(levels()?),
        OutputPrecision::Int8 => VectorData::I8(levels()?.into_iter().map(|q| (q as i16 - 128) as i8).collect()),
        OutputPrecision::Ubinary => VectorData::U8(sign_bits(&vectors, dim)),
        OutputPrecision::Binary => {
            VectorData::I8(sign_bits(&vectors, dim).into_iter().map(|b| (b as i16 - 128) as i8).collect())
        }
    };
    Ok(OutputVectors { precision, width, data })
}

/// `clamp(floor((x − start) / step), 0, 255)` per component, in f32 as numpy computes it.
fn levels(vectors: &[f32], r: &OutputRanges) -> Vec<u8> {
    let steps: Vec<f32> = r.min.iter().zip(&r.max).map(|(lo, hi)| (hi - lo) / 255.0).map(zero_to_one).collect();
    let dim = r.dim();
    vectors
        .chunks_exact(dim)
        .flat_map(|row| {
            row.iter().zip(&r.min).zip(&steps).map(|((x, lo), s)| ((x - lo) / s).floor().clamp(0.0, 255.0) as u8)
        })
        .collect()
}

fn zero_to_one(step: f32) -> f32 {
    if step == 0.0 {
        1.0
    } else {
        step
    }
}

/// `numpy.packbits(x > 0, axis=-1)`: `[n, ceil(dim/8)]`, big-endian bit order, zero-padded.
fn sign_bits(vectors: &[f32], dim: usize) -> Vec<u8> {
    vectors
        .chunks_exact(dim)
        .flat_map(|row| {
            row.chunks(8).map(|byte| byte.iter().enumerate().fold(0u8, |b, (i, &x)| b | (u8::from(x > 0.0) << (7 - i))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_widths() {
        for p in OutputPrecision::ALL {
            assert_eq!(OutputPrecision::parse(p.name()), Some(p));
        }
        assert_eq!(OutputPrecision::parse("fp16"), None);
        assert_eq!(OutputPrecision::Binary.width(384), 48);
        assert_eq!(OutputPrecision::Ubinary.width(20), 3);
        assert_eq!(OutputPrecision::Float32.bytes_per_vector(384), 1536);
        assert_eq!(OutputPrecision::Int8.bytes_per_vector(384), 384);
    }

    #[test]
    fn ranges_survive_the_file_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputRanges::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(OutputRanges::FILE) && e.contains("e5 calibrate-output"), "{e}");
        let r = OutputRanges::calibrate(&[0.1, -3.0, 0.7, 1e-3, 0.3, 2.5], 2, true).unwrap();
        assert_eq!((r.min.clone(), r.max.clone(), r.vectors), (vec![0.1, -3.0], vec![0.7, 2.5], 3));
        r.save(dir.path()).unwrap();
        assert_eq!(OutputRanges::load(dir.path()).unwrap(), r);
        assert!(r.check_fits(2, false, dir.path()).unwrap_err().to_string().contains("normalized"));
        assert!(r.check_fits(3, true, dir.path()).unwrap_err().to_string().contains("3"));
        std::fs::write(dir.path().join(OutputRanges::FILE), b"not safetensors").unwrap();
        assert!(OutputRanges::load(dir.path()).is_err());
        assert!(OutputRanges::calibrate(&[0.0, f32::NAN], 2, true).is_err());
        assert!(OutputRanges::empty(2, true).save(dir.path()).is_err());
    }

    #[test]
    fn int8_needs_ranges_of_the_right_width() {
        let e = quantize(vec![0.5; 4], 2, OutputPrecision::Int8, None).unwrap_err().to_string();
        assert!(e.contains("ranges"), "{e}");
        let r = OutputRanges::calibrate(&[0.0, 0.0, 1.0], 3, true).unwrap();
        assert!(quantize(vec![0.5; 4], 2, OutputPrecision::Uint8, Some(&r)).is_err());
        assert!(quantize(vec![0.5; 5], 2, OutputPrecision::Binary, None).is_err());
        assert!(quantize(vec![0.5, f32::NAN], 2, OutputPrecision::Binary, None).is_err());
        assert!(quantize(vec![0.5; 2], 2, OutputPrecision::Int8, Some(&OutputRanges::empty(2, true))).is_err());
        assert!(OutputRanges::from_bounds(vec![0.0, 1.0], vec![1.0, 0.5], true).is_err());
        assert!(OutputRanges::from_bounds(vec![0.0], vec![f32::INFINITY], true).is_err());
        let r = OutputRanges::from_bounds(vec![-1.0, 0.0], vec![1.0, 0.0], true).unwrap();
        let q = quantize(vec![0.0, 0.0, 0.5, 3.0], 2, OutputPrecision::Uint8, Some(&r)).unwrap();
        assert_eq!(q.data, VectorData::U8(vec![127, 0, 191, 3]), "step (2/255), a constant dimension's step 1");
    }
}
