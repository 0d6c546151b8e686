"""Kernels of a grid point at several depths and the posterior means they give: one float64
Cholesky per kernel (NNGP or NTK at one depth), reused for the ten outputs, every batch of
evaluation points and, for the NNGP, the log marginal likelihood with its closed-form amplitude.

The grid phase (unit_rows) sees the training and validation splits only: it is the part of the
study that chooses, and it is never handed the test split.
"""
import math
import time
import warnings
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...inference import cholesky_factor, gp_posterior, log_marginal_likelihood, optimal_amplitude
from ...inference.regression import depth_kernels
from ...precision import enable_x64
from .._depths import by_depth
from ._spec import family, gamma_of

__all__ = ["Split", "MAX_JITTER", "depth_family_kernels", "factorize", "scores", "unit_rows", "finite"]

# The largest jitter (relative to the mean diagonal) a factorization may add where rounding
# leaves K + noise I indefinite; float32 kernels are exact to ~1e-6 of their largest entry only.
MAX_JITTER = {"float64": 1e-6, "float32": 1e-3}


class Split(NamedTuple):
    """One split of ten-class data: inputs x (n, d), targets y (n, 10), labels (n,) in 0..9."""

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray


def finite(v):
    """v as a float, or None where it is inf or nan (JSON has neither)."""
    v = float(v)
    return v if math.isfinite(v) else None


def depth_family_kernels(fam, x1, x2, depths, *, names, precision, trained) -> dict:
    """{depth: {name: float64 (n1, n2)}} for name in names ("nngp", "ntk"), or {depth: why not}.

    One reskernel.regression.depth_kernels call for every depth (the FFNet: one pass to the
    deepest) in `precision`; x2 None: the symmetric kernel of x1. Where the deepest kernels leave
    the dtype's range, each depth is tried alone and the others are kept.
    """
    get = names[0] if len(names) == 1 else None

    def at(ds):
        with enable_x64(precision == "float64"):
            a = jnp.asarray(x1, precision)
            b = None if x2 is None else jnp.asarray(x2, precision)
            k = depth_kernels(fam, a, b, ds, trained=trained, get=get)
            parts = {get: k} if get else {"nngp": k.nngp, "ntk": k.ntk}
            return {int(d): {n: np.asarray(parts[n][j], np.float64) for n in names} for j, d in enumerate(ds)}
    return by_depth(at, depths)


def factorize(k_train, noise, precision):
    """(CholeskyFactor of k_train + noise x mean diagonal I, mean diagonal). Jitter and
    condition number are recorded in the rows instead of warned about (a grid holds many
    nearly singular deep kernels)."""
    scale = float(np.trace(k_train)) / k_train.shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = cholesky_factor(k_train, noise=noise * scale if scale > 0 else 0.0, max_jitter=MAX_JITTER[precision])
    return f, scale


def scores(mean, split) -> tuple:
    """(accuracy, mse): argmax of the posterior mean against the labels; squared error against
    the targets averaged over points and outputs."""
    return (float(np.mean(np.argmax(mean, axis=-1) == split.labels)), float(np.mean((mean - split.y) ** 2)))


def unit_rows(base, point, depths, names, train: Split, val: Split, *, precision, trained, noise, dim,
              noises=None) -> list:
    """The rows of one grid point (arch, activation, w_var, b_var): every depth and kernel,
    with its validation accuracy and MSE and, for the NNGP, the log marginal likelihood of the
    training targets at the optimal amplitude. Only training and validation data come in.

    noises: None, or a sequence of noises (ridges relative to the mean diagonal) that replaces
    `noise`: the kernels are computed once and every noise gets its own rows, each with its
    value in the row's "noise" field (the learning-curve study selects the ridge this way)."""
    arch, activation, w_var, b_var = point
    fam = family(arch, activation, w_var, b_var, dim)
    start = time.perf_counter()
    opts = dict(names=names, precision=precision, trained=trained)
    k_tr = depth_family_kernels(fam, train.x, None, depths, **opts)
    k_va = depth_family_kernels(fam, val.x, train.x, depths, **opts)
    kernel_s = round(time.perf_counter() - start, 3)
    rows = []
    start = time.perf_counter()
    # the kernels above serve every noise: one factorization per (noise, kernel, depth)
    for nz in ([noise] if noises is None else [float(v) for v in noises]):
        for name in names:
            for d in depths:
                row = dict(base, arch=arch, gamma=gamma_of(arch), activation=activation, w_var=w_var, b_var=b_var,
                           in_var=w_var / dim, kernel=name, depth=int(d), val_accuracy=None, val_mse=None, lml=None,
                           amplitude=None, jitter=None, cond=None, status="ok", kernel_s=kernel_s)
                if noises is not None:
                    row["noise"] = nz
                why = next((k for k in (k_tr[d], k_va[d]) if isinstance(k, str)), None)
                if why is not None:
                    row["status"] = f"kernel failed: {why}"
                    rows.append(row)
                    continue
                try:
                    f, scale = factorize(k_tr[d][name], nz, precision)
                    acc, mse = scores(gp_posterior(f, train.y, k_va[d][name]).mean, val)
                    row.update(val_accuracy=acc, val_mse=mse, jitter=float(f.jitter) / scale, cond=finite(f.cond))
                    if name == "nngp":
                        amp = optimal_amplitude(f, train.y)
                        row.update(lml=float(log_marginal_likelihood(f, train.y, amplitude=amp)),
                                   amplitude=float(amp))
                except (ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
                    row["status"] = f"solve failed: {e}"
                rows.append(row)
    for r in rows:
        r["solve_s"] = round((time.perf_counter() - start) / max(len(rows), 1), 4)
    return rows
