#!/usr/bin/env python3
"""Write benches/workload.jsonl: the frozen benchmark workload of `e5 bench` and `tools/compare`.

Real multilingual text, none written by us: the sample texts (Universal
Declaration of Human Rights translations) bundled in the PyPI package
gflanguages==0.7.11 (Apache-2.0). Needs `pip install gflanguages==0.7.11 tokenizers`.
Only run by hand; the output is committed and frozen (re-running reproduces it
byte for byte, and prints the statistics recorded in benches/WORKLOAD.md).

Each line: {"text": raw text (no prefix), "kind": "query"|"passage", "lang": "<gflanguages id>"}.

- ~200 short queries (target mean ~17 XLM-R tokens counting "query: " and the
  two specials), one or two per language, from the short sample fields
  (`tester`, `specimen_48`, `styles`, `specimen_36`), cut to the first clause or
  at a word boundary (never mid-word for space-delimited scripts; scripts
  without spaces are cut at punctuation, else between characters).
- ~100 passages (target mean ~190 tokens with "passage: " and specials, after
  truncation to 512), cut at sentence boundaries from `specimen_16/21/32`, plus
  6 long passages (> 512 tokens) made by joining several fields of one language.

Languages are taken by descending speaker population (gflanguages metadata),
skipping texts the XLM-R tokenizer mostly maps to <unk>.
"""
import json
import re
import statistics
import sys
from pathlib import Path

import gflanguages
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "models" / "multilingual-e5-small" / "tokenizer.json"
OUT = ROOT / "benches" / "workload.jsonl"

N_QUERIES, N_PASSAGES, N_LONG = 200, 100, 6
QUERY_FIELDS = ["tester", "specimen_48", "styles", "specimen_36"]
PASSAGE_FIELDS = ["specimen_16", "specimen_21", "specimen_32"]
LONG_FIELDS = ["specimen_16", "specimen_21", "specimen_32", "specimen_36", "specimen_48", "tester"]
# per-query token caps (incl. prefix + specials), cycled: mean of the result ~17
QUERY_CAPS = [12, 16, 20, 24, 14, 18, 22]
# per-passage token targets (incl. prefix + specials), cycled
PASSAGE_TARGETS = [80, 120, 160, 190, 220, 250, 290, 340, 400]
# languages whose joined fields exceed 512 tokens (heavy tokenization)
LONG_LANGS = ["zh_Hans", "ja_Jpan", "am_Ethi", "my_Mymr", "ko_Kore", "ta_Taml"]
NO_SPACE_SCRIPTS = {"Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"}
CLAUSE = re.compile(r"(?<=[,;:.!?،؛。，、；：！？।॥])\s*")
SENTENCE = re.compile(r"(?<=[.!?。！？।॥؟።])\s+|(?<=[。！？])|\n+")

tok = Tokenizer.from_file(str(TOKENIZER))
tok.no_truncation()
tok.no_padding()


def ntok(prefix, text):
    return len(tok.encode(prefix + text).ids)


def unk_frac(text):
    ids = tok.encode(text, add_special_tokens=False).ids
    return sum(i == tok.token_to_id("<unk>") for i in ids) / max(len(ids), 1)


def cut_query(text, script, cap):
    """Longest prefix of `text` within `cap` tokens, cut at a clause, else a word boundary."""
    text = " ".join(text.split()) if script not in NO_SPACE_SCRIPTS else text.replace("\n", "")
    if ntok("query: ", text) <= cap:
        return text
    # clause boundaries first
    best = None
    for m in CLAUSE.finditer(text):
        cand = text[:m.start()].strip()
        if cand and ntok("query: ", cand) <= cap:
            best = cand
    if best and ntok("query: ", best) >= cap * 0.6:
        return best
    if script in NO_SPACE_SCRIPTS:
        for end in range(len(text), 0, -1):
            cand = text[:end]
            if ntok("query: ", cand) <= cap:
                return cand
        return None
    words = text.split(" ")
    for k in range(len(words), 0, -1):
        cand = " ".join(words[:k]).rstrip(",;:")
        if ntok("query: ", cand) <= cap:
            return cand if k > 1 or ntok("query: ", cand) >= 6 else None
    return None


def cut_passage(text, target):
    """Whole sentences from the start of `text` until about `target` tokens."""
    sents = [s.strip() for s in SENTENCE.split(text) if s and s.strip()]
    out = []
    for s in sents:
        cand = out + [s]
        if out and ntok("passage: ", " ".join(cand)) > target:
            break
        out = cand
    return " ".join(out)


def main():
    langs = gflanguages.LoadLanguages()
    order = sorted((k for k, v in langs.items() if v.HasField("sample_text")),
                   key=lambda k: (-langs[k].population, k))
    rows, seen = [], set()

    def add(kind, lid, text):
        if text and text not in seen:
            seen.add(text)
            rows.append({"text": text, "kind": kind, "lang": lid})
            return True
        return False

    # queries: pass 1 one per language, pass 2 a second one
    nq = 0
    for rnd in range(2):
        for lid in order:
            if nq >= N_QUERIES:
                break
            st, script = langs[lid].sample_text, lid.split("_")[-1]
            fields = [getattr(st, f) for f in QUERY_FIELDS if getattr(st, f).strip()]
            if len(fields) <= rnd or unk_frac(" ".join(fields)) > 0.1:
                continue
            q = cut_query(fields[rnd].strip(), script, QUERY_CAPS[nq % len(QUERY_CAPS)])
            if q and ntok("query: ", q) >= 6 and add("query", lid, q):
                nq += 1

    # long passages (> 512 tokens)
    for lid in LONG_LANGS:
        st = langs[lid].sample_text
        text = "\n".join(getattr(st, f).strip() for f in LONG_FIELDS if getattr(st, f).strip())
        assert ntok("passage: ", text) > 512, (lid, ntok("passage: ", text))
        add("passage", lid, text)
    npass = N_LONG
    for lid in order:
        if npass >= N_PASSAGES:
            break
        st = langs[lid].sample_text
        src = next((getattr(st, f).strip() for f in PASSAGE_FIELDS if len(getattr(st, f).strip()) > 200), "")
        if not src or lid in LONG_LANGS or unk_frac(src) > 0.05:
            continue
        p = cut_passage(src, PASSAGE_TARGETS[npass % len(PASSAGE_TARGETS)])
        if p and ntok("passage: ", p) >= 30 and add("passage", lid, p):
            npass += 1

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    qt = [ntok("query: ", r["text"]) for r in rows if r["kind"] == "query"]
    pt = [ntok("passage: ", r["text"]) for r in rows if r["kind"] == "passage"]
    ptt = [min(t, 512) for t in pt]
    stats = {
        "queries": len(qt), "query_languages": len({r["lang"] for r in rows if r["kind"] == "query"}),
        "query_tokens_mean": round(statistics.mean(qt), 2), "query_tokens_median": statistics.median(qt),
        "query_tokens_min": min(qt), "query_tokens_max": max(qt),
        "passages": len(pt), "passage_languages": len({r["lang"] for r in rows if r["kind"] == "passage"}),
        "passage_tokens_mean_truncated512": round(statistics.mean(ptt), 2),
        "passage_tokens_mean_untruncated": round(statistics.mean(pt), 2),
        "passage_tokens_median": statistics.median(pt), "passage_tokens_min": min(pt),
        "passage_tokens_max": max(pt), "passages_over_512": sum(t > 512 for t in pt),
        "total_languages": len({r["lang"] for r in rows}),
    }
    json.dump(stats, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
