//! INT8 GEMM: exact integer results on every ISA (bit-identical to the scalar twin and to an
//! i64 reference), no int16 saturation at the extremes, and dequantized accuracy.

mod common;
use common::*;
use e5_kernels::i8gemm::quantize_row;
use e5_kernels::{with_hot_workers, ActQuant, GeluKind, PackedI8, Post};
use proptest::prelude::*;

/// Integer-valued activations whose rows each reach ±127, so per-row quantization is the
/// identity (scale 1) and the kernel's output is the exact integer dot product.
fn int_rows(seed: u64, m: usize, k: usize, extreme: bool) -> Vec<f32> {
    let r = rand_vec(seed, m * k, 1.0);
    let mut a: Vec<f32> = r.iter().map(|v| if extreme { 127f32.copysign(*v) } else { (v * 127.0).round() }).collect();
    for i in 0..m {
        a[i * k] = if r[i * k] < 0.0 { -127.0 } else { 127.0 };
    }
    a
}

fn int_weights(seed: u64, n: usize, k: usize, extreme: bool) -> Vec<i8> {
    let sign = |v: f32| if v < 0.0 { -127 } else { 127 };
    rand_vec(seed, n * k, 1.0).iter().map(|&v| if extreme { sign(v) } else { (v * 127.0).round() as i8 }).collect()
}

fn exact_check(m: usize, n: usize, k: usize, extreme: bool, seed: u64) {
    let a = int_rows(seed, m, k, extreme);
    let q = int_weights(seed + 1, n, k, extreme);
    let want: Vec<f32> = (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            (0..k).map(|c| a[i * k + c] as i64 * q[j * k + c] as i64).sum::<i64>() as f32
        })
        .collect();
    for kern in tables() {
        let w = PackedI8::from_quantized(kern, &q, &vec![1.0; n], n, k, None);
        let mut c = vec![f32::NAN; m * n];
        kern.gemm_i8(&a, m, &w, Post::None, &mut c);
        assert_eq!(c, want, "{} ({}) m={m} n={n} k={k} extreme={extreme}", kern.isa, kern.int8_kernel());
        // Into a fresh vector (no zero fill): every element written, the same bits.
        assert_eq!(kern.gemm_i8_to_vec(&a, m, &w, ActQuant::Dynamic, Post::None), want, "{} to_vec", kern.isa);
    }
}

/// Activation quantization on every ISA: bit-identical to the scalar twin, ties to even,
/// clipping, NaN → 0, and a NaN scale for rows holding ±inf.
fn quantize_check(x: &[f32]) {
    let mut want = vec![0i8; x.len()];
    let want_scale = quantize_row(x, &mut want);
    for kern in tables() {
        let mut q = vec![1i8; x.len()];
        let scale = kern.quantize_row(x, &mut q);
        assert_eq!(q, want, "{} len {}", kern.isa, x.len());
        assert_eq!(scale.to_bits(), want_scale.to_bits(), "{}", kern.isa);
    }
}

#[test]
fn quantization_rounds_ties_to_even_and_handles_specials() {
    // amax 127 → scale 1: the values quantize to themselves, rounded.
    let mut x: Vec<f32> = (0..70).map(|i| (i as f32 - 35.0) * 0.5).collect();
    x.extend([127.0, -127.0, f32::NAN, 0.49, -0.5, 1.5, 2.5, -2.5]);
    quantize_check(&x);
    let mut q = vec![0i8; x.len()];
    assert_eq!(quantize_row(&x, &mut q), 1.0);
    let tail = &q[70..];
    assert_eq!(tail, &[127, -127, 0, 0, 0, 2, 2, -2]);
    quantize_check(&[3.0, f32::INFINITY, -1.0]);
    let mut q = [9i8; 3];
    assert!(quantize_row(&[3.0, f32::INFINITY, -1.0], &mut q).is_nan());
    assert_eq!(q, [0, 0, 0]);
    quantize_check(&[0.0; 40]);
    quantize_check(&[]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn quantization_matches_scalar_on_every_isa(n in 0usize..300, scale in 0.001f32..100.0, seed in any::<u64>()) {
        quantize_check(&rand_vec(seed, n, scale));
    }

    #[test]
    fn integer_results_are_exact_on_every_isa(m in 1usize..40, n in 1usize..70, k in 1usize..300, seed in any::<u64>()) {
        exact_check(m, n, k, false, seed);
    }

    /// The fused residual is added to the finished (dequantized, biased) value, tails included.
    #[test]
    fn residual_is_added_to_the_dequantized_value(m in 1usize..20, n in 1usize..50, k in 1usize..200, seed in any::<u64>()) {
        let a = rand_vec(seed, m * k, 2.0);
        let w = rand_vec(seed + 1, n * k, 0.3);
        let bias = rand_vec(seed + 2, n, 0.5);
        let res = rand_vec(seed + 3, m * n, 1.0);
        for kern in tables() {
            let q = PackedI8::quantize(kern, &w, n, k, Some(&bias));
            let plain = kern.gemm_i8_to_vec(&a, m, &q, ActQuant::Dynamic, Post::None);
            let fused = kern.gemm_i8_to_vec(&a, m, &q, ActQuant::Dynamic, Post::Residual(&res));
            for ((f, p), r) in fused.iter().zip(&plain).zip(&res) {
                prop_assert_eq!(f.to_bits(), (p + r).to_bits(), "{}", kern.isa);
            }
        }
    }

    #[test]
    fn dequantized_result_tracks_f32(m in 1usize..20, n in 1usize..50, k in 4usize..400, post in 0u8..3, seed in any::<u64>()) {
        let a = rand_vec(seed, m * k, 2.0);
        let w = rand_vec(seed + 1, n * k, 0.3);
        let bias = rand_vec(seed + 2, n, 0.5);
        let p = [Post::None, Post::Gelu(GeluKind::Erf), Post::Gelu(GeluKind::Tanh)][post as usize];
        for kern in tables() {
            let packed = e5_kernels::PackedF32::from_rows(kern, &w, n, k, k, Some(&bias));
            let mut want = vec![0.0; m * n];
            kern.gemm(&a, m, &packed, p, &mut want);
            let q = PackedI8::quantize(kern, &w, n, k, Some(&bias));
            let mut got = vec![0.0; m * n];
            kern.gemm_i8(&a, m, &q, p, &mut got);
            // Error of two 8-bit roundings over k terms: ~ (|a|max·|w|max/127)·√k.
            let tol = 2.0 * 0.3 / 127.0 * 2.0 * (k as f32).sqrt() + 1e-4;
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= tol, "{}: {} vs {} (tol {})", kern.isa, g, w, tol);
            }
        }
    }
}

