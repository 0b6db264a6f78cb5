#!/usr/bin/env python3
"""Random-weight XLMRobertaModel-shaped models for speed benchmarks (numpy only).

  python3 tools/make_random_model.py --shape base   -> models/e5-base-random/
  python3 tools/make_random_model.py --shape large  -> models/e5-large-random/

Weights ~ N(0, 0.02) from a fixed seed, LayerNorm weight 1 / bias 0, biases 0.
tokenizer.json and the sentence-transformers files come from
models/multilingual-e5-small (run tools/build_models.py first).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_models import write_json, write_safetensors, write_xlmr_side_files  # noqa: E402

SHAPES = {"base": dict(hidden=768, layers=12, heads=12, inter=3072),
          "large": dict(hidden=1024, layers=24, heads=16, inter=4096)}
VOCAB, MAXPOS = 250002, 514


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--models", default=str(root / "models"))
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    s = SHAPES[a.shape]
    H, FF = s["hidden"], s["inter"]
    src = Path(a.models) / "multilingual-e5-small"
    if not (src / "tokenizer.json").exists():
        sys.exit(f"make_random_model.py: {src}/tokenizer.json missing; run tools/setup-models.sh first")
    out = Path(a.models) / f"e5-{a.shape}-random"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    def rnd(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02))

    T = {"embeddings.word_embeddings.weight": rnd(VOCAB, H),
         "embeddings.position_embeddings.weight": rnd(MAXPOS, H),
         "embeddings.token_type_embeddings.weight": rnd(1, H),
         "embeddings.LayerNorm.weight": np.ones(H, np.float32),
         "embeddings.LayerNorm.bias": np.zeros(H, np.float32)}
    for l in range(s["layers"]):
        p = f"encoder.layer.{l}."
        for n in ("query", "key", "value"):
            T[p + f"attention.self.{n}.weight"] = rnd(H, H)
            T[p + f"attention.self.{n}.bias"] = np.zeros(H, np.float32)
        T[p + "attention.output.dense.weight"] = rnd(H, H)
        T[p + "attention.output.dense.bias"] = np.zeros(H, np.float32)
        T[p + "intermediate.dense.weight"] = rnd(FF, H)
        T[p + "intermediate.dense.bias"] = np.zeros(FF, np.float32)
        T[p + "output.dense.weight"] = rnd(H, FF)
        T[p + "output.dense.bias"] = np.zeros(H, np.float32)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            T[p + ln + ".weight"] = np.ones(H, np.float32)
            T[p + ln + ".bias"] = np.zeros(H, np.float32)
    write_safetensors(out / "model.safetensors", T, {"format": "pt"})
    write_json(out / "config.json", {
        "architectures": ["XLMRobertaModel"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
        "classifier_dropout": None, "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": H, "initializer_range": 0.02, "intermediate_size": FF, "layer_norm_eps": 1e-5,
        "max_position_embeddings": MAXPOS, "model_type": "xlm-roberta", "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"], "pad_token_id": 1, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "type_vocab_size": 1, "use_cache": True, "vocab_size": VOCAB})
    shutil.copyfile(src / "tokenizer.json", out / "tokenizer.json")
    write_xlmr_side_files(out, H, max_seq_length=512, model_max_length=512)
    print(f"wrote {out} ({sum(v.nbytes for v in T.values()) / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
