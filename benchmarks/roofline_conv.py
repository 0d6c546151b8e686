"""The arithmetic and memory limits of the conv recursion on this machine, beside reskernel's
measured rate: the pooled (global-average-pool) readout for issue 16's "within 3x of the
roofline" goal, and the flatten readout (--readout flatten) for what its ">= 30x
neural-tangents" goal would need.

One layer of the pooled recursion updates every position pair (p, p') of every image pair: per
position pair and layer it must read the state (two float32 arrays: the NNGP and NTK terms) and
write it (two more), at least 16 bytes, and do the arithmetic of the layer maps. The limits,
each measured or counted here:
  - memory: 16 bytes / the read + write bandwidth of y = 2 x + 1 on 256 MB (roofline.py);
  - vector issue: the layer's elementwise operations on the pair state (counted from the jaxpr of
    reskernel's own block: equations whose output has the block's pair-state shape, slices and
    pads excluded as data movement) / the multiply-add issue rate (roofline.py, 512-bit vectors);
  - divide/square-root unit: the layer's sqrt, rsqrt and div operations / the sqrt rate.
  time per position pair and layer >= max(memory, issue, divide/sqrt).
With --readout flatten the state is one position per image pair (same-position covariances),
and reskernel's blocks (16 MiB on a CPU) stay in the last-level cache: the memory limit is also
given for y = 2 x + 1 on an array of one block's size ("memory_in_cache"), which is the limit
that binds a cache-resident block; "needed_for_30x" is neural-tangents' warm flatten time at
n = 256 (benchmarks/results/conv.json, case flatten_256) / 30 per pair i <= j, position and layer.
Measured: reskernel.kernel's warm time for the gap NTK of a depth-10 ReLU CNN (3 x 3 filters,
same padding, trained="all") on n = 8 images of 32 x 32 x 3, per image pair computed (the block
loop computes n (n + 1) / 2 pairs... rounded up to whole blocks) and per position pair and layer.

usage: python benchmarks/roofline_conv.py [--n 8] [--depth 10] [--readout gap]
        python benchmarks/roofline_conv.py --readout flatten --n 256
Results: benchmarks/results/roofline_conv.json (gap), roofline_conv_flatten.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import roofline  # noqa: E402
import reskernel as rk  # noqa: E402
from reskernel.core import conv  # noqa: E402
from reskernel.core.tiles import GET  # noqa: E402

MOVES = {"slice", "pad", "broadcast_in_dim", "reshape", "concatenate", "squeeze", "expand_dims",
         "convert_element_type", "copy", "dynamic_slice", "transpose"}
DIVIDER = {"sqrt", "rsqrt", "div"}


def layer_ops(arch, size=4, block=2):
    """(elementwise ops, divide/sqrt ops) per position pair in one layer of the scan body of
    conv._block, counted on a small block (same code at any image size)."""
    x = np.zeros((block, size, size, 3), np.float32) + 1.0
    fn = lambda a, b: conv._block.__wrapped__(a, b, (), (), arch=arch, trained="all", all_depths=False,  # noqa: E731
                                              pick=(GET.index("ntk"),))
    jaxpr = jax.make_jaxpr(fn)(x, x)
    scan = [e for e in jaxpr.eqns if e.primitive.name == "scan"][0]
    state = (block, block, size, size) + ((size, size) if arch.readout == "gap" else ())
    alu = div = 0

    def walk(eqns):
        nonlocal alu, div
        for e in eqns:
            for sub in e.params.values():
                if hasattr(sub, "jaxpr"):
                    walk(sub.jaxpr.eqns if hasattr(sub.jaxpr, "eqns") else sub.eqns)
            shape = tuple(getattr(e.outvars[0].aval, "shape", ())) if e.outvars else ()
            if shape != state or e.primitive.name in MOVES:
                continue
            if e.primitive.name in DIVIDER:
                div += 1
            else:
                alu += 1
    walk(scan.params["jaxpr"].jaxpr.eqns)
    return alu, div


def measured(arch, n, repeats=2):
    """Warm seconds of the NTK on n images, and the image pairs the block loop computed."""
    x = np.random.default_rng(0).standard_normal((n, 32, 32, 3)).astype(np.float32)
    rk.kernel(arch, x, trained="all", get="ntk")
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        rk.kernel(arch, x, trained="all", get="ntk")
        best = min(best, time.perf_counter() - t0)
    b = conv._check_block(None, arch, x.shape, 4)
    blocks = -(-n // b)
    pairs = blocks * (blocks + 1) // 2 * b * b
    return best, pairs, b


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--readout", choices=("gap", "flatten"), default="gap")
    args = ap.parse_args(argv)
    arch = rk.ConvNet(depth=args.depth, filter_size=3, readout=args.readout)
    alu, div = layer_ops(arch)
    res = {"machine": C.machine(), "fma_lane_instructions_per_s": roofline.fma_rate(),
           "sqrt_lanes_per_s": roofline.sqrt_rate(), "copy_bytes_per_s": roofline.copy_bandwidth(),
           "elementwise_ops_per_position_layer": alu, "divide_sqrt_ops_per_position_layer": div}
    limits = {"memory": 16.0 / res["copy_bytes_per_s"], "issue": alu / res["fma_lane_instructions_per_s"],
              "divide_sqrt": div / res["sqrt_lanes_per_s"]}
    res["limits_s_per_position_layer"] = limits
    res["limit_s_per_position_layer"] = max(limits.values())
    res["bound"] = max(limits, key=limits.get)
    if args.readout == "flatten":
        block_mb = max(1, conv.block_bytes(conv._check_block(None, arch, (args.n, 32, 32, 3), 4), 32, 32,
                                           "flatten") >> 20)
        res["copy_bytes_per_s_in_cache"] = roofline.copy_bandwidth(block_mb)
        res["block_mb"] = block_mb
        limits["memory_in_cache"] = 16.0 / res["copy_bytes_per_s_in_cache"]
    seconds, pairs, block = measured(arch, args.n)
    positions = 32 * 32 if args.readout == "flatten" else (32 * 32) ** 2
    res.update(n=args.n, depth=args.depth, block=block, seconds_warm=seconds, pairs_computed=pairs,
               measured_s_per_position_layer=seconds / (pairs * positions * args.depth))
    res["measured_over_limit"] = res["measured_s_per_position_layer"] / res["limit_s_per_position_layer"]
    if args.readout == "flatten":
        res["binding_limit_in_cache"] = max(v for k, v in limits.items() if k != "memory")
        conv_json = C.RESULTS / "conv.json"
        case = json.loads(conv_json.read_text())["cases"].get("flatten_256", {}) if conv_json.exists() else {}
        nt_warm = (case.get("nt") or {}).get("warm")
        if nt_warm:
            n, depth = case["task"]["n"], case["task"]["depth"]
            res["nt_flatten_256_warm_s"] = nt_warm
            res["needed_for_30x_s_per_position_layer"] = nt_warm / 30 / (n * (n + 1) // 2 * positions * depth)
    res["loadavg_at_end"] = list(__import__("os").getloadavg())
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}, indent=1), flush=True)
    C.write_result("roofline_conv" if args.readout == "gap" else "roofline_conv_flatten", res)


if __name__ == "__main__":
    main()
