#!/usr/bin/env python3
"""Fails when a micro-kernel's inner loop touches the stack: accumulator spills.

A GEMM micro-kernel must hold its whole tile of accumulators in registers; when codegen
runs out (or cannot prove an array stays in registers) every FMA is followed by a store
of its accumulator to the stack, and the loop is bound by stores instead of FMAs. That
regression is invisible to correctness tests, so this script reads the disassembly.

For every function named below it finds the loops (a branch back to an earlier address
inside the function), keeps those that issue multiply-accumulate instructions (FMA,
vpdpbusd, vpmaddwd, vdpbf16ps), and reports any vector load or store addressed off %rsp /
%rbp in them, and any call to memset / memcpy in the whole function (an array the tile
keeps in memory). Exit status 1 if one is found, so `tools/test.sh` fails on a spill.

usage: check-spills.py BINARY[,BINARY...] [FUNCTION_SUBSTRING ...]
(a function is looked up in every binary given; kernels no binary links are an error)
"""
import re
import subprocess
import sys

DEFAULT_FUNCTIONS = [
    # The whole module: the row-count instances sit in `tile`, in `tile_of` (one per panel
    # type) or out of line in `rows`, as codegen inlines them.
    "e5_kernels::f32gemm::avx512::",
    "e5_kernels::f32gemm::avx2::tile",
    "e5_kernels::i8gemm::avx512vnni::tile",
    "e5_kernels::i8gemm::avxvnni::tile",
    "e5_kernels::i8gemm::avx2::tile",
    "e5_kernels::i4gemm::avx512vnni::tile",
    "e5_kernels::i4gemm::avx2::tile",
    "e5_kernels::bf16gemm::avx512bf16::tile",
]
# The multiply-accumulate that makes a kernel's inner loop: FMA for f32 tiles; the integer
# dot products for int8 / int4 tiles, whose FMAs only fold finished groups into f32; the
# bf16 pair dot product for bf16-dot tiles.
F32_MAC = re.compile(r"\bvfmadd\w*\b")
INT_MAC = re.compile(r"\b(vpdpbusd\w*|vpmaddwd|vpmaddubsw)\b")
BF16_MAC = re.compile(r"\bvdpbf16ps\b")
# AT&T order: a store names the register first, the stack slot last.
STACK_STORE = re.compile(r"\bvmov\w*\s+%[xyz]mm\d+,\s*-?(0x[0-9a-f]+)?\((%rsp|%rbp)")
BRANCH = re.compile(r"\bj\w+\s+([0-9a-f]+)\s+<")
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
# A tile that zeroes or copies an array with a libc call keeps that array in memory (the
# VNNI int8 tile's epilogue looped over an accumulator array on the stack, zeroed by a
# 1.5 KiB memset at every call).
MEM_CALL = re.compile(r"\bcall\b.*\bmem(set|cpy|move)\b")


def functions(binary, wanted):
    """{name: [(address, instruction)]} for every function whose name contains a wanted part."""
    dis = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", binary], capture_output=True, text=True, check=True
    ).stdout
    out, name = {}, None
    for line in dis.splitlines():
        head = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if head:
            name = head.group(2) if any(w in head.group(2) for w in wanted) else None
            if name in out:  # another instance of a generic function: demangled alike
                name = f"{name} @{head.group(1).lstrip('0')}"
            if name:
                out[name] = []
        elif name and (m := LINE.match(line)):
            out[name].append((int(m.group(1), 16), m.group(2)))
    return out


def loop_spills(body, mac):
    """[(loop start, loop end, macs, spill lines)] for each innermost MAC-issuing loop.

    Innermost loops are the `k` loops: the epilogue's loops over rows (GELU polynomials,
    constants reloaded from the stack) enclose no MAC-issuing loop of their own but are
    not innermost once a row loop nests them, and they only ever load from the stack.
    """
    loops = []
    for i, (addr, ins) in enumerate(body):
        m = BRANCH.search(ins)
        if m and int(m.group(1), 16) < addr:
            loops.append((int(m.group(1), 16), addr, i))
    found = []
    for start, end, i in loops:
        if any(start <= s2 and e2 <= end and (s2, e2) != (start, end) for s2, e2, _ in loops):
            continue  # encloses another loop
        loop = [x for a, x in body[: i + 1] if a >= start]
        macs = sum(bool(mac.search(x)) for x in loop)
        if macs:
            found.append((start, end, macs, [x for x in loop if STACK_STORE.search(x)]))
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    wanted = sys.argv[2:] or DEFAULT_FUNCTIONS
    funcs = {}
    for binary in sys.argv[1].split(","):
        funcs.update(functions(binary, wanted))
    missing = [w for w in wanted if not any(w in name for name in funcs)]
    bad, loops_of = 0, {}
    for name, body in sorted(funcs.items()):
        mac = F32_MAC if "f32gemm" in name else BF16_MAC if "bf16gemm" in name else INT_MAC
        loops = loop_spills(body, mac)
        spilled = [lp for lp in loops if lp[3]]
        calls = [x for _, x in body if MEM_CALL.search(x)]
        print(f"{name}: {len(loops)} multiply-accumulate loops, {len(spilled)} with stack traffic, "
              f"{len(calls)} memset/memcpy calls")
        for w in wanted:
            if w in name:
                loops_of[w] = loops_of.get(w, 0) + len(loops)
        bad += len(calls)
        for call in calls[:1]:
            print(f"  {call.strip()}")
        for start, end, macs, spills in spilled:
            bad += 1
            print(f"  loop {start:x}..{end:x}: {macs} MACs, {len(spills)} stack accesses, e.g. {spills[0].strip()}")
    if missing:
        print("not found in the binary: " + ", ".join(missing))
    # A name whose functions hold no multiply-accumulate loop checks nothing: the loops
    # moved to other functions (say, out-of-line instances), which the list must name.
    empty = [w for w, n in loops_of.items() if n == 0]
    if empty:
        print("no multiply-accumulate loop in: " + ", ".join(empty))
    if bad or missing or empty:
        sys.exit(1)


if __name__ == "__main__":
    main()
