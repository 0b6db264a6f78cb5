//! Row kernels (GELU, softmax, LayerNorm, dot, axpy, vecmat, pooling, attention) on every
//! ISA against f64 references.

mod common;
use common::*;
use e5_kernels::{AttentionShape, GeluKind, Isa, IsaError, Kernels, PackedF32, Pooling, Post};
use proptest::prelude::*;

#[test]
fn gelu_erf_within_1e6_of_f64() {
    let xs: Vec<f32> =
        (-200_000..=200_000).map(|i| i as f32 * 1e-4).chain([-30.0, -9.5, 9.5, 30.0, 1e4, -1e4]).collect();
    let want: Vec<f64> = xs.iter().map(|&x| gelu_erf_f64(x as f64)).collect();
    for kern in tables() {
        let mut y = xs.clone();
        kern.gelu(GeluKind::Erf, &mut y);
        let err = max_abs_diff(&y, &want);
        assert!(err <= 1e-6, "{}: gelu erf max error {err:e}", kern.isa);
    }
}

/// AVX2's GELU issues three registers' chains at once (`gelu_erf8x`): every register
/// gets the bits it gets alone, in the row kernel (24-value steps, then single registers
/// and a partial tail) and in `gelu_erf8_each` (threes, then a pair or one).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_gelu_in_lockstep_gives_each_register_its_own_bits() {
    use e5_kernels::vector::avx2::{gelu_erf8, gelu_erf8_each};
    use std::arch::x86_64::*;
    let Ok(kern) = Kernels::get(Isa::Avx2) else {
        eprintln!("no AVX2 on this CPU: only the other tables' GELU ran (gelu_erf_within_1e6_of_f64)");
        return;
    };
    let xs: Vec<f32> = rand_vec(7, 100_003, 12.0).into_iter().chain([0.0, -0.0, 9.99, -9.99, 1e4, -1e4]).collect();
    // SAFETY: the table exists, so the CPU has AVX2 and FMA.
    let one = |x: &[f32]| unsafe {
        let mut v = [0.0f32; 8];
        v[..x.len()].copy_from_slice(x);
        let mut y = [0.0f32; 8];
        _mm256_storeu_ps(y.as_mut_ptr(), gelu_erf8(_mm256_loadu_ps(v.as_ptr())));
        y
    };
    let want: Vec<u32> = xs.chunks(8).flat_map(|c| one(c)[..c.len()].to_vec()).map(f32::to_bits).collect();
    for len in [xs.len(), 24, 23, 17, 8, 1] {
        let mut y = xs[..len].to_vec();
        kern.gelu(GeluKind::Erf, &mut y);
        assert!(y.iter().map(|v| v.to_bits()).eq(want[..len].iter().copied()), "row kernel, length {len}");
    }
    for regs in 1..=12 {
        // SAFETY: as above.
        let got: Vec<u32> = unsafe {
            let mut v: Vec<__m256> = (0..regs).map(|i| _mm256_loadu_ps(xs[8 * i..].as_ptr())).collect();
            gelu_erf8_each(&mut v);
            let mut y = vec![0.0f32; 8 * regs];
            v.iter().enumerate().for_each(|(i, r)| _mm256_storeu_ps(y[8 * i..].as_mut_ptr(), *r));
            y.into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(got, want[..8 * regs], "gelu_erf8_each of {regs} registers");
    }
}

/// Inputs for the tabled GELU: a fine grid, every interval edge (`k/2`) and its float
/// neighbours, the table's end, and special and random bit patterns.
fn tabled_gelu_inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
    for k in -20..=20 {
        let e = k as f32 * 0.5;
        xs.extend([e, f32::from_bits(e.to_bits() + 1), f32::from_bits(e.to_bits().wrapping_sub(1))]);
    }
    xs.extend([f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, f32::MIN_POSITIVE, -1e-40, 1e-40]);
    xs.extend([f32::MAX, f32::MIN, 8.0, -8.0, 7.999_999_5, -7.999_999_5, 30.0, -30.0, 1e4, -1e4]);
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    xs.extend((0..200_000).map(|_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        f32::from_bits((s >> 32) as u32)
    }));
    xs
}

