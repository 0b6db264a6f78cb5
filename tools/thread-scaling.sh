#!/usr/bin/env bash
# Thread scaling, e5 against ONNX Runtime: one `tools/compare` run per thread count (same
# engines, same workload, interleaved rounds, best-of), then one table of latency and
# throughput per engine and thread count, with the speed-up over 1 thread and e5 ÷ ORT.
#
#   tools/thread-scaling.sh OUT_DIR [THREADS] [SECONDS] [ROUNDS]
#   tools/thread-scaling.sh /tmp/scaling 1,2,4,8,16 1 1
#
# Environment: MODEL (default models/multilingual-e5-small), E5_BIN (default
# target/release/e5), ENGINES (default e5-fp32,e5-int8,ort-fp32,ort-int8), QUERIES and
# PASSAGES: the workload is the first QUERIES queries (default 64) and PASSAGES passages
# (default 16) spread evenly over benches/workload.jsonl, so one pass stays short at 1 thread
# while keeping its length mix. Writes OUT_DIR/scaling.md, OUT_DIR/scaling.json and the raw
# per-thread-count JSON. Needs tools/requirements-compare.txt (no quality pass is run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR="${1:?usage: tools/thread-scaling.sh OUT_DIR [THREADS] [SECONDS] [ROUNDS]}"
THREADS="${2:-1,2,4,8,16}"
SECONDS_PER="${3:-1}"
ROUNDS="${4:-1}"
MODEL="${MODEL:-models/multilingual-e5-small}"
E5_BIN="${E5_BIN:-target/release/e5}"
ENGINES="${ENGINES:-e5-fp32,e5-int8,ort-fp32,ort-int8}"
mkdir -p "$OUT_DIR"
WORKLOAD="$OUT_DIR/workload.jsonl"
python3 - "$WORKLOAD" "${QUERIES:-64}" "${PASSAGES:-16}" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open("benches/workload.jsonl", encoding="utf-8") if l.strip()]
q = [r for r in rows if r.get("kind") != "passage"][: int(sys.argv[2])]
p = [r for r in rows if r.get("kind") == "passage"]
n = min(int(sys.argv[3]), len(p))
p = [p[i * len(p) // n] for i in range(n)]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for r in q + p:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
EOF
for t in ${THREADS//,/ }; do
  echo "== $t threads" >&2
  python3 tools/compare --model "$MODEL" --workload "$WORKLOAD" --threads "$t" --seconds "$SECONDS_PER" \
    --rounds "$ROUNDS" --engines "$ENGINES" --e5 "$E5_BIN" --skip-quality --out "$OUT_DIR/compare-$t.md" \
    --json "$OUT_DIR/compare-$t.json" >/dev/null
done
python3 - "$OUT_DIR" "$THREADS" <<'EOF'
import json, os, sys
out, threads = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
runs = {t: json.load(open(os.path.join(out, f"compare-{t}.json"))) for t in threads}
engines = list(runs[threads[0]])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [f"CPU: {cpu}, {os.cpu_count()} logical CPUs visible.", "",
         "| engine | threads | ms/query b1 | queries/s b32 | passages/s b32 | b1 speed-up | q/s × | p/s × | vs ORT (b1, q/s, p/s) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
table = {}
for e in engines:
    base = (runs[threads[0]].get(e) or {}).get("best")
    for t in threads:
        b = (runs[t].get(e) or {}).get("best")
        if not b:
            lines.append(f"| {e} | {t} | failed: {(runs[t].get(e) or {}).get('error')} | | | | | | |")
            continue
        table.setdefault(e, {})[t] = b
        peer = (runs[t].get("ort-" + e.split("-", 1)[1]) or {}).get("best") if e.startswith("e5-") else None
        vs = (f"{peer['ms_median'] / b['ms_median']:.2f}×, {b['qps'] / peer['qps']:.2f}×, {b['pps'] / peer['pps']:.2f}×"
              if peer else "")
        up = (f"{base['ms_median'] / b['ms_median']:.2f}", f"{b['qps'] / base['qps']:.2f}",
              f"{b['pps'] / base['pps']:.2f}") if base else ("", "", "")
        lines.append(f"| {e} | {t} | {b['ms_median']:.2f} | {b['qps']:.1f} | {b['pps']:.2f} | {up[0]} | {up[1]} | {up[2]} | {vs} |")
open(os.path.join(out, "scaling.md"), "w").write("\n".join(lines) + "\n")
json.dump({"cpu": cpu, "threads": threads, "best": table}, open(os.path.join(out, "scaling.json"), "w"), indent=1)
print("\n".join(lines))
EOF
