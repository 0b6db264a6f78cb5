#!/usr/bin/env python3
"""Reference outputs from sentence-transformers / transformers (run here only; CI never runs it).

  tests/fixtures/<tiny>/reference.safetensors   tiny-bert, tiny-bert-f16, tiny-xlmr
  tests/fixtures/reference/e5-small.safetensors models/multilingual-e5-small
  tests/fixtures/reference/minilm.safetensors   models/all-MiniLM-L6-v2

Tensors: input_ids I64 [total_tokens] (ids exactly as sentence-transformers fed
them, specials included, after its truncation to max_seq_length), offsets I64
[n+1], embeddings F32 [n, dim] (encode(normalize_embeddings=True, batch_size=1)),
untruncated_lengths I64 [n] (Python `tokenizers` on the same tokenizer.json, no
truncation), and for tiny models hidden_states F32 [layers+1, total_tokens,
hidden] (HF output_hidden_states, batch 1, no padding).
__metadata__: texts (JSON list, exactly as fed), model, max_seq_length, note.
NOTE: sentence-transformers applies Python str.strip() to each text before
tokenizing, so input_ids/untruncated_lengths are those of text.strip().
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
MODELS = ROOT / "models"


def rows(name):
    return [json.loads(l) for l in open(FIX / "texts" / name, encoding="utf-8")]


def big_texts(prefixed):
    out = []
    for r in rows("multilingual.jsonl") + rows("tokenizer_edge_cases.jsonl"):
        t = r["text"]
        if prefixed:
            t = ("passage: " if r["kind"] == "long" else "query: ") + t
        out.append(t)
    return out


def tiny_texts():
    ml = rows("multilingual.jsonl")
    short = [r for r in ml if r["kind"] == "short"]
    long_ = [r for r in ml if r["kind"] == "long"]
    picked = short[::7][:12]                       # 12 short, many languages
    picked += [long_[0], long_[2], long_[8]]       # en, ru, zh_Hans passages: > 64 tokens -> truncated
    edge = rows("tokenizer_edge_cases.jsonl")
    want = {"这个bug导致了memory leak问题", "ＡＢＣ１２３！", "cafe\u0301 vs caf\u00e9", "", "     ",
            "tabs\tand\nnewlines\r\nmixed \t \n here", "zero\u200bwidth\u200bspace", "flags 🇯🇵🇫🇷🇺🇸🇨🇳",
            "multiple     spaces   between    words", "a" * 300}
    picked += [r for r in edge if r["text"] in want]
    return [r["text"] for r in picked]


def make(model_dir, out_path, texts, hidden):
    torch.set_num_threads(2)
    st = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"dtype": torch.float32})
    st.eval()
    max_len = st.max_seq_length
    hf = st[0].auto_model
    assert next(hf.parameters()).dtype == torch.float32
    tk = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tk.no_padding()
    tk.no_truncation()
    tk_trunc = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tk_trunc.no_padding()
    tk_trunc.enable_truncation(max_length=max_len)

    ids_all, offsets, untrunc, hs_all = [], [0], [], []
    with torch.no_grad():
        for t in texts:
            feats = st.tokenize([t])
            ids = feats["input_ids"][0].tolist()
            # sentence-transformers' Transformer module applies str.strip() to every text
            py_ids = tk_trunc.encode(t.strip()).ids
            if ids != py_ids:
                sys.exit(f"{model_dir.name}: Python tokenizers ids != sentence-transformers ids for {t[:40]!r}:\n"
                         f"  st {ids[:30]}\n  tk {py_ids[:30]}")
            assert len(ids) <= max_len
            ids_all += ids
            offsets.append(len(ids_all))
            untrunc.append(len(tk.encode(t.strip()).ids))
            if hidden:
                kw = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                o = hf(**kw, output_hidden_states=True)
                hs_all.append(torch.stack(o.hidden_states)[:, 0].float().numpy())
        emb = st.encode(texts, normalize_embeddings=True, batch_size=1, convert_to_numpy=True).astype(np.float32)
    T = {"input_ids": np.array(ids_all, np.int64), "offsets": np.array(offsets, np.int64),
         "embeddings": np.ascontiguousarray(emb), "untruncated_lengths": np.array(untrunc, np.int64)}
    if hidden:
        T["hidden_states"] = np.ascontiguousarray(np.concatenate(hs_all, axis=1).astype(np.float32))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(T, str(out_path), metadata={"texts": json.dumps(texts, ensure_ascii=False), "model": model_dir.name,
                                          "max_seq_length": str(max_len),
                                          "note": "sentence-transformers applies str.strip() to each text "
                                                  "before tokenizing; input_ids are of the stripped text"})
    n_tr = sum(u > max_len for u in untrunc)
    print(f"{out_path.relative_to(ROOT)}: {len(texts)} texts, {len(ids_all)} tokens, dim {emb.shape[1]}, "
          f"max_seq_length {max_len}, {n_tr} truncated, {out_path.stat().st_size / 1024:.0f} KiB")
    return emb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None,
                    help="subset of: tiny-bert tiny-bert-f16 tiny-xlmr e5-small minilm")
    a = ap.parse_args()
    want = set(a.only) if a.only else {"tiny-bert", "tiny-bert-f16", "tiny-xlmr", "e5-small", "minilm"}
    tt = tiny_texts()
    embs = {}
    for name in ["tiny-bert", "tiny-bert-f16", "tiny-xlmr"]:
        if name in want:
            embs[name] = make(FIX / name, FIX / name / "reference.safetensors", tt, hidden=True)
    if "tiny-bert" in embs and "tiny-bert-f16" in embs:
        # the f16 copy must really have been loaded (prefix stripped), not re-initialized
        cos = (embs["tiny-bert"] * embs["tiny-bert-f16"]).sum(1)
        print(f"tiny-bert vs tiny-bert-f16 embedding cosine: min {cos.min():.6f}")
        assert cos.min() > 0.99, cos
    if "e5-small" in want:
        make(MODELS / "multilingual-e5-small", FIX / "reference" / "e5-small.safetensors", big_texts(True), False)
    if "minilm" in want:
        make(MODELS / "all-MiniLM-L6-v2", FIX / "reference" / "minilm.safetensors", big_texts(False), False)


if __name__ == "__main__":
    main()
