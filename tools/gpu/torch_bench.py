"""PyTorch fp16 sentence-transformers throughput: usage torch_bench.py MODEL_DIR TEXTS_TXT BATCH SECONDS."""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, batch, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
st = SentenceTransformer(model_dir, device="cuda").half()
st.encode(texts, batch_size=batch)  # warm-up: one full pass, so every shape has been seen once
torch.cuda.synchronize()
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    st.encode(texts, batch_size=batch, normalize_embeddings=True)
    torch.cuda.synchronize()
    done += len(texts)
elapsed = time.perf_counter() - start
print(json.dumps({"sentences_per_s": done / elapsed}))
