"""Kernel regression cost: Cholesky factorization and solve of the n x n NTK in float64
(scipy.linalg.cho_factor / cho_solve, ridge = 1e-6 trace(K)/n), n = 2000..10000, next to
the time to compute that kernel (reskernel, ResNet depth 100, float32 then cast).

usage: python benchmarks/bench_regression.py [--ns 2000,4000,6000,8000,10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import reskernel as rk  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="2000,4000,6000,8000,10000")
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="regression")
    args = ap.parse_args(argv)
    out = {"machine": C.machine(), "scipy": scipy.__version__, "d": args.d, "depth": args.depth, "cases": {}}
    arch = rk.ResNet(args.depth, gamma=1.0)
    for n in map(int, args.ns.split(",")):
        x = C.unit_inputs(n, args.d)
        y = np.sign(x[:, 0]).astype(np.float64)
        kt = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            k = np.asarray(jax.block_until_ready(rk.kernel(arch, x, trained="all", get="ntk")), np.float64)
            kt.append(time.perf_counter() - t0)
        st = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ridge = 1e-6 * np.trace(k) / n
            c = scipy.linalg.cho_factor(k + ridge * np.eye(n), lower=True, overwrite_a=True, check_finite=False)
            coef = scipy.linalg.cho_solve(c, y, check_finite=False)
            st.append(time.perf_counter() - t0)
        resid = float(np.abs(k @ coef + ridge * coef - y).max())
        out["cases"][str(n)] = {"kernel_s": min(kt), "kernel_s_first_incl_compile": kt[0], "cholesky_solve_s": min(st),
                                "gflops_cholesky": n**3 / 3 / min(st) / 1e9, "max_residual": resid}
        print(f"n={n}: kernel {min(kt):.2f} s, Cholesky+solve {min(st):.2f} s "
              f"({n**3 / 3 / min(st) / 1e9:.1f} GFlop/s), residual {resid:.1e}", flush=True)
        C.write_result(args.name, out)


if __name__ == "__main__":
    main()
