"""Kernel regression with n = 30,000 and 10 outputs by preconditioned CG (issue 17 item 4).

Data: AUGMENTED copies of the real MNIST training images, not 30,000 distinct MNIST images:
the 3,678 training images on this machine (a partial file) as they are, then copies of them
shifted by (dy, dx) drawn uniformly from {-2..2}^2 minus (0, 0) (zero fill at the edges) with
Gaussian pixel noise (standard deviation 0.05 of the pixel range, clipped to [0, 255]), drawn
from --seed, up to --n images; each image standardized (zero mean, unit variance: Lee et al.
2018). Targets one-hot 0.9 / -0.1 (10 outputs). Test: all 10,000 MNIST test images.

Model: the NNGP of Lee et al.'s depth-20 ReLU FFNet (w_var 1.45, b_var 0.28, in_var 1.45 / 784),
the same model as benchmarks/bench_inference.py, float32 kernels (tables).

Steps: (1) the training kernel written to a resumable store in row blocks
(reskernel.core.distributed.write_kernel: n^2 x 4 bytes on disk, 3.6 GB at 30,000; an
interrupted run resumes; with --processes started by a launcher each computes its blocks);
(2) read back into host memory (float32, n^2 x 4 bytes); (3) cg_solve in float64 with a
pivoted-Cholesky (or Nystrom) preconditioner, all 10 columns at once; (4) the test kernel
(10,000 x n float32, blocked) and predictions. A direct float64 Cholesky would need n^2 x 8
bytes (7.2 GB at 30,000, 28.8 GB at 60,000) beside the kernel; it is run only with --direct.

Prints and writes (benchmarks/results/<name>.json, atomically) the time of each step, peak
memory (getrusage ru_maxrss after each step), CG iterations and relative residual per column,
and test accuracy.

usage: nice -n 5 python benchmarks/cg_30k.py [--n 30000] [--store /tmp/reskernel_cg30k]
       [--noise 1e-4] [--rank 1000] [--preconditioner pivoted_cholesky] [--tol 1e-8]
"""
import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import reskernel as rk  # noqa: E402
from reskernel.core import distributed  # noqa: E402
from reskernel.data import load_mnist, one_hot, standardize  # noqa: E402
from reskernel.inference import cg  # noqa: E402

LEE = dict(w_var=1.45, b_var=0.28, activation="relu")


