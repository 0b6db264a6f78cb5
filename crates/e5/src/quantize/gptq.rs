//! GPTQ for the group-wise int4 weights: error compensation from calibration activations.
//!
//! Round-to-nearest (RTN, [`PackedI4::quantize_levels`]) quantizes every weight on its own.
//! GPTQ (Frantar et al., 2022) quantizes the input columns of `W [n, k]` one at a time and
//! moves each column's rounding error onto the columns not yet quantized, weighted by how the
//! sub-layer's inputs correlate, so that the GEMM output error `‖X·(W − Ŵ)ᵀ‖²` over the
//! calibration rows `X [T, k]` is what is minimised, not the weight error. With
//! `H = XᵀX + λI` and the upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = UᵀU`), column `i` of a
//! row `w` is quantized to `q_i`, then `w_j −= (w_i − q_i) / U_ii · U_ij` for every `j > i`.
//! Rows are independent given `U`, so each output channel runs on its own.
//!
//! Columns go in "act-order": by decreasing `H_jj`, the inputs with the most energy first,
//! while their errors can still be spread over many columns. The group scales are fixed
//! before (RTN's search, [`quantize_group`], on the original weights: "static groups"), so
//! the groups stay contiguous in `k` and a GPTQ file has the same format, kernels and
//! exactness as an RTN one. With `H` diagonal nothing moves and GPTQ is RTN, level for level
//! (tested).
//!
//! `H` is accumulated in f64 from fp32 traces of the calibration texts. λ is 10 % of the
//! mean diagonal (raised tenfold while the Cholesky factorisation fails): GPTQ's default of
//! 1 % fits the 4 000 calibration tokens too closely. On multilingual-e5-small, int4-g32, 380
//! held-out texts (docs/quantization.md, GPTQ; levels in [-7, 7] then, column order): λ
//! 0.1 % / 1 % / 10 % / 30 % gave mean cosine 0.99751 / 0.99769 / 0.99778 / 0.99769. With
//! levels in [-8, 7] and λ 10 %, act-order adds 0.00005 at int4-g32 and 0.00041 at g128. An input channel that is zero on every calibration token
//! (`H_jj = 0`) gets `H_jj = 1` and its weights go through RTN (nothing says how to
//! compensate it).

use crate::error::{Error, Result};
use crate::input::{Input, Precision};
use crate::model::Site;
use crate::Model;
use e5_arch::LinearId;
use e5_kernels::i4gemm::{level, quantize_group};
use e5_kernels::{PackedF32, PackedI4, Post};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Relative damping λ / mean(diag H) tried first.
const DAMP: f64 = 0.1;

/// `H = XᵀX` of one sub-layer's inputs, `[k, k]` row-major, f64.
#[derive(Clone, Debug)]
pub struct Hessian {
    pub k: usize,
    pub h: Vec<f64>,
}

/// The Hessians of every sub-layer, from the fp32 model's calibration traces.
#[derive(Clone, Debug)]
pub struct Hessians {
    pub by_site: BTreeMap<LinearId, Hessian>,
    /// Calibration tokens traced.
    pub tokens: usize,
}

