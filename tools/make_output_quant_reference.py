#!/usr/bin/env python3
"""Reference outputs of sentence-transformers' `quantize_embeddings` (run here only; CI never
runs it: it needs torch). Writes tests/fixtures/reference/output_quantization.safetensors,
which tests/tests/output_vectors/mod.rs holds e5's output precisions to, bit for bit.

Environment: tools/requirements-reference.txt (sentence-transformers 6.2.0, numpy 2.4.6).

Two sets of float vectors:
- e5: the 144 multilingual-e5-small embeddings of tests/fixtures/reference/e5-small.safetensors
  (sentence-transformers' own). Calibration: the rows i % 3 != 0; quantized: all 144 rows, so
  the other third exercises values outside the calibrated ranges.
- edge: 20 dimensions (binary packs 3 bytes, the last padded), with a constant calibration
  dimension (step 0 → 1), values outside the ranges, on the ranges' bounds and on bucket edges,
  zeros, negative zeros, ±1e30 and subnormals.

Tensors: {set}_vectors F32 [n, d] (edge only: e5's are in e5-small.safetensors),
{set}_calibration_rows I64 [c] (e5) or {set}_calibration F32 [c, d] (edge),
{set}_ranges F32 [2, d], {set}_{int8,uint8,binary,ubinary} [n, d or ceil(d/8)].
"""
from pathlib import Path

import numpy as np
import sentence_transformers
from safetensors.numpy import load_file, save_file
from sentence_transformers.util.quantization import quantize_embeddings

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "tests" / "fixtures" / "reference"
PRECISIONS = ["int8", "uint8", "binary", "ubinary"]


def edge_set():
    rng = np.random.default_rng(19)
    d = 20
    cal = (rng.standard_normal((6, d)) * 0.1).astype(np.float32)
    cal[:, 3] = 0.25  # constant: step 0, replaced by 1
    cal[:, 7] = 0.0
    lo, hi = cal.min(axis=0), cal.max(axis=0)
    step = (hi - lo) / np.float32(255)
    rows = [
        (rng.standard_normal(d) * 0.2).astype(np.float32),  # partly outside the ranges
        np.zeros(d, np.float32),
        np.full(d, -0.0, np.float32),
        lo,
        hi,
        lo + step * np.float32(17),  # on a bucket edge (as f32 computes it)
        lo + step * np.float32(254),
        np.where(np.arange(d) % 2 == 0, 1e30, -1e30).astype(np.float32),
        np.full(d, 1e-40, np.float32),  # subnormal: > 0, so a set bit
        np.full(d, -1e-40, np.float32),
    ]
    return cal, np.stack(rows).astype(np.float32)


def quantized(name, vectors, calibration):
    out = {}
    ranges = np.vstack((calibration.min(axis=0), calibration.max(axis=0))).astype(np.float32)
    out[f"{name}_ranges"] = ranges
    for p in PRECISIONS:
        q = quantize_embeddings(vectors, precision=p, calibration_embeddings=calibration)
        # The ranges sentence-transformers derives from the calibration set are these.
        assert np.array_equal(q, quantize_embeddings(vectors, precision=p, ranges=ranges)), p
        out[f"{name}_{p}"] = np.ascontiguousarray(q)
    return out


def main():
    tensors = {}
    e5 = load_file(str(REF / "e5-small.safetensors"))["embeddings"]
    rows = np.array([i for i in range(len(e5)) if i % 3 != 0], dtype=np.int64)
    tensors["e5_calibration_rows"] = rows
    tensors.update(quantized("e5", e5, e5[rows]))
    cal, vectors = edge_set()
    tensors["edge_vectors"] = vectors
    tensors["edge_calibration"] = cal
    tensors.update(quantized("edge", vectors, cal))
    meta = {
        "tool": "tools/make_output_quant_reference.py",
        "sentence_transformers": sentence_transformers.__version__,
        "numpy": np.__version__,
    }
    save_file(tensors, str(REF / "output_quantization.safetensors"), metadata=meta)
    for k, v in sorted(tensors.items()):
        print(k, v.dtype, v.shape)


if __name__ == "__main__":
    main()
