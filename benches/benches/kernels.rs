//! Criterion benchmarks of every kernel family on this machine's best ISA (`E5_ISA` forces
//! another): packed f32 GEMM side by side with the `gemm` crate, int8 GEMM, attention,
//! LayerNorm, GELU, f16/bf16 widening (side by side with the `half` crate), int8
//! activation quantization (every ISA) and the int4 weight quantization of a model's load.
//! Throughput is reported in FLOP (GEMM, attention) or elements.
//!
//! `cargo bench -p e5-benches --bench kernels [-- FILTER]`; for the ratio table with % of
//! FMA peak, run `cargo run --release -p e5-benches --bin gemm-report`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use e5_benches::*;
use e5_kernels::{AttentionShape, GeluKind, Isa, Kernels, PackedF32, PackedI4, PackedI8, Post, Storage};
use half::slice::HalfFloatSliceExt;
use std::hint::black_box;
use std::time::Duration;

fn gemm(c: &mut Criterion) {
    let kern = Kernels::detect().unwrap();
    let threads = rayon::current_num_threads();
    let mut g = c.benchmark_group("gemm");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    for &(k, n) in &GEMM_KNS {
        let w = rand_vec(1, n * k);
        let bias = rand_vec(2, n);
        let packed = PackedF32::from_rows(kern, &w, n, k, k, Some(&bias));
        let packed_i8 = PackedI8::quantize(kern, &w, n, k, Some(&bias));
        for &m in &GEMM_MS {
            let a = rand_vec(3, m * k);
            let mut out = vec![0.0; m * n];
            g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
            let id = format!("m{m}_k{k}_n{n}");
            g.bench_function(BenchmarkId::new("e5_f32", &id), |b| {
                b.iter(|| kern.gemm(black_box(&a), m, &packed, Post::None, &mut out))
            });
            g.bench_function(BenchmarkId::new("gemm_crate", &id), |b| {
                b.iter(|| gemm_crate(black_box(&a), &w, &bias, &mut out, m, n, k, threads))
            });
            g.bench_function(BenchmarkId::new("e5_int8", &id), |b| {
                b.iter(|| kern.gemm_i8(black_box(&a), m, &packed_i8, Post::None, &mut out))
            });
        }
    }
}

fn attention(c: &mut Criterion) {
    let kern = Kernels::detect().unwrap();
    let mut g = c.benchmark_group("attention");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    for (h, heads) in [(384, 12), (768, 12), (1024, 16)] {
        for len in [16, 128, 512] {
            let qkv = rand_vec(4, len * 3 * h);
            let mut out = vec![0.0; len * h];
            g.throughput(Throughput::Elements((4 * len * len * h) as u64));
            g.bench_function(BenchmarkId::new(format!("h{h}"), len), |b| {
                b.iter(|| kern.attention(black_box(&qkv), &[0, len], AttentionShape { hidden: h, heads }, &mut out))
            });
        }
    }
}

fn rows(c: &mut Criterion) {
    let kern = Kernels::detect().unwrap();
    let mut g = c.benchmark_group("rows");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    let (t, h) = (512, 384);
    let x = rand_vec(5, t * h);
    let r = rand_vec(6, t * h);
    let (gamma, beta) = (rand_vec(7, h), rand_vec(8, h));
    g.throughput(Throughput::Elements((t * h) as u64));
    g.bench_function("layernorm_residual_512x384", |b| {
        b.iter(|| {
            let mut y = x.clone();
            kern.layernorm_rows(&mut y, Some(&r), &gamma, &beta, 1e-12);
            y
        })
    });
    let up = rand_vec(9, t * 1536);
    g.throughput(Throughput::Elements(up.len() as u64));
    // Every table this CPU has: AVX-512's erf GELU is tabled, the others' is the erfc
    // formula, so `gelu_erf_512x1536/avx512` against `/avx2` compares the two on one CPU.
    for (name, kind) in [("gelu_erf_512x1536", GeluKind::Erf), ("gelu_tanh_512x1536", GeluKind::Tanh)] {
        for isa in Isa::available() {
            let kern = Kernels::get(isa).unwrap();
            g.bench_function(BenchmarkId::new(name, isa), |b| {
                b.iter(|| {
                    let mut y = up.clone();
                    kern.gelu(kind, &mut y);
                    y
                })
            });
        }
    }
}

