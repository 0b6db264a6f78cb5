//! The group-wise int4 GEMM on every variant this CPU can run: exact integer results,
//! bit-identical results across variants, the dequantized product against f64, group
//! quantization (scales storable as f16), both scale storages (f16, and the f32 fallback of
//! a tensor with a scale outside f16's normal range) giving the same bits, and rows
//! independent of batch-mates and threads; the scale search against its naive twin.

mod common;
use common::*;
use e5_kernels::i4gemm::{level, quantize_group, storable_scale, GROUP_SIZES};
use e5_kernels::{GeluKind, Kernels, PackedI4, Post, Storage};
use proptest::prelude::*;

/// Integer-valued rows in [-127, 127], each holding ±127 so its int8 scale is exactly 1.
fn int_rows(seed: u64, m: usize, k: usize) -> Vec<f32> {
    let mut a: Vec<f32> = rand_vec(seed, m * k, 1.0).iter().map(|v| (v * 127.0).round()).collect();
    for r in 0..m {
        a[r * k + (seed as usize + r) % k] = if r % 2 == 0 { 127.0 } else { -127.0 };
    }
    a
}

/// `[n][groups·group]` nibble values in [-8, 7], zero past `k`.
fn int_weights(seed: u64, n: usize, k: usize, group: usize) -> Vec<i8> {
    let kp = k.div_ceil(group) * group;
    let v = rand_vec(seed, n * kp, 1.0);
    (0..n * kp).map(|i| if i % kp < k { (v[i] * 7.5 - 0.5).round() as i8 } else { 0 }).collect()
}

/// Power-of-two weight scales, so that integer results stay exact: one an f16 value, one
/// below f16's range (2⁻³⁰) and one above it (2²⁰), each with the storage it gets.
const EXACT_SCALES: [(f32, Storage); 3] =
    [(1.0, Storage::F16), (1.0 / (1u64 << 30) as f32, Storage::F32), ((1 << 20) as f32, Storage::F32)];

fn exact_check(m: usize, n: usize, k: usize, group: usize, (scale, storage): (f32, Storage), seed: u64) {
    let a = int_rows(seed, m, k);
    let q = int_weights(seed + 1, n, k, group);
    let (groups, kp) = (k.div_ceil(group), k.div_ceil(group) * group);
    // |Σ| ≤ 300·127·8 < 2²⁴: exact in f32, and so is its product by a power of two.
    let want: Vec<f32> = (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            (0..k).map(|c| a[i * k + c] as i64 * q[j * kp + c] as i64).sum::<i64>() as f32 * scale
        })
        .collect();
    for kern in tables() {
        let w = PackedI4::from_quantized(kern, &q, &vec![scale; n * groups], n, k, group, None);
        assert_eq!(w.scale_storage(), storage, "scale {scale}");
        let mut c = vec![f32::NAN; m * n];
        kern.gemm_i4(&a, m, &w, Post::None, &mut c);
        assert_eq!(c, want, "{} ({}) m={m} n={n} k={k} group={group}", kern.isa, kern.int4_kernel());
        assert_eq!(kern.gemm_i4_to_vec(&a, m, &w, Post::None), want, "{} to_vec", kern.isa);
    }
}

