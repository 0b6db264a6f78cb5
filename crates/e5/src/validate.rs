//! Checks against hostile files and values, shared by loading, quantization and embedding:
//! what a file must be before it is opened, sane bounds for sizes before anything is
//! allocated from them, and finiteness of weights, scales and every output vector.
//! docs/robustness.md lists what is checked where.

use crate::error::{Error, Result};
use crate::input::Embeddings;
use crate::weights::Checkpoint;
use e5_arch::ModelConfig;
use std::io::Read;
use std::path::Path;

/// Largest JSON file e5 reads (the 250k-piece XLM-R `tokenizer.json` is 17 MB).
const MAX_JSON_BYTES: u64 = 256 << 20;

/// Calibrated static int8 input scales outside this range fit no real activation range
/// (`|x| ≤ 127·s`); values near 0 or `f32::MAX` overflow `1 / s` or `127·s`.
pub(crate) const INPUT_SCALE_RANGE: (f32, f32) = (1e-12, 1e12);
/// Smoothing factors (static int8): `1 / (s·scale)` must stay a normal f32.
pub(crate) const SMOOTHING_RANGE: (f32, f32) = (1e-6, 1e6);

/// Whether anything (even a dangling or looping symlink) is at `path`: such a name is
/// then opened and its error reported, instead of being taken for an absent file.
pub(crate) fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Opens a regular file for reading. A directory, FIFO, socket or device is refused by
/// name before `open` (a FIFO would block in `open`); `O_NONBLOCK` covers the race
/// where the name is swapped for a FIFO in between (it is a no-op on regular files).
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = file_kind(&meta);
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {kind}, not a regular file")),
        ));
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NONBLOCK);
    let file = o.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = file_kind(&meta);
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {kind}, not a regular file")),
        ));
    }
    Ok(file)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// A JSON (or other text) file, read whole: regular, at most 256 MiB, UTF-8, and without
/// a byte-order mark (Python's `json.load`, which wrote and reads these files, refuses one).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::config(path, format!("larger than {} MiB", MAX_JSON_BYTES >> 20)));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(Error::config(path, "starts with a UTF-8 byte-order mark (BOM); save it without one"));
    }
    String::from_utf8(bytes).map_err(|e| Error::config(path, format!("not UTF-8: {e}")))
}

/// `value` of config field `field` must lie in `min..=max`.
pub(crate) fn bounded(path: &Path, field: &str, value: usize, min: usize, max: usize) -> Result<usize> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::config(path, format!("{field} {value} is outside the supported range {min}..={max}")))
    }
}

/// Largest LayerNorm gain or bias accepted (f16's largest value). Real encoders' LayerNorm
/// parameters are O(1) (e5-small's reach 2.3, all-MiniLM's 1.6); a gain of 1e30 on one
/// channel makes that channel the whole vector, so every text gets the same embedding, a
/// wrong answer that is still finite. Other weights only need to be finite: a huge one
/// overflows into a non-finite output, which [`check_rows_finite`] refuses.
pub(crate) const MAX_LAYER_NORM: f32 = 65504.0;

/// Every weight copied out of the checkpoint must be finite, and LayerNorm parameters at
/// most [`MAX_LAYER_NORM`] in magnitude (the in-place embedding table is not scanned; each
/// output vector is checked).
pub(crate) fn check_weights(tensor: &str, values: &[f32]) -> Result<()> {
    let (bound, limit) =
        if tensor.contains("LayerNorm") { (MAX_LAYER_NORM, " or exceeds ±65504") } else { (f32::MAX, "") };
    match values.iter().position(|v| v.is_nan() || v.abs() > bound) {
        Some(i) => Err(Error::TensorValue {
            name: tensor.into(),
            message: format!("value {} at element {i} is not finite{limit}", values[i]),
        }),
        None => Ok(()),
    }
}

/// A static int8 input scale must be finite and within [`INPUT_SCALE_RANGE`].
pub(crate) fn check_input_scale(sub_layer: &str, s: f32) -> Result<()> {
    let (lo, hi) = INPUT_SCALE_RANGE;
    if s.is_finite() && (lo..=hi).contains(&s) {
        Ok(())
    } else {
        Err(Error::Quantized(format!("{sub_layer}: activation scale {s} is outside {lo:e}..={hi:e}")))
    }
}