/// Widening one 384 × 384 weight matrix of f16 / bf16 into f32, as the GEMM does per panel.
fn widen(c: &mut Criterion) {
    let kern = Kernels::detect().unwrap();
    let mut g = c.benchmark_group("widen");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    let w = rand_vec(10, 384 * 384);
    let f16s: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
    let bf16s: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let mut dst = vec![0.0f32; w.len()];
    g.throughput(Throughput::Elements(w.len() as u64));
    g.bench_function("e5_f16", |b| b.iter(|| kern.widen(Storage::F16, f16s.reinterpret_cast(), black_box(&mut dst))));
    g.bench_function("half_crate_f16", |b| b.iter(|| f16s.convert_to_f32_slice(black_box(&mut dst))));
    g.bench_function("e5_bf16", |b| {
        b.iter(|| kern.widen(Storage::Bf16, bf16s.reinterpret_cast(), black_box(&mut dst)))
    });
    g.bench_function("half_crate_bf16", |b| b.iter(|| bf16s.convert_to_f32_slice(black_box(&mut dst))));
}

/// Per-token activation quantization (max |x|, then round to int8) of 32 rows of 384 and
/// of 1536, as the int8 GEMM does before each product, on every table this CPU has: into a
/// row buffer then scattered into a 12-row strip's 4-byte cells (`rows_…`, what the int8
/// GEMM did before `quantize_i8_cells`), and straight into the cells (`cells_…`).
fn quantize(c: &mut Criterion) {
    let mut g = c.benchmark_group("quantize");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    for k in [384, 1536] {
        let x = rand_vec(11, 32 * k);
        // Three 12-row strips hold the 32 rows (and 4 padding rows).
        let (mut q, mut strip) = (vec![0i8; k], vec![0i8; 36 * k]);
        g.throughput(Throughput::Elements(x.len() as u64));
        for isa in Isa::available() {
            let kern = Kernels::get(isa).unwrap();
            // Row `r`'s cells start at byte `(r % 12)·4` of strip `r / 12`, 48 bytes apart.
            let first = |r: usize| (r / 12) * 12 * k + (r % 12) * 4;
            g.bench_function(BenchmarkId::new(format!("rows_32x{k}"), isa), |b| {
                b.iter(|| {
                    for (r, x) in x.chunks_exact(k).enumerate() {
                        black_box(kern.quantize_row(x, &mut q));
                        let dst = strip[first(r)..].as_mut_ptr();
                        for (g, v) in q.chunks_exact(4).enumerate() {
                            // SAFETY: cell `g` of row `r` lies inside `strip`.
                            unsafe { dst.add(g * 48).cast::<[i8; 4]>().write_unaligned([v[0], v[1], v[2], v[3]]) };
                        }
                    }
                    black_box(&strip);
                })
            });
            g.bench_function(BenchmarkId::new(format!("cells_32x{k}"), isa), |b| {
                b.iter(|| {
                    for (r, x) in x.chunks_exact(k).enumerate() {
                        let inv = 127.0 / kern.abs_max(x);
                        kern.quantize_i8_cells(x, inv, 0x8080_8080, &mut strip[first(r)..], 48);
                    }
                    black_box(&strip);
                })
            });
        }
    }
}

/// The int4 weight quantization `--precision int4-g*` runs at load (the scale search of every
/// group, `PackedI4::quantize_levels`), on one thread, for a 384 × 1536 weight.
fn int4_weights(c: &mut Criterion) {
    let mut g = c.benchmark_group("int4_weights");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(10);
    let (n, k) = (384, 1536);
    let w = rand_vec(12, n * k);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    g.throughput(Throughput::Elements(w.len() as u64));
    for group in [32, 128] {
        g.bench_function(BenchmarkId::new("quantize_levels", format!("g{group}")), |b| {
            b.iter(|| one.install(|| black_box(PackedI4::quantize_levels(&w, n, k, group))))
        });
    }
}

criterion_group!(benches, gemm, attention, rows, widen, quantize, int4_weights);
criterion_main!(benches);
