#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), starting from the
# committed seeds (fuzz/seeds/TARGET) and a working corpus (fuzz/corpus/TARGET, not
# committed). A crash, panic, abort, leak of more than 2 GB or a 10 s input fails the run
# and leaves the input in fuzz/artifacts/TARGET.
#   bash tools/fuzz.sh [--dev] [SECONDS] [TARGET...]
# --dev builds unoptimized, with debug assertions and overflow checks (cargo-fuzz's dev
# profile): far fewer executions a second, but it compiles in 3m25s where the optimized
# build takes 5m41s (Zen 3, 2 cores), and every input runs with overflow checks. tools/test.sh
# runs a short smoke that way; long runs want the default, optimized build.
# cargo-fuzz needs nightly rustc features; RUSTC_BOOTSTRAP=1 enables them on stable.
# Installs cargo-fuzz (pinned) if it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=--release
if [ "${1:-}" = --dev ]; then
  profile=--dev
  shift
fi
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors_checkpoint model_config tokenizer_json cli_text_reader quantization_files tokenizer_differential
    server_request_body)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install -q --locked cargo-fuzz --version 0.13.1
fi
export RUSTC_BOOTSTRAP=1
# No sanitizer: e5's unsafe code is in its SIMD kernels, which these targets reach only
# through whole-model runs; the targets look for panics, aborts, hangs and unbounded memory.
cargo fuzz build "$profile" --sanitizer none --fuzz-dir fuzz
# The fixtures' weights and XLM-R tokenizer seed two targets without being committed twice.
fixtures="$(mktemp -d)"
trap 'rm -rf "$fixtures"' EXIT
mkdir -p "$fixtures/safetensors_checkpoint" "$fixtures/tokenizer_json"
for m in tiny-bert tiny-bert-f16 tiny-xlmr; do
  cp "tests/fixtures/$m/model.safetensors" "$fixtures/safetensors_checkpoint/$m"
done
cp tests/fixtures/tiny-xlmr/tokenizer.json "$fixtures/tokenizer_json/tiny-xlmr"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "$fixtures/$t"
  echo "== $t (${seconds}s)"
  log="$(mktemp)"
  if ! cargo fuzz run "$profile" --sanitizer none --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" "$fixtures/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=400000 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t failed" >&2
    exit 1
  fi
  # Executions, run time, final coverage (cov / ft / corpus) and peak memory.
  grep -E "stat::(number_of_executed_units|peak_rss_mb)|Done [0-9]+ runs|DONE +cov" "$log" | tail -n 4
  rm -f "$log"
done