#[test]
fn tabled_gelu_twin_is_accurate_and_avx512_runs_it_bit_for_bit() {
    use e5_kernels::vector::scalar::gelu_erf_tabled_1;
    let xs = tabled_gelu_inputs();
    let twin: Vec<f32> = xs.iter().map(|&x| gelu_erf_tabled_1(x)).collect();
    // Accuracy of the twin itself, on every CPU.
    for (&x, &y) in xs.iter().zip(&twin) {
        let want = gelu_erf_f64(x as f64);
        if x.is_nan() {
            assert!(y.is_nan(), "gelu({x}) = {y}");
        } else if x.abs() <= 1e4 {
            assert!((y as f64 - want).abs() <= 1e-7 * want.abs().max(1.0), "gelu({x:e}) = {y:e}, want {want:e}");
        }
    }
    let avx512: Vec<_> = tables().into_iter().filter(|k| k.isa == Isa::Avx512).collect();
    eprintln!("tabled GELU checked bit for bit on {} AVX-512 table(s)", avx512.len());
    for kern in avx512 {
        let mut y = xs.clone();
        kern.gelu(GeluKind::Erf, &mut y);
        for ((x, a), b) in xs.iter().zip(&y).zip(&twin) {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "gelu({x:e}): avx512 {a:e}, twin {b:e}");
        }
    }
}

#[test]
fn gelu_tanh_within_1e6_of_f64() {
    let xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).chain([-30.0, 30.0, 1e4, -1e4]).collect();
    let want: Vec<f64> = xs.iter().map(|&x| gelu_tanh_f64(x as f64)).collect();
    for kern in tables() {
        let mut y = xs.clone();
        kern.gelu(GeluKind::Tanh, &mut y);
        let err = max_abs_diff(&y, &want);
        assert!(err <= 1e-6, "{}: gelu tanh max error {err:e}", kern.isa);
    }
}

fn softmax_f64(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn softmax_matches_f64(n in 1usize..600, scale in 0.1f32..60.0, seed in any::<u64>()) {
        let x = rand_vec(seed, n, scale);
        let want = softmax_f64(&x);
        for kern in tables() {
            let mut y = x.clone();
            kern.softmax(&mut y);
            let err = max_abs_diff(&y, &want);
            prop_assert!(err <= 1e-6, "{}: softmax error {:e}", kern.isa, err);
        }
    }

    /// `softmax_rows` (AVX2: three rows' chains at once) gives every row the bits `softmax`
    /// gives it alone, and leaves the bytes between rows alone.
    #[test]
    fn softmax_rows_is_softmax_row_by_row_bit_for_bit(rows in 0usize..8, len in 0usize..70, pad in 0usize..20, scale in 0.1f32..60.0, seed in any::<u64>()) {
        let ld = len + pad;
        let x = rand_vec(seed, rows * ld + 3, scale);
        for kern in tables() {
            let mut want = x.clone();
            if len > 0 {
                want.chunks_mut(ld).take(rows).for_each(|row| kern.softmax(&mut row[..len]));
            }
            let mut got = x.clone();
            kern.softmax_rows(&mut got, rows, len, ld);
            prop_assert!(bits(&got) == bits(&want), "{}: {rows} rows of {len}, {ld} apart", kern.isa);
        }
    }

    #[test]
    fn layernorm_matches_f64(w in 1usize..1100, rows in 1usize..4, residual in any::<bool>(), seed in any::<u64>()) {
        let x = rand_vec(seed, rows * w, 3.0);
        let r = rand_vec(seed + 1, rows * w, 1.0);
        let g = rand_vec(seed + 2, w, 1.0);
        let b = rand_vec(seed + 3, w, 1.0);
        let mut want = Vec::new();
        for i in 0..rows {
            let row: Vec<f64> = (0..w).map(|j| x[i * w + j] as f64 + if residual { r[i * w + j] as f64 } else { 0.0 }).collect();
            let mean = row.iter().sum::<f64>() / w as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w as f64;
            let rstd = 1.0 / (var + 1e-12).sqrt();
            want.extend((0..w).map(|j| (row[j] - mean) * rstd * g[j] as f64 + b[j] as f64));
        }
        for kern in tables() {
            let mut y = x.clone();
            kern.layernorm_rows(&mut y, residual.then_some(&r[..]), &g, &b, 1e-12);
            let err = max_abs_diff(&y, &want);
            prop_assert!(err <= 2e-5, "{}: layernorm error {:e}", kern.isa, err);
        }
    }

    #[test]
    fn dot_axpy_match_f64(n in 1usize..300, seed in any::<u64>()) {
        let a = rand_vec(seed, n, 1.0);
        let b = rand_vec(seed + 1, n, 1.0);
        let dot: f64 = a.iter().zip(&b).map(|(a, b)| *a as f64 * *b as f64).sum();
        for kern in tables() {
            prop_assert!((kern.dot(&a, &b) as f64 - dot).abs() <= 1e-6 * n as f64, "{} dot", kern.isa);
            let mut y = b.clone();
            kern.axpy(&mut y, 0.75, &a);
            let want: Vec<f64> = a.iter().zip(&b).map(|(a, b)| 0.75 * *a as f64 + *b as f64).collect();
            prop_assert!(max_abs_diff(&y, &want) <= 1e-6, "{} axpy", kern.isa);
        }
    }
}

