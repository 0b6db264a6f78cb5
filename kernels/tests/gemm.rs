//! The packed f32 GEMM on every ISA against an f64 reference, tails included, and its
//! determinism contract: a row's result is independent of M, of its batch-mates and of
//! the thread count.

mod common;
use common::*;
use e5_kernels::{with_hot_workers, Blocking, GeluKind, PackedF32, Post, Prefetch};
use proptest::prelude::*;

/// f64 `post(A·Wᵀ + b)` and the per-element error scale `Σ|a·w| + |b|`.
fn reference(a: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut g) = (bias[j] as f64, (bias[j] as f64).abs());
            for c in 0..k {
                let p = a[i * k + c] as f64 * w[j * k + c] as f64;
                s += p;
                g += p.abs();
            }
            out[i * n + j] = s;
            mag[i * n + j] = g;
        }
    }
    (out, mag)
}

fn check(m: usize, n: usize, k: usize, post: u8, seed: u64) {
    let a = rand_vec(seed, m * k, 1.0);
    let w = rand_vec(seed + 1, n * k, 0.5);
    let bias = rand_vec(seed + 2, n, 0.3);
    let res = rand_vec(seed + 3, m * n, 1.0);
    let (mut want, mag) = reference(&a, &w, &bias, m, n, k);
    let (p, gelu_err) = match post {
        0 => (Post::None, 0.0),
        1 => (Post::Gelu(GeluKind::Erf), 1e-6),
        2 => (Post::Gelu(GeluKind::Tanh), 1e-6),
        _ => (Post::Residual(&res), 0.0),
    };
    for (i, v) in want.iter_mut().enumerate() {
        *v = match post {
            0 => *v,
            1 => gelu_erf_f64(*v),
            2 => gelu_tanh_f64(*v),
            _ => *v + res[i] as f64,
        };
    }
    for kern in tables() {
        let packed = PackedF32::from_rows(kern, &w, n, k, k, Some(&bias));
        let mut c = vec![f32::NAN; m * n];
        kern.gemm(&a, m, &packed, p, &mut c);
        // Into a fresh vector (no zero fill): the same bits.
        let fresh = kern.gemm_to_vec(&a, m, &packed, p);
        assert!(fresh.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()), "{} gemm_to_vec", kern.isa);
        for (idx, (got, want)) in c.iter().zip(&want).enumerate() {
            // f32 accumulation error bound, plus the activation's own error.
            let tol = 2e-7 * (k as f64 + 2.0) * (mag[idx] + 1.0) + gelu_err + 1e-7 * want.abs();
            assert_close(*got, *want, tol, format_args!("{} m={m} n={n} k={k} post={post} at {idx}", kern.isa));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn gemm_matches_f64(m in 1usize..40, n in 1usize..80, k in 1usize..600, post in 0u8..4, seed in any::<u64>()) {
        check(m, n, k, post, seed);
    }

    /// Any subset of rows, computed alone, is bit-identical to the same rows in the full batch.
    #[test]
    fn rows_do_not_depend_on_batch_mates(m in 2usize..200, n in 1usize..70, k in 1usize..600, start in 0usize..59, seed in any::<u64>()) {
        let w = rand_vec(seed + 1, n * k, 1.0);
        for kern in tables() {
            let packed = PackedF32::from_rows(kern, &w, n, k, k, None);
            assert_rows_alone_match_batch((m, n, k), start, seed, &kern.isa.to_string(), |a, m| {
                let mut c = vec![0.0; m * n];
                kern.gemm(a, m, &packed, Post::Gelu(GeluKind::Erf), &mut c);
                c
            });
        }
    }
}

#[test]
fn gemm_shapes_of_real_models() {
    // e5-small attention/FFN shapes with a query-sized and a batch-sized M.
    // K = 1024, 2048: row strides of whole 4 KiB pages take the packed-A path (a lone row, a
    // last strip of 1 or 5 rows). K = 2048 and 3100 at M > 4 strips: several K slices
    // (partial sums round-trip through C) on every ISA.
    for (m, n, k) in [
        (17, 384, 384),
        (17, 1536, 384),
        (130, 384, 1536),
        (3, 1152, 384),
        (17, 40, 1024),
        (1, 50, 1024),
        (13, 37, 2048),
        (100, 33, 2048),
        (61, 70, 3100),
    ] {
        check(m, n, k, (m % 4) as u8, m as u64);
    }
}

#[test]
fn sliced_rows_do_not_depend_on_batch_mates() {
    // 120 rows take several `K` slices at K = 2300 (and 3072, packed `A`); 10 of them
    // computed alone take one.
    for k in [2300, 3072] {
        let n = 40;
        let w = rand_vec(5, n * k, 1.0);
        for kern in tables() {
            let packed = PackedF32::from_rows(kern, &w, n, k, k, None);
            for start in [0, 13, 58] {
                assert_rows_alone_match_batch((120, n, k), start, 9, &kern.isa.to_string(), |a, m| {
                    let mut c = vec![0.0; m * n];
                    kern.gemm(a, m, &packed, Post::Gelu(GeluKind::Erf), &mut c);
                    c
                });
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    // K = 1024 packs `A` first, a strip per task when the GEMM is split (17 rows: two
    // strips); inside `with_hot_workers`, as the model runs, the tasks go to its team.
    let n = 389;
    for (m, k) in [(203, 301), (203, 1024), (17, 1024)] {
        let a = rand_vec(7, m * k, 1.0);
        let w = rand_vec(8, n * k, 1.0);
        for kern in tables() {
            let packed = PackedF32::from_rows(kern, &w, n, k, k, None);
            assert_same_on_any_thread_count(&format!("{} m {m} k {k}", kern.isa), || {
                with_hot_workers(|| {
                    let mut c = vec![0.0; m * n];
                    kern.gemm(&a, m, &packed, Post::None, &mut c);
                    c
                })
            });
        }
    }
}

#[test]
fn results_do_not_depend_on_the_blocking() {
    // Shallow and deep `K` slices, one-strip and many-strip blocks, one-panel and unchunked
    // panel groups, with and without software prefetch (every `Prefetch`): the same bits as
    // the derived blocking, with every epilogue (each is applied on the last slice only).
    // K = 1024 also takes the packed-`A` path.
    let (m, n) = (150, 200);
    for k in [301, 1024] {
        let a = rand_vec(9, m * k, 1.0);
        let (w, r) = (rand_vec(10, n * k, 1.0), rand_vec(11, m * n, 1.0));
        for kern in tables() {
            let packed = PackedF32::from_rows(kern, &w, n, k, k, Some(&rand_vec(12, n, 1.0)));
            let mr = kern.f32_tile().0;
            let blockings = [
                (64, mr, 1, Prefetch::Ahead),
                (100, 2 * mr, 3, Prefetch::None),
                (1 << 20, 16 * mr, 1 << 20, Prefetch::NextPanelShares),
                (512, 3 * mr, 2, Prefetch::None),
                (1 << 20, 4 * mr, 1 << 20, Prefetch::TallStripsL2),
                (300, 8 * mr, 2, Prefetch::TallStripsL2),
            ];
            for post in [Post::None, Post::Gelu(GeluKind::Erf), Post::Residual(&r)] {
                let mut want = vec![0.0; m * n];
                kern.gemm(&a, m, &packed, post, &mut want);
                for (kc, mc, nc, prefetch) in blockings {
                    let mut got = vec![f32::NAN; m * n];
                    kern.with_f32_blocking(Blocking { kc, mc, nc, prefetch }).gemm(&a, m, &packed, post, &mut got);
                    let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{} K {k} KC {kc} MC {mc} NC {nc} {prefetch:?} {post:?}", kern.isa);
                }
            }
        }
    }
}

#[test]
fn strided_and_transposed_packing() {
    // C = A · V where V is [k, n] with row stride 7 > n: from_cols packs Vᵀ.
    let (m, k, n, ldv) = (5, 9, 4, 7);
    let a = rand_vec(1, m * k, 1.0);
    let v = rand_vec(2, k * ldv, 1.0);
    for kern in tables() {
        let packed = PackedF32::from_cols(kern, &v, k, n, ldv);
        let mut c = vec![0.0; m * 6];
        kern.gemm_strided(&a, k, m, &packed, Post::None, &mut c, 6, false);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|c| a[i * k + c] as f64 * v[c * ldv + j] as f64).sum();
                assert!((c[i * 6 + j] as f64 - want).abs() < 1e-5, "{}", kern.isa);
            }
            assert_eq!(&c[i * 6 + n..i * 6 + 6], &[0.0, 0.0], "{} wrote past n", kern.isa);
        }
    }
}

#[test]
fn half_storage_equals_f32_on_rounded_weights() {
    // M = 21: few strips, one K slice, widened in registers where the kernel can (AVX2);
    // M = 150, K = 2300: row blocks of many strips, several K slices, widened through a buffer.
    for (m, k) in [(21, 300), (150, 2300)] {
        half_storage_check(m, 45, k);
    }
}

fn half_storage_check(m: usize, n: usize, k: usize) {
    use e5_kernels::Storage;
    let a = rand_vec(11, m * k, 1.0);
    let w = rand_vec(12, n * k, 1.0);
    for kern in tables() {
        for (storage, round) in [
            (Storage::F16, (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32),
            (Storage::Bf16, |v: f32| half::bf16::from_f32(v).to_f32()),
        ] {
            let half = PackedF32::from_rows(kern, &w, n, k, k, None).stored_as(storage);
            assert_eq!(half.storage(), storage);
            let rounded: Vec<f32> = w.iter().map(|&v| round(v)).collect();
            let exact = PackedF32::from_rows(kern, &rounded, n, k, k, None);
            let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
            kern.gemm(&a, m, &half, Post::None, &mut c1);
            kern.gemm(&a, m, &exact, Post::None, &mut c2);
            assert_eq!(c1, c2, "{} {storage:?}", kern.isa);
            assert!(half.bytes() < exact.bytes() * 6 / 10);
        }
    }
}

#[test]
fn weights_on_huge_pages_give_the_same_bits() {
    // Every packed format, moved onto 2 MiB pages (`into_huge_pages`), at batch 1 and 150:
    // the same bits as on the heap. (Where the kernel grants no huge pages the buffers move
    // to plain mapped memory: the check still holds.)
    use e5_kernels::{PackedBf16, PackedI4, PackedI8, Storage};
    let (n, k) = (389, 512);
    let (w, bias) = (rand_vec(21, n * k, 0.5), rand_vec(22, n, 0.3));
    for kern in tables() {
        for m in [1, 150] {
            let a = rand_vec(23, m * k, 1.0);
            let same = |what: &str, heap: Vec<f32>, huge: Vec<f32>| {
                let same = heap.iter().zip(&huge).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same && heap.len() == m * n, "{} {what} M {m}", kern.isa);
            };
            for storage in [Storage::F32, Storage::F16, Storage::Bf16] {
                let heap = PackedF32::from_rows(kern, &w, n, k, k, Some(&bias)).stored_as(storage);
                let huge = heap.clone().into_huge_pages();
                let run = |p: &PackedF32| kern.gemm_to_vec(&a, m, p, Post::Gelu(GeluKind::Erf));
                same(&format!("{storage:?}"), run(&heap), run(&huge));
            }
            let heap = PackedI8::quantize(kern, &w, n, k, Some(&bias));
            let run = |p: &PackedI8| {
                let mut c = vec![0.0; m * n];
                kern.gemm_i8(&a, m, p, Post::None, &mut c);
                c
            };
            same("int8", run(&heap), run(&heap.clone().into_huge_pages()));
            let heap = PackedI4::quantize(kern, &w, n, k, 32, Some(&bias));
            let run = |p: &PackedI4| kern.gemm_i4_to_vec(&a, m, p, Post::None);
            same("int4", run(&heap), run(&heap.clone().into_huge_pages()));
            if let Some(dot) = kern.bf16_dot().unwrap() {
                let heap = PackedBf16::from_rows(dot, &w, n, k, k, Some(&bias));
                let run = |p: &PackedBf16| {
                    let mut c = vec![0.0; m * n];
                    p.gemm(&a, m, Post::None, &mut c);
                    c
                };
                same("bf16-dot", run(&heap), run(&heap.clone().into_huge_pages()));
            }
        }
    }
}
