#!/usr/bin/env python3
"""A mature BLAS on the GEMM report's shapes: numpy's OpenBLAS `sgemm`, for context.

`gemm-report` gives e5's packed GEMM as a % of the FMA probe; this gives what OpenBLAS
(hand-written assembly per CPU, packing both operands on every call) reaches on the same
machine, so a shortfall can be told apart from a machine limit. Same shapes, medians
over `--seconds` per case, GFLOP/s.

    python3 tools/blas_reference.py --threads 2 --ms 128,512
"""
import argparse
import os
import sys
import time

# (K, N) of benches/src/lib.rs GEMM_KNS.
SHAPES = [(384, 384), (384, 1536), (1536, 384), (768, 768), (768, 3072), (3072, 768),
          (1024, 1024), (1024, 4096), (4096, 1024)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ms", default="1,8,17,32,128,512", help="comma-separated M values")
    ap.add_argument("--seconds", type=float, default=0.3, help="time per case")
    args = ap.parse_args()
    # OpenBLAS reads its thread count when it loads, so set it before importing numpy.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    rng = np.random.default_rng(0)
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    print(f"numpy {np.__version__}, {blas['name']} {blas.get('version', '')} | threads {args.threads}\n")
    print("| M | K | N | GFLOP/s (median) | best |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for k, n in SHAPES:
        w = rng.standard_normal((k, n), dtype=np.float32)
        for m in (int(x) for x in args.ms.split(",")):
            a = rng.standard_normal((m, k), dtype=np.float32)
            c = np.empty((m, n), np.float32)
            for _ in range(3):
                np.matmul(a, w, out=c)
            times, end = [], time.perf_counter() + args.seconds
            while len(times) < 5 or time.perf_counter() < end:
                t = time.perf_counter()
                np.matmul(a, w, out=c)
                times.append(time.perf_counter() - t)
            times.sort()
            flops = 2.0 * m * k * n
            print(f"| {m} | {k} | {n} | {flops / times[len(times) // 2] / 1e9:.1f} | {flops / times[0] / 1e9:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
