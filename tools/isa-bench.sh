#!/usr/bin/env bash
# Default dispatch against every forced ISA, alternated in one run: `e5 bench` per
# (round, path, precision), then the median of each column and default ÷ best forced.
#
#   tools/isa-bench.sh [MODEL] [ROUNDS] [THREADS] [SECONDS] [PRECISIONS]
#   tools/isa-bench.sh models/multilingual-e5-small 3 2 2 fp32,int8
#
# Paths: the default (no E5_ISA) and each x86 / arm ISA this CPU has, scalar excluded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODEL="${1:-models/multilingual-e5-small}"
ROUNDS="${2:-3}"
THREADS="${3:-2}"
SECONDS_PER="${4:-2}"
PRECISIONS="${5:-fp32,int8}"
cargo build --release -q -p e5-cli
BIN=target/release/e5
paths=(default)
if grep -qw avx2 /proc/cpuinfo; then paths+=(avx2); fi
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then paths+=(avx512); fi
if [[ "$(uname -m)" == aarch64 ]]; then paths+=(neon); fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for p in ${PRECISIONS//,/ }; do
    for path in "${paths[@]}"; do
      env_isa=()
      [[ "$path" != default ]] && env_isa=(E5_ISA="$path")
      json="$(env "${env_isa[@]}" "$BIN" bench -m "$MODEL" --precision "$p" --threads "$THREADS" --seconds "$SECONDS_PER")"
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"path": sys.argv[2], "precision": sys.argv[3], "isa": d["isa"], "dispatch": d.get("dispatch",""), "b1_ms": d["query_latency_ms"]["median"], "qps": d["queries_per_s_batch32"], "pps": d["passages_per_s_batch32"]}))' "$json" "$path" "$p" >>"$out"
      echo "round $round $p $path done" >&2
    done
  done
done
python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["precision"], r["path"]) for r in rows}, key=lambda k: (k[0], k[1] != "default", k[1]))
med = {k: {c: statistics.median(r[c] for r in rows if (r["precision"], r["path"]) == k) for c in ("b1_ms", "qps", "pps")} for k in keys}
print(f"| precision | path | isa | batch-1 ms | queries/s (b32) | passages/s (b32) | rounds |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for k in keys:
    isa = next(r["isa"] for r in rows if (r["precision"], r["path"]) == k)
    n = sum(1 for r in rows if (r["precision"], r["path"]) == k)
    m = med[k]
    print(f"| {k[0]} | {k[1]} | {isa} | {m['b1_ms']:.2f} | {m['qps']:.1f} | {m['pps']:.2f} | {n} |")
print()
for p in sorted({k[0] for k in keys}):
    forced = [k for k in keys if k[0] == p and k[1] != "default"]
    if not forced or (p, "default") not in med:
        continue
    d = med[(p, "default")]
    best_b1 = min(med[k]["b1_ms"] for k in forced)
    best_q = max(med[k]["qps"] for k in forced)
    best_p = max(med[k]["pps"] for k in forced)
    print(f"{p}: default / best forced: batch-1 speed {best_b1 / d['b1_ms']:.3f}x, queries {d['qps'] / best_q:.3f}x, passages {d['pps'] / best_p:.3f}x")
print("dispatch (default):", next(r["dispatch"] for r in rows if r["path"] == "default"))
EOF