/// f64 `post(sa·Σ q·ws·qa + bias)` from the same quantization the kernels use.
fn dequantized_reference(a: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize, group: usize) -> Vec<f64> {
    // Activations: int8 per row; weights: int4 per group of `group`.
    let deq_rows = |x: &[f32], rows: usize, g: usize, int4: bool| -> Vec<f64> {
        let mut out = vec![0.0; rows * k];
        for r in 0..rows {
            for (c0, chunk) in x[r * k..(r + 1) * k].chunks(g).enumerate() {
                let mut q = vec![0i8; chunk.len()];
                let s =
                    if int4 { quantize_group(chunk, &mut q) } else { e5_kernels::i8gemm::quantize_row(chunk, &mut q) };
                for (i, &v) in q.iter().enumerate() {
                    out[r * k + c0 * g + i] = v as f64 * s as f64;
                }
            }
        }
        out
    };
    let (da, dw) = (deq_rows(a, m, k, false), deq_rows(w, n, group, true));
    (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            bias[j] as f64 + (0..k).map(|c| da[i * k + c] * dw[j * k + c]).sum::<f64>()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn integer_results_are_exact_on_every_variant(m in 1usize..20, n in 1usize..70, k in 1usize..300, g in 0usize..3, s in 0usize..3, seed in any::<u64>()) {
        exact_check(m, n, k, GROUP_SIZES[g], EXACT_SCALES[s], seed);
    }

    /// Every variant gives the same bits (the f32 fold is one FMA chain per element in the
    /// same order everywhere), and that value is the f64 product of the dequantized operands.
    /// `tiny` scales one output channel down to values whose scales lie below f16's range,
    /// which makes the tensor keep f32 scales.
    #[test]
    fn variants_agree_bit_for_bit_and_track_f64(m in 1usize..20, n in 1usize..70, k in 1usize..400, g in 0usize..3, residual in any::<bool>(), tiny in any::<bool>(), seed in any::<u64>()) {
        let group = GROUP_SIZES[g];
        let a = rand_vec(seed, m * k, 1.0);
        let mut w = rand_vec(seed + 1, n * k, 0.5);
        if tiny {
            w[(n - 1) * k..].iter_mut().for_each(|v| *v *= 1e-6);
        }
        let f16_scales = PackedI4::quantize_levels(&w, n, k, group).1.iter().all(|&s| half::f16::from_f32(s).to_f32() == s);
        prop_assert!(!(tiny && f16_scales), "tiny weights got f16 scales");
        let bias = rand_vec(seed + 2, n, 0.3);
        let res = rand_vec(seed + 3, m * n, 1.0);
        let post = if residual { Post::Residual(&res) } else { Post::None };
        let mut want = dequantized_reference(&a, &w, &bias, m, n, k, group);
        if residual {
            want.iter_mut().zip(&res).for_each(|(w, r)| *w += *r as f64);
        }
        let mut first: Option<Vec<f32>> = None;
        for kern in tables() {
            let packed = PackedI4::quantize(kern, &w, n, k, group, Some(&bias));
            prop_assert_eq!(packed.scale_storage(), if f16_scales { Storage::F16 } else { Storage::F32 });
            let c = kern.gemm_i4_to_vec(&a, m, &packed, post);
            for (idx, (got, want)) in c.iter().zip(&want).enumerate() {
                prop_assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{} at {idx}: {got} vs {want}", kern.isa);
            }
            match &first {
                None => first = Some(c),
                Some(f) => prop_assert!(f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()), "{} ({}) differs from scalar", kern.isa, kern.int4_kernel()),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The scale storage changes no bit: `W` packs with f16 scales, `W` with one more output
    /// channel of tiny weights packs with f32 scales, and their shared columns agree exactly.
    #[test]
    fn f16_and_f32_scale_storage_give_the_same_bits(m in 1usize..20, n in 1usize..70, k in 1usize..400, g in 0usize..3, seed in any::<u64>()) {
        let group = GROUP_SIZES[g];
        let a = rand_vec(seed, m * k, 1.0);
        // Values of at least 0.01 in magnitude: every scale lies in f16's normal range.
        let mut w: Vec<f32> = rand_vec(seed + 1, n * k, 0.5).iter().map(|v| v.signum() * (0.01 + v.abs())).collect();
        let bias = rand_vec(seed + 2, n + 1, 0.3);
        w.extend(rand_vec(seed + 3, k, 1e-7));
        for kern in tables() {
            let f16 = PackedI4::quantize(kern, &w[..n * k], n, k, group, Some(&bias[..n]));
            let f32 = PackedI4::quantize(kern, &w, n + 1, k, group, Some(&bias));
            prop_assert_eq!((f16.scale_storage(), f32.scale_storage()), (Storage::F16, Storage::F32));
            let (c16, c32) = (kern.gemm_i4_to_vec(&a, m, &f16, Post::None), kern.gemm_i4_to_vec(&a, m, &f32, Post::None));
            for i in 0..m {
                let (x, y) = (&c16[i * n..][..n], &c32[i * (n + 1)..][..n]);
                prop_assert!(x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits()), "{} ({}) row {i}", kern.isa, kern.int4_kernel());
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_prefetch_distance() {
    // None, inside a pair, a few pairs and past a whole panel (K = 320 at g32: 40 pairs of
    // 128 bytes), with f16 scales and (one channel of tiny weights) f32 scales, at batch-1
    // and many-strip heights: the same bits as the default distance.
    let (n, k) = (77, 320);
    let w = rand_vec(10, n * k, 1.0);
    let tiny: Vec<f32> = w.iter().enumerate().map(|(i, &v)| if i < k { v * 1e-7 } else { v }).collect();
    for m in [17, 150] {
        let a = rand_vec(9, m * k, 1.0);
        for kern in tables() {
            for (weights, storage) in [(&w, Storage::F16), (&tiny, Storage::F32)] {
                let q = PackedI4::quantize(kern, weights, n, k, 32, None);
                assert_eq!(q.scale_storage(), storage);
                let want = kern.gemm_i4_to_vec(&a, m, &q, Post::Gelu(GeluKind::Erf));
                for bytes in [0, 64, 512, 4096, 1 << 20] {
                    let got = kern.with_i4_prefetch(bytes).gemm_i4_to_vec(&a, m, &q, Post::Gelu(GeluKind::Erf));
                    let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                    let what = format!("{} {:?} scales", kern.int4_kernel(), q.scale_storage());
                    assert!(same, "{what} M {m}: prefetch {bytes} B changed the results");
                }
            }
        }
    }
}

#[test]
fn gelu_epilogue_tracks_the_plain_result() {
    let (m, n, k) = (13, 45, 200);
    let a = rand_vec(1, m * k, 1.0);
    let w = rand_vec(2, n * k, 0.5);
    for kern in tables() {
        let packed = PackedI4::quantize(kern, &w, n, k, 64, None);
        let plain = kern.gemm_i4_to_vec(&a, m, &packed, Post::None);
        let gelu = kern.gemm_i4_to_vec(&a, m, &packed, Post::Gelu(GeluKind::Erf));
        for (p, g) in plain.iter().zip(&gelu) {
            assert!((gelu_erf_f64(*p as f64) - *g as f64).abs() < 1e-6, "{}", kern.isa);
        }
    }
}

#[test]
fn group_quantization_is_symmetric_nan_safe_and_least_squares() {
    let mut q = vec![0i8; 6];
    // Whole numbers with amax 7: scale 1 reproduces them exactly, and no other scale can.
    assert_eq!(quantize_group(&[7.0, -7.0, 2.0, 3.0, -1.0, f32::NAN], &mut q), 1.0);
    assert_eq!(q, [7, -7, 2, 3, -1, 0]);
    assert_eq!(quantize_group(&[0.0; 6], &mut q), 0.0);
    assert_eq!(q, [0; 6]);
    assert!(quantize_group(&[1.0, f32::INFINITY, 0.0, 0.0, 0.0, 0.0], &mut q).is_nan());
    assert_eq!(q, [0; 6]);
    // An outlier: a clipped, finer step beats absmax (amax / 7) on squared error.
    let x: Vec<f32> = (0..32).map(|i| if i == 0 { 1.0 } else { ((i * 37 % 29) as f32 - 14.0) / 16.0 }).collect();
    let mut q = vec![0i8; 32];
    let s = quantize_group(&x, &mut q);
    let err = |s: f32, q: &[i8]| x.iter().zip(q).map(|(v, &q)| (v - q as f32 * s).powi(2)).sum::<f32>();
    let absmax = 1.0 / 7.0;
    let q_absmax: Vec<i8> = x.iter().map(|v| (v / absmax).round_ties_even().clamp(-7.0, 7.0) as i8).collect();
    assert!(s <= absmax && err(s, &q) <= err(absmax, &q_absmax), "scale {s}");
    assert!(q.iter().all(|q| (-8..=7).contains(q)));
}

#[test]
fn scales_are_f16_values_inside_f16s_normal_range_and_f32_outside() {
    use e5_kernels::i4gemm::storable_scale;
    let f16_exact = |s: f32| half::f16::from_f32(s).to_f32() == s;
    let mut q = vec![0i8; 32];
    for (seed, magnitude) in [(1, 1.0), (2, 0.02), (3, 3e4), (4, 1e-6), (5, 1e7)] {
        let x = rand_vec(seed, 32, magnitude);
        let s = quantize_group(&x, &mut q);
        let normal = (6.103_515_6e-5..=65504.0).contains(&s);
        assert_eq!(f16_exact(s), normal, "scale {s} of values up to {magnitude}");
    }
    assert_eq!(storable_scale(1.0 / 3.0), half::f16::from_f32(1.0 / 3.0).to_f32());
    assert_eq!(storable_scale(1e-6), 1e-6, "below f16's normal range: kept in f32");
    assert_eq!(storable_scale(1e6), 1e6, "above f16's range: kept in f32");
    assert_eq!(storable_scale(0.0), 0.0);
}

#[test]
fn rows_do_not_depend_on_batch_mates_or_threads() {
    let (m, n, k) = (150, 70, 260);
    let a = rand_vec(5, m * k, 1.0);
    let w = rand_vec(6, n * k, 1.0);
    for kern in Kernels::variants() {
        let packed = PackedI4::quantize(kern, &w, n, k, 32, None);
        let run = |threads: usize, rows: std::ops::Range<usize>| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| kern.gemm_i4_to_vec(&a[rows.start * k..rows.end * k], rows.len(), &packed, Post::None))
        };
        let full = run(1, 0..m);
        assert_eq!(full, run(2, 0..m), "{}", kern.isa);
        assert_eq!(&full[17 * n..40 * n], &run(3, 17..40)[..], "{}", kern.isa);
    }
}

/// Half a byte per weight, 2 bytes per f16 scale (4 when a scale needs f32), 4 per bias.
#[test]
fn packed_size_is_half_a_byte_per_weight_plus_scales() {
    let kern = Kernels::detect().unwrap();
    let (n, k) = (64, 1536);
    let mut w = rand_vec(9, n * k, 1.0);
    for group in GROUP_SIZES {
        let p = PackedI4::quantize(kern, &w, n, k, group, None);
        assert_eq!(p.scale_storage(), Storage::F16);
        assert_eq!(p.bytes(), n * k / 2 + 2 * n * k / group + 4 * n, "group {group}");
    }
    // One group of huge weights: its scale lies above f16's range.
    w[..32].iter_mut().for_each(|v| *v *= 1e7);
    for group in GROUP_SIZES {
        let p = PackedI4::quantize(kern, &w, n, k, group, None);
        assert_eq!(p.scale_storage(), Storage::F32);
        assert_eq!(p.bytes(), n * k / 2 + 4 * n * k / group + 4 * n, "group {group}");
    }
}

/// The scale search as written first, candidate by candidate with `round_ties_even`: the
/// naive twin of [`quantize_group`], which runs the candidates side by side with a
/// branch-free rounding and must match it bit for bit (scale and levels).
fn quantize_group_naive(x: &[f32], q: &mut [i8]) -> f32 {
    let naive_level = |v: f32, s: f32| if v.is_nan() { 0 } else { (v / s).round_ties_even().clamp(-8.0, 7.0) as i8 };
    let amax = x.iter().filter(|v| !v.is_nan()).fold(0.0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return if amax == 0.0 { 0.0 } else { f32::NAN };
    }
    let mut best = (0.0f32, f64::INFINITY);
    for i in 0..=16 {
        let scale = storable_scale(amax / (7.0 + 0.125 * i as f32));
        let levels: Vec<i8> = x.iter().map(|&v| naive_level(v, scale)).collect();
        let error: f64 = x
            .iter()
            .zip(&levels)
            .filter(|(v, _)| !v.is_nan())
            .fold(0.0, |e, (&v, &l)| e + (v as f64 - (l as f32 * scale) as f64).powi(2));
        if error < best.1 {
            best = (scale, error);
            q.copy_from_slice(&levels);
        }
    }
    best.0
}

/// Values that stress the search. With `ties`, every value is a multiple of 0.125 in
/// [-1.75, 1.75] (or a zero, NaN or subnormal) and the first is 1.75: the first candidate's
/// scale is then exactly 0.25, and every odd multiple of 0.125 is a tie it must round to
/// even. Without, ordinary values mixed with those, huge and tiny ones.
fn hostile_group(seed: u64, len: usize, ties: bool) -> Vec<f32> {
    let r = rand_vec(seed, 2 * len, 1.0);
    let mut x: Vec<f32> = (0..len)
        .map(|i| match ((r[2 * i].abs() * 10.0) as u32, ties) {
            (0..=6, true) | (0, false) => (r[2 * i + 1] * 14.0).round() * 0.125,
            (1, false) | (7.., true) => [0.0, -0.0, f32::NAN, 1e-40, -3e-45][i % 5],
            (2, false) => r[2 * i + 1] * 3e38,
            (3, false) => r[2 * i + 1] * 1e-30,
            _ => r[2 * i + 1] * 4.0,
        })
        .collect();
    if ties {
        x[0] = 1.75;
    }
    x
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A magnitude scales the whole group, its ties included (each value stays a half-step
    /// of `amax / 7`); 2⁻¹²⁰ and 2¹⁰⁰ put the scales outside f16's range or values past f32's.
    #[test]
    fn the_scale_search_matches_its_naive_twin(len in 1usize..=128, seed in any::<u64>(), ties in any::<bool>(), magnitude in prop::sample::select(vec![1.0f32, 0.0625, 2f32.powi(-120), 2f32.powi(100), 7.0])) {
        let x: Vec<f32> = hostile_group(seed, len, ties).iter().map(|v| v * magnitude).collect();
        let (mut fast, mut naive) = (vec![0i8; len], vec![0i8; len]);
        let (s, t) = (quantize_group(&x, &mut fast), quantize_group_naive(&x, &mut naive));
        prop_assert_eq!(s.to_bits(), t.to_bits(), "scale of {:?}", x);
        prop_assert_eq!(fast, naive, "levels of {:?}", x);
    }

    /// Any quotient, and exact half-steps `k/2` of a power-of-two scale.
    #[test]
    fn levels_round_half_to_even_and_clamp(v in any::<f32>(), s in any::<f32>(), k in -40i32..40, e in -140i32..120) {
        let want = |v: f32, s: f32| if v.is_nan() { 0 } else { (v / s).round_ties_even().clamp(-8.0, 7.0) as i8 };
        prop_assert_eq!(level(v, s), want(v, s), "level({}, {})", v, s);
        let (s, v) = (2f32.powi(e), k as f32 * 0.5 * 2f32.powi(e));
        prop_assert_eq!(level(v, s), want(v, s), "level({}, {})", v, s);
    }
}

#[test]
fn levels_at_ties_and_limits() {
    for (v, s, want) in [
        (0.5, 1.0, 0),
        (1.5, 1.0, 2),
        (2.5, 1.0, 2),
        (-2.5, 1.0, -2),
        (-7.5, 1.0, -8),
        (-8.5, 1.0, -8),
        (6.5, 1.0, 6),
        (7.5, 1.0, 7),
        (1.0, 0.0, 7),
        (-1.0, 0.0, -8),
        (0.0, 0.0, 0),
        (f32::NAN, 1.0, 0),
        (f32::INFINITY, 1.0, 7),
        (f32::NEG_INFINITY, 1.0, -8),
        (3.0, f32::INFINITY, 0),
        (3.0, -1.0, -3),
    ] {
        assert_eq!(level(v, s), want, "level({v}, {s})");
    }
}
