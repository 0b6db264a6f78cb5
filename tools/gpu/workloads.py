"""Writes parity and benchmark text files: usage workloads.py TOKENIZER_JSON OUT_DIR."""
import os
import sys

from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_texts, write_lines  # noqa: E402

tok = Tokenizer.from_file(sys.argv[1])
out = sys.argv[2]
texts = load_texts(256)
n_tokens = lambda t: len(tok.encode(t).ids)  # noqa: E731
short = [t for t in texts if 8 <= n_tokens(t) <= 28] or texts
write_lines(os.path.join(out, "short.txt"), (short * 64)[:256])
long, cur = [], ""
for t in texts * 8:  # grow passages to ~190-512 tokens
    cur = (cur + " " + t).strip()
    if n_tokens(cur) >= 190 + (len(long) * 37) % 300:
        long.append(cur)
        cur = ""
    if len(long) >= 64:
        break
write_lines(os.path.join(out, "long.txt"), long)
write_lines(os.path.join(out, "parity.txt"), texts[:112] + long[:16])
print(f"short ~{sum(map(n_tokens, short[:64])) / min(64, len(short)):.0f} tokens, "
      f"long ~{sum(map(n_tokens, long)) / max(1, len(long)):.0f} tokens ({len(long)} texts)")