#[test]
fn extreme_values_never_saturate() {
    // All activations and weights at ±127: every int16 pair sum in the AVX2 path is ±32 258.
    for (m, n, k) in [(4, 16, 4), (7, 33, 1000), (1, 1, 2), (13, 40, 512)] {
        exact_check(m, n, k, true, (m * n * k) as u64);
    }
    // Activations all +127 against weights all -127, the largest magnitude per pair.
    for kern in tables() {
        let k = 1024;
        let a = vec![127.0f32; 3 * k];
        let q = vec![-127i8; 5 * k];
        let w = PackedI8::from_quantized(kern, &q, &[1.0; 5], 5, k, None);
        let mut c = vec![0.0; 15];
        kern.gemm_i8(&a, 3, &w, Post::None, &mut c);
        assert!(c.iter().all(|&v| v == -(127 * 127 * k as i64) as f32), "{}: {:?}", kern.int8_kernel(), &c[..3]);
    }
}

#[test]
fn rows_do_not_depend_on_batch_mates_or_threads() {
    let (m, n, k) = (150, 77, 333);
    let a = rand_vec(9, m * k, 1.0);
    let w = rand_vec(10, n * k, 1.0);
    for kern in tables() {
        let q = PackedI8::quantize(kern, &w, n, k, None);
        let run = |rows: std::ops::Range<usize>, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = vec![0.0; rows.len() * n];
            pool.install(|| {
                kern.gemm_i8(&a[rows.start * k..rows.end * k], rows.len(), &q, Post::Gelu(GeluKind::Erf), &mut c)
            });
            c
        };
        let full = run(0..m, 2);
        assert_eq!(full, run(0..m, 1), "{}", kern.int8_kernel());
        assert_eq!(&full[37 * n..90 * n], &run(37..90, 2)[..], "{}", kern.int8_kernel());
    }
}