/// Traces `inputs` (in batches of `batch_texts`) with the fp32 `model` and accumulates
/// `XᵀX` of every sub-layer's input.
pub fn calibrate(model: &Model, inputs: &[Input<'_>], batch_texts: usize) -> Result<Hessians> {
    if model.options().precision != Precision::Fp32 || model.options().adapter.is_some() {
        return Err(Error::Options("GPTQ is calibrated on an fp32 model without adapter".into()));
    }
    if inputs.is_empty() {
        return Err(Error::Options("GPTQ calibration needs texts".into()));
    }
    let cfg = model.config();
    let kern = model.kernels();
    let mut by_site: BTreeMap<LinearId, Hessian> = LinearId::all(cfg.layers)
        .map(|id| {
            let k = id.sub.input_width(cfg);
            (id, Hessian { k, h: vec![0.0; k * k] })
        })
        .collect();
    let mut tokens = 0;
    for batch in inputs.chunks(batch_texts.max(1)) {
        let (ids, _) = model.trace(batch, &mut |site, x| {
            if let Site::LinearInput(id) = site {
                let hess = by_site.get_mut(&id).expect("every sub-layer has a Hessian");
                let (k, t) = (hess.k, x.len() / hess.k);
                // XᵀX [k, k] with the f32 GEMM: A = Xᵀ [k, T] times (Xᵀ)ᵀ; one batch's sum
                // (a few thousand terms) in f32, the batches' sums in f64.
                let mut xt = vec![0f32; k * t];
                for (r, row) in x.chunks_exact(k).enumerate() {
                    row.iter().enumerate().for_each(|(j, v)| xt[j * t + r] = *v);
                }
                let b = PackedF32::from_rows(kern, &xt, k, t, t, None);
                let xtx = kern.gemm_to_vec(&xt, k, &b, Post::None);
                hess.h.iter_mut().zip(&xtx).for_each(|(h, v)| *h += *v as f64);
            }
        })?;
        tokens += ids.len();
    }
    Ok(Hessians { by_site, tokens })
}

/// What GPTQ needs of one sub-layer's Hessian: the act-order and the inverse factor. The
/// weights that share an input (QKV's three) share it, so it is computed once per sub-layer.
#[derive(Clone, Debug)]
pub struct Factor {
    /// `perm[i]`: the input column quantized i-th.
    perm: Vec<usize>,
    /// `U` of the permuted Hessian ([`inverse_cholesky_upper`]).
    u: Vec<f32>,
}

impl Factor {
    /// `None` for a Hessian with a non-finite value (overflowing activations).
    pub fn new(hess: &Hessian) -> Option<Factor> {
        let k = hess.k;
        if !hess.h.iter().all(|v| v.is_finite()) {
            return None;
        }
        // Act-order; a stable sort keeps ties in order.
        let mut perm: Vec<usize> = (0..k).collect();
        perm.sort_by(|&a, &b| hess.h[b * k + b].total_cmp(&hess.h[a * k + a]));
        let mut hp = vec![0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                hp[i * k + j] = hess.h[perm[i] * k + perm[j]];
            }
        }
        Some(Factor { u: inverse_cholesky_upper(&hp, k), perm })
    }

    /// The input width.
    pub fn k(&self) -> usize {
        self.perm.len()
    }
}

/// GPTQ levels and scales of `w` (`[n, k]`) per group of `group` input values, in the layout
/// of [`PackedI4::quantize_levels`] (which `k % group == 0` makes the same as `[n, k]`).
///
/// # Panics
/// If `group` does not divide `k`, `w` and `hess` do not match `[n, k]`, or `hess` is not
/// finite.
pub fn quantize_levels(w: &[f32], n: usize, k: usize, group: usize, hess: &Hessian) -> (Vec<i8>, Vec<f32>) {
    quantize_levels_with(w, n, k, group, &Factor::new(hess).expect("a finite Hessian"))
}

/// [`quantize_levels`] with the sub-layer's factor already computed.
fn quantize_levels_with(w: &[f32], n: usize, k: usize, group: usize, f: &Factor) -> (Vec<i8>, Vec<f32>) {
    assert!(k.is_multiple_of(group) && f.k() == k && w.len() == n * k, "GPTQ shapes [{n}, {k}] / {group}");
    let (perm, u) = (&f.perm, &f.u);
    let groups = k / group;
    let mut q = vec![0i8; n * k];
    let mut scales = vec![0f32; n * groups];
    q.par_chunks_mut(k).zip(scales.par_chunks_mut(groups)).enumerate().for_each(|(r, (q, scales))| {
        let orig = &w[r * k..(r + 1) * k];
        let mut scratch = vec![0i8; group];
        for (g, s) in scales.iter_mut().enumerate() {
            *s = quantize_group(&orig[g * group..(g + 1) * group], &mut scratch);
        }
        // The row in quantization order.
        let mut row: Vec<f32> = perm.iter().map(|&j| orig[j]).collect();
        for (i, &col) in perm.iter().enumerate() {
            let scale = scales[col / group];
            q[col] = if scale > 0.0 { level(row[i], scale) } else { 0 };
            let err = (row[i] - q[col] as f32 * scale) / u[i * k + i];
            // w_j −= err · U_ij for j > i: row i of U is contiguous.
            row[i + 1..].iter_mut().zip(&u[i * k + i + 1..(i + 1) * k]).for_each(|(w, u)| *w -= err * u);
        }
    });
    (q, scales)
}

