"""encode / encode_query / encode_document, bit-identical to `e5 embed`; compact outputs."""

import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import e5


def cli_vectors(e5_bin, model, texts, kind, tmp_path):
    """`e5 embed --format npy` of `texts` (JSONL strings: some hold newlines), as numpy."""
    out = tmp_path / f"cli-{kind}.npy"
    subprocess.run([e5_bin, "embed", "-m", model, "--kind", kind, "--input-format", "jsonl", "--format", "npy",
                    "-o", str(out)], input="".join(json.dumps(t) + "\n" for t in texts).encode(), check=True)
    return np.load(out)


def test_acceptance_line(e5_small):
    m = e5.Model(e5_small)
    assert m.encode_query(["hello"]).shape == (1, 384)


@pytest.mark.parametrize("kind", ["query", "passage", "raw"])
def test_bit_identical_to_the_cli(e5_small, e5_bin, texts, kind, tmp_path):
    m = e5.Model(e5_small)
    ours = m.encode(texts, kind=kind)
    cli = cli_vectors(e5_bin, e5_small, texts, kind, tmp_path)
    assert ours.dtype == np.float32 and ours.shape == cli.shape == (len(texts), 384)
    assert ours.tobytes() == cli.tobytes()


def test_prefix_helpers_and_single_string(tiny, texts):
    m = e5.Model(tiny)
    assert m.encode_query(texts[:5]).tobytes() == m.encode(texts[:5], kind="query").tobytes()
    assert m.encode_document(texts[:5]).tobytes() == m.encode(texts[:5], kind="passage").tobytes()
    assert not np.array_equal(m.encode_query(texts[:1]), m.encode_document(texts[:1]))
    one = m.encode("hello", kind="query")
    assert one.shape == (m.dim,) and one.tobytes() == m.encode_query(["hello"])[0].tobytes()
    assert m.encode([]).shape == (0, m.dim)


def test_vectors_do_not_depend_on_batch_size_or_threads(tiny, texts):
    one = e5.Model(tiny, threads=1)
    two = e5.Model(tiny, threads=2)
    ref = one.encode(texts, batch_size=1)
    for m, bs in [(one, 32), (two, 7), (two, 1000)]:
        assert m.encode(texts, batch_size=bs).tobytes() == ref.tobytes()


