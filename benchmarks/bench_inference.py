"""NNGP inference at MNIST scale, and the selection study's cost per hyperparameter setting.

1. posterior: all MNIST training images of the data folder (3,678 in ../shared/data) against the
   10,000 test images, ten outputs (0.9 / -0.1 targets, images standardized), the NNGP posterior
   mean and marginal variances of a depth-20 ReLU FFNet with Lee et al.'s variances
   (sigma_w^2 = 1.45, sigma_b^2 = 0.28): float32 kernels (reskernel's default: interpolated from
   float64 tables), one float64 Cholesky (noise 1e-10 x mean diagonal) and float64 solves. The
   test points' NNGP diagonal comes from the engine's float64 per-input recursion (O(L m)).
   Cold: this fresh process's first call (compilation included); warm: the minimum of the
   following repeats. Kernel and solve are timed apart.
2. selection_50: the selection study's grid phase (reskernel.studies.selection.unit_rows: kernels
   of 1,000 training and 1,000 validation images, one Cholesky per kernel, validation scores, the
   NNGP's marginal likelihood) for 50 (w_var, b_var) settings of a depth-20 ReLU FFNet, NNGP and
   NTK each, with float32 and float64 kernels.

usage: python benchmarks/bench_inference.py [--repeats 2] [--depth 20] [--n-train all] [--n-test all]
       [--settings 50] [--precisions float32,float64]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("RESKERNEL_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["RESKERNEL_DATA"] = str(ROOT.parent / "shared" / "data")

import jax  # noqa: E402

import reskernel as rk  # noqa: E402
from reskernel.core.engine import general_diagonal  # noqa: E402
from reskernel.data import load_mnist, one_hot, standardize  # noqa: E402
from reskernel.inference import cholesky_factor, gp_posterior  # noqa: E402

LEE = dict(w_var=1.45, b_var=0.28, activation="relu")


def _data(n_train, n_test):
    images, labels = load_mnist("train")
    images_te, labels_te = load_mnist("test")
    n_train = len(labels) if n_train is None else n_train
    n_test = len(labels_te) if n_test is None else n_test
    x = standardize(images[:n_train].reshape(n_train, -1), dtype=np.float32)
    x_te = standardize(images_te[:n_test].reshape(n_test, -1), dtype=np.float32)
    return x, one_hot(labels[:n_train]), x_te, labels_te[:n_test].astype(np.int64)


def posterior_once(arch, x, y, x_te):
    """(kernel seconds, solve seconds, mean (m, 10), variances (m,), factor)."""
    t0 = time.perf_counter()
    k = np.asarray(jax.block_until_ready(rk.kernel(arch, x, get="nngp")), np.float64)
    k_te = np.asarray(jax.block_until_ready(rk.kernel(arch, x_te, x, get="nngp")), np.float64)
    sq = np.sum(np.asarray(x_te, np.float64) ** 2, axis=1)
    diag = general_diagonal("ffnet", arch, sq)[1][-1]           # the depth-L NNGP's diagonal, (m,)
    t1 = time.perf_counter()
    f = cholesky_factor(k, noise=1e-10 * np.trace(k) / len(k))
    post = gp_posterior(f, y, k_te, diag)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, post.mean, post.covariance, f


def bench_posterior(args):
    x, y, x_te, labels_te = _data(args.n_train, args.n_test)
    arch = rk.FeedForward(args.depth, in_var=LEE["w_var"] / x.shape[1], **LEE)
    runs = [posterior_once(arch, x, y, x_te) for _ in range(1 + args.repeats)]
    (k0, s0, mean, var, f), warm = runs[0], runs[1:]
    k_warm, s_warm = min(r[0] for r in warm), min(r[1] for r in warm)
    res = {"n_train": int(x.shape[0]), "n_test": int(x_te.shape[0]), "outputs": 10, "depth": args.depth,
           "model": f"FeedForward({args.depth}, w_var=1.45, b_var=0.28, relu, in_var=1.45/784)",
           "kernel_dtype": "float32", "solve_dtype": "float64",
           "cold_s": k0 + s0, "cold_kernel_s": k0, "cold_solve_s": s0,
           "warm_s": min(r[0] + r[1] for r in warm), "warm_kernel_s": k_warm, "warm_solve_s": s_warm,
           "test_accuracy": float(np.mean(np.argmax(mean, 1) == labels_te)),
           "variance_min": float(var.min()), "variance_median": float(np.median(var)),
           "jitter": float(f.jitter), "cond": float(f.cond)}
    print(f"posterior: n_train={res['n_train']}, n_test={res['n_test']}, depth {args.depth}: cold {res['cold_s']:.1f} s "
          f"(kernel {k0:.1f} + solve {s0:.1f}), warm {res['warm_s']:.1f} s (kernel {k_warm:.1f} + solve {s_warm:.1f}); "
          f"test accuracy {res['test_accuracy']:.4f}", flush=True)
    return res


def bench_selection(args, precision):
    from reskernel.data import ten_class
    from reskernel.studies.selection import Split, unit_rows

    ds = ten_class("mnist", 1000, 1000, 10)
    train = Split(ds.x_train, ds.y_train, ds.labels_train)
    val = Split(ds.x_val, ds.y_val, ds.labels_val)
    b_vars = np.round(np.linspace(0.0, 0.5, 5), 6)
    w_vars = np.round(np.linspace(1.0, 2.5, -(-args.settings // len(b_vars))), 6)
    points = [("ffnet", "relu", float(w), float(b)) for w in w_vars for b in b_vars][:args.settings]
    base = {"dataset": "mnist"}
    t0 = time.perf_counter()
    first, rows, kernel_s = None, [], 0.0
    for p in points:
        unit = unit_rows(base, p, [args.depth], ["nngp", "ntk"], train, val, precision=precision, trained="hidden",
                         noise=1e-10, dim=ds.dim)
        rows += unit
        kernel_s += unit[0]["kernel_s"]
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    ok = [r for r in rows if r["status"] == "ok"]
    res = {"settings": len(points), "models": len(rows), "precision": precision, "n_train": 1000, "n_val": 1000,
           "depth": args.depth, "total_s": total, "first_setting_s": first,
           "per_setting_after_first_s": (total - first) / max(1, len(points) - 1),
           "kernel_s": kernel_s, "solve_s": sum(r["solve_s"] for r in rows),
           "best_val_accuracy": max(r["val_accuracy"] for r in ok) if ok else None, "failed": len(rows) - len(ok)}
    print(f"selection, {len(points)} settings x (NNGP, NTK), {precision} kernels: {total:.1f} s "
          f"(first {first:.1f} s, then {res['per_setting_after_first_s']:.2f} s per setting)", flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="warm repeats after the cold call")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--n-train", default="all", help="'all' or a count")
    ap.add_argument("--n-test", default="all", help="'all' or a count")
    ap.add_argument("--settings", type=int, default=50)
    ap.add_argument("--precisions", default="float32,float64")
    ap.add_argument("--name", default="inference")
    args = ap.parse_args(argv)
    args.n_train = None if args.n_train == "all" else int(args.n_train)
    args.n_test = None if args.n_test == "all" else int(args.n_test)
    out = {"machine": C.machine(), "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "cases": {}}
    out["cases"]["posterior"] = bench_posterior(args)
    C.write_result(args.name, out)
    for p in args.precisions.split(","):
        out["cases"][f"selection_{args.settings}_{p}"] = bench_selection(args, p)
        C.write_result(args.name, out)


if __name__ == "__main__":
    main()
