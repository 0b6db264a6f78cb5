#!/usr/bin/env bash
# The Python package (crates/e5-python): build the abi3 wheel with maturin, install it in a
# fresh venv with pinned test requirements, and run its pytest suite against the real model
# and the `e5` binary (both must exist: tools/test.sh builds them first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
pip=("$work/venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" -r tools/requirements-python.txt
(cd crates/e5-python && "$work/venv/bin/maturin" build --release --quiet -o "$work/wheels")
"${pip[@]}" --no-deps "$work"/wheels/e5-*.whl
# pytest puts the tests directory (not python/) on sys.path: `import e5` is the installed wheel.
E5_BIN="$PWD/target/release/e5" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider crates/e5-python/tests "$@"
