//! Group-wise int4 weights in a file written by `e5 quantize --precision int4-g{32,64,128}`.
//!
//! A linear weight `W [n, k]` is stored as two tensors (names from e5-arch):
//! - `{weight}`: `U8 [n, k/2]`, the levels `q ∈ [-8, 7]` two per byte, offset by 8: byte `j`
//!   of row `r` holds `W[r, 2j]` in its low nibble and `W[r, 2j+1]` in its high nibble, as
//!   `q + 8 ∈ [0, 15]` (every byte is valid; files written with `[-7, 7]` load unchanged);
//! - `{weight}_scale`: `[n, k/G]`, the scale of group `g` of row `r` (`W[r, gG..(g+1)G] ≈
//!   q·scale`). `F16` when every scale of the tensor is an f16 value (the search makes every
//!   scale in f16's normal range one), else `F32`; the manifest lists each tensor's dtype.
//!
//! The group size `G` divides `k`. Round-to-nearest levels and scales are those of the
//! in-memory int4 path ([`e5_kernels::PackedI4::quantize_levels`]), so such a file runs bit
//! for bit as the model quantized at load; GPTQ's ([`super::gptq`]) have the same format.

use super::gptq::Factor;
use crate::error::{Error, Result};
use crate::weights::{Checkpoint, FloatType};
use e5_arch::names::LinearTensors;
use e5_kernels::i4gemm::f16_exact;
use half::f16;

/// Scales above this fit no real weight (`|w| ≤ 7·scale`) and risk overflowing the f32
/// accumulation of a row (`Σ_g i32_g·scale_g`, `|i32_g| < 2¹⁷`).
const MAX_SCALE: f32 = 4_294_967_296.0;

/// One int4 weight as written: packed levels and its scales in their stored dtype.
pub(super) struct Encoded {
    pub nibbles: Vec<u8>,
    pub scales: Vec<f32>,
    pub scale_dtype: FloatType,
    pub scale_bytes: Vec<u8>,
}

/// Quantizes `w` (`[n, k]`, tensor `name`) per group of `group` input values: with GPTQ
/// where its sub-layer's factor is given, else round-to-nearest.
pub(super) fn encode(
    name: &str,
    w: &[f32],
    n: usize,
    k: usize,
    group: usize,
    gptq: Option<&Factor>,
) -> Result<Encoded> {
    check_group(name, k, group).map_err(|e| Error::Options(format!("{e}: use a smaller group size")))?;
    let (q, scales) = super::gptq::levels(w, n, k, group, gptq);
    check_scales(name, &scales, &q, group, k / group)?;
    let nibbles = q.chunks_exact(2).map(|p| (p[0] + 8) as u8 | ((p[1] + 8) as u8) << 4).collect();
    let (scale_dtype, scale_bytes) = match scales.iter().all(|&s| f16_exact(s)) {
        true => (FloatType::F16, scales.iter().flat_map(|&s| f16::from_f32(s).to_le_bytes()).collect()),
        false => (FloatType::F32, scales.iter().flat_map(|s| s.to_le_bytes()).collect()),
    };
    Ok(Encoded { nibbles, scales, scale_dtype, scale_bytes })
}

/// Reads the int4 levels (`[n, k]`, the modules stacked along `n`) and scales (`[n, k/group]`)
/// of `modules`, each `[n_each, k]`, checking every nibble and scale.
pub(crate) fn read(
    ck: &Checkpoint,
    modules: &[LinearTensors],
    n_each: usize,
    k: usize,
    group: usize,
) -> Result<(Vec<i8>, Vec<f32>)> {
    check_group(&modules[0].weight, k, group).map_err(Error::Quantized)?;
    let (mut q, mut scales) = (Vec::with_capacity(modules.len() * n_each * k), Vec::new());
    for m in modules {
        let bytes = ck.u8(&m.weight, &[n_each, k / 2])?;
        let start = q.len();
        q.extend(bytes.iter().flat_map(|b| [(b & 0x0F) as i8 - 8, (b >> 4) as i8 - 8]));
        let scale_name = m.weight_scale();
        if !matches!(ck.dtype(&scale_name), Some(FloatType::F16 | FloatType::F32)) {
            let dtype = ck.dtype(&scale_name).map_or("missing".into(), |d| format!("{d:?}"));
            return Err(Error::Quantized(format!("{scale_name}: int4 scales are F16 or F32, not {dtype}")));
        }
        let s = ck.f32(&scale_name, &[n_each, k / group])?;
        check_scales(&scale_name, &s, &q[start..], group, k / group)?;
        scales.extend(s);
    }
    Ok((q, scales))
}

fn check_group(name: &str, k: usize, group: usize) -> std::result::Result<(), String> {
    match k % group {
        0 => Ok(()),
        _ => Err(format!("{name}: int4 group size {group} does not divide its input width {k}")),
    }
}

/// Every scale is finite, in `[0, MAX_SCALE]`, and 0 only for a group whose levels are all 0.
/// `q` is `[rows, groups·group]`, `scales` `[rows, groups]`.
fn check_scales(name: &str, scales: &[f32], q: &[i8], group: usize, groups: usize) -> Result<()> {
    for (i, (&s, levels)) in scales.iter().zip(q.chunks_exact(group)).enumerate() {
        let why = if !s.is_finite() {
            "is not finite"
        } else if !(0.0..=MAX_SCALE).contains(&s) {
            "is outside [0, 2^32]"
        } else if s == 0.0 && levels.iter().any(|&l| l != 0) {
            "is 0 for a group with non-zero levels"
        } else {
            continue;
        };
        let (row, g) = (i / groups, i % groups);
        return Err(Error::Quantized(format!("{name}: the scale {s} of row {row}, group {g} {why}")));
    }
    Ok(())
}
