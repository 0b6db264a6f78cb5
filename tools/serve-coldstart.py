#!/usr/bin/env python3
"""Cold start of `e5 serve`: process start -> `GET /ready` answers 200 (standard library only).

Each run spawns the server, polls /ready every millisecond, records the time, then sends
SIGTERM and waits for exit 0. The first run warms the page cache and is not counted, so the
figures are for a model already in the page cache (a restarted container on the same node).
Prints one JSON line: median, min and max over the counted runs, and the median resident
memory (VmRSS) once ready.

    python3 tools/serve-coldstart.py --model models/multilingual-e5-small --runs 10
    python3 tools/serve-coldstart.py --model /tmp/e5-small-int8 --runs 10
    python3 tools/serve-coldstart.py --model models/multilingual-e5-small --residency lazy
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def one_run(binary, model, threads, residency):
    port = free_port()
    cmd = [binary, "serve", "--model", model, "--port", str(port), "--threads", str(threads), "--residency", residency]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready(port):
        if proc.poll() is not None:
            raise SystemExit(f"e5 serve exited with {proc.returncode} before /ready: {' '.join(cmd)}")
        if time.perf_counter() - start > 60:
            proc.kill()
            raise SystemExit("e5 serve was not ready within 60 s")
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    rss = rss_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    if proc.wait(timeout=30) != 0:
        raise SystemExit(f"e5 serve exited with {proc.returncode} after SIGTERM")
    return elapsed, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="[NAME=]DIR[:PRECISION], as `e5 serve --model` takes it")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--residency", default="copy", help="as `e5 serve --residency` takes it")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/e5"))
    args = ap.parse_args()
    one_run(args.binary, args.model, args.threads, args.residency)  # warms the page cache
    runs = [one_run(args.binary, args.model, args.threads, args.residency) for _ in range(args.runs)]
    ms = [round(1e3 * t, 1) for t, _ in runs]
    rss = statistics.median(r for _, r in runs)
    print(json.dumps({
        "model": args.model, "residency": args.residency, "runs": args.runs,
        "median_ms": round(statistics.median(ms), 1), "min_ms": min(ms), "max_ms": max(ms), "rss_mib": round(rss, 1),
    }))


if __name__ == "__main__":
    main()
