"""Kernels as tabulated functions of the input angle (the float32 fast path).

At each depth, the normalized kernels nngp_n, ntk_n (K = |x| |x'| nngp_n, see
reskernel.analytic) depend on a pair of inputs only through theta_0 = arccos rho_0. So
the recursion need not run for every entry of a Gram matrix: it runs once, in float64,
on M + 1 nodes theta_k = pi (k / M)^2, and every entry is a cubic interpolation in
phi = sqrt(theta_0 / pi) from the four nearest nodes. Per entry that is one arccos,
one square root, four table lookups and ~20 flops at any depth, instead of depth x
(two square roots, a polynomial, ~20 flops). All depths at once: a table per depth on
the same nodes, so each entry's interval and position serve every depth.

Why phi: the kernels are analytic in theta_0 on [0, pi] (the square-root singularity of
arccos at rho = 1 is theta_0 itself), but deep nets vary fastest near theta_0 = 0 (a
depth-L FFNet on a scale ~ 3 pi / L). Nodes uniform in phi are dense there, and the
kernels stay analytic in phi.

Certified accuracy: M doubles from 256 until the interpolant, checked at the midpoint
of every interval against the float64 recursion there, is within TOL / 4 of it
(relative to the kernel's largest value, at theta_0 = 0); the interpolation error of
a cubic is largest near those midpoints. `angle_table` returns None when no M up to
MAX_NODES reaches that (the float64 recursion's own rounding sets a floor of ~6e-7
for a 1000-layer FFNet), and reskernel.analytic then runs the recursion. Ends:
theta_0 = 0 (rho_0 = 1, the diagonal) gives node 0 exactly.

Against the float32 recursion this is more accurate, not less: the table is float64
and only theta_0 is computed in float32, where the recursion rounds in every layer
(near rho = 1 its error grows with depth: 4e-3 of the largest NTK entry for a 100-layer
FFNet at rho_0 = 1 - 2e-5, the worst of 20,001 float32 correlations, against float64).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from . import engine

__all__ = ["TOL", "MAX_NODES", "angle_table", "value_table", "evaluate", "nodes_theta"]

TOL = 1e-6           # interpolation error bound, relative to the kernel's largest value
MAX_NODES = 8192     # largest table tried (the float64 build is ~2 MAX_NODES x depth layer steps)
_FIRST_NODES = 256


def _start(u, size):
    """First of the four nodes used at position u (nodes 0..size-1): centred, clamped at the ends."""
    return np.clip(np.floor(u).astype(np.int64) - 1, 0, size - 4)


def _cubics(nodes):
    """(..., 4, M) coefficients c of the cubic on each interval k, in t = u - k in [0, 1]:
    c0 + c1 t + c2 t^2 + c3 t^3 interpolates the four nodes _start(k + 1/2) .. + 3."""
    m = nodes.shape[-1] - 1
    k = np.arange(m)
    s = _start(k + 0.5, m + 1)
    d = k - s                                   # the interval's left node, in stencil coordinates
    y = np.stack([nodes[..., s + j] for j in range(4)], axis=-1)
    # Newton form on stencil nodes 0..3, shifted to t = v - d
    d1 = y[..., 1:] - y[..., :-1]
    d2 = (d1[..., 1:] - d1[..., :-1]) / 2
    d3 = (d2[..., 1:] - d2[..., :-1]) / 3
    f0, f1, f2, f3 = y[..., 0], d1[..., 0], d2[..., 0], d3[..., 0]
    # p(v) = f0 + f1 v + f2 v (v - 1) + f3 v (v - 1) (v - 2); v = t + d
    c3 = f3
    c2 = f2 + f3 * (3 * d - 3)
    c1 = f1 + f2 * (2 * d - 1) + f3 * (3 * d * d - 6 * d + 2)
    c0 = f0 + f1 * d + f2 * d * (d - 1) + f3 * d * (d - 1) * (d - 2)
    return np.stack([c0, c1, c2, c3], axis=-2)


def angle_table(kind, sched_key, trained, max_nodes=MAX_NODES, reads=None):
    """(2, 4, M) float64 cubic coefficients of (nngp_n, ntk_n) on the M intervals of
    phi = sqrt(theta_0 / pi) in [0, 1] (nodes phi_k = k / M), or (2, R, 4, M) for the R depths
    `reads` (one M for all, each depth checked against its own largest value); None when no
    M <= MAX_NODES reaches TOL.

    Args:
      kind: "ffnet" or "resnet".
      sched_key: engine.schedule(arch) as a tuple of row tuples (hashable, for the cache).
      trained: "hidden" or "all".
      max_nodes: the largest M tried (at most MAX_NODES).
      reads: None (the last depth), or a sorted tuple of depths 1..L: tables of the nets
        truncated after those layers (all of 1..L: reskernel.kernel(..., all_depths=True)).
    The values come from engine.run_numpy, the engine's recursion in NumPy float64.
    The search stops early when the error, falling by the rate seen between the last two
    tries (at most 16x per doubling of M, a cubic's h^4), could not reach TOL by max_nodes.
    Results are remembered per process: a table found with M nodes serves every max_nodes
    >= M, and a search that failed up to some M is not repeated for a smaller max_nodes.
    """
    sched = np.asarray(sched_key, np.float64).reshape((-1, 2))
    return value_table((kind, sched_key, trained, reads),
                       lambda rho: np.stack(engine.run_numpy(kind, rho, sched, trained, reads)), max_nodes)


def value_table(key, values, max_nodes=MAX_NODES):
    """angle_table for any kernel of the input correlation: `values(rho)` -> (G, [R,] N) float64
    kernels at correlations rho (N,), remembered under the hashable `key` (which must identify
    `values`); for the general archs' fast path (reskernel.core.general)."""
    max_nodes = min(int(max_nodes), MAX_NODES)
    found = _SEARCHED.get(key)
    if found is not None:
        tried, cubics = found
        if cubics is not None:
            return cubics if cubics.shape[-1] <= max_nodes else None
        if tried >= max_nodes:
            return None
    return _remember(key, max_nodes, values)


def _remember(key, max_nodes, values):
    cubics = _search(values, max_nodes)
    if len(_SEARCHED) >= 64:
        _SEARCHED.pop(next(iter(_SEARCHED)))
    _SEARCHED[key] = (max_nodes, cubics)
    return cubics


_SEARCHED = {}   # (kind, sched_key, trained, reads) -> (largest max_nodes tried, cubics or None)


def _search(values_of, max_nodes):
    m = _FIRST_NODES
    previous = None
    while m <= max_nodes:
        phi = np.arange(2 * m + 1) / (2 * m)          # nodes and midpoints
        rho = np.cos(math.pi * phi * phi)
        rho[0], rho[-1] = 1.0, -1.0
        values = values_of(rho)
        nodes, mids = values[..., 0::2], values[..., 1::2]
        cubics = _cubics(nodes)
        interp = np.einsum("...cm,c->...m", cubics, [1.0, 0.5, 0.25, 0.125])
        scale = np.abs(nodes).max(axis=-1)
        error = np.max(np.abs(interp - mids).max(axis=-1) / scale)
        if error <= TOL / 4:
            return cubics
        rate = 16.0 if previous is None else min(16.0, max(previous / error, 1.0))
        if error / rate ** math.log2(max_nodes / m) > 2 * TOL / 4:
            return None
        previous = error
        m *= 2
    return None


def evaluate(cubics, theta0):
    """Interpolated kernel at input angles theta0 in [0, pi] (any shape S): shape S, or (R,) + S.

    cubics: (4, M), one kernel of angle_table, or (R, 4, M) for several depths, in theta0's
    dtype. Four lookups in 1-D tables (one lookup of a row of 4 ran 6x slower on XLA:CPU);
    several depths: the same interval and position, looked up in depth r's part of the tables.
    """
    m = cubics.shape[-1]
    u = jnp.sqrt(theta0 * (1.0 / math.pi)) * m
    k = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, m - 1)
    t = u - k
    if cubics.ndim == 3:  # (R, 4, M): index r M + k in the flattened depth-r rows
        depths = cubics.shape[0]
        k = jnp.arange(depths, dtype=jnp.int32).reshape((depths,) + (1,) * theta0.ndim) * m + k
        cubics = jnp.swapaxes(cubics, 0, 1).reshape((4, depths * m))
    c0, c1, c2, c3 = (jnp.take(cubics[j], k, mode="clip") for j in range(4))
    return ((c3 * t + c2) * t + c1) * t + c0


def nodes_theta(m):
    """The M + 1 node angles theta_k = pi (k / M)^2 of a table with M intervals."""
    return math.pi * (np.arange(m + 1) / m) ** 2
