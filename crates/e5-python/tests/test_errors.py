"""Every failure is an e5.E5Error subclass with a clear message; nothing panics."""

import shutil

import pytest

import e5


def test_hierarchy():
    for cls in (e5.ModelError, e5.InputError, e5.OptionsError):
        assert issubclass(cls, e5.E5Error) and issubclass(cls, Exception)


def test_missing_and_broken_models_are_model_errors(tiny, tmp_path):
    with pytest.raises(e5.ModelError, match="not found"):
        e5.Model(str(tmp_path / "nowhere"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(e5.ModelError, match="config.json"):
        e5.Model(str(broken))
    shutil.copy(f"{tiny}/config.json", broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(e5.ModelError, match="model.safetensors"):
        e5.Model(str(broken))


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "fp8"}, "unknown precision"),
    ({"device": "tpu"}, "unknown device"),
    ({"long_inputs": "drop"}, "unknown long_inputs"),
    ({"threads": 0}, "threads"),
    ({"residency": "swap"}, "unknown residency"),
])
def test_bad_options(tiny, kwargs, match):
    with pytest.raises(e5.OptionsError, match=match):
        e5.Model(tiny, **kwargs)


def test_bad_inputs(tiny):
    m = e5.Model(tiny)
    with pytest.raises(e5.InputError, match="input 1: expected str, got int"):
        m.encode(["ok", 3])
    with pytest.raises(e5.OptionsError, match="unknown kind"):
        m.encode(["ok"], kind="question")
    with pytest.raises(e5.OptionsError, match="batch_size"):
        m.encode(["ok"], batch_size=0)
    with pytest.raises(e5.OptionsError, match="overlap"):
        e5.Model(tiny, long_inputs="chunk", chunk_window=8, chunk_overlap=8).encode(["word " * 600])
    # A lone surrogate cannot be UTF-8: an InputError naming the input, not a panic.
    with pytest.raises(e5.InputError, match="input 1: .*surrogate"):
        m.encode(["ok", "\ud800"])


def test_the_default_residency_survives_the_model_file_rewritten_in_place(tiny, tmp_path):
    """A notebook or Ray actor outlives `cp new-weights model.safetensors`: the default
    residency ("copy") keeps the table it loaded; a mapped one fails cleanly instead."""
    texts = ["a text to embed", "another one"]
    for residency in ("copy", "lazy"):
        d = tmp_path / residency
        shutil.copytree(tiny, d)
        m = e5.Model(str(d), **({} if residency == "copy" else {"residency": residency}))
        before = m.encode(texts)
        weights = d / "model.safetensors"
        size = weights.stat().st_size
        with open(weights, "r+b") as f:
            f.truncate(0)
        weights.write_bytes(b"\x5a" * size)
        if residency == "copy":
            assert (m.encode(texts) == before).all()
        else:
            with pytest.raises(e5.E5Error, match="changed on disk"):
                m.encode(texts)