/// `U` (`[k, k]` row-major f32, upper triangular) with `UᵀU = (H + λI)⁻¹`.
///
/// With `P` the reversal permutation and `PHP = MMᵀ` (lower Cholesky), `H⁻¹ = (PM⁻¹P)ᵀ(PM⁻¹P)`
/// and `PM⁻¹P` is upper triangular with a positive diagonal: one factorisation and one
/// triangular inverse, no explicit `H⁻¹`.
fn inverse_cholesky_upper(h: &[f64], k: usize) -> Vec<f32> {
    let mut a = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = h[(k - 1 - i) * k + (k - 1 - j)];
        }
    }
    for i in 0..k {
        if a[i * k + i] <= 0.0 {
            a[i * k + i] = 1.0;
        }
    }
    // GPTQ depends on `U` only through `U_ij / U_ii`, which scaling `H` leaves alone: `H` is
    // divided by its mean diagonal so that `U` fits f32 whatever the activations' range.
    let mean_diag = (0..k).map(|i| a[i * k + i] / k as f64).sum::<f64>();
    a.iter_mut().for_each(|v| *v /= mean_diag);
    // λ up to 10¹⁰ × the mean diagonal; a finite `H` that still does not factor (not a Gram
    // matrix: |H_ij| far above √(H_ii·H_jj)) gets `U = I`: no error moves, which is RTN.
    let factored = (0..12).find_map(|t| {
        let mut damped = a.clone();
        (0..k).for_each(|i| damped[i * k + i] += DAMP * 10f64.powi(t));
        cholesky_lower(&mut damped, k).then_some(damped)
    });
    let Some(m) = factored else {
        return (0..k * k).map(|i| if i % (k + 1) == 0 { 1.0 } else { 0.0 }).collect();
    };
    let x = lower_inverse(&m, k);
    let mut u = vec![0f32; k * k];
    for i in 0..k {
        for j in i..k {
            u[i * k + j] = x[(k - 1 - i) * k + (k - 1 - j)] as f32;
        }
    }
    u
}

/// In-place lower Cholesky factor of `a` (`[k, k]`, symmetric): `a = LLᵀ`, upper part zeroed.
/// False when `a` is not (numerically) positive definite or a factor overflows.
fn cholesky_lower(a: &mut [f64], k: usize) -> bool {
    for i in 0..k {
        for j in 0..=i {
            let (ri, rj) = (&a[i * k..i * k + j], &a[j * k..j * k + j]);
            let s = a[i * k + j] - dot(ri, rj);
            a[i * k + j] = if i == j { s.sqrt() } else { s / a[j * k + j] };
            if !(a[i * k + j].is_finite() && (i != j || s > 0.0)) {
                return false;
            }
        }
        a[i * k + i + 1..(i + 1) * k].fill(0.0);
    }
    true
}

/// `M⁻¹` of a lower-triangular `m` (`[k, k]`, positive diagonal), by rows:
/// `X_i = (e_i − Σ_{l<i} M_il X_l) / M_ii`, each `X_l` nonzero on `0..=l` only.
fn lower_inverse(m: &[f64], k: usize) -> Vec<f64> {
    let mut x = vec![0f64; k * k];
    for i in 0..k {
        let (done, rest) = x.split_at_mut(i * k);
        let xi = &mut rest[..k];
        xi[i] = 1.0;
        for l in 0..i {
            let c = m[i * k + l];
            xi[..=l].iter_mut().zip(&done[l * k..l * k + l + 1]).for_each(|(x, v)| *x -= c * v);
        }
        let d = m[i * k + i];
        xi[..=i].iter_mut().for_each(|x| *x /= d);
    }
    x
}

/// A dot product in eight independent lanes, so that it vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        (0..8).for_each(|l| acc[l] += x[l] * y[l]);
    }
    acc.iter().sum::<f64>() + tail
}

