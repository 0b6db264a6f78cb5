//! Memory-mapped safetensors checkpoints (single file or sharded with an index).
//!
//! Headers are validated by the safetensors crate (offsets in range, file not truncated).
//! Tensors are read in place from the map: small ones are converted to owned f32, linear
//! weights are packed by the model and their pages released, and the embedding table
//! stays mapped ([`MappedTensor`]) with rows converted on lookup.

use crate::error::{Error, Result};
use crate::file_watch::WatchedFile;
use crate::validate;
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The element types e5 reads: float weights, and int8 or packed int4 from `e5 quantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
    Bf16,
    I8,
    /// Bytes of two int4 levels each (`e5 quantize --precision int4`, see quantize/int4.rs).
    U8,
}

impl FloatType {
    pub fn size(self) -> usize {
        match self {
            FloatType::F32 => 4,
            FloatType::I8 | FloatType::U8 => 1,
            _ => 2,
        }
    }
}

struct TensorRef {
    file: usize,
    dtype: FloatType,
    shape: Vec<usize>,
    /// Absolute byte range in the file's map.
    start: usize,
    end: usize,
}

pub(crate) struct Checkpoint {
    maps: Vec<(PathBuf, Arc<Mmap>)>,
    /// The open files behind `maps`, watched for changes.
    files: Vec<Arc<WatchedFile>>,
    tensors: HashMap<String, TensorRef>,
    /// Integer tensors (buffers such as `position_ids`) by name, with their dtype: not
    /// weights, but named in the error when a weight is stored as one.
    integer: HashMap<String, String>,
    /// `""`, `"bert."`, `"roberta."`: the prefix under which the encoder's names live.
    prefix: String,
    /// f32 tensors that replace the file's, by name without the prefix (a merged adapter).
    overrides: HashMap<String, Vec<f32>>,
}

/// Names a checkpoint may nest the encoder under (task heads save it this way).
const PREFIXES: [&str; 4] = ["", "bert.", "roberta.", "model."];

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        let (files, index) = shard_files(dir)?;
        let mut maps = Vec::new();
        let mut tensors = HashMap::new();
        let mut integer = HashMap::new();
        let mut watched = Vec::new();
        for path in files {
            let file = validate::open_regular(&path)?;
            // SAFETY: the file is opened read-only; e5 never writes through the map. Like every
            // mmap-based loader, a concurrent truncation by another process is not guarded against.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
            let (header, meta) = SafeTensors::read_metadata(&map)
                .map_err(|e| Error::Safetensors { path: path.clone(), message: e.to_string() })?;
            let data_start = 8 + header;
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    Dtype::F32 => FloatType::F32,
                    Dtype::F16 => FloatType::F16,
                    Dtype::BF16 => FloatType::Bf16,
                    Dtype::I8 => FloatType::I8,
                    Dtype::U8 => FloatType::U8,
                    // Integer side tensors (e.g. `position_ids` buffers) are not weights.
                    Dtype::I64 | Dtype::I32 | Dtype::BOOL => {
                        integer.insert(name, format!("{:?}", info.dtype));
                        continue;
                    }
                    other => {
                        let expected = "F32, F16, BF16, I8 or U8 (weights), or an integer side tensor";
                        return Err(Error::TensorDtype { name, dtype: format!("{other:?}"), expected });
                    }
                };
                let (s, e) = info.data_offsets;
                let t = TensorRef {
                    file: maps.len(),
                    dtype,
                    shape: info.shape.clone(),
                    start: data_start + s,
                    end: data_start + e,
                };
                if let Some(index) = &index {
                    index.check_shard(&name, &path)?;
                }
                if tensors.insert(name.clone(), t).is_some() {
                    return Err(Error::config(&path, format!("tensor {name:?} is stored in more than one shard")));
                }
            }
            watched.push(Arc::new(WatchedFile::new(file, &path)?));
            maps.push((path, Arc::new(map)));
        }
        if let Some(index) = &index {
            index.check_complete(&tensors, &integer)?;
        }
        let prefix = PREFIXES
            .iter()
            .find(|p| {
                let table = format!("{p}embeddings.word_embeddings.weight");
                tensors.contains_key(&table) || integer.contains_key(&table)
            })
            .map(|p| p.to_string())
            .ok_or_else(|| Error::MissingTensor {
                path: maps[0].0.clone(),
                name: "embeddings.word_embeddings.weight".into(),
            })?;
        Ok(Checkpoint { maps, files: watched, tensors, integer, prefix, overrides: HashMap::new() })
    }

    /// Looks a tensor up under the checkpoint's prefix; old BERT checkpoints name
    /// LayerNorm parameters `gamma` / `beta`.
    fn find(&self, name: &str, shape: &[usize]) -> Result<(&TensorRef, String)> {
        let full = format!("{}{name}", self.prefix);
        let legacy = full.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
        let t = self.tensors.get(&full).or_else(|| self.tensors.get(&legacy)).ok_or_else(|| {
            match self.integer.get(&full) {
                Some(dtype) => {
                    Error::TensorDtype { name: full.clone(), dtype: dtype.clone(), expected: "a float or I8 tensor" }
                }
                None => Error::MissingTensor { path: self.maps[0].0.clone(), name: full.clone() },
            }
        })?;
        if t.shape != shape {
            return Err(Error::TensorShape { name: full, expected: shape.to_vec(), found: t.shape.clone() });
        }
        Ok((t, full))
    }

    fn bytes(&self, t: &TensorRef) -> &[u8] {
        &self.maps[t.file].1[t.start..t.end]
    }

    /// Replaces tensors (by name without the prefix; the caller checked their shapes).
    pub fn set_overrides(&mut self, overrides: HashMap<String, Vec<f32>>) {
        self.overrides = overrides;
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(&format!("{}{name}", self.prefix)).map(|t| t.shape.clone())
    }

    /// The tensor converted to f32, checked against `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (t, full) = self.find(name, shape)?;
        if let Some(v) = self.overrides.get(name) {
            return Ok(v.clone());
        }
        if matches!(t.dtype, FloatType::I8 | FloatType::U8) {
            let dtype = format!("{:?}", t.dtype).to_uppercase();
            return Err(Error::TensorDtype { name: full, dtype, expected: "F32, F16 or BF16" });
        }
        let mut out = vec![0.0; shape.iter().product()];
        convert(self.bytes(t), t.dtype, &mut out);
        validate::check_weights(&full, &out)?;
        Ok(out)
    }

    /// An int8 tensor, checked against `shape`.
    pub fn i8(&self, name: &str, shape: &[usize]) -> Result<Vec<i8>> {
        let (t, full) = self.find(name, shape)?;
        if t.dtype != FloatType::I8 {
            return Err(Error::TensorDtype { name: full, dtype: format!("{:?}", t.dtype), expected: "I8" });
        }
        Ok(self.bytes(t).iter().map(|&b| b as i8).collect())
    }

    /// The bytes of a `U8` tensor (packed int4 levels), checked against `shape`.
    pub fn u8(&self, name: &str, shape: &[usize]) -> Result<&[u8]> {
        let (t, full) = self.find(name, shape)?;
        if t.dtype != FloatType::U8 {
            return Err(Error::TensorDtype { name: full, dtype: format!("{:?}", t.dtype), expected: "U8" });
        }
        Ok(self.bytes(t))
    }

    /// Element type of a tensor, if present.
    pub fn dtype(&self, name: &str) -> Option<FloatType> {
        if self.overrides.contains_key(name) {
            return Some(FloatType::F32);
        }
        self.tensors.get(&format!("{}{name}", self.prefix)).map(|t| t.dtype)
    }

    /// Shape and dtype of every tensor, by name without the prefix.
    pub fn inventory(&self) -> impl Iterator<Item = (&str, FloatType, &[usize])> {
        self.tensors.iter().map(|(n, t)| (n.strip_prefix(&self.prefix).unwrap_or(n), t.dtype, t.shape.as_slice()))
    }

    /// The tensor left in place in the map, checked against `shape` (2-D). An int8 table
    /// also needs its per-row scales, `{name}_scale` (`[rows]`); an int4 table (U8
    /// `[rows, cols/2]`) its F16 group scales (`[rows, cols/G]`, `G` 32, 64 or 128).
    pub fn mapped(&self, name: &str, shape: [usize; 2]) -> Result<MappedTensor> {
        let scale_name = format!("{name}_scale");
        let (t, scales) = match self.dtype(name) {
            Some(FloatType::U8) => {
                let (t, full) = self.find(name, &[shape[0], shape[1] / 2])?;
                let groups = match self.shape(&scale_name).as_deref() {
                    Some(&[r, g]) if r == shape[0] && g > 0 && shape[1].is_multiple_of(g) => g,
                    _ => 0,
                };
                let group = shape[1].checked_div(groups).unwrap_or(0);
                if !shape[1].is_multiple_of(2) || !e5_kernels::i4gemm::GROUP_SIZES.contains(&group) {
                    let found = self.shape(&scale_name).map_or("missing".into(), |s| format!("{s:?}"));
                    return Err(Error::Quantized(format!(
                        "{full}: an int4 table [{}, {}] needs {scale_name} [{}, {} / G], G 32, 64 or 128; found {found}",
                        shape[0], shape[1], shape[0], shape[1]
                    )));
                }
                if self.dtype(&scale_name) != Some(FloatType::F16) {
                    return Err(Error::Quantized(format!("{scale_name}: int4 table scales are F16")));
                }
                let scales = self.f32(&scale_name, &[shape[0], groups])?;
                check_scales(&scale_name, &scales)?;
                (t, TableScales::Groups { group, scales: scales.iter().map(|&s| f16::from_f32(s)).collect() })
            }
            _ => {
                let (t, full) = self.find(name, &shape)?;
                let scales = match t.dtype {
                    FloatType::I8 => {
                        let scales = self.f32(&scale_name, &[shape[0]])?;
                        check_scales(&full, &scales)?;
                        TableScales::Rows(scales)
                    }
                    _ => TableScales::None,
                };
                (t, scales)
            }
        };
        Ok(MappedTensor {
            map: TableBytes::Mapped(self.maps[t.file].1.clone()),
            file: self.files[t.file].clone(),
            path: self.maps[t.file].0.clone(),
            start: t.start,
            rows: shape[0],
            cols: shape[1],
            dtype: t.dtype,
            scales,
        })
    }

    /// Tells the kernel the tensor's pages are no longer needed (it was copied or packed),
    /// so they leave the resident set.
    pub fn release(&self, name: &str) {
        if let Some(t) = self.tensors.get(&format!("{}{name}", self.prefix)) {
            // File-backed pages that are touched again simply fault back in from the file.
            #[cfg(unix)]
            // SAFETY: e5 holds no reference into the range (the tensor was copied out).
            let _ = unsafe {
                self.maps[t.file].1.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, t.start, t.end - t.start)
            };
        }
    }

    /// Bytes of all mapped files.
    pub fn mapped_bytes(&self) -> usize {
        self.maps.iter().map(|(_, m)| m.len()).sum()
    }
}

