"""End-to-end accuracy of float32 kernels against float64 kernels of the same float32 inputs.

  python benchmarks/accuracy_float32.py [--n 600] [--data-dir ../shared/data]

For each input set (Gaussian, MNIST images, and Gaussian rows with nearly parallel and
antipodal pairs at 1e-5..0.3 rad) and each architecture, prints max |K32 - K64| / max |K64|
for reskernel.kernel's default (method="auto") and for the float32 recursion
(method="recursion"), the largest float32 rounding of the input correlations (delta), and
the documented bound TOL/4 + AMPLIFICATION delta + 2 eps (reskernel.core.precise). Writes
benchmarks/results/accuracy.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import reskernel as rk  # noqa: E402
from reskernel.core import precise, tabulated  # noqa: E402
from reskernel.core.tiles import correlations  # noqa: E402
from reskernel.precision import enable_x64  # noqa: E402

ARCHS = {"FFNet(10)": rk.FeedForward(10), "FFNet(100)": rk.FeedForward(100), "FFNet(1000)": rk.FeedForward(1000),
         "ResNet(100, gamma=1)": rk.ResNet(100, gamma=1.0), "ResNet(1000, gamma=1/2)": rk.ResNet(1000, gamma=0.5)}


def near_pairs(n, d, rng):
    rows = []
    for theta in (1e-5, 1e-4, 1e-3, 1e-2, 0.3):
        for sign in (1.0, -1.0):
            u, v = rng.normal(size=(2, d))
            u /= np.linalg.norm(u)
            v -= (v @ u) * u
            v /= np.linalg.norm(v)
            rows += [u, sign * (math.cos(theta) * u + math.sin(theta) * v)]
    rows += list(rng.normal(size=(n - len(rows), d)))
    return np.asarray(rows, np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    mnist = rk.data.two_class("mnist2", (4, 9), args.n, 100, data_dir=args.data_dir).x_train.astype(np.float32)
    inputs = {"gaussian (d=784)": rng.normal(size=(args.n, 784)).astype(np.float32),
              "MNIST 4/9 (d=784)": mnist, "near-parallel pairs (d=784)": near_pairs(args.n, 784, rng)}
    out = {"machine": C.machine(), "n": args.n, "cases": {}}
    print("| inputs | arch | delta | bound | auto: nngp | auto: ntk | recursion: nngp | recursion: ntk |")
    print("|---|---|---|---|---|---|---|---|")
    for iname, x in inputs.items():
        r32 = np.asarray(correlations(x)[0], np.float64)
        with enable_x64():
            x64 = jnp.asarray(x, jnp.float64)
            r64 = np.asarray(correlations(x64)[0])
            ref = {a: [np.asarray(k) for k in rk.kernel(arch, x64)] for a, arch in ARCHS.items()}
        delta = float(np.abs(r32 - r64).max())
        bound = tabulated.TOL / 4 + precise.AMPLIFICATION * delta + 2 * float(np.finfo(np.float32).eps)
        for aname, arch in ARCHS.items():
            row = {"delta": delta, "bound": bound}
            for method in ("auto", "recursion"):
                k = rk.kernel(arch, x, method=method)
                for name, got, want in zip(("nngp", "ntk"), k, ref[aname]):
                    row[f"{method}/{name}"] = float(np.abs(np.asarray(got, np.float64) - want).max()
                                                    / np.abs(want).max())
            out["cases"][f"{iname} / {aname}"] = row
            print(f"| {iname} | {aname} | {delta:.1e} | {bound:.1e} | {row['auto/nngp']:.1e} | {row['auto/ntk']:.1e} "
                  f"| {row['recursion/nngp']:.1e} | {row['recursion/ntk']:.1e} |", flush=True)
    C.RESULTS.mkdir(exist_ok=True)
    (C.RESULTS / "accuracy.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