def augmented(images, labels, n, seed):
    """(images (n, 28, 28) float64 in [0, 255], labels (n,)): the originals, then shifted noisy copies."""
    rng = np.random.default_rng(seed)
    m = images.shape[0]
    extra = n - m
    src = rng.integers(0, m, size=extra)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    pick = rng.integers(0, len(shifts), size=extra)
    out = np.zeros((n, 28, 28))
    out[:m] = images
    for i, (s, p) in enumerate(zip(src, pick)):
        dy, dx = shifts[p]
        shifted = np.zeros((28, 28))
        shifted[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
            images[s, max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
        out[m + i] = shifted
    out[m:] = np.clip(out[m:] + rng.normal(scale=0.05 * 255, size=(extra, 28, 28)), 0, 255)
    return out, np.concatenate([labels, labels[src]])


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--store", default="/tmp/reskernel_cg30k")
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--noise", type=float, default=1e-4, help="relative to the mean diagonal")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--rank", type=int, default=1000)
    ap.add_argument("--preconditioner", default="pivoted_cholesky", choices=("pivoted_cholesky", "nystrom"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--processes", action="store_true",
                    help="call reskernel.core.distributed.initialize first (a launcher's environment)")
    ap.add_argument("--direct", action="store_true", help="also the float64 Cholesky solve (n^2 x 8 bytes)")
    ap.add_argument("--name", default="cg_30k")
    args = ap.parse_args(argv)
    if args.processes:
        distributed.initialize()
    import jax

    out = {"machine": C.machine(), "args": vars(args),
           "data": f"{args.n} AUGMENTED MNIST training images (the 3,678 real ones + shifted noisy copies); "
                   "all 10,000 MNIST test images"}
    t_all = time.perf_counter()
    images, labels = load_mnist("train")
    images_te, labels_te = load_mnist("test")
    imgs, lab = augmented(images.astype(np.float64), labels, args.n, args.seed)
    x = standardize(imgs.reshape(args.n, -1), dtype=np.float32)
    xt = standardize(images_te.reshape(len(images_te), -1), dtype=np.float32)
    y = one_hot(lab)
    del imgs
    arch = rk.FeedForward(args.depth, in_var=LEE["w_var"] / x.shape[1], **LEE)
    out["model"] = f"FeedForward({args.depth}, w_var=1.45, b_var=0.28, relu, in_var=1.45/784) NNGP, float32"

    t0 = time.perf_counter()
    w = distributed.write_kernel(args.store, arch, x, block=args.block, get="nngp")
    out["store_s"] = time.perf_counter() - t0
    out["store_blocks"] = {"computed": len(w.computed), "skipped": len(w.skipped)}
    out["peak_mb_after_store"] = peak_mb()
    print(f"n={args.n}: kernel store {out['store_s']:.1f} s ({len(w.computed)} row blocks computed, "
          f"{len(w.skipped)} found done), peak {out['peak_mb_after_store']:.0f} MB", flush=True)
    if jax.process_index() != 0:
        return out

    t0 = time.perf_counter()
    k = distributed.read_kernel(args.store, get="nngp")
    out["read_s"] = time.perf_counter() - t0
    diag = np.diagonal(k).astype(np.float64)
    noise = args.noise * float(diag.mean())
    out["noise"] = noise
    out["peak_mb_after_read"] = peak_mb()
    print(f"read {k.nbytes / 1e9:.2f} GB ({k.dtype}) in {out['read_s']:.1f} s; noise {noise:.4g} = {args.noise:g} x "
          f"mean diagonal; peak {out['peak_mb_after_read']:.0f} MB", flush=True)

    t0 = time.perf_counter()
    res = cg.cg_solve(k, y, noise=noise, tol=args.tol, preconditioner=args.preconditioner, rank=args.rank,
                      block=args.block, maxiter=2000)
    out["cg_s"] = time.perf_counter() - t0
    out["peak_mb_after_cg"] = peak_mb()
    out.update(iterations=res.iterations.tolist(), residual=res.residual.tolist(), converged=res.converged,
               rank=res.rank)
    print(f"CG ({args.preconditioner}, rank {res.rank}, tol {args.tol:g}): {out['cg_s']:.1f} s, converged="
          f"{res.converged}; iterations {res.iterations.tolist()}; residual max {res.residual.max():.2e}; "
          f"peak {out['peak_mb_after_cg']:.0f} MB", flush=True)

    t0 = time.perf_counter()
    kt = rk.blocked_kernel(arch, xt, x, get="nngp", block=args.block)      # (10000, n) float32, host
    out["test_kernel_s"] = time.perf_counter() - t0
    pred = cg.predict(kt, res, block=args.block)
    out["predict_s"] = time.perf_counter() - t0
    out["test_accuracy"] = float(np.mean(pred.argmax(1) == labels_te))
    out["peak_mb_after_predict"] = peak_mb()
    print(f"test kernel {out['test_kernel_s']:.1f} s, predictions {out['predict_s']:.1f} s in all: accuracy "
          f"{out['test_accuracy']:.4f} on {len(labels_te)} test images; peak {out['peak_mb_after_predict']:.0f} MB",
          flush=True)

    if args.direct:
        import scipy.linalg
        del kt
        t0 = time.perf_counter()
        k64 = k.astype(np.float64)
        del k
        k64[np.diag_indices_from(k64)] += noise
        sol = scipy.linalg.cho_solve(scipy.linalg.cho_factor(k64, lower=True, overwrite_a=True, check_finite=False),
                                     y, check_finite=False)
        out["direct_s"] = time.perf_counter() - t0
        out["solution_rel_diff"] = (np.linalg.norm(res.solution - sol, axis=0) / np.linalg.norm(sol, axis=0)).tolist()
        out["peak_mb_after_direct"] = peak_mb()
        print(f"direct float64 Cholesky: {out['direct_s']:.1f} s; CG solutions differ by at most "
              f"{max(out['solution_rel_diff']):.2e}; peak {out['peak_mb_after_direct']:.0f} MB", flush=True)
    out["total_s"] = time.perf_counter() - t_all
    out["loadavg_end"] = os.getloadavg()
    print(f"total {out['total_s']:.1f} s; load average at end {out['loadavg_end']}")
    C.write_result(args.name, out)
    return out


if __name__ == "__main__":
    main()
