"""Writes parity and benchmark text files: usage workloads.py TOKENIZER_JSON OUT_DIR.

short.txt / long.txt are the frozen CPU workload (benches/workload.jsonl) with the E5
prefixes applied, so PyTorch sees exactly the texts `e5 bench` embeds.
"""
import json
import os
import sys

from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, load_texts, write_lines  # noqa: E402

tok = Tokenizer.from_file(sys.argv[1])
out = sys.argv[2]
texts = load_texts(256)
n_tokens = lambda t: len(tok.encode(t).ids)  # noqa: E731
workload = [json.loads(line) for line in open(os.path.join(ROOT, "benches", "workload.jsonl"), encoding="utf-8")]
short = [f"query: {w['text']}" for w in workload if w["kind"] == "query"]
long = [f"passage: {w['text']}" for w in workload if w["kind"] == "passage"]
write_lines(os.path.join(out, "short.txt"), short)
write_lines(os.path.join(out, "long.txt"), long)
write_lines(os.path.join(out, "parity.txt"), texts[:112] + long[:16])
print(f"short ~{sum(map(n_tokens, short)) / len(short):.0f} tokens ({len(short)} texts), "
      f"long ~{sum(map(n_tokens, long)) / max(1, len(long)):.0f} tokens ({len(long)} texts)")
