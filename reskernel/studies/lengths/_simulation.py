"""Monte Carlo of the lengths M_j = |x_j|^2 / n_j: networks vmapped over seeds, the layers a
`lax.scan` that carries the unit vector and the log norm (exact, since every block is positively
homogeneous, and free of overflow)."""
from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ... import _checks
from ._specs import LengthSpec

_MEMORY = 256 * 2**20  # bytes of weights drawn at once per chunk of seeds


def _x0(spec: LengthSpec, x0):
    n0 = spec.widths[0]
    if x0 is None:
        return np.ones(n0)
    if isinstance(x0, (str, bytes)):
        raise TypeError(f"x0 must be an array of shape ({n0},), got {type(x0).__name__}")
    shape = jnp.shape(x0)
    if shape != (n0,):
        raise ValueError(f"x0 must have shape (n_0,) = ({n0},), got {shape}")
    values = _checks.concrete(x0)
    if values is not None:
        if not np.isfinite(values).all():
            raise ValueError("x0 has non-finite entries")
        if not (np.abs(values) > 0).any():
            raise ValueError("x0 must be nonzero: lengths are defined relative to |x_0| > 0")
    return x0


def _arrays(spec: LengthSpec, dtype):
    n = max(spec.widths)
    mask = (np.arange(n)[None, :] < np.array(spec.widths[1:])[:, None]).astype(dtype)
    sigma = np.sqrt(np.array(spec.sigma2)).astype(dtype)
    scales = np.zeros(spec.depth) if spec.scales is None else np.array(spec.scales)
    log_widths = np.log(np.array(spec.widths, dtype=np.float64)).astype(dtype)
    return sigma, scales.astype(dtype), mask, log_widths


@functools.partial(jax.jit, static_argnames=("kind", "log"))
def _lengths_batch(keys, x0, sigma, scales, mask, log_widths, *, kind, log):
    depth, n = mask.shape

    def one(key):
        def step(carry, inp):
            x, logr2 = carry
            k, s, eta, m = inp
            if kind == "linear":
                kw, kv = jax.random.split(k)
                h = jax.nn.relu(s * (jax.random.normal(kw, (n, n), x.dtype) @ x))
                y = x + (eta / math.sqrt(n)) * (jax.random.normal(kv, (n, n), x.dtype) @ h)
            else:
                # FFNet widths are padded to max(widths): rows past n_j are masked, and
                # entries of x past n_{j-1} are zero, so W acts as an (n_j, n_{j-1}) matrix.
                h = jax.nn.relu(s * (jax.random.normal(k, (n, n), x.dtype) @ x)) * m
                y = h if kind == "ffnet" else x + eta * h
            # Every block is positively homogeneous, so carrying the unit vector and the
            # log norm is exact and never overflows; a dead layer gives log 0 = -inf.
            r2 = jnp.sum(y * y)
            x = y / jnp.sqrt(jnp.where(r2 > 0, r2, 1))
            logr2 = logr2 + jnp.log(r2)
            return (x, logr2), logr2

        r0 = jnp.sum(x0 * x0)
        init = (x0 / jnp.sqrt(r0), jnp.log(r0))
        _, logs = jax.lax.scan(step, init, (jax.random.split(key, depth), sigma, scales, mask))
        logm = jnp.concatenate([init[1][None], logs]) - log_widths
        return logm if log else jnp.exp(logm)

    return jax.vmap(one)(keys)


def _prepare(spec, x0):
    if not isinstance(spec, LengthSpec):
        raise TypeError(f"spec must be a reskernel.lengths.LengthSpec, got {type(spec).__name__}")
    x0 = _x0(spec, x0)
    dtype = jnp.result_type(x0)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    n = max(spec.widths)
    x0 = jnp.pad(jnp.asarray(x0, dtype), (0, n - spec.widths[0]))
    return x0, dtype, _arrays(spec, dtype)


def layer_lengths(spec: LengthSpec, key, x0=None, *, log: bool = False) -> jax.Array:
    """(depth+1,) lengths M_0..M_d of one network drawn with `key` (log M_j if `log`).

    x0: input of shape (n_0,), default ones (M_0 = 1).  Traces under jit with `spec`
    (and `log`) static.  Row i of simulate(spec, key, seeds) is layer_lengths(spec, split(key, seeds)[i]).
    """
    x0, _, (sigma, scales, mask, logw) = _prepare(spec, x0)
    key = jnp.asarray(key) if isinstance(key, np.ndarray) else key
    return _lengths_batch(key[None], x0, sigma, scales, mask, logw, kind=spec.kind, log=log)[0]


def simulate(spec: LengthSpec, key, seeds: int, x0=None, *, chunk: Optional[int] = None,
             log: bool = False) -> jax.Array:
    """(seeds, depth+1) lengths M_j of `seeds` independent networks (log M_j if `log`).

    Networks use the keys jax.random.split(key, seeds), vmapped `chunk` at a time (default:
    as many as fit 256 MiB of weights).  Lengths are computed in x0's float dtype (default
    float32 unless x64 is on); float32 lengths overflow past 3e38 -- use `log` or float64.
    """
    seeds = _checks.positive_int("seeds", seeds)
    x0, dtype, (sigma, scales, mask, logw) = _prepare(spec, x0)
    n = mask.shape[1]
    if chunk is None:
        per_seed = 3 * n * n * np.dtype(dtype).itemsize * (2 if spec.kind == "linear" else 1)
        chunk = max(1, min(seeds, _MEMORY // per_seed))
    chunk = min(_checks.positive_int("chunk", chunk), seeds)
    keys = jax.random.split(key, seeds)
    out = []
    for start in range(0, seeds, chunk):
        idx = np.minimum(np.arange(start, start + chunk), seeds - 1)  # pad: one compiled shape
        part = _lengths_batch(keys[idx], x0, sigma, scales, mask, logw, kind=spec.kind, log=log)
        out.append(part[: min(chunk, seeds - start)])
    return jnp.concatenate(out) if len(out) > 1 else out[0]


@jax.jit
def empirical_variance(lengths) -> jax.Array:
    """Hanin & Rolnick's empirical variance of the lengths across layers 1..d (FM2):
    (..., depth+1) -> (...,), (1/d) sum_j M_j^2 - ((1/d) sum_j M_j)^2."""
    m = jnp.asarray(lengths)[..., 1:]
    return jnp.mean(m * m, axis=-1) - jnp.mean(m, axis=-1) ** 2