/// GPTQ levels where a factor is given, RTN otherwise. Weights with a non-finite value go
/// through RTN too, whose NaN scale reports them.
pub(crate) fn levels(w: &[f32], n: usize, k: usize, group: usize, factor: Option<&Factor>) -> (Vec<i8>, Vec<f32>) {
    match factor {
        Some(f) if w.iter().all(|v| v.is_finite()) => quantize_levels_with(w, n, k, group, f),
        _ => PackedI4::quantize_levels(w, n, k, group),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream in [-1, 1).
    fn noise(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
            })
            .collect()
    }

    fn hessian(x: &[f32], k: usize) -> Hessian {
        let mut h = vec![0f64; k * k];
        for row in x.chunks_exact(k) {
            for i in 0..k {
                for j in 0..k {
                    h[i * k + j] += row[i] as f64 * row[j] as f64;
                }
            }
        }
        Hessian { k, h }
    }

    /// ‖X·(W − Ŵ)ᵀ‖² over the rows of `x`.
    fn output_error(x: &[f32], w: &[f32], q: &[i8], scales: &[f32], k: usize, group: usize) -> f64 {
        let wq: Vec<f32> = q.iter().enumerate().map(|(i, &q)| q as f32 * scales[i / group]).collect();
        let mut e = 0f64;
        for row in x.chunks_exact(k) {
            for (wr, qr) in w.chunks_exact(k).zip(wq.chunks_exact(k)) {
                let d: f64 = row.iter().zip(wr.iter().zip(qr)).map(|(x, (a, b))| (*x as f64) * (a - b) as f64).sum();
                e += d * d;
            }
        }
        e
    }

    #[test]
    fn a_diagonal_hessian_is_round_to_nearest() {
        let (n, k, group) = (8, 64, 32);
        let w = noise(1, n * k);
        let mut h = vec![0f64; k * k];
        (0..k).for_each(|i| h[i * k + i] = 1.0 + i as f64);
        let got = quantize_levels(&w, n, k, group, &Hessian { k, h });
        assert_eq!(got, PackedI4::quantize_levels(&w, n, k, group));
    }

    #[test]
    fn correlated_inputs_get_less_output_error_than_round_to_nearest() {
        let (n, k, t, group) = (16, 64, 256, 32);
        let w = noise(2, n * k);
        // Inputs with a shared component, so that columns correlate (as activations do).
        let base = noise(3, t * k);
        let common = noise(4, t);
        let x: Vec<f32> =
            base.iter().enumerate().map(|(i, v)| 0.3 * v + common[i / k] * (1.0 + (i % 7) as f32 * 0.1)).collect();
        let hess = hessian(&x, k);
        let (gq, gs) = quantize_levels(&w, n, k, group, &hess);
        let (rq, rs) = PackedI4::quantize_levels(&w, n, k, group);
        let (g, r) = (output_error(&x, &w, &gq, &gs, k, group), output_error(&x, &w, &rq, &rs, k, group));
        assert!(g < 0.7 * r, "GPTQ output error {g} vs RTN {r}");
        assert!(gq.iter().all(|q| (-8..=7).contains(q)) && gs.iter().all(|s| s.is_finite() && *s >= 0.0));
    }

    #[test]
    fn the_inverse_factor_inverts_the_damped_hessian() {
        let (k, t) = (24, 64);
        let hess = hessian(&noise(5, t * k), k);
        let u = inverse_cholesky_upper(&hess.h, k);
        let mean = (0..k).map(|i| hess.h[i * k + i]).sum::<f64>() / k as f64;
        // (H / mean + λI) · UᵀU = I.
        for i in 0..k {
            for j in 0..k {
                let mut s = 0f64;
                for l in 0..k {
                    let hl = hess.h[i * k + l] / mean + if i == l { DAMP } else { 0.0 };
                    let utu: f64 = (0..k).map(|m| u[m * k + l] as f64 * u[m * k + j] as f64).sum();
                    s += hl * utu;
                }
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((s - want).abs() < 1e-3, "({i}, {j}): {s}");
            }
        }
        assert!((0..k).all(|i| (0..i).all(|j| u[i * k + j] == 0.0)), "U is upper triangular");
    }

    #[test]
    fn the_levels_ignore_the_scale_of_the_activations() {
        let (n, k, t, group) = (4, 32, 64, 32);
        let w = noise(7, n * k);
        let hess = hessian(&noise(8, t * k), k);
        let huge = Hessian { k, h: hess.h.iter().map(|v| v * 1e300).collect() };
        let tiny = Hessian { k, h: hess.h.iter().map(|v| v * 1e-300).collect() };
        let want = quantize_levels(&w, n, k, group, &hess);
        assert_eq!(quantize_levels(&w, n, k, group, &huge).0, want.0);
        assert_eq!(quantize_levels(&w, n, k, group, &tiny).0, want.0);
        // Not a Gram matrix: it never factors, and nothing moves.
        let h: Vec<f64> = (0..k * k).map(|i| if i % (k + 1) == 0 { 1.0 } else { -1e12 }).collect();
        let u = inverse_cholesky_upper(&h, k);
        assert!((0..k * k).all(|i| u[i] == if i % (k + 1) == 0 { 1.0 } else { 0.0 }));
    }

    #[test]
    fn dead_channels_and_a_singular_hessian_still_factor() {
        let k = 16;
        // Rank one, and channel 3 never active.
        let mut row = noise(6, k);
        row[3] = 0.0;
        let hess = hessian(&row, k);
        let u = inverse_cholesky_upper(&hess.h, k);
        assert!(u.iter().all(|v| v.is_finite()) && (0..k).all(|i| u[i * k + i] > 0.0));
    }
}
