"""Forward signal propagation in a ResidualMLP at initialization: the mean square of
the residual stream x_l and of the branch output a s_l u_l, block by block, measured and
in closed form (De & Smith, NeurIPS 2020, Section 2).

Closed forms for the block of nets.ResidualMLP at init (biases 0, BN gain 1 and shift 0,
branch scale a, SkipInit value s, or s = 1 without SkipInit). Q_l is the mean square of
x_l over the batch and the m features, B_l that of the branch added in block l,
q_0 = E[Q_0] = mean_n |x_n|^2 / d. Expectations are over the weights, exact at any
width m:

  no norm:    E[B_l] = a^2 s^2 E[Q_{l-1}],   E[Q_l] = (1 + a^2 s^2)^l q_0
  batch norm: E[B_l] = a^2 s^2 c_l,          E[Q_l] = q_0 + a^2 s^2 sum_{k<=l} c_k

Why: given x_{l-1}, V_l ~ N(0, 1/m) makes E|V z|^2 = |z|^2 and kills the cross term
<x_{l-1}, u_l>; W_l ~ N(0, 2/m) makes E|relu(W h)|^2 = |h|^2 (W h is Gaussian given h,
relu keeps half its second moment). Without BN h = x_{l-1}; with BN the batch mean of
|h_n|^2 / m is c_l = mean_i var_i / (var_i + eps) per block, 1 up to eps / var (< 1e-5
here; the closed forms below take c_l = 1).

Hence the ratio of branch to skip-path scale, sqrt(E[B_l] / E[Q_{l-1}]):
  no norm: a s (He init, a = s = 1: the branch is as large as the skip path, Q_l = 2^l q_0);
  BN:      a s / sqrt(q_0 + (l-1) a^2 s^2), the branch downscaled by ~ sqrt(l);
  SkipInit (s = 0): 0, Q_l = q_0;  a = L^-gamma: (1 + a^2)^l q_0, i.e. e^{l/L} at gamma = 1/2.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import positive_int
from .nets import ResidualMLP

__all__ = ["StreamStats", "stream_theory", "stream_statistics"]


# Functional form: real (not string) annotations, so the API docs can resolve them.
StreamStats = NamedTuple("StreamStats", [("stream", np.ndarray), ("branch", np.ndarray), ("ratio", np.ndarray)])
StreamStats.__doc__ = """Per-block signal statistics of a depth-L ResidualMLP: stream E[Q_l], l = 0..L, (L+1,);
branch E[B_l], l = 1..L, (L,); ratio sqrt(E[B_l] / E[Q_{l-1}]), l = 1..L, (L,)."""


def _check(spec):
    if not isinstance(spec, ResidualMLP):
        raise TypeError(f"spec must be a ResidualMLP, got {type(spec).__name__}")
    return spec


def stream_theory(spec: ResidualMLP, q0: float = 1.0) -> StreamStats:
    """Closed-form E[Q_l], E[B_l] and branch/skip ratio at init (module doc), float64."""
    _check(spec)
    q0 = float(q0)
    if not q0 > 0:
        raise ValueError(f"q0 must be > 0, got {q0}")
    L = spec.depth
    s = 1.0 if spec.skipinit is None else spec.skipinit
    g = (spec.branch_scale * s) ** 2
    ls = np.arange(L + 1, dtype=np.float64)
    if spec.norm == "batch":
        stream = q0 + g * ls
        branch = np.full(L, g)
    else:
        stream = q0 * (1.0 + g) ** ls
        branch = g * stream[:-1]
    return StreamStats(stream, branch, np.sqrt(branch / stream[:-1]))


def stream_statistics(spec: ResidualMLP, x, key, n_seeds: int = 1, dtype=jnp.float32):
    """Measured (Q_l, B_l) at init over `n_seeds` independent initializations.

    x: (n, d) inputs (n >= 2 with BN). Returns (stream (n_seeds, L+1), branch (n_seeds, L)),
    the per-seed mean squares over the batch and the m features; their means over seeds
    estimate StreamStats.stream and .branch.
    """
    _check(spec)
    n_seeds = positive_int("n_seeds", n_seeds)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    if spec.norm == "batch" and x.shape[0] < 2:
        raise ValueError("batch norm needs a batch of at least 2 examples")
    return _measure(spec, x.astype(dtype), jax.random.split(key, n_seeds))


@functools.partial(jax.jit, static_argnums=0)
def _measure(spec, x, keys):
    def one(k):
        tr = spec.trace(spec.init_params(k, x.shape[1], x.dtype), x)
        return tr.stream, tr.branch

    return jax.lax.map(one, keys)