/// Naive f64 attention for one packed batch.
fn attention_f64(qkv: &[f32], seqs: &[usize], h: usize, heads: usize) -> Vec<f64> {
    let d = h / heads;
    let t = *seqs.last().unwrap();
    let mut out = vec![0.0; t * h];
    for s in seqs.windows(2) {
        for hd in 0..heads {
            for i in s[0]..s[1] {
                let q = |c: usize| qkv[i * 3 * h + hd * d + c] as f64;
                let scores: Vec<f64> = (s[0]..s[1])
                    .map(|j| {
                        (0..d).map(|c| q(c) * qkv[j * 3 * h + h + hd * d + c] as f64).sum::<f64>() / (d as f64).sqrt()
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|v| (v - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    out[i * h + hd * d + c] =
                        (s[0]..s[1]).zip(&e).map(|(j, p)| p / z * qkv[j * 3 * h + 2 * h + hd * d + c] as f64).sum();
                }
            }
        }
    }
    out
}

/// Attention through the public GEMM and softmax, as it was computed before it called the
/// micro-kernel itself: K scaled by 1/√d and packed as rows, V packed as columns.
fn attention_by_gemm(kern: &Kernels, qkv: &[f32], seqs: &[usize], h: usize, heads: usize) -> Vec<f32> {
    let d = h / heads;
    let mut out = vec![0.0; seqs.last().unwrap() * h];
    for s in seqs.windows(2).filter(|s| s[1] > s[0]) {
        let (rows, len) = (&qkv[s[0] * 3 * h..s[1] * 3 * h], s[1] - s[0]);
        for hd in 0..heads {
            let scale = 1.0 / (d as f32).sqrt();
            let k: Vec<f32> =
                (0..len).flat_map(|j| (0..d).map(move |c| scale * rows[j * 3 * h + h + hd * d + c])).collect();
            let k = PackedF32::from_rows(kern, &k, len, d, d, None);
            let v = PackedF32::from_cols(kern, &rows[2 * h + hd * d..], len, d, 3 * h);
            let mut p = vec![0.0; len * len];
            kern.gemm_strided(&rows[hd * d..], 3 * h, len, &k, Post::None, &mut p, len, false);
            p.chunks_exact_mut(len).for_each(|row| kern.softmax(row));
            kern.gemm_strided(&p, len, len, &v, Post::None, &mut out[s[0] * h + hd * d..], h, false);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Attention is within 1e-5 of f64, and, calling the f32 micro-kernel tile by tile (no
    /// driver, no `PackedF32`), runs the GEMM's FMA chains: the same bits, on every ISA.
    #[test]
    fn attention_matches_f64_and_the_gemm_formulation_bit_for_bit(lens in proptest::collection::vec(0usize..80, 1..5), heads in 1usize..5, d in 1usize..70, seed in any::<u64>()) {
        let h = heads * d;
        let mut seqs = vec![0];
        for l in &lens { seqs.push(seqs.last().unwrap() + l); }
        let t = *seqs.last().unwrap();
        let qkv = rand_vec(seed, t * 3 * h, 1.0);
        let want = attention_f64(&qkv, &seqs, h, heads);
        for kern in tables() {
            let mut out = vec![f32::NAN; t * h];
            kern.attention(&qkv, &seqs, AttentionShape { hidden: h, heads }, &mut out);
            let err = max_abs_diff(&out, &want);
            prop_assert!(err <= 1e-5, "{}: attention error {:e}", kern.isa, err);
            prop_assert!(bits(&out) == bits(&attention_by_gemm(kern, &qkv, &seqs, h, heads)), "{}: {lens:?}, d {d}", kern.isa);
        }
    }
}

#[test]
fn attention_of_a_sequence_ignores_its_batch_mates() {
    let (h, heads) = (64, 4);
    let seqs = [0, 17, 530, 531];
    let qkv = rand_vec(3, seqs[3] * 3 * h, 2.0);
    for kern in tables() {
        let mut all = vec![0.0; seqs[3] * h];
        kern.attention(&qkv, &seqs, AttentionShape { hidden: h, heads }, &mut all);
        let mut alone = vec![0.0; 513 * h];
        kern.attention(&qkv[17 * 3 * h..530 * 3 * h], &[0, 513], AttentionShape { hidden: h, heads }, &mut alone);
        assert_eq!(&all[17 * h..530 * h], &alone[..], "{}", kern.isa);
    }
}

#[test]
fn pooling_mean_cls_and_normalize() {
    let w = 37;
    let seqs = [0, 3, 3, 10];
    let hidden = rand_vec(5, 10 * w, 1.0);
    for kern in tables() {
        let mut out = vec![0.0; 3 * w];
        kern.pool(&hidden, w, &seqs, Pooling::Mean, false, &mut out);
        let want: Vec<f64> = (0..w).map(|j| (3..10).map(|i| hidden[i * w + j] as f64).sum::<f64>() / 7.0).collect();
        assert!(max_abs_diff(&out[2 * w..], &want) < 1e-6, "{} mean", kern.isa);
        assert!(out[w..2 * w].iter().all(|&v| v == 0.0), "{}: empty sequence pools to zeros", kern.isa);
        kern.pool(&hidden, w, &seqs, Pooling::Cls, true, &mut out);
        let norm: f64 = hidden[..w].iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let want: Vec<f64> = hidden[..w].iter().map(|&v| v as f64 / norm).collect();
        assert!(max_abs_diff(&out[..w], &want) < 1e-6, "{} cls+normalize", kern.isa);
    }
}

#[test]
fn isa_names_and_errors() {
    assert_eq!(Isa::parse("AVX2"), Ok(Isa::Avx2));
    assert!(matches!(Isa::parse("sse9"), Err(IsaError::Unknown(_))));
    for isa in Isa::ALL {
        match Kernels::get(isa) {
            Ok(k) => assert_eq!(k.isa, isa),
            Err(e) => assert_eq!(e, IsaError::Unsupported(isa)),
        }
    }
    assert!(Kernels::get(Isa::Scalar).is_ok());
}

/// f16 and bf16 widening on every ISA is exact for all 65 536 bit patterns (NaN stays NaN),
/// and slices of every tail length convert like their elements.
#[test]
fn widen_half_floats_exactly() {
    use e5_kernels::Storage;
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let expect = |storage: Storage, b: u16| match storage {
        Storage::F16 => half::f16::from_bits(b).to_f32(),
        _ => half::bf16::from_bits(b).to_f32(),
    };
    for kern in tables() {
        for storage in [Storage::F16, Storage::Bf16] {
            for len in [0, 1, 7, 8, 9, 31, all.len()] {
                let src = &all[all.len() - len..];
                let mut dst = vec![0.0f32; len];
                kern.widen(storage, src, &mut dst);
                for (&b, &got) in src.iter().zip(&dst) {
                    let want = expect(storage, b);
                    let same = if want.is_nan() { got.is_nan() } else { got.to_bits() == want.to_bits() };
                    assert!(same, "{} {storage:?} {b:#06x}: {got} vs {want}", kern.isa);
                }
            }
        }
    }
}

/// The documented activation quantization: `max |x|` over the non-NaN elements, and
/// `q = clamp(round_ties_even(x·inv), ±127)` with NaN → 0.
fn quantization_reference(x: &[f32], inv: f32) -> (f32, Vec<i8>) {
    let q =
        x.iter().map(|&v| v * inv).map(|p| if p.is_nan() { 0 } else { p.clamp(-127.0, 127.0).round_ties_even() as i8 });
    (x.iter().fold(0.0f32, |m, v| m.max(v.abs())), q.collect())
}

/// `abs_max` and `quantize_i8` of every table against the reference, bit for bit; `q` gets
/// a guard byte past the row that no tail store may touch.
fn check_quantization(x: &[f32], inv: f32) {
    let (want_max, want) = quantization_reference(x, inv);
    for kern in tables() {
        assert_eq!(kern.abs_max(x).to_bits(), want_max.to_bits(), "{} abs_max of {x:?}", kern.isa);
        let mut q = vec![99i8; x.len() + 1];
        kern.quantize_i8(x, inv, &mut q[..x.len()]);
        assert_eq!(&q[..x.len()], &want[..], "{} quantize_i8 of {x:?} at inv {inv}", kern.isa);
        assert_eq!(q[x.len()], 99, "{} wrote past a row of {}", kern.isa, x.len());
        check_cells(kern, x, inv, &want);
    }
}

/// `quantize_i8_cells` of one table against the reference values `want`: cells of 4 (zeros
/// past the row) at strides 4 and 48, XORed with 0 and `0x8080_8080`; the bytes between
/// and after the cells keep their guard value.
fn check_cells(kern: &Kernels, x: &[f32], inv: f32, want: &[i8]) {
    let cells = x.len().div_ceil(4);
    for (stride, flip) in [(4, 0u32), (48, 0x8080_8080), (12, 0)] {
        let mut q = vec![99i8; cells * stride + 8];
        kern.quantize_i8_cells(x, inv, flip, &mut q[..(cells * stride).saturating_sub(stride - 4)], stride);
        for (i, &b) in q.iter().enumerate() {
            let (g, j) = (i / stride, i % stride);
            let expect = if g < cells && j < 4 {
                (want.get(4 * g + j).copied().unwrap_or(0) as u8 ^ flip.to_ne_bytes()[j]) as i8
            } else {
                99
            };
            assert_eq!(b, expect, "{} cells of {x:?} at inv {inv}, stride {stride}: byte {i}", kern.isa);
        }
    }
}

/// Ties at `inv = 2` (`x·2 = k + ½`), the clip edges, NaN, ±inf, huge, subnormal and
/// signed zeros, among ordinary values.
fn quantization_value() -> impl Strategy<Value = f32> {
    let special =
        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -1e30, 1e-40, -0.0, 63.5, -63.75, 64.0, -127.0];
    prop_oneof![
        4 => -80.0f32..80.0,
        3 => (-130i32..130).prop_map(|k| (k as f32 + 0.5) / 2.0),
        2 => proptest::sample::select(special.to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every length 0..=70 (every tail of 8- and 16-lane loops, and the 64-value blocks).
    #[test]
    fn activation_quantization_matches_reference(
        x in proptest::collection::vec(quantization_value(), 0..=70),
        inv in prop_oneof![Just(2.0f32), Just(0.5), Just(1.0 / 3.0), Just(0.0), Just(f32::INFINITY), 1e-3f32..1e3],
    ) {
        check_quantization(&x, inv);
    }
}

/// Every length to 200, with the largest |x| and a NaN moved through every position: each
/// block, chain and tail lane of `abs_max` must see them.
#[test]
fn activation_quantization_on_every_length_and_position() {
    for len in 0..=200usize {
        let base: Vec<f32> =
            rand_vec(len as u64, len, 60.0).into_iter().map(|v| (v * 2.0).round() / 2.0 + 0.25).collect();
        check_quantization(&base, 2.0);
        for at in 0..len {
            let mut x = base.clone();
            x[at] = if at % 2 == 0 { -100.5 } else { 100.5 };
            x[(at * 7 + 3) % len] = f32::NAN;
            check_quantization(&x, 127.0 / 100.5);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Column sums: every ISA gives the scalar twin's bits and the row-by-row `axpy` sum's
    /// (what mean pooling computed before `sum_rows`), for widths around each ISA's block
    /// and vector edges (8 × 16 lanes on AVX-512, 4 × 8 on AVX2), multiples of 16, row
    /// counts from 0.
    #[test]
    fn sum_rows_matches_the_scalar_twin_bit_for_bit(
        w in prop_oneof![1usize..140, (1usize..9).prop_map(|v| 16 * v)],
        rows in 0usize..40,
        offset in 0usize..16,
        seed in any::<u64>(),
    ) {
        // At any offset within a cache line: AVX-512 takes its own kernel only on aligned rows.
        let buffer = rand_vec(seed, offset + rows * w, 2.0);
        let x = &buffer[offset..];
        let scalar = Kernels::get(Isa::Scalar).unwrap();
        let mut twin = vec![f32::NAN; w];
        scalar.sum_rows(x, &mut twin);
        let mut by_axpy = vec![0.0; w];
        x.chunks_exact(w).for_each(|row| scalar.axpy(&mut by_axpy, 1.0, row));
        prop_assert_eq!(bits(&twin), bits(&by_axpy));
        for kern in tables() {
            let mut out = vec![f32::NAN; w];
            kern.sum_rows(x, &mut out);
            prop_assert_eq!(bits(&out), bits(&twin), "{} sum_rows", kern.isa);
        }
    }
}

/// Every offset within a cache line for widths that keep all rows at one offset: AVX-512
/// takes its aligned kernel at exactly one of them, AVX2's at the others.
#[test]
fn sum_rows_is_bit_identical_at_every_alignment() {
    let scalar = Kernels::get(Isa::Scalar).unwrap();
    for (w, rows) in [(16, 3), (48, 5), (128, 2), (144, 7), (384, 9), (400, 4)] {
        let buffer = rand_vec(w as u64, 16 + rows * w, 2.0);
        for offset in 0..16 {
            let x = &buffer[offset..offset + rows * w];
            let mut twin = vec![f32::NAN; w];
            scalar.sum_rows(x, &mut twin);
            for kern in tables() {
                let mut out = vec![f32::NAN; w];
                kern.sum_rows(x, &mut out);
                assert_eq!(bits(&out), bits(&twin), "{} sum_rows, {w} columns, offset {offset}", kern.isa);
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sum_rows_rejects_ragged_input_and_accepts_nothing_into_nothing() {
    let kern = Kernels::detect().unwrap();
    kern.sum_rows(&[], &mut []);
    let mut out = [f32::NAN; 3];
    kern.sum_rows(&[], &mut out);
    assert_eq!(out, [0.0; 3], "no rows sum to zeros");
    for (rows, w) in [(vec![1.0; 7], 3), (vec![1.0; 2], 0)] {
        let r = std::panic::catch_unwind(|| kern.sum_rows(&rows, &mut vec![0.0; w]));
        assert!(r.is_err(), "{} values into {w} columns must panic", rows.len());
    }
}
