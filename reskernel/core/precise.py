"""float32 kernels that keep their accuracy where the input angle is ill-conditioned.

A float32 Gram product rounds each input correlation rho_0 by some delta (measured, d = 784:
at most 1.4e-7 for Gaussian inputs, 3.4e-6 for MNIST images, whose coordinates are correlated;
~sqrt(d) eps in general). A kernel entry then moves by |dK/drho_0| delta. Away from
rho_0 = +-1 that factor is of order the kernel itself, but near rho_0 = +-1 (nearly parallel
or antipodal inputs) it grows like 1 / sin(theta_0), and the kernels of deep nets vary fast
in the angle there (a 100-layer FFNet NTK by ~16 times its largest value per radian). So the
error of a float32 table entry (reskernel.core.tabulated) is at most

    interpolation (<= tabulated.TOL / 4, checked for each table)
  + A(theta_0) delta,  A = |dK/drho_0| / max |K|,
  + float32 rounding of the output (~6e-8 of the entry).

`band` finds, from each table's cubics, the correlations where A could exceed AMPLIFICATION,
as two thresholds rho_0 > hi or rho_0 < lo; `refine` recomputes every row holding such an
entry in float64 (the Gram product of the float32 inputs in float64, its angle, the float64
table). Every entry is then within TOL + AMPLIFICATION delta + rounding of its largest value
(docs/conventions.md: the end-to-end bound). For typical data few or no rows are refined;
the diagonal of a symmetric kernel is exact by construction (theta_0 = 0) and never refined.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..precision import enable_x64
from . import tabulated
from .tiles import correlations

__all__ = ["AMPLIFICATION", "band", "refine"]

# Largest factor |dK/drho_0| / max |K| left to the float32 Gram product; entries beyond it are
# recomputed in float64.
AMPLIFICATION = 4.0


def band(cubics) -> np.ndarray:
    """(2,) float64 thresholds (hi, lo): entries with rho_0 > hi or rho_0 < lo need float64.

    cubics: (..., 4, M) float64 tables (any leading axes: kernels, depths). On interval k of
    phi = sqrt(theta / pi), |dK/dtheta| <= max_t |c1 + 2 c2 t + 3 c3 t^2| M / (2 pi phi_k), and
    |dK/drho| = |dK/dtheta| / sin(theta) with sin(theta) >= the smaller of its ends; intervals
    where that exceeds AMPLIFICATION max |K| are flagged, and the thresholds cover every flagged
    interval (and all intervals nearer to theta = 0 or pi than it).
    """
    c = np.asarray(cubics, np.float64)
    m = c.shape[-1]
    c = c.reshape((-1, 4, m))
    scale = np.maximum(np.abs(c[:, 0, :]).max(axis=-1), np.abs(c.sum(axis=1)[:, -1]))  # nodes 0..M
    slope = np.max([np.abs(c[:, 1] + 2 * c[:, 2] * t + 3 * c[:, 3] * t * t) for t in (0.0, 0.5, 1.0)], axis=0)
    rel = (slope / scale[:, None]).max(axis=0) * m                    # max |dK/dphi| / max|K|, per interval
    theta = tabulated.nodes_theta(m)
    phi_lo = np.arange(m) / m
    with np.errstate(divide="ignore", invalid="ignore"):
        sine = np.minimum(np.sin(theta[:-1]), np.sin(theta[1:]))
        amplification = rel / (2 * math.pi * phi_lo) / sine           # |dK/drho| / max|K|
    # a 25% margin for the derivative sampled at three points of each interval
    flagged = ~(1.25 * amplification <= AMPLIFICATION)                # inf and nan count as flagged
    lower = np.flatnonzero(flagged & (theta[:-1] < math.pi / 2))
    upper = np.flatnonzero(flagged & (theta[1:] > math.pi / 2))
    hi = math.cos(theta[lower[-1] + 1]) if lower.size else 2.0
    lo = math.cos(theta[upper[0]]) if upper.size else -2.0
    return np.array([hi, lo])


@jax.jit
def _rows64(x1, x2, cubics, rows, symmetric):
    """Float64 kernels of the rows x1 (r, d) against x2 (n2, d): the Gram product of unit rows in
    float64, the angle, the float64 tables (G, [R,] 4, M). rows: their indices in x2 when
    symmetric (their own entry then has theta_0 = 0 exactly)."""
    rho, m1, m2 = correlations(x1, x2)
    theta = jnp.arccos(rho)
    own = rows[:, None] == jnp.arange(x2.shape[0])[None, :]
    theta = jnp.where(own & symmetric, 0.0, theta)
    norms = m1[:, None] * m2[None, :]
    return tuple(tabulated.evaluate(cubics[g], theta) * norms for g in range(cubics.shape[0]))


@jax.jit
def _nan_rows_device(out):
    return jnp.any(jnp.isnan(out), axis=-1)


def flagged_rows(out) -> np.ndarray:
    """Indices of the rows of out (n1, n2) holding a NaN (the tables' pass marks the entries to
    refine so). On the CPU a NumPy pass over the (zero-copy) array; elsewhere one reduction on
    the device (its compilation, ~0.1 s on XLA:CPU, is what the NumPy pass avoids)."""
    if isinstance(out, np.ndarray) or all(d.platform == "cpu" for d in out.devices()):
        return np.flatnonzero(np.isnan(np.asarray(out)).any(axis=-1))
    return np.flatnonzero(np.asarray(_nan_rows_device(out)))


def refined_rows(rows, x1, x2, cubics) -> list:
    """The float64 kernels of the rows `rows` (sorted indices into x1) against x2, or x1 when x2 is
    None, one ([R,] rows.size, n2) NumPy array per table of cubics (G, [R,] 4, M); symmetric, the
    block of these rows and columns is made symmetric exactly. Computed in one call whose size
    is the next power of two (few compilations): what refine and, over processes,
    reskernel.core.distributed.refine write into their kernels."""
    symmetric = x2 is None
    size = min(x1.shape[0], 1 << int(math.ceil(math.log2(rows.size))))
    idx = np.concatenate([rows, np.full(size - rows.size, rows[0])])
    with enable_x64():
        a = jnp.asarray(np.asarray(x1)[idx], jnp.float64)
        b = jnp.asarray(np.asarray(x1 if symmetric else x2), jnp.float64)
        vals = _rows64(a, b, jnp.asarray(cubics), jnp.asarray(idx), symmetric)
        vals = [np.array(v)[..., :rows.size, :] for v in vals]
    if symmetric:
        for v in vals:
            block = v[..., rows]
            v[..., rows] = (block + np.swapaxes(block, -1, -2)) / 2
    return vals


def refine(outs, x1, x2, cubics):
    """outs with every marked row (NaN entries) recomputed in float64, and, symmetric, the same
    columns.

    outs: tuple of ([R,] n1, n2) float32 kernels from the tables' pass; x1 (n1, d), x2 (n2, d)
    or None (symmetric); cubics: the float64 tables (G, [R,] 4, M). The rows' values are
    refined_rows'.
    """
    first = outs[0]
    rows = flagged_rows(first[0] if first.ndim == 3 else first)
    if rows.size == 0:
        return outs
    symmetric = x2 is None
    out = []
    for o, v in zip(outs, refined_rows(rows, x1, x2, cubics)):
        v = v.astype(o.dtype)
        if isinstance(o, np.ndarray):  # host blocks (reskernel.blocked_kernel)
            o[..., rows, :] = v
            if symmetric:
                o[..., :, rows] = np.swapaxes(v, -1, -2)
        else:
            o = o.at[..., rows, :].set(v)
            if symmetric:
                o = o.at[..., :, rows].set(np.swapaxes(v, -1, -2))
        out.append(o)
    return tuple(out)