/// `model.safetensors`, or the shards a `model.safetensors.index.json` names, with the index.
fn shard_files(dir: &Path) -> Result<(Vec<PathBuf>, Option<ShardIndex>)> {
    let single = dir.join("model.safetensors");
    if validate::present(&single) {
        return Ok((vec![single], None));
    }
    let index = dir.join("model.safetensors.index.json");
    if !validate::present(&index) {
        return Err(Error::io(
            &single,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no model.safetensors or model.safetensors.index.json"),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let text = validate::read_text(&index)?;
    let idx: Index = serde_json::from_str(&text).map_err(|e| Error::config(&index, format!("malformed index: {e}")))?;
    let mut files: Vec<String> = idx.weight_map.values().cloned().collect();
    files.sort();
    files.dedup();
    if files.is_empty() || files.iter().any(|f| f.contains('/') || f.contains('\\') || f.contains("..")) {
        return Err(Error::config(&index, "weight_map must name shard files inside the model directory"));
    }
    let shards = files.into_iter().map(|f| dir.join(f)).collect();
    Ok((shards, Some(ShardIndex { path: index, weight_map: idx.weight_map })))
}

/// A sharded checkpoint's index: each tensor must be in the shard it names, so that a
/// stray copy in another shard cannot silently win.
struct ShardIndex {
    path: PathBuf,
    weight_map: HashMap<String, String>,
}

impl ShardIndex {
    fn check_shard(&self, tensor: &str, shard: &Path) -> Result<()> {
        let file = shard.file_name().unwrap_or_default().to_string_lossy();
        match self.weight_map.get(tensor) {
            Some(named) if *named == file => Ok(()),
            Some(named) => Err(Error::config(
                &self.path,
                format!("tensor {tensor:?} is in shard {file} but the index names {named}"),
            )),
            None => Err(Error::config(&self.path, format!("tensor {tensor:?} of shard {file} is not in the index"))),
        }
    }

    fn check_complete<T>(&self, tensors: &HashMap<String, T>, integer: &HashMap<String, String>) -> Result<()> {
        match self.weight_map.iter().find(|(t, _)| !tensors.contains_key(*t) && !integer.contains_key(*t)) {
            Some((t, shard)) => {
                Err(Error::config(&self.path, format!("tensor {t:?} is not in shard {shard}, which the index names")))
            }
            None => Ok(()),
        }
    }
}

/// Tensor `name` of an in-memory safetensors file (`path`, for errors) as f32, checked
/// against `shape`.
pub(crate) fn f32_tensor(st: &SafeTensors<'_>, path: &Path, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = st.tensor(name).map_err(|_| Error::MissingTensor { path: path.to_path_buf(), name: name.into() })?;
    if t.shape() != shape {
        return Err(Error::TensorShape { name: name.into(), expected: shape.to_vec(), found: t.shape().to_vec() });
    }
    let dtype = match t.dtype() {
        Dtype::F32 => FloatType::F32,
        Dtype::F16 => FloatType::F16,
        Dtype::BF16 => FloatType::Bf16,
        other => {
            return Err(Error::TensorDtype {
                name: name.into(),
                dtype: format!("{other:?}"),
                expected: "F32, F16 or BF16",
            })
        }
    };
    let mut out = vec![0.0; shape.iter().product()];
    convert(t.data(), dtype, &mut out);
    Ok(out)
}

/// Quantization scales must be finite and non-negative.
pub(crate) fn check_scales(name: &str, scales: &[f32]) -> Result<()> {
    match scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
        Some(i) => Err(Error::Quantized(format!("{name}: inconsistent scale {} at row {i}", scales[i]))),
        None => Ok(()),
    }
}

/// Little-endian `bytes` of `dtype` into `out` (lengths must agree).
fn convert(bytes: &[u8], dtype: FloatType, out: &mut [f32]) {
    match dtype {
        FloatType::I8 => bytes.iter().zip(out).for_each(|(&b, o)| *o = b as i8 as f32),
        FloatType::U8 => bytes.iter().zip(out).for_each(|(&b, o)| *o = b as f32),
        FloatType::F32 => {
            bytes.chunks_exact(4).zip(out).for_each(|(b, o)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        FloatType::F16 => {
            bytes.chunks_exact(2).zip(out).for_each(|(b, o)| *o = f16::from_le_bytes([b[0], b[1]]).to_f32())
        }
        FloatType::Bf16 => {
            bytes.chunks_exact(2).zip(out).for_each(|(b, o)| *o = bf16::from_le_bytes([b[0], b[1]]).to_f32())
        }
    }
}

/// A 2-D tensor read in place from its file map (the embedding table).
pub(crate) struct MappedTensor {
    map: TableBytes,
    file: Arc<WatchedFile>,
    path: PathBuf,
    start: usize,
    rows: usize,
    cols: usize,
    dtype: FloatType,
    scales: TableScales,
}

/// How a table's stored rows become f32.
enum TableScales {
    /// Float rows, converted.
    None,
    /// int8 rows: one scale per row (`[rows]`).
    Rows(Vec<f32>),
    /// int4 rows, two levels `q ∈ [-8, 7]` per byte stored as `q + 8`, the even column in the
    /// low nibble: one scale per group of `group` values (`[rows, cols/group]`), held in f16
    /// (2 bytes, as stored; 6 MB for e5-small's 250k rows at G = 32).
    Groups { group: usize, scales: Vec<f16> },
}

/// The table's bytes: in the file's map, or copied into private memory (`Residency::Copy`).
enum TableBytes {
    Mapped(Arc<Mmap>),
    /// The table alone: its bytes start at 0.
    Owned(Vec<u8>),
}

impl std::ops::Deref for TableBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            TableBytes::Mapped(m) => m,
            TableBytes::Owned(v) => v,
        }
    }
}

impl MappedTensor {
    /// Reads the table into private memory (by `read`, not through the map) and drops the
    /// map: the file is not used again.
    pub fn copy_to_memory(&mut self) -> Result<()> {
        if let TableBytes::Mapped(_) = self.map {
            self.map = TableBytes::Owned(self.file.read_at(self.start, self.bytes())?);
            self.start = 0;
        }
        Ok(())
    }

    /// A table still read in place fails if its file changed since loading.
    pub fn check_unchanged(&self) -> Result<()> {
        match self.map {
            TableBytes::Mapped(_) => self.file.check_unchanged(),
            TableBytes::Owned(_) => Ok(()),
        }
    }

    /// Bytes of one stored row.
    fn row_bytes(&self) -> usize {
        match self.scales {
            TableScales::Groups { .. } => self.cols / 2,
            _ => self.cols * self.dtype.size(),
        }
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.rows * self.row_bytes()
    }

    /// Row `i` converted into `out` (`cols` floats). `i < rows` is the caller's check.
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let w = self.row_bytes();
        let bytes = &self.map[self.start + i * w..self.start + (i + 1) * w];
        match &self.scales {
            TableScales::None => convert(bytes, self.dtype, out),
            TableScales::Rows(s) => {
                convert(bytes, self.dtype, out);
                out.iter_mut().for_each(|v| *v *= s[i]);
            }
            TableScales::Groups { group, scales } => {
                for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
                    pair[0] = ((b & 0x0F) as i8 - 8) as f32;
                    pair[1] = ((b >> 4) as i8 - 8) as f32;
                }
                let row_scales = &scales[i * (self.cols / group)..];
                for (values, s) in out.chunks_exact_mut(*group).zip(row_scales) {
                    let s = s.to_f32();
                    values.iter_mut().for_each(|v| *v *= s);
                }
            }
        }
    }

    /// Bytes of the scales held in memory.
    pub fn scale_bytes(&self) -> usize {
        match &self.scales {
            TableScales::None => 0,
            TableScales::Rows(s) => s.len() * 4,
            TableScales::Groups { scales, .. } => scales.len() * 2,
        }
    }

    pub fn bytes(&self) -> usize {
        self.range().len()
    }

    /// Reads every page so the table is resident before the first call.
    pub fn prefetch(&self) {
        #[cfg(unix)]
        if let TableBytes::Mapped(m) = &self.map {
            let _ = m.advise_range(memmap2::Advice::WillNeed, self.start, self.bytes());
        }
        let touched: u64 = self.map[self.range()].iter().step_by(4096).map(|&b| b as u64).sum();
        std::hint::black_box(touched);
    }

    /// Drops the table's pages from this process and from the page cache, as the kernel
    /// does to cold file-backed memory, so the next lookups fault in from disk. Locked
    /// pages stay. For measuring what cold weights cost.
    pub fn evict(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let TableBytes::Mapped(m) = &self.map else { return Ok(()) };
            // SAFETY: e5 holds no reference into the range; file-backed pages fault back in.
            let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, self.start, self.bytes()) };
            let file = std::fs::File::open(&self.path)?;
            // SAFETY: a plain advisory call on an open descriptor.
            let rc = unsafe {
                libc::posix_fadvise(file.as_raw_fd(), self.start as i64, self.bytes() as i64, libc::POSIX_FADV_DONTNEED)
            };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
        }
        Ok(())
    }

    /// Pins the table's pages in RAM (`mlock`), so the kernel cannot page them out.
    pub fn lock(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let r = self.range();
            // SAFETY: the range lies inside the live map; mlock only changes residency.
            if unsafe { libc::mlock(self.map[r].as_ptr().cast(), self.bytes()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
