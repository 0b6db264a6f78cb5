#!/usr/bin/env bash
# Runs the e5-kernels tests for aarch64 under qemu user-mode emulation: all of them on a CPU
# with dotprod (every variant: `sdot` and `smull` int8), the int8 / int4 ones and dispatch
# again on a CPU without it (what detection picks there); then parity with the
# sentence-transformers reference: the tiny models on NEON and scalar, multilingual-e5-small
# on NEON (its scalar twin is the same code on x86, checked there; needs
# tools/setup-models.sh first).
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

# max: every extension qemu emulates (dotprod included), so every variant runs there, the
# `smull` int8 kernel beside `sdot`. cortex-a72: Armv8.0, no dotprod: what detection picks
# without it, and that no `sdot` is reached then (the int8 and int4 tests; the f32 kernels
# are the same on both CPUs).
cpu=max
echo "== e5-kernels tests on aarch64, qemu -cpu $cpu"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $cpu" \
    cargo test --release -p e5-kernels --target "$target" "$@"
cpu=cortex-a72
echo "== e5-kernels dispatch, int8 and int4 tests on aarch64, qemu -cpu $cpu"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $cpu" \
    cargo test --release -p e5-kernels --target "$target" --lib --test int8 --test int4 "$@"
cpu=max
echo "== model parity on aarch64 (tiny models, multilingual-e5-small), qemu -cpu $cpu"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $cpu" \
    cargo test --release -p e5-tests --target "$target" --test parity -- tiny e5_small_on_every_vector_isa --nocapture
echo "== aarch64 cross tests passed (qemu -cpu max, cortex-a72)"
