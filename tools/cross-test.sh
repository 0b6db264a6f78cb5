#!/usr/bin/env bash
# Runs the e5-kernels tests for aarch64 under qemu user-mode emulation, twice: on a CPU with
# dotprod (NEON + `sdot` int8 kernel) and on one without (NEON `smull` fallback); then the
# parity tests of the tiny models and of multilingual-e5-small (NEON and scalar against the
# sentence-transformers reference; needs tools/setup-models.sh first).
# Installs the Rust target, qemu and the cross toolchain when missing.
# CARGO_TARGET_DIR defaults to target/aarch64-cross; extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
trap 'echo "cross-test.sh: FAILED (qemu -cpu ${cpu:-none, during setup})" >&2' ERR

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-g++ >/dev/null \
    || [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        qemu-user gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/aarch64-cross}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# tokenizers' C/C++ parts (onig, esaxx), for the model tests.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++

# max: every extension qemu emulates (dotprod included); cortex-a72: Armv8.0, no dotprod.
for cpu in max cortex-a72; do
    echo "== e5-kernels tests on aarch64, qemu -cpu $cpu"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $cpu" \
        cargo test --release -p e5-kernels --target "$target" "$@"
done
cpu=max
echo "== model parity on aarch64 (tiny models, multilingual-e5-small), qemu -cpu $cpu"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $cpu" \
    cargo test --release -p e5-tests --target "$target" --test parity -- tiny e5_small_on_every_isa --nocapture
echo "== aarch64 cross tests passed (qemu -cpu max, cortex-a72)"
