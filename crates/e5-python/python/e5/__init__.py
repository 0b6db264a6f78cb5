"""e5: fast, faithful CPU text embeddings for multilingual-e5 and other BERT / XLM-R encoders.

    import e5
    model = e5.Model("models/multilingual-e5-small")
    q = model.encode_query(["how much protein should a female eat"])    # (1, 384) float32
    d = model.encode_document(["The CDC's protein requirement for women is 46 g per day."])
    print(q @ d.T)

Tokenization and the forward pass run with the GIL released: threads sharing one Model embed
in parallel, and every vector depends only on its own text (not on batch-mates, batch size or
thread count), bit for bit the same as `e5 embed` and the Rust library.
"""

import sys
import warnings

import numpy as np

from . import _e5
from ._e5 import E5Error, InputError, ModelError, OptionsError

__all__ = ["Model", "E5Error", "ModelError", "InputError", "OptionsError", "TruncationWarning", "quantize"]


class TruncationWarning(UserWarning):
    """Some inputs were longer than the model's limit; only their first tokens were embedded."""


class Model:
    """A loaded embedding model.

    path_or_hf_id: a model directory (Hugging Face layout) or an id found in the local HF cache.
    precision: "fp32" (reference), "f16", "bf16" or "int8".
    threads: worker threads (None: all cores).
    device: "cpu", or "cuda" / "cuda:N" with a CUDA build.
    long_inputs: "truncate" (reported: `last_report()["truncated"]` and a TruncationWarning) or
        "chunk" (the token-weighted mean of overlapping windows; `chunk_window`, `chunk_overlap`).
    normalize: L2-normalize outputs; None follows the model (sentence-transformers modules.json).
    dimensions: keep the first `dimensions` components of each vector, renormalized (Matryoshka
        models; `e5 embed --dimensions`). A width the model was not trained for warns.
    adapter: a PEFT LoRA adapter directory, merged into the weights at load (`e5 embed --adapter`).
    residency: how the embedding table is held. "copy" (the default) reads it into private memory,
        so a long-lived process survives its model file being truncated or rewritten in place;
        "lazy", "prefetch" and "lock" map the file (less memory: e5-small fp32 ~110 MiB against
        ~475 MiB resident; a file changed in place then fails calls cleanly). docs/robustness.md.
    """

    def __init__(self, path_or_hf_id, precision="fp32", threads=None, device="cpu", long_inputs="truncate",
                 normalize=None, chunk_window=0, chunk_overlap=64, dimensions=None, adapter=None,
                 residency="copy"):
        self._m = _e5.Model(str(path_or_hf_id), precision=precision, threads=threads, device=device,
                            long_inputs=long_inputs, normalize=normalize, chunk_window=chunk_window,
                            chunk_overlap=chunk_overlap, dimensions=dimensions,
                            adapter=None if adapter is None else str(adapter), residency=residency)
        for w in self._m.warnings:
            warnings.warn(w, UserWarning, stacklevel=2)

    @property
    def dim(self):
        """Embedding width."""
        return self._m.dim

    @property
    def warnings(self):
        """What e5 warned about the options at load (each also raised as a UserWarning)."""
        return self._m.warnings

    def encode(self, texts, batch_size=32, kind=None, normalize=True, show_progress_bar=False,
               output_precision="float32", ranges=None, calibration_embeddings=None, prompt_name=None, prompt=None):
        """Embeds `texts` (a str, a list of str, or a pyarrow string array / chunked array / table
        column) into a numpy `(n, dim)` array (a 1-D vector for a single str).

        kind: "query" / "passage" (or "document") add the model's query / document prompt (E5's
            "query: ", "passage: "); "raw" embeds as is.
        prompt_name: a prompt the model declares (`info()["prompts"]`), as `e5 embed --prompt-name`.
        prompt: a text prepended as the prompt (an instruction), as `e5 embed --prompt`.
            At most one of kind, prompt_name and prompt; none: the model's default prompt if it
            declares one (`default_prompt_name`), else raw.
        normalize: must match the model's setting (pass `normalize=` to Model to change it);
            it is checked rather than applied so that vectors stay bit-identical to `e5 embed`.
        output_precision: "float32", or the compact forms of sentence-transformers'
            `precision=`, bit for bit: "int8" / "uint8" (one byte per dimension from
            per-dimension ranges: `ranges`, shape (2, dim), or `calibration_embeddings`, or else
            the ranges `e5 calibrate-output` stored beside the model (`output_ranges()`); never
            the call's own vectors, so a vector does not depend on its batch-mates), "binary"
            (packed sign bits as int8, − 128) and "ubinary" (packed sign bits as uint8).
        """
        if normalize is not None and bool(normalize) != self._m.normalize:
            raise OptionsError(
                f"this model was loaded with normalize={self._m.normalize}; "
                f"load it with e5.Model(..., normalize={bool(normalize)}) instead")
        single = isinstance(texts, str)
        batch = [texts] if single else _as_str_list(texts)
        progress = _progress_bar(len(batch)) if show_progress_bar else None
        try:
            vectors = self._m.embed(batch, kind, batch_size, progress, prompt_name, prompt)
        except UnicodeEncodeError as e:  # a lone surrogate has no UTF-8 form
            bad = next(i for i, t in enumerate(batch) if not _is_utf8(t))
            raise InputError(f"input {bad}: {e.reason} (not encodable as UTF-8)") from None
        finally:
            if progress is not None:
                progress.close()
        truncated = self._m.last_report()["truncated"]
        if truncated:
            warnings.warn(
                f"{len(truncated)} input(s) longer than the model's limit were truncated (indices {truncated[:10]}"
                f"{'…' if len(truncated) > 10 else ''}); use long_inputs='chunk' to embed all of them",
                TruncationWarning, stacklevel=2)
        if output_precision in ("int8", "uint8") and ranges is None and calibration_embeddings is None:
            ranges = self._m.output_ranges()
        out = quantize(vectors, output_precision, ranges=ranges, calibration_embeddings=calibration_embeddings)
        return out[0] if single else out

    def encode_query(self, texts, **kwargs):
        """`encode(texts, kind="query")`: search queries, with the "query: " prefix."""
        return self.encode(texts, kind="query", **kwargs)

    def encode_document(self, texts, **kwargs):
        """`encode(texts, kind="passage")`: documents to retrieve, with the "passage: " prefix."""
        return self.encode(texts, kind="passage", **kwargs)

    def encode_arrow(self, texts, kind=None, batch_size=32, prompt_name=None, prompt=None):
        """Embeds a pyarrow string array (or chunked array / table column) into a pyarrow
        `FixedSizeList<float32>[dim]` array, sharing the numpy buffer (no copy)."""
        import pyarrow as pa

        vectors = self.encode(texts, batch_size=batch_size, kind=kind, prompt_name=prompt_name, prompt=prompt)
        return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)

    def tokenize(self, text, kind=None, prompt_name=None, prompt=None):
        """Token ids, tokens and character offsets of `text` as the model sees it (prompt
        included, chosen as in `encode`), and `over_limit`: how many tokens truncation would drop."""
        return self._m.tokenize(text, kind, prompt_name, prompt)

    def output_ranges(self):
        """The (2, dim) float32 int8 / uint8 ranges stored beside the model by
        `e5 calibrate-output` (sentence-transformers' `ranges`); ModelError when there are none."""
        return self._m.output_ranges()

    def info(self):
        """Architecture, sizes, precision, kernels and memory, as a dict."""
        return self._m.info()

    def last_report(self):
        """Of this model's most recent encode: texts, tokens, truncated (input indices) and
        seconds. Shared by every thread using the model."""
        return self._m.last_report()

    def __repr__(self):
        i = self.info()
        return f"e5.Model({i['dir']!r}, {i['architecture']}, dim={i['dim']}, precision={i['precision']!r})"