/// Smoothing factors of a sub-layer: one per input channel, finite and within
/// [`SMOOTHING_RANGE`].
pub(crate) fn check_smoothing(sub_layer: &str, s: &[f32], k: usize) -> Result<()> {
    let (lo, hi) = SMOOTHING_RANGE;
    if s.len() != k {
        return Err(Error::Quantized(format!("{sub_layer}: {} smoothing factors for {k} input channels", s.len())));
    }
    match s.iter().position(|v| !(v.is_finite() && (lo..=hi).contains(v))) {
        Some(j) => Err(Error::Quantized(format!(
            "{sub_layer}: smoothing factor {} of channel {j} is outside {lo:e}..={hi:e}",
            s[j]
        ))),
        None => Ok(()),
    }
}

/// No vector leaves e5 with a NaN or Inf component: weights that overflow (finite but
/// huge LayerNorm weights or int8 scales) are caught here, on the input they broke.
pub(crate) fn check_rows_finite(out: &Embeddings) -> Result<()> {
    let bad = out.data.chunks_exact(out.dim.max(1)).position(|v| !v.iter().all(|x| x.is_finite()));
    match bad {
        Some(r) => Err(Error::Input {
            index: out.rows[r].input,
            message: "its embedding is not finite (NaN or Inf): the model's weights or scales overflow".into(),
        }),
        None => Ok(()),
    }
}

/// The checkpoint must not hold layers beyond `num_hidden_layers`: a config that says fewer
/// would silently drop them.
pub(crate) fn check_layer_count(dir: &Path, ck: &Checkpoint, layers: usize) -> Result<()> {
    let deepest = ck
        .inventory()
        .filter_map(|(n, _, _)| n.strip_prefix("encoder.layer.")?.split('.').next()?.parse::<usize>().ok())
        .max();
    match deepest {
        Some(d) if d >= layers => Err(Error::config(
            dir.join("config.json"),
            format!("num_hidden_layers is {layers} but the checkpoint holds encoder.layer.{d}: the config does not match the weights"),
        )),
        _ => Ok(()),
    }
}

/// The shape `config.json` gives tensor `name` (without the checkpoint prefix; legacy
/// LayerNorm `gamma` / `beta` included), or `None` for a tensor that is no part of the
/// encoder.
fn expected_shape(cfg: &ModelConfig, name: &str) -> Option<Vec<usize>> {
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias");
    let shape = match name.as_str() {
        "embeddings.word_embeddings.weight" => vec![cfg.vocab_size, h],
        "embeddings.position_embeddings.weight" => vec![cfg.max_positions, h],
        "embeddings.token_type_embeddings.weight" => vec![cfg.type_vocab_size, h],
        "embeddings.LayerNorm.weight" | "embeddings.LayerNorm.bias" => vec![h],
        _ => {
            let (layer, tail) = name.strip_prefix("encoder.layer.")?.split_once('.')?;
            if layer.parse::<usize>().ok()? >= cfg.layers {
                return None;
            }
            match tail {
                "attention.self.query.weight" | "attention.self.key.weight" | "attention.self.value.weight" => {
                    vec![h, h]
                }
                "attention.output.dense.weight" => vec![h, h],
                "intermediate.dense.weight" => vec![i, h],
                "output.dense.weight" => vec![h, i],
                "intermediate.dense.bias" => vec![i],
                "attention.self.query.bias"
                | "attention.self.key.bias"
                | "attention.self.value.bias"
                | "attention.output.dense.bias"
                | "attention.output.LayerNorm.weight"
                | "attention.output.LayerNorm.bias"
                | "output.dense.bias"
                | "output.LayerNorm.weight"
                | "output.LayerNorm.bias" => vec![h],
                _ => return None,
            }
        }
    };
    Some(shape)
}

/// Tensor `name` of shape `shape` must be one the encoder uses, in the shape the config
/// gives it (checked before `e5 quantize` reads or reshapes it).
pub(crate) fn check_tensor_shape(cfg: &ModelConfig, name: &str, shape: &[usize]) -> Result<()> {
    match expected_shape(cfg, name) {
        Some(want) if want == shape => Ok(()),
        Some(want) => Err(Error::TensorShape { name: name.into(), expected: want, found: shape.to_vec() }),
        None => Err(Error::TensorValue {
            name: name.into(),
            message: format!("not a tensor of this {} encoder (config.json)", cfg.architecture.name()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::RowInfo;

    #[test]
    fn a_non_finite_row_names_its_input() {
        let row = |input| RowInfo { input, tokens: 1, input_tokens: 1, truncated: false, chars: 0..1 };
        let out = Embeddings { dim: 2, data: vec![0.6, 0.8, f32::NAN, 0.0], rows: vec![row(3), row(7)] };
        let e = check_rows_finite(&out).unwrap_err();
        assert!(matches!(e, Error::Input { index: 7, .. }), "{e}");
        let out = Embeddings { dim: 2, data: vec![0.6, 0.8], rows: vec![row(0)] };
        check_rows_finite(&out).unwrap();
    }
}
