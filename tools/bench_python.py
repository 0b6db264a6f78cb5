"""Throughput of the Python binding against `e5 embed` at the same batch size, side by side.

    python tools/bench_python.py --model models/multilingual-e5-small [--rounds 5] [--batch-size 32]

Embeds the texts of benches/workload.jsonl (repeated --repeat times) as passages, alternating a
Python `Model.encode` call and an `e5 embed` run per round so both see the same machine load.
The CLI's rate is the one its summary line reports (embedding only, model load excluded); the
Python rate times `encode` alone (the model is loaded once). Prints the medians and their ratio.
"""

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import e5

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(ROOT / "models" / "multilingual-e5-small"))
    p.add_argument("--e5", default=str(ROOT / "target" / "release" / "e5"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()

    lines = (ROOT / "benches" / "workload.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()] * a.repeat
    model = e5.Model(a.model, threads=a.threads)
    threads = ["--threads", str(a.threads)] if a.threads else []
    py, cli = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(t) + "\n" for t in texts))
        for _ in range(a.rounds):
            start = time.perf_counter()
            vectors = model.encode(texts, batch_size=a.batch_size, kind="passage")
            py.append(len(texts) / (time.perf_counter() - start))
            run = subprocess.run([a.e5, "embed", "-m", a.model, "--kind", "passage", "--input-format", "jsonl",
                                  "-i", str(corpus), "--format", "npy", "-o", str(Path(tmp) / "v.npy"),
                                  "--batch-size", str(a.batch_size), *threads],
                                 check=True, capture_output=True, text=True)
            cli.append(float(re.search(r"e5 embed: .*\(([\d.]+) texts/s\)", run.stderr)[1]))
            assert np.load(Path(tmp) / "v.npy").tobytes() == vectors.tobytes(), "Python and CLI vectors differ"
    mp, mc = statistics.median(py), statistics.median(cli)
    print(json.dumps({"texts": len(texts), "batch_size": a.batch_size, "rounds": a.rounds,
                      "python_texts_per_s": round(mp, 1), "cli_texts_per_s": round(mc, 1),
                      "python_over_cli": round(mp / mc, 4), "python_all": [round(x, 1) for x in py],
                      "cli_all": [round(x, 1) for x in cli]}, indent=1))


if __name__ == "__main__":
    main()
