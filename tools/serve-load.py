#!/usr/bin/env python3
"""Loopback load generator for `e5 serve` (standard library only).

Closed loop: N clients, each with one keep-alive connection, send requests back to back for
a fixed time. Open loop (--rate): requests arrive at a fixed rate whatever the server does,
which is how an overload is offered. Prints one JSON line per phase: requests, inputs/s,
latency p50/p99 of the 200s, and how many got 429.

    python3 tools/serve-load.py --url http://127.0.0.1:8080 --clients 64 --seconds 20
    python3 tools/serve-load.py --url ... --mix 0.1 --passages 16     # 10% passage batches
    python3 tools/serve-load.py --url ... --rate 500 --seconds 20       # open loop
"""

import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def workload():
    queries, passages = [], []
    with open(os.path.join(ROOT, "benches/workload.jsonl")) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                (passages if row.get("kind") == "passage" else queries).append(row["text"])
    return queries, passages


class Client:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, url, model):
        self.host = urllib.parse.urlsplit(url)
        self.model = model
        self.conn = None

    def post(self, texts, kind):
        body = json.dumps({"model": self.model, "input": texts, "input_type": kind})
        start = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host.hostname, self.host.port, timeout=300)
            self.conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            r = self.conn.getresponse()
            r.read()
            status = r.status
        except OSError:
            self.conn = None
            status = 0
        return status, time.perf_counter() - start


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else None


def run(args, queries, passages):
    results = []  # (status, seconds, inputs, is_query)
    lock = threading.Lock()
    stop = time.perf_counter() + args.seconds
    counter = [0]

    def one(client, i):
        batch = args.mix > 0 and i % round(1 / args.mix) == 0
        texts = [passages[(i + k) % len(passages)] for k in range(args.passages)] if batch else [queries[i % len(queries)]]
        status, dt = client.post(texts, "passage" if batch else "query")
        with lock:
            results.append((status, dt, len(texts), not batch))

    def closed_loop(c):
        client = Client(args.url, args.model)
        i = c
        while time.perf_counter() < stop:
            one(client, i)
            i += args.clients

    def open_loop(c):
        # Worker c sends the requests scheduled at t0 + k / rate for k ≡ c (mod workers).
        client = Client(args.url, args.model)
        t0 = start
        k = c
        while True:
            due = t0 + k / args.rate
            if due >= stop:
                return
            time.sleep(max(0.0, due - time.perf_counter()))
            one(client, k)
            k += args.clients

    start = time.perf_counter()
    threads = [threading.Thread(target=open_loop if args.rate else closed_loop, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ok = [r for r in results if r[0] == 200]
    q = [r[1] for r in ok if r[3]]
    return {
        "clients": args.clients,
        "rate": args.rate,
        "mix": args.mix,
        "seconds": round(elapsed, 2),
        "requests": len(results),
        "ok": len(ok),
        "429": sum(r[0] == 429 for r in results),
        "other_errors": sum(r[0] not in (200, 429) for r in results),
        "inputs_per_s": round(sum(r[2] for r in ok) / elapsed, 1),
        "query_p50_ms": round(1e3 * percentile(q, 50), 2) if q else None,
        "query_p99_ms": round(1e3 * percentile(q, 99), 2) if q else None,
        "all_p99_ms": round(1e3 * percentile([r[1] for r in ok], 99), 2) if ok else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--mix", type=float, default=0.0, help="fraction of requests that are passage batches")
    ap.add_argument("--passages", type=int, default=16, help="passages per passage batch")
    ap.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second")
    args = ap.parse_args()
    if not args.url.startswith("http://127.0.0.1") and not args.url.startswith("http://localhost"):
        raise SystemExit("serve-load.py drives loopback servers only")
    queries, passages = workload()
    print(json.dumps(run(args, queries, passages)), flush=True)


if __name__ == "__main__":
    main()
