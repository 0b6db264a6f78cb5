"""PyTorch fp32 reference vs e5's output: usage parity.py MODEL_DIR TEXTS_TXT E5_OUT_NPY -> JSON line."""
import json
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, e5_npy = sys.argv[1:4]
texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
st = SentenceTransformer(model_dir, device="cuda")
torch.backends.cuda.matmul.allow_tf32 = False
ref = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True).astype(np.float64)
got = np.load(e5_npy).astype(np.float64)
assert got.shape == ref.shape, f"shape {got.shape} vs reference {ref.shape}"
cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
print(json.dumps({"model": model_dir, "n": len(texts), "cos_min": float(cos.min()),
                  "cos_mean": float(cos.mean()), "pass": bool(cos.min() >= 0.9999)}))
