"""Machine limits and the recursion's cost per entry, for the "fraction of limit" columns.

  - achievable float32 rate of XLA elementwise code: 8 independent chains of 32
    multiply-adds on a 512 x 512 array (in cache), repeated in a fori_loop;
  - memory bandwidth: a sum over 512 MB (read), y = 2 x + 1 on 256 MB (read + write;
    the all-depths output, 2 L n^2 float32, is bounded by the write side);
  - elementwise operations per entry per layer of each recursion (counted by hand,
    OPS_PER_ENTRY_LAYER; sqrt, select and compare count 1 like a multiply), and the
    measured time of the fused recursion on one 512 x 512 tile over 100 layers.

usage: python benchmarks/roofline.py [--name roofline]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import reskernel as rk  # noqa: E402
from reskernel import analytic  # noqa: E402

# Elementwise operations per entry per layer, counted by hand from reskernel.arccos.angle_sine
# and reskernel.analytic._stepper: angle 27 (abs, compare, 1 - a, max, * 0.5, sqrt, select,
# s * s, degree-5 Horner 10, s + s z p 3, pi/2 - r, 2 r, select, pi - acos, compare, select),
# sine 5 (1 - rho, 1 + rho, *, max, sqrt); update: FFNet 8, ResNet 14. Two of them are sqrt.
OPS_PER_ENTRY_LAYER = {"ffnet": 27 + 5 + 8, "resnet": 27 + 5 + 14}


def best(fn, repeats=5):
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts)


def flop_rate(tile=512, chains=8, chain=32, iters=200):
    x = jnp.linspace(0.0, 1.0, tile * tile, dtype=jnp.float32).reshape(tile, tile)

    @jax.jit
    def f(x):
        def body(_, v):
            ws = [v + 0.01 * c for c in range(chains)]
            for k in range(chain):
                ws = [w * (0.999 - 1e-4 * c) + 0.001 * (k % 3) for c, w in enumerate(ws)]
            return sum(ws) * (1.0 / chains)
        return jax.lax.fori_loop(0, iters, body, x)

    t = best(lambda: f(x))
    return 2 * chains * chain * tile * tile * iters / t


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


def tile_rate(kind, tile=512, depth=100):
    rng = np.random.default_rng(0)
    rho = jnp.asarray(rng.uniform(-0.9, 0.9, size=(tile, tile)), jnp.float32)
    arch = rk.FeedForward(depth) if kind == "ffnet" else rk.ResNet(depth, gamma=1.0)
    table = analytic._layer_table(arch, jnp.float32)
    f = jax.jit(lambda r: analytic._recursion(kind, r, table, "all", False))
    t = best(lambda: f(rho))
    return tile * tile * depth / t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="roofline")
    args = ap.parse_args(argv)
    res = {"machine": C.machine(), "flops_per_s_f32": flop_rate(), "bytes_per_s": bandwidth(),
           "copy_bytes_per_s": copy_bandwidth()}
    for kind in ("ffnet", "resnet"):
        ops = OPS_PER_ENTRY_LAYER[kind]
        rate = tile_rate(kind)
        res[kind] = {"ops_per_entry_layer": ops, "entry_layers_per_s_one_tile": rate,
                     "arith_limit_entry_layers_per_s": res["flops_per_s_f32"] / ops}
        print(kind, res[kind], flush=True)
    print("flop rate %.1f GFlop/s, read bandwidth %.1f GB/s, read+write %.1f GB/s"
          % (res["flops_per_s_f32"] / 1e9, res["bytes_per_s"] / 1e9, res["copy_bytes_per_s"] / 1e9))
    C.write_result(args.name, res)


if __name__ == "__main__":
    main()