def _as_str_list(texts):
    """A list of str from a list / tuple / pyarrow array / chunked array; None is an error."""
    if type(texts).__module__.startswith("pyarrow"):
        import pyarrow as pa

        if isinstance(texts, pa.Table):
            raise OptionsError("pass a column (table['text']), not a whole table")
        if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
            raise InputError(f"expected a pyarrow string array, got {texts.type}")
        if texts.null_count:
            raise InputError(f"{texts.null_count} null text(s) in the pyarrow array")
        texts = texts.to_pylist()
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"input {i}: expected str, got {type(t).__name__}")
    return texts


def _is_utf8(text):
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def quantize(vectors, output_precision="float32", ranges=None, calibration_embeddings=None):
    """float32 `(n, dim)` vectors in the compact forms of sentence-transformers'
    `quantize_embeddings`, bit for bit (computed by the library; see Model.encode): "int8" /
    "uint8" need `ranges` (2, dim) or `calibration_embeddings`; "float32" returns the vectors."""
    if output_precision == "float32":
        return vectors
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise OptionsError(f"expected (n, dim) vectors, got shape {vectors.shape}")
    if output_precision in ("int8", "uint8") and ranges is None:
        if calibration_embeddings is None:
            raise OptionsError(
                f"output_precision={output_precision!r} needs ranges=(2, dim) or calibration_embeddings: "
                "ranges taken from the call's own texts would make each vector depend on the others")
        ranges = _e5.calibrate_ranges(np.asarray(calibration_embeddings, dtype=np.float32))
    if ranges is not None:
        ranges = np.asarray(ranges, dtype=np.float32)
    return _e5.quantize(vectors, output_precision, ranges)


class _StderrBar:
    """A minimal progress line on stderr when tqdm is not installed."""

    def __init__(self, total):
        self.total = total

    def __call__(self, done, total):
        sys.stderr.write(f"\re5: {done}/{total} texts")
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


def _progress_bar(total):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _StderrBar(total)
    bar = tqdm(total=total, unit="texts")

    class _Tqdm:
        def __call__(self, done, _total):
            bar.update(done - bar.n)

        def close(self):
            bar.close()

    return _Tqdm()
