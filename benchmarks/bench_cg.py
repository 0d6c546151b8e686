"""Kernel regression by preconditioned CG (reskernel.inference.cg) with 10 outputs, against the direct
float64 solve where n allows.

Data: SYNTHETIC inputs of MNIST's shape (n, 784), not MNIST: 10 class prototypes (smooth random
28 x 28 images in [0, 1]) plus a 30-dimensional within-class variation and pixel noise, clipped to
[0, 1]; labels one-hot minus 1/10 (10 outputs). Correlated like images, so the kernel is
ill-conditioned as a real image kernel is (isotropic Gaussian inputs in 784 dimensions are
nearly orthogonal and would make CG look easy). Kernel: rk.FeedForward(depth) NTK, float32.

Modes: "host" computes the float32 kernel once into host memory (rk.blocked_kernel; n^2 4 bytes)
and CG reads it `--block` rows at a time; "recompute" never stores it: a KernelBlocks recomputes
`--block`-square blocks at every CG product (memory ~ block^2, time ~ one kernel per step).
Prints time, peak memory (getrusage ru_maxrss, the process's peak so far at each stage), CG
iterations and residual per column, test accuracy, and the relative difference of predictions
and solutions from scipy's cho_factor/cho_solve in float64 when n <= --direct-max.

usage: nice -n 10 python benchmarks/bench_cg.py [--n 4000] [--k 10] [--rank 200] [--block 2048]
       [--mode host|recompute] [--noise 1e-4] [--tol 1e-6] [--preconditioner pivoted_cholesky]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import reskernel as rk  # noqa: E402
from reskernel.inference import cg  # noqa: E402


def synthetic_mnist_shaped(n, classes=10, seed=0, variation=30):
    """(x (n, 784) float32 in [0, 1], labels (n,)): synthetic, MNIST-shaped; see module doc."""
    rng = np.random.default_rng(seed)
    g = np.linspace(-1, 1, 28)
    freqs = rng.normal(size=(classes + variation, 2, 3)) * 2.0

    def smooth(f):                       # a smooth 28 x 28 pattern from a few sinusoids
        return sum(np.sin(np.pi * (f[0, i] * g[:, None] + f[1, i] * g[None, :]) + i) for i in range(3)).ravel()

    protos = np.stack([smooth(f) for f in freqs[:classes]])
    protos = 0.5 + 0.25 * protos / np.abs(protos).max(axis=1, keepdims=True)
    basis = np.stack([smooth(f) for f in freqs[classes:]])
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    x = protos[labels] + rng.normal(size=(n, variation)) @ basis * 3.0 + 0.1 * rng.normal(size=(n, 784))
    return np.clip(x, 0.0, 1.0).astype(np.float32), labels


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--k", type=int, default=10, help="outputs (classes)")
    ap.add_argument("--m", type=int, default=1000, help="test points")
    ap.add_argument("--rank", type=int, default=200)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--mode", choices=("host", "recompute"), default="host")
    ap.add_argument("--noise", type=float, default=1e-4, help="relative to the mean diagonal")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--maxiter", type=int, default=None)
    ap.add_argument("--preconditioner", default="pivoted_cholesky", choices=("pivoted_cholesky", "nystrom", "none"))
    ap.add_argument("--direct-max", type=int, default=15000, help="largest n for the direct float64 solve")
    ap.add_argument("--name", default=None, help="write benchmarks/results/<name>.json")
    args = ap.parse_args(argv)
    pre = None if args.preconditioner == "none" else args.preconditioner
    out = {"machine": C.machine(), "args": vars(args), "data": "synthetic, MNIST-shaped (n, 784); not MNIST"}
    t_all = time.perf_counter()

    x, lab = synthetic_mnist_shaped(args.n + args.m, classes=args.k)
    x, xt, lab, lab_t = x[:args.n], x[args.n:], lab[:args.n], lab[args.n:]
    y = np.eye(args.k)[lab] - 1.0 / args.k
    arch = rk.FeedForward(args.depth)

    t0 = time.perf_counter()
    if args.mode == "host":
        k = rk.blocked_kernel(arch, x, get="ntk", block=args.block)      # float32 (n, n) in host memory
        diag = np.diagonal(k).astype(np.float64)
    else:
        k = cg.KernelBlocks(arch, x, get="ntk", block=args.block)
        diag = k.diagonal()
    out["kernel_s"] = time.perf_counter() - t0
    out["peak_mb_after_kernel"] = peak_mb()
    noise = args.noise * float(diag.mean())
    print(f"n={args.n} k={args.k} mode={args.mode} block={args.block}: kernel {out['kernel_s']:.1f} s "
          f"({'float32 host matrix' if args.mode == 'host' else 'diagonal only; blocks recomputed'}), "
          f"peak {out['peak_mb_after_kernel']:.0f} MB; noise {noise:.3g} = {args.noise:g} x mean diagonal", flush=True)

    op = k if args.mode == "recompute" else cg._operator("k", k, args.block, square=True)
    t0 = time.perf_counter()
    op.matmul(y)
    out["matmul_s"] = time.perf_counter() - t0

    if pre is not None:           # timed alone here; cg_solve builds it again (counted in cg_s)
        from reskernel.inference import _precondition
        t0 = time.perf_counter()
        f = (_precondition.pivoted_cholesky(op, min(args.rank, args.n)) if pre == "pivoted_cholesky"
             else _precondition.nystrom(op, min(args.rank, args.n)))
        _precondition.preconditioner(f, noise)
        out["preconditioner_s"] = time.perf_counter() - t0
        del f

    t0 = time.perf_counter()
    res = cg.cg_solve(k, y, noise=noise, tol=args.tol, maxiter=args.maxiter, preconditioner=pre,
                      rank=min(args.rank, args.n), block=args.block)
    out["cg_s"] = time.perf_counter() - t0
    out["peak_mb_after_cg"] = peak_mb()
    out.update(iterations=res.iterations.tolist(), residual=res.residual.tolist(), converged=res.converged,
               rank=res.rank)
    print(f"CG ({pre}, rank {res.rank}, tol {args.tol:g}): {out['cg_s']:.1f} s incl. preconditioner "
          f"(preconditioner alone {out.get('preconditioner_s', 0):.1f} s), one product K V {out['matmul_s']:.2f} s; "
          f"converged={res.converged}; peak {out['peak_mb_after_cg']:.0f} MB",
          flush=True)
    print("  iterations per column:", res.iterations.tolist())
    print("  relative residual per column:", " ".join(f"{r:.2e}" for r in res.residual))

    t0 = time.perf_counter()
    pred = cg.predict(cg.KernelBlocks(arch, xt, x, get="ntk", block=args.block), res)
    out["predict_s"] = time.perf_counter() - t0
    out["test_accuracy"] = float(np.mean(pred.argmax(1) == lab_t))
    print(f"predictions for {args.m} test points: {out['predict_s']:.1f} s, accuracy {out['test_accuracy']:.4f}")

    if args.n <= args.direct_max:
        import scipy.linalg
        kt = np.asarray(jax.block_until_ready(rk.kernel(arch, xt, x, get="ntk")), np.float64)
        t0 = time.perf_counter()
        # the matrix CG solved: the host kernel, or the recomputed blocks assembled (K I)
        k64 = np.asarray(k, np.float64) if args.mode == "host" else k.matmul(np.eye(args.n))
        k64[np.diag_indices_from(k64)] += noise
        sol = scipy.linalg.cho_solve(scipy.linalg.cho_factor(k64, lower=True, overwrite_a=True, check_finite=False),
                                     y, check_finite=False)
        out["direct_s"] = time.perf_counter() - t0
        ref = kt @ sol
        ours = kt @ res.solution
        out["pred_rel_diff"] = (np.linalg.norm(ours - ref, axis=0) / np.linalg.norm(ref, axis=0)).tolist()
        out["solution_rel_diff"] = (np.linalg.norm(res.solution - sol, axis=0) / np.linalg.norm(sol, axis=0)).tolist()
        out["peak_mb_after_direct"] = peak_mb()
        print(f"direct float64 Cholesky solve: {out['direct_s']:.1f} s; predictions differ by at most "
              f"{max(out['pred_rel_diff']):.2e} (relative, per column), solutions by "
              f"{max(out['solution_rel_diff']):.2e}; peak {out['peak_mb_after_direct']:.0f} MB")
    out["total_s"] = time.perf_counter() - t_all
    print(f"total {out['total_s']:.1f} s")
    if args.name:
        C.write_result(args.name, out)
    return out


if __name__ == "__main__":
    main()
