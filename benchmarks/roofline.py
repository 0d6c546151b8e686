"""Machine limits and the recursion's cost per entry, for the "fraction of limit" columns.

The analytic recursion keeps each tile's state in cache through all layers, so one depth is
bounded by the vector units, not by memory. Its arithmetic limit is a roofline with two
ceilings, both measured here with reskernel's own compiler options (512-bit vectors):

  - vector issue: the rate of independent multiply-adds (8 chains of 32 on a 512 x 512 tile,
    in cache), in lane-instructions per second (one FMA = one instruction = 2 flops);
  - the square-root unit: the rate of independent square roots (8 chains of 16), which run on
    a separate, partly pipelined unit (two per entry and layer in the recursion);
  - what one layer costs per entry: the vector instructions of the innermost loop of the
    compiled layer (XLA's object file, disassembled with objdump; vector loads, stores and
    register moves excluded). One iteration advances one vector of entries by one layer, so
    each instruction is one lane-operation per entry. Without objdump no limit is computed.

  time per entry-layer >= max(instructions / issue rate, square roots / sqrt rate)

Also the memory bandwidths: a sum over 512 MB (read), y = 2 x + 1 on 256 MB (read + write; the
all-depths output, L n^2 float32 per kernel, is bounded by the write side), and the measured rate of the
fused recursion on one 512 x 512 tile over 100 layers.

usage: python benchmarks/roofline.py [--name roofline]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import reskernel as rk  # noqa: E402
from reskernel.core import analytic, tiles  # noqa: E402

OPTIONS = tiles.COMPILER_OPTIONS


def best(fn, repeats=5):
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _chains(op, chains, chain, tile=512, iters=200):
    """Lane-operations per second of `chains` independent chains of `chain` ops, in cache."""
    x = jnp.linspace(0.5, 1.5, tile * tile, dtype=jnp.float32).reshape(tile, tile)

    @jax.jit
    def f(x):
        def body(_, v):
            ws = [v + 0.01 * c for c in range(chains)]
            for _ in range(chain):
                ws = [op(w, c) for c, w in enumerate(ws)]
            return sum(ws) * (1.0 / chains)
        return jax.lax.fori_loop(0, iters, body, x)

    f = jax.jit(f, compiler_options=OPTIONS)
    return chains * chain * tile * tile * iters / best(lambda: f(x))


def fma_rate():
    """Multiply-add lane-instructions per second (flops / 2)."""
    return _chains(lambda w, c: w * (0.999 - 1e-4 * c) + 0.001, chains=8, chain=32)


def sqrt_rate():
    """Square-root lane-operations per second (values stay in [0.5, 1.5])."""
    return _chains(lambda w, c: jnp.sqrt(w), chains=8, chain=16)


def bandwidth(mb=512):
    """Read bandwidth: a sum over a 512 MB array (no output pages to fault in)."""
    x = jnp.ones((mb * 2**20 // 4,), jnp.float32)
    f = jax.jit(lambda v: jnp.sum(v * v))
    t = best(lambda: f(x))
    return x.size * 4 / t


def copy_bandwidth(mb=256):
    """Read + write bandwidth: y = 2 x + 1 on a 256 MB array (bytes read plus written)."""
    x = jnp.ones((mb * 2**20 // 4,), jnp.float32)
    f = jax.jit(lambda v: 2 * v + 1)
    t = best(lambda: f(x))
    return 2 * x.size * 4 / t


def _layer_fn(kind, depth=100):
    arch = rk.FeedForward(depth) if kind == "ffnet" else rk.ResNet(depth, gamma=1.0)
    table = analytic.schedule(arch, jnp.float32)
    return jax.jit(lambda r: tiles.recursion(kind, r, table, "all", False), compiler_options=OPTIONS)


def tile_rate(kind, tile=512, depth=100):
    rng = np.random.default_rng(0)
    rho = jnp.asarray(rng.uniform(-0.9, 0.9, size=(tile, tile)), jnp.float32)
    f = _layer_fn(kind, depth)
    return tile * tile * depth / best(lambda: f(rho))


_VECTOR = re.compile(r"%[xyz]mm\d+")
_MOVE = re.compile(r"^v(movups|movaps|movdqu|movdqa|broadcast)")  # loads, stores, register moves


def _innermost_loop(lines):
    """Instructions (mnemonic, operands) of the smallest backward-jump loop of a disassembly."""
    insns = []
    for line in lines:
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
    loops = []
    for addr, op, args in insns:
        t = re.match(r"([0-9a-f]+) <", args)
        if op.startswith("j") and t and int(t.group(1), 16) < addr:
            loops.append((addr - int(t.group(1), 16), int(t.group(1), 16), addr))
    if not loops:
        return []
    _, lo, hi = min(loops)
    return [(op, args) for addr, op, args in insns if lo <= addr <= hi]


def count_ops(kind):
    """Per entry and layer: vector lane-operations and square roots, from the compiled layer loop.

    Runs in a subprocess so that XLA_FLAGS (the dump directory) applies from backend start."""
    if shutil.which("objdump") is None:
        return None
    with tempfile.TemporaryDirectory() as dump:
        env = C.clean_env(XLA_FLAGS=f"--xla_dump_to={dump}")
        subprocess.run([sys.executable, __file__, "--compile-only", kind], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        loop = []
        for obj in sorted(glob.glob(os.path.join(dump, "*lambda*.o"))):  # the layer loop: the one with sqrt
            asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True,
                                 text=True, check=True).stdout
            if "vsqrt" in asm:
                loop = _innermost_loop(asm.splitlines())
                break
    sqrt = [op for op, args in loop if op.startswith("vsqrt")]
    if not sqrt:
        return None
    lanes = {"x": 4, "y": 8, "z": 16}[_VECTOR.search(dict(loop)[sqrt[0]]).group(0)[1]]
    alu = [op for op, args in loop if _VECTOR.search(args) and not _MOVE.match(op) and not op.startswith("vsqrt")]
    # One loop iteration advances `lanes` entries by one layer, each instruction giving every
    # entry one lane-operation: lane-operations per entry and layer = instructions in the loop.
    return {"vector_ops_per_entry": len(alu), "sqrt_per_entry": len(sqrt), "lanes": lanes,
            "loop_instructions": len(loop), "method": "objdump of the compiled layer loop"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="roofline")
    ap.add_argument("--compile-only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compile_only:  # child of count_ops: compile one layer loop under XLA_FLAGS
        _layer_fn(args.compile_only).lower(jnp.zeros((512, 512), jnp.float32)).compile()
        return
    res = {"machine": C.machine(), "compiler_options": OPTIONS, "fma_lane_instructions_per_s": fma_rate(),
           "sqrt_lanes_per_s": sqrt_rate(), "bytes_per_s": bandwidth(), "copy_bytes_per_s": copy_bandwidth()}
    res["flops_per_s_f32"] = 2 * res["fma_lane_instructions_per_s"]
    for kind in ("ffnet", "resnet"):
        ops = count_ops(kind)
        rate = tile_rate(kind)
        r = {"entry_layers_per_s_one_tile": rate}
        if ops:
            issue = ops["vector_ops_per_entry"] / res["fma_lane_instructions_per_s"]
            root = ops["sqrt_per_entry"] / res["sqrt_lanes_per_s"]
            r.update(ops, seconds_per_entry_layer_issue=issue, seconds_per_entry_layer_sqrt=root,
                     arith_limit_entry_layers_per_s=1.0 / max(issue, root),
                     bound="sqrt unit" if root > issue else "vector issue")
        res[kind] = r
        print(kind, json.dumps(r), flush=True)
    print("FMA rate %.1f GFlop/s, sqrt %.2f G/s, read bandwidth %.1f GB/s, read+write %.1f GB/s"
          % (res["flops_per_s_f32"] / 1e9, res["sqrt_lanes_per_s"] / 1e9, res["bytes_per_s"] / 1e9,
             res["copy_bytes_per_s"] / 1e9))
    C.write_result(args.name, res)


if __name__ == "__main__":
    main()
