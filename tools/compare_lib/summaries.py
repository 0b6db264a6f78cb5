"""Shared steps of the multi-run benchmark scripts (tools/thread-scaling.sh, tools/isa-bench.sh):
a short workload cut from the frozen one, and tables of medians / bests with speed ratios.

    PYTHONPATH=tools python3 -m compare_lib.summaries workload OUT.jsonl QUERIES PASSAGES
    PYTHONPATH=tools python3 -m compare_lib.summaries bench-row PATH PRECISION < e5-bench.json
    PYTHONPATH=tools python3 -m compare_lib.summaries isa ROWS.jsonl
    PYTHONPATH=tools python3 -m compare_lib.summaries threads OUT_DIR 1,2,4

Every run is reduced to one metrics dict `{"ms_median", "qps", "pps"}` (batch-1 ms per
query, batch-32 queries/s and passages/s): `tools/compare`'s `best` and `e5 bench` alike.
"""
import json
import os
import statistics
import sys

from compare_lib.main import METRICS, bench_metrics, cpu_model, load_workload, md_table, speedups


def subset_workload(dst, queries, passages, src="benches/workload.jsonl"):
    """The first `queries` queries and `passages` passages spread evenly over `src`, so one
    pass stays short while keeping the workload's length mix."""
    q, p = load_workload(src)
    n = min(passages, len(p))
    rows = q[:queries] + [p[i * len(p) // n] for i in range(n)]
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def ratio_text(x, base):
    return ", ".join(f"{r:.2f}×" for r in speedups(x, base))


def cpu_line():
    return f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible."


def isa_table(rows):
    """`tools/isa-bench.sh`: the median per (precision, path) of `bench-row` lines, and per
    precision the default dispatch against the best forced path of another ISA (the check
    that dispatch never picks a slower path). A forced path that runs the default's own ISA
    runs the same kernels: its ratio to the default is the run's noise floor, shown apart
    instead of counted as a loss or a win of the dispatch."""
    keys = sorted({(r["precision"], r["path"]) for r in rows}, key=lambda k: (k[0], k[1] != "default", k[1]))
    of = {k: [r for r in rows if (r["precision"], r["path"]) == k] for k in keys}
    med = {k: {c: statistics.median(r[c] for r in of[k]) for c in METRICS} for k in keys}
    lines = [cpu_line(), "", md_table(
        ["precision", "path", "isa", "batch-1 ms", "queries/s (b32)", "passages/s (b32)", "rounds"],
        [(p, path, of[(p, path)][0]["isa"], f"{m['ms_median']:.2f}", f"{m['qps']:.1f}", f"{m['pps']:.2f}",
          len(of[(p, path)])) for (p, path), m in med.items()]), ""]
    for p in sorted({k[0] for k in keys}):
        if (p, "default") not in med:
            continue
        isa = of[(p, "default")][0]["isa"]
        forced = [k for k in keys if k[0] == p and k[1] != "default"]
        other = [med[k] for k in forced if of[k][0]["isa"] != isa]
        if other:
            best = {"ms_median": min(m["ms_median"] for m in other), "qps": max(m["qps"] for m in other),
                    "pps": max(m["pps"] for m in other)}
            b1, q, ps = speedups(med[(p, "default")], best)
            lines.append(f"{p}: default ({isa}) / best forced other ISA: batch-1 speed {b1:.3f}x, "
                         f"queries {q:.3f}x, passages {ps:.3f}x")
        for k in (k for k in forced if of[k][0]["isa"] == isa):
            b1, q, ps = speedups(med[(p, "default")], med[k])
            lines.append(f"{p}: default / E5_ISA={k[1]} (the same kernels: the run's noise): "
                         f"batch-1 speed {b1:.3f}x, queries {q:.3f}x, passages {ps:.3f}x")
    lines.append("dispatch (default): " + next((r["dispatch"] for r in rows if r["path"] == "default"), "?"))
    return "\n".join(lines)


def threads_table(out, threads):
    """`tools/thread-scaling.sh`: each engine's best per thread count (from `compare-T.json`),
    its speed-up over the first thread count, and e5 against ONNX Runtime at the same count."""
    runs = {t: json.load(open(os.path.join(out, f"compare-{t}.json"))) for t in threads}
    rows, table = [], {}
    for e in runs[threads[0]]:
        base = (runs[threads[0]].get(e) or {}).get("best")
        for t in threads:
            b = (runs[t].get(e) or {}).get("best")
            if not b:
                rows.append((e, t, f"failed: {(runs[t].get(e) or {}).get('error')}", "", "", "", ""))
                continue
            table.setdefault(e, {})[t] = b
            peer = (runs[t].get("ort-" + e.split("-", 1)[1]) or {}).get("best") if e.startswith("e5-") else None
            rows.append((e, t, f"{b['ms_median']:.2f}", f"{b['qps']:.1f}", f"{b['pps']:.2f}",
                         ratio_text(b, base) if base else "", ratio_text(b, peer) if peer else ""))
    md = "\n".join([cpu_line(), "", md_table(
        ["engine", "threads", "ms/query b1", "queries/s b32", "passages/s b32",
         "× first thread count (b1, q/s, p/s)", "vs ORT (b1, q/s, p/s)"], rows)])
    open(os.path.join(out, "scaling.md"), "w").write(md + "\n")
    json.dump({"cpu": cpu_model(), "threads": threads, "best": table}, open(os.path.join(out, "scaling.json"), "w"),
              indent=1)
    return md


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "workload":
        subset_workload(args[0], int(args[1]), int(args[2]))
    elif cmd == "bench-row":
        bench = json.load(sys.stdin)
        row = {"path": args[0], "precision": args[1], "isa": bench["isa"], "dispatch": bench.get("dispatch", "")}
        print(json.dumps(row | bench_metrics(bench)))
    elif cmd == "isa":
        print(isa_table([json.loads(l) for l in open(args[0])]))
    elif cmd == "threads":
        print(threads_table(args[0], [int(t) for t in args[1].split(",")]))
    else:
        sys.exit(f"unknown command {cmd!r}: workload, bench-row, isa or threads")


if __name__ == "__main__":
    main(sys.argv[1:])
