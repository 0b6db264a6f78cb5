#!/usr/bin/env bash
# Default dispatch against every forced ISA, alternated in one run: `e5 bench` per
# (round, path, precision), then the median of each column and default ÷ the best forced
# path of another ISA. The forced path of the default's own ISA runs the same kernels: its
# ratio is printed apart, as the run's noise floor.
#
#   tools/isa-bench.sh [MODEL] [ROUNDS] [THREADS] [SECONDS] [PRECISIONS]
#   tools/isa-bench.sh models/multilingual-e5-small 3 2 2 fp32,int8
#
# Paths: the default (no E5_ISA) and each x86 / arm ISA this CPU has, scalar excluded.
# Environment: QUERIES and PASSAGES (both or neither) bench a short cut of
# benches/workload.jsonl instead of the whole (as tools/thread-scaling.sh does).
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
workload="$(mktemp)"
trap 'rm -f "$out" "$workload"' EXIT
if [[ -n "${QUERIES:-}${PASSAGES:-}" ]]; then
  PYTHONPATH=tools python3 -m compare_lib.summaries workload "$workload" "${QUERIES:?}" "${PASSAGES:?}"
else
  cp benches/workload.jsonl "$workload"
fi
for round in $(seq "$ROUNDS"); do
  for p in ${PRECISIONS//,/ }; do
    for path in "${paths[@]}"; do
      env_isa=()
      [[ "$path" != default ]] && env_isa=(E5_ISA="$path")
      env "${env_isa[@]}" "$BIN" bench -m "$MODEL" --precision "$p" --threads "$THREADS" --seconds "$SECONDS_PER" \
        --workload "$workload" | PYTHONPATH=tools python3 -m compare_lib.summaries bench-row "$path" "$p" >>"$out"
      echo "round $round $p $path done" >&2
    done
  done
done
PYTHONPATH=tools python3 -m compare_lib.summaries isa "$out"
