#!/usr/bin/env bash
# GPU check for the e5 CUDA backend; runs on the lent GPU machine in < 8 minutes.
#
# Depends on these e5 CLI flags (binary built beforehand, carried as target/release/e5):
#   cargo build --release -p e5-cli --features cuda
#   e5 embed --model DIR --device cuda --input FILE --format npy --output FILE.npy
#   e5 bench --model DIR --device cuda --precision f16 --workload FILE.jsonl --batch-size N --seconds S
#     (prints JSON; queries_per_s_batch32 / passages_per_s_batch32 are texts/s at --batch-size)
# E5_BIN overrides the binary path; E5_GPU_TESTS, if set, names the prebuilt GPU test
# binary (`cargo test --release -p e5-cuda --test gpu --no-run`), run before the benchmarks.
# Needs on the machine: NVIDIA driver, python with torch, transformers,
# sentence-transformers, tokenizers, numpy. Carried: tokenizer.json
# (default models/multilingual-e5-small/tokenizer.json, or $E5_TOKENIZER).
# Usage: tools/gpu-check.sh [small,base,large]   Results: $OUT/gpu-check.{json,md}
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${1:-e5-small,e5-base,e5-large}"
E5="${E5_BIN:-target/release/e5}"
TOK="${E5_TOKENIZER:-models/multilingual-e5-small/tokenizer.json}"
WORK="$(mktemp -d)"
RES="${OUT:-$WORK/out}"
mkdir -p "$RES"
BENCH_SECONDS="${BENCH_SECONDS:-4}"
[ -x "$E5" ] || { echo "missing $E5 (build with --features cuda and carry it)"; exit 2; }
[ -f "$TOK" ] || { echo "missing $TOK"; exit 2; }

# cuBLAS / NVRTC: use the CUDA 12/13 libraries shipped with PyTorch when the system has none.
LIBS="$(python3 - <<'PY'
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(sp, "nvidia", "*", "lib")):
        if glob.glob(os.path.join(lib, "libcublas*.so*")) or glob.glob(os.path.join(lib, "libnvrtc*.so*")):
            dirs.append(lib)
print(":".join(dirs))
PY
)"
# cudarc looks for lib{cublas,cublasLt,nvrtc}.so or .so.12; alias newer sonames.
mkdir -p "$WORK/lib"
for d in ${LIBS//:/ } /usr/local/cuda/lib64; do
  for n in cublas cublasLt nvrtc; do
    f="$(ls "$d"/lib$n.so.* 2>/dev/null | grep -E "lib$n\.so\.[0-9]+$" | head -1 || true)"
    [ -n "$f" ] && [ ! -e "$WORK/lib/lib$n.so" ] && ln -s "$f" "$WORK/lib/lib$n.so"
  done
done
export LD_LIBRARY_PATH="$WORK/lib:${LIBS}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"; } | tee "$RES/gpu.txt"

if [ -n "${E5_GPU_TESTS:-}" ]; then
  echo "== GPU tests"
  "$E5_GPU_TESTS" --nocapture >"$RES/gpu-tests.txt" 2>&1 || echo "GPU TESTS FAILED" >>"$RES/gpu-tests.txt"
  cat "$RES/gpu-tests.txt"
  ! grep -q "skipped: no CUDA device" "$RES/gpu-tests.txt" || echo "GPU TESTS SKIPPED on a GPU machine"
fi

echo "== models"
python3 tools/gpu/make_models.py "$TOK" "$WORK/models" "$MODELS"
python3 tools/gpu/workloads.py "$TOK" "$WORK" | tee "$RES/workloads.txt"

JSON="$RES/gpu-check.json"; MD="$RES/gpu-check.md"
echo "[" > "$JSON"
printf '| model | parity cos min | cos mean | workload | batch | e5 sent/s | torch fp16 sent/s | ratio |\n|---|---|---|---|---|---|---|---|\n' > "$MD"
status=0
first=1
cp benches/workload.jsonl "$WORK/bench.jsonl"
for m in ${MODELS//,/ }; do
  dir="$WORK/models/$m"
  echo "== parity $m"
  "$E5" embed --model "$dir" --device cuda --precision f16 --input "$WORK/parity.txt" --format npy --output "$WORK/$m.npy" \
    || { echo "e5 embed failed on $m"; status=1; continue; }
  par="$(python3 tools/gpu/parity.py "$dir" "$WORK/parity.txt" "$WORK/$m.npy" | tail -1)"
  echo "$par"
  grep -q '"pass": true' <<<"$par" || status=1
  cmin="$(python3 -c 'import json,sys; print("%.6f" % json.loads(sys.argv[1])["cos_min"])' "$par")"
  cmean="$(python3 -c 'import json,sys; print("%.6f" % json.loads(sys.argv[1])["cos_mean"])' "$par")"
  for b in 1 32; do
    echo "== bench $m batch $b"
    bench="$("$E5" bench --model "$dir" --device cuda --precision f16 --workload "$WORK/bench.jsonl" --batch-size "$b" \
              --seconds "$BENCH_SECONDS" || echo '{}')"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["gpu_check"]=sys.argv[2:]; print(json.dumps(d))' \
      "$bench" "$m" "$b" >> "$RES/e5-bench.jsonl"
    for wl in short long; do
      key=$([ "$wl" = short ] && echo queries_per_s_batch32 || echo passages_per_s_batch32)
      e5s="$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1]).get(sys.argv[2], 0))' "$bench" "$key")"
      pts="$(python3 tools/gpu/torch_bench.py "$dir" "$WORK/$wl.txt" "$b" "$BENCH_SECONDS" | tail -1 \
              | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["sentences_per_s"])')"
      ratio="$(python3 -c "import sys; a,b=map(float,sys.argv[1:]); print('%.2f' % (a/b if b else 0))" "$e5s" "$pts")"
      echo "e5 $e5s sent/s, torch fp16 $pts sent/s, ratio $ratio"
      [ $first = 1 ] || echo "," >> "$JSON"; first=0
      printf '{"model":"%s","parity":%s,"workload":"%s","batch":%s,"e5_sent_s":%s,"torch_fp16_sent_s":%s,"ratio":%s}\n' \
        "$m" "$par" "$wl" "$b" "$e5s" "$pts" "$ratio" >> "$JSON"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" "$cmin" "$cmean" "$wl" "$b" "$e5s" "$pts" "$ratio" >> "$MD"
    done
  done
done
echo "]" >> "$JSON"
cat "$MD"
[ $status = 0 ] && echo "PARITY OK" || echo "PARITY FAILED"
exit $status
