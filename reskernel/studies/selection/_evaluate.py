"""Test scores of chosen models: the only place the test split is read.

Models sharing a grid point (arch, activation, w_var, b_var) share one kernel pass over their
depths; each model's training kernel is factorized once, and that factor serves the validation
points (their scores recomputed, a check on the stored ones) and every batch of test points.
"""
import time
from collections import defaultdict

import numpy as np

from ...inference import gp_posterior
from ._grid import Split, depth_family_kernels, factorize, finite, scores
from ._spec import KERNEL_ORDER, Model, family, gamma_of

__all__ = ["evaluate"]


def evaluate(models, train: Split, val: Split, test: Split, *, precision, trained, noise, dim, batch_size=2000,
             progress=False) -> list:
    """One row per model: test_accuracy, test_mse (n_test points), the validation scores
    recomputed with the same factor (val_accuracy_check, val_mse_check; None without validation
    points), jitter, cond and seconds.

    Args:
      models: Model tuples (repeats are evaluated once).
      train, val, test: Splits; val may have no rows.
      batch_size: test points per kernel call (memory: ~16 x batch_size x n_train bytes per
        kernel and depth).
    """
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    groups = defaultdict(set)
    for m in models:
        m = Model(*m)
        groups[(m.arch, m.activation, m.w_var, m.b_var)].add(m)
    n_test = len(test.labels)
    batches = range(0, n_test, int(batch_size))
    bar = tqdm(total=len(groups) * len(batches), desc="test", unit="batch", disable=not progress)
    rows = []
    for point, ms in groups.items():
        ms = sorted(ms, key=lambda m: (KERNEL_ORDER.index(m.kernel), m.depth))
        depths = sorted({m.depth for m in ms})
        names = [k for k in KERNEL_ORDER if any(m.kernel == k for m in ms)]
        fam = family(*point, dim)
        opts = dict(names=names, precision=precision, trained=trained)
        start = time.perf_counter()
        k_tr = depth_family_kernels(fam, train.x, None, depths, **opts)
        kernel_s = time.perf_counter() - start
        solve_s = 0.0
        factors, out = {}, {}
        for m in ms:
            row = {"arch": m.arch, "gamma": gamma_of(m.arch), "activation": m.activation, "w_var": m.w_var,
                   "b_var": m.b_var, "in_var": m.w_var / dim, "kernel": m.kernel, "depth": m.depth, "n_test": n_test,
                   "test_accuracy": None, "test_mse": None, "val_accuracy_check": None, "val_mse_check": None,
                   "jitter": None, "cond": None, "status": "ok"}
            out[m] = row
            if isinstance(k_tr[m.depth], str):
                row["status"] = f"kernel failed: {k_tr[m.depth]}"
                continue
            start = time.perf_counter()
            try:
                f, scale = factorize(k_tr[m.depth][m.kernel], noise, precision)
            except (ValueError, np.linalg.LinAlgError) as e:
                row["status"] = f"solve failed: {e}"
                continue
            solve_s += time.perf_counter() - start
            factors[m] = f
            row.update(jitter=float(f.jitter) / scale, cond=finite(f.cond))
        means = {m: [] for m in factors}
        if len(val.labels) and factors:
            start = time.perf_counter()
            k_va = depth_family_kernels(fam, val.x, train.x, depths, **opts)
            kernel_s += time.perf_counter() - start
            for m, f in factors.items():
                if not isinstance(k_va[m.depth], str):
                    acc, mse = scores(gp_posterior(f, train.y, k_va[m.depth][m.kernel]).mean, val)
                    out[m].update(val_accuracy_check=acc, val_mse_check=mse)
        for lo in batches:
            if not factors:
                bar.update()
                continue
            start = time.perf_counter()
            k_te = depth_family_kernels(fam, test.x[lo:lo + batch_size], train.x, depths, **opts)
            kernel_s += time.perf_counter() - start
            start = time.perf_counter()
            for m, f in factors.items():
                if isinstance(k_te[m.depth], str):
                    out[m]["status"] = f"kernel failed: {k_te[m.depth]}"
                else:
                    means[m].append(gp_posterior(f, train.y, k_te[m.depth][m.kernel]).mean)
            solve_s += time.perf_counter() - start
            bar.update()
        for m, parts in means.items():
            if out[m]["status"] == "ok":
                acc, mse = scores(np.concatenate(parts), test)
                out[m].update(test_accuracy=acc, test_mse=mse)
        for row in out.values():
            row.update(kernel_s=round(kernel_s, 2), solve_s=round(solve_s, 2))
        rows.extend(out.values())
    bar.close()
    return rows
