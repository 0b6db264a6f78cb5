#!/usr/bin/env bash
# A/B speed of two revisions on this machine. Builds REV in a scratch git worktree, then
# alternates `e5 bench` of that build and of the working tree's ROUNDS times on a slice of
# the frozen workload (32 queries, 8 passages), so both builds meet the same drift of a
# noisy machine; prints each phase's median over the rounds, old → new.
#
#   tools/ab-bench.sh REV [precision] [rounds] [threads]     e.g. tools/ab-bench.sh HEAD~1 int8 10 2
#
# Needs models/multilingual-e5-small (bash tools/setup-models.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev="${1:?usage: tools/ab-bench.sh REV [precision] [rounds] [threads]}"
precision="${2:-fp32}" rounds="${3:-10}" threads="${4:-2}"
model="$PWD/models/multilingual-e5-small"
[ -f "$model/model.safetensors" ] || { echo "missing $model: run bash tools/setup-models.sh" >&2; exit 1; }

scratch="$(mktemp -d)"
trap 'git worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git worktree add --detach -q "$scratch/tree" "$rev"
echo "building $rev and the working tree ..." >&2
CARGO_TARGET_DIR="$PWD/target/ab-old" cargo build --release -q -p e5-cli --manifest-path "$scratch/tree/Cargo.toml"
cargo build --release -q -p e5-cli
awk '/"kind": *"query"/ { if (q++ < 32) print } /"kind": *"passage"/ { if (p++ < 8) print }' \
    benches/workload.jsonl >"$scratch/workload.jsonl"

for r in $(seq "$rounds"); do
    for build in old new; do
        bin="target/release/e5"
        [ "$build" = old ] && bin="target/ab-old/release/e5"
        "$bin" bench -m "$model" --precision "$precision" --threads "$threads" --seconds 1 \
            --workload "$scratch/workload.jsonl" >"$scratch/$build.$r.json"
    done
    echo "round $r/$rounds" >&2
done

python3 - "$scratch" "$rounds" "$rev" "$precision" "$threads" <<'EOF'
import json, statistics, sys
scratch, rounds, rev, precision, threads = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
phases = [("batch-1 ms (median)", lambda d: d["query_latency_ms"]["median"]),
          ("queries/s (batch 32)", lambda d: d["queries_per_s_batch32"]),
          ("passages/s (batch 32)", lambda d: d["passages_per_s_batch32"])]
runs = {b: [json.load(open(f"{scratch}/{b}.{r}.json")) for r in range(1, rounds + 1)] for b in ("old", "new")}
print(f"{precision}, {threads} threads, {rounds} alternating rounds; old = {rev}, new = working tree\n")
print("| phase | old | new | new / old |\n| --- | ---: | ---: | ---: |")
for name, get in phases:
    old, new = (statistics.median(get(d) for d in runs[b]) for b in ("old", "new"))
    print(f"| {name} | {old:.2f} | {new:.2f} | {new / old:.3f} |")
EOF
