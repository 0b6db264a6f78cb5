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
PYTHONPATH=tools python3 -m compare_lib.summaries workload "$WORKLOAD" "${QUERIES:-64}" "${PASSAGES:-16}"
for t in ${THREADS//,/ }; do
  echo "== $t threads" >&2
  python3 tools/compare --model "$MODEL" --workload "$WORKLOAD" --threads "$t" --seconds "$SECONDS_PER" \
    --rounds "$ROUNDS" --engines "$ENGINES" --e5 "$E5_BIN" --skip-quality --out "$OUT_DIR/compare-$t.md" \
    --json "$OUT_DIR/compare-$t.json" >/dev/null
done
PYTHONPATH=tools python3 -m compare_lib.summaries threads "$OUT_DIR" "$THREADS"