#[test]
fn activations_quantized_on_the_team_give_the_same_bits() {
    // A split GEMM of two strips or more quantizes a strip per task (17 rows: two strips;
    // 1 and 5 rows stay on the caller): the same bits on 1, 2 and 3 threads, inside
    // `with_hot_workers` as the model runs, for every activation mode, including a smoothed
    // row past its calibrated range.
    let n = 77;
    for k in [333, 1536] {
        let w = rand_vec(10, n * k, 1.0);
        let inv: Vec<f32> = rand_vec(11, k, 1.0).iter().map(|v| 20.0 + 10.0 * v).collect();
        for m in [1, 5, 17] {
            let mut a = rand_vec(9, m * k, 1.0);
            a[k / 2] = 40.0; // row 0, smoothed: 40·inv[k/2] ≥ 400 > 127, its own scale.
            for kern in tables() {
                let q = PackedI8::quantize(kern, &w, n, k, None);
                for act in [ActQuant::Dynamic, ActQuant::Static(0.01), ActQuant::Smoothed { scale: 1.0, inv: &inv }] {
                    let what = format!("{} k {k} m {m} {act:?}", kern.int8_kernel());
                    assert_same_on_any_thread_count(&what, || {
                        with_hot_workers(|| kern.gemm_i8_to_vec(&a, m, &q, act, Post::None))
                    });
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_prefetch_distance() {
    // None, inside a group, a few groups and past a whole panel (K = 333: 84 groups of 128
    // bytes), at batch-1 and many-strip heights: the same bits as the default distance.
    let (n, k) = (77, 333);
    let w = rand_vec(10, n * k, 1.0);
    for m in [17, 150] {
        let a = rand_vec(9, m * k, 1.0);
        for kern in tables() {
            let q = PackedI8::quantize(kern, &w, n, k, None);
            let mut want = vec![0.0; m * n];
            kern.gemm_i8(&a, m, &q, Post::Gelu(GeluKind::Erf), &mut want);
            for bytes in [0, 64, 512, 4096, 1 << 20] {
                let mut got = vec![f32::NAN; m * n];
                kern.with_i8_prefetch(bytes).gemm_i8(&a, m, &q, Post::Gelu(GeluKind::Erf), &mut got);
                let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{} M {m}: prefetch {bytes} B changed the results", kern.int8_kernel());
            }
        }
    }
}

#[test]
fn row_quantization_is_symmetric_and_bounded() {
    let x = [0.5f32, -1.0, 0.25, 0.0];
    let mut q = [0i8; 4];
    let s = quantize_row(&x, &mut q);
    assert_eq!(q, [64, -127, 32, 0]);
    assert!((s - 1.0 / 127.0).abs() < 1e-9);
    assert_eq!(quantize_row(&[0.0; 3], &mut q[..3]), 0.0);
    assert_eq!(&q[..3], &[0, 0, 0]);
}

#[test]
fn static_scale_quantizes_and_clips_per_tensor() {
    let (m, n, k) = (5, 19, 40);
    // Integer activations in [-60, 60] with scale 1: exact; one 500 clips to 127.
    let mut a: Vec<f32> = rand_vec(21, m * k, 60.0).iter().map(|v| v.round()).collect();
    a[7] = 500.0;
    let q = int_weights(22, n, k, false);
    for kern in tables() {
        let w = PackedI8::from_quantized(kern, &q, &vec![1.0; n], n, k, None);
        let mut c = vec![0.0; m * n];
        kern.gemm_i8_quantized(&a, m, &w, ActQuant::Static(1.0), Post::None, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: i64 = (0..k).map(|c| (a[i * k + c].clamp(-127.0, 127.0) as i64) * q[j * k + c] as i64).sum();
                assert_eq!(c[i * n + j], want as f32, "{}", kern.int8_kernel());
            }
        }
    }
}

#[test]
fn smoothed_static_scale_divides_each_channel_and_is_a_floor() {
    let (m, n, k) = (70, 19, 40);
    // Channel j carries the smoothing factor s[j] = 2^(j mod 5) and the tensor scale 0.5:
    // x = v·s·scale with integer v, so x·inv is v again (exactly). Row 0 holds a v of 500,
    // outside the range: it takes its own scale (500 / 127) instead of clipping.
    let (scale, s): (f32, Vec<f32>) = (0.5, (0..k).map(|j| (1 << (j % 5)) as f32).collect());
    let mut v: Vec<f32> = rand_vec(23, m * k, 60.0).iter().map(|v| v.round()).collect();
    v[7] = 500.0;
    let a: Vec<f32> = v.iter().enumerate().map(|(i, v)| v * s[i % k] * scale).collect();
    let inv: Vec<f32> = s.iter().map(|s| 1.0 / (s * scale)).collect();
    let q = int_weights(24, n, k, false);
    let mut row0 = vec![0i8; k];
    let row0_scale = quantize_row(&v[..k], &mut row0);
    assert_eq!(row0_scale, 500.0 / 127.0);
    for kern in tables() {
        let w = PackedI8::from_quantized(kern, &q, &vec![1.0; n], n, k, None);
        let c = kern.gemm_i8_to_vec(&a, m, &w, ActQuant::Smoothed { scale, inv: &inv }, Post::None);
        for i in 0..m {
            for j in 0..n {
                let w_row = &q[j * k..][..k];
                let (want, tol) = match i {
                    0 => {
                        let dot: i64 = row0.iter().zip(w_row).map(|(a, w)| *a as i64 * *w as i64).sum();
                        (dot as f32 * row0_scale * scale, 1e-6 * (dot as f32 * row0_scale * scale).abs())
                    }
                    _ => {
                        let dot: i64 = v[i * k..][..k].iter().zip(w_row).map(|(a, w)| *a as i64 * *w as i64).sum();
                        (dot as f32 * scale, 0.0)
                    }
                };
                let got = c[i * n + j];
                assert!((got - want).abs() <= tol, "{} ({i}, {j}): {got} vs {want}", kern.int8_kernel());
            }
        }
    }
}