def test_output_is_float32_c_contiguous_and_normalized(tiny, texts):
    v = e5.Model(tiny).encode(texts)
    assert v.flags["C_CONTIGUOUS"] and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_normalize_is_checked_against_the_model(tiny, texts):
    m = e5.Model(tiny)
    with pytest.raises(e5.OptionsError, match="normalize=False"):
        m.encode(texts[:2], normalize=False)
    raw = e5.Model(tiny, normalize=False).encode(texts[:4], normalize=False)
    norms = np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(raw / norms[:, None], m.encode(texts[:4]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(norms, 1.0)


def test_truncation_is_reported(tiny):
    m = e5.Model(tiny)
    long = "word " * 600
    with pytest.warns(e5.TruncationWarning, match="1 input"):
        m.encode(["short", long, "short again"])
    r = m.last_report()
    assert r["texts"] == 3 and r["truncated"] == [1] and r["tokens"] > m.info()["max_tokens"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.encode(["short"])
    assert m.last_report()["truncated"] == []


def test_chunked_long_inputs_give_one_vector_each(tiny):
    m = e5.Model(tiny, long_inputs="chunk", chunk_overlap=8)
    v = m.encode(["short", "word " * 600])
    assert v.shape == (2, m.dim) and m.last_report()["truncated"] == []


def st_levels(v, ranges):
    """sentence-transformers' quantize_embeddings int8/uint8 levels, as its source computes them."""
    starts = ranges[0]
    steps = (ranges[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    return np.clip(np.floor((v - starts) / steps), 0, 255)


def test_compact_outputs_follow_sentence_transformers(tiny, texts):
    m = e5.Model(tiny)
    v = m.encode(texts)
    ub = m.encode(texts, output_precision="ubinary")
    assert ub.dtype == np.uint8 and np.array_equal(ub, np.packbits(v > 0, axis=-1))
    b = m.encode(texts, output_precision="binary")
    assert b.dtype == np.int8 and np.array_equal(b.astype(np.int16), ub.astype(np.int16) - 128)
    # The tiny model has no stored ranges: the error names the file.
    with pytest.raises(e5.ModelError, match="output_ranges.safetensors"):
        m.encode(texts, output_precision="int8")
    # Ranges from half the texts: the other half falls partly outside them (levels clip, and
    # floor, not truncation, rounds the negative ones).
    ranges = np.vstack((v[::2].min(axis=0), v[::2].max(axis=0)))
    q = m.encode(texts, output_precision="uint8", ranges=ranges)
    assert q.dtype == np.uint8 and np.array_equal(q, st_levels(v, ranges).astype(np.uint8))
    i8 = m.encode(texts, output_precision="int8", calibration_embeddings=v[::2])
    assert i8.dtype == np.int8 and np.array_equal(i8, (st_levels(v, ranges) - 128).astype(np.int8))
    assert np.array_equal(e5.quantize(v, "int8", ranges=ranges), i8)
    with pytest.raises(e5.OptionsError, match="unknown output precision"):
        m.encode(texts, output_precision="float16")
    with pytest.raises(e5.OptionsError, match="shape"):
        e5.quantize(v, "int8", ranges=ranges[:, :5])
    with pytest.raises(e5.OptionsError, match="finite"):
        e5.quantize(v, "uint8", ranges=ranges[::-1] * 2 + 1)


def test_stored_ranges_match_the_cli(tiny, e5_bin, texts, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text("".join(json.dumps(t) + "\n" for t in texts))
    subprocess.run([e5_bin, "calibrate-output", "-m", str(model), "--kind", "passage", "--jsonl", "--texts",
                    str(corpus)], check=True, capture_output=True)
    m = e5.Model(model)
    ranges = m.output_ranges()
    v = m.encode_document(texts)
    assert ranges.shape == (2, m.dim) and np.array_equal(ranges, np.vstack((v.min(axis=0), v.max(axis=0))))
    for precision in ["int8", "uint8", "binary", "ubinary"]:
        ours = m.encode_document(texts, output_precision=precision)
        out = tmp_path / f"{precision}.npy"
        subprocess.run([e5_bin, "embed", "-m", str(model), "--kind", "passage", "--input-format", "jsonl", "-i",
                        str(corpus), "--format", "npy", "-o", str(out), "--output-precision", precision], check=True)
        cli = np.load(out)
        assert ours.dtype == cli.dtype and ours.shape == cli.shape and ours.tobytes() == cli.tobytes(), precision
    assert np.array_equal(m.encode_document(texts[3], output_precision="int8"),
                          m.encode_document(texts, output_precision="int8")[3])


def test_tokenize_and_info(e5_small):
    m = e5.Model(e5_small)
    t = m.tokenize("hello", kind="query")
    assert t["tokens"][0] == "<s>" and t["tokens"][-1] == "</s>" and len(t["ids"]) == len(t["offsets"])
    assert m.tokenize("word " * 600)["over_limit"] > 0
    i = m.info()
    assert i["dim"] == 384 and i["max_tokens"] == 512 and i["precision"] == "fp32" and i["normalize"] is True
    # Which kernel path each family takes, as `e5 info` says it.
    assert i["dispatch"].startswith(i["isa"]) and "int8 " + i["int8_kernel"] in i["dispatch"] and "bf16" in i["dispatch"]
    assert "multilingual-e5-small" in repr(m)


def test_progress_bar_reaches_the_total(tiny, texts, capsys):
    e5.Model(tiny).encode(texts, batch_size=16, show_progress_bar=True)
    err = capsys.readouterr().err
    assert f"{len(texts)}" in err
