"""sentence-transformers models (tests/fixtures/st): prompt_name=, prompt=, dimensions= and
adapter= give `e5 embed`'s vectors bit for bit (--prompt-name, --prompt, --dimensions,
--adapter); bad choices are OptionsError."""

import json
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import e5

ROOT = Path(__file__).resolve().parents[3]

ST = ROOT / "tests" / "fixtures" / "st"
TINY_BERT = str(ROOT / "tests" / "fixtures" / "tiny-bert")
TEXTS = ["how much protein should a female eat", "", "multiple     spaces   between    words", "line\nbreak"]
INSTRUCT = "Instruct: find the topic\nQuery: "


def cli(e5_bin, model, *flags):
    """`e5 embed --format npy` of TEXTS with `flags`, as numpy."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.npy"
        subprocess.run(
            [e5_bin, "embed", "-m", model, "--input-format", "jsonl", "--format", "npy", "-o", str(out), *flags],
            input="".join(json.dumps(t) + "\n" for t in TEXTS).encode(), check=True,
        )
        return np.load(out)


def same(a, b):
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def test_prompts_by_name_text_or_default(e5_bin):
    path = str(ST / "prompts")
    m = e5.Model(path)
    same(m.encode(TEXTS, prompt_name="classify"), cli(e5_bin, path, "--prompt-name", "classify"))
    same(m.encode(TEXTS, prompt_name="document"), cli(e5_bin, path, "--prompt-name", "document"))
    same(m.encode(TEXTS), cli(e5_bin, path))  # default_prompt_name: classify
    same(m.encode(TEXTS, kind="query"), cli(e5_bin, path, "--kind", "query"))
    same(m.encode(TEXTS, kind="raw"), cli(e5_bin, path, "--kind", "raw"))
    same(m.encode(TEXTS, prompt=INSTRUCT), cli(e5_bin, path, "--prompt", INSTRUCT))
    info = m.info()
    assert info["prompts"]["classify"] == "Classify the topic of: " and info["default_prompt_name"] == "classify"
    ids = m.tokenize("hi", prompt_name="classify")["ids"]
    assert len(ids) > len(m.tokenize("hi", kind="raw")["ids"])

    with pytest.raises(e5.OptionsError, match="classify, document, query"):
        m.encode(TEXTS, prompt_name="nope")
    with pytest.raises(e5.OptionsError, match="at most one"):
        m.encode(TEXTS, kind="query", prompt_name="query")
    with pytest.raises(e5.OptionsError, match="declares no prompts"):
        e5.Model(str(ST / "legacy-cls")).encode(TEXTS, prompt_name="query", normalize=None)


def test_dimensions_and_their_warning(e5_bin):
    path = str(ST / "prompts")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = e5.Model(path, dimensions=96)  # a trained width: no warning
    assert m.dim == 96
    same(m.encode(TEXTS, kind="query"), cli(e5_bin, path, "--kind", "query", "--dimensions", "96"))
    mean = str(ST / "mean")
    with pytest.warns(UserWarning, match="no Matryoshka training"):
        m = e5.Model(mean, dimensions=16)
    assert "no Matryoshka training" in m.warnings[0]
    same(m.encode(TEXTS), cli(e5_bin, mean, "--dimensions", "16"))
    for bad in (0, 10_000):
        with pytest.raises(e5.OptionsError, match="dimensions"):
            e5.Model(mean, dimensions=bad)


def test_adapter_is_merged_like_the_cli(e5_bin):
    lora = ST / "lora"
    m = e5.Model(TINY_BERT, adapter=lora)
    same(m.encode(TEXTS), cli(e5_bin, TINY_BERT, "--adapter", str(lora)))
    assert m.encode(TEXTS).tobytes() != e5.Model(TINY_BERT).encode(TEXTS).tobytes()
    with pytest.raises(e5.E5Error, match="adapter_config.json"):
        e5.Model(TINY_BERT, adapter=ROOT / "tests" / "fixtures" / "tiny-xlmr")

