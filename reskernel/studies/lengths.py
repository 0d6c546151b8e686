"""Activation-length statistics of finite-width ReLU nets at initialization
(Hanin & Rolnick, "How to start training: the effect of initialization and
architecture", NeurIPS 2018): measurement beside exact theory.

Networks (one input x_0 in R^{n_0}, no biases, all weights i.i.d. Gaussian):
  FFNet:   x_j = relu(W_j x_{j-1}),  W_j: (n_j, n_{j-1}) ~ N(0, sigma_j^2),  j = 1..d.
  ResNet:  x_l = x_{l-1} + eta_l N_l(x_{l-1}),  constant width n,  l = 1..d, with the block
    "relu"   Hanin & Rolnick's module, a fully connected ReLU net (here one layer):
             N_l(x) = relu(W_l x),  W_l: (n, n) ~ N(0, sigma_l^2).  N_l >= 0, so the branch
             is positively correlated with the stream: the mean length grows like
             exp(c sum_l eta_l), and sum_l eta_l < inf is the condition that avoids FM1.
    "linear" the branch of reskernel.ResNet (Huang et al.): N_l(x) = V_l relu(W_l x),
             V_l: (n, n) ~ N(0, 1/n).  The branch is uncorrelated with the stream and only
             sum_l eta_l^2 matters (summable eta_l is sufficient, eta_l = 1 explodes).
Lengths M_j = |x_j|^2 / n_j.  FM1: E[M_d] explodes or vanishes exponentially in d.
FM2: Hanin & Rolnick's empirical variance across layers,
  Var^[M] = (1/d) sum_{j=1..d} M_j^2 - ((1/d) sum_{j=1..d} M_j)^2, grows with depth.

Exact theory (Gaussian weights).  Given x_{j-1}, W_j x_{j-1} = sigma_j |x_{j-1}| g with
g ~ N(0, I) independent of the past, so every block multiplies |x|^2 by a fresh factor:
  FFNet:   M_j = M_{j-1} c_j Y_j,  c_j = n_{j-1} sigma_j^2 / 2,  Y_j = (2/n_j) sum_i relu(g_i)^2
           = (2/n_j) chi^2_K with K ~ Binomial(n_j, 1/2);  E Y = 1,  E Y^2 = 1 + 5/n_j
           (E relu(g)^2 = 1/2, E relu(g)^4 = 3/2).  Hence
           E[M_d] = M_0 prod_j c_j,  E[M_d^2] = M_0^2 prod_j c_j^2 (1 + 5/n_j),
           E[M_d^2] / E[M_d]^2 = prod_{j=1..d} (1 + 5/n_j) <= exp(5 sum_j 1/n_j), for any sigma_j.
  "linear" ResNet: M_l = M_{l-1} Z_l,  Z_l = 1 + 2 a sqrt(S) u + a^2 S (u^2 + R),
           a^2 = eta_l^2 sigma_l^2 / n, S ~ sum of n relu(g)^2, u ~ N(0, 1), R ~ chi^2_{n-1}:
           E Z = 1 + e,  E Z^2 = 1 + 2e + 4e/n + e^2 (1 + 5/n)(1 + 2/n),  e = eta_l^2 n sigma_l^2 / 2.
  "relu" ResNet: with c = n sigma_l^2 / 2 and m = (1/n) sum_i x_i (the mean coordinate),
           E[M_l | x_{l-1}] = M + 2 eta_l m sqrt(c M / pi) + eta_l^2 c M,
           E[m_l | x_{l-1}] = m + eta_l sqrt(c M / pi)   (exact).
           m is not a function of M, so there is no exact closed recursion for E[M_l]; we give
           (i) its n -> inf limit, the same recursion for deterministic (M, m), exact at l = 1;
           (ii) closed-form bounds from -sqrt(M) <= m <= sqrt(M) (and m >= 0 when m_0 >= 0):
                M_0 prod (1 + eta^2 c) <= E[M_l] <= M_0 prod (1 + 2 eta sqrt(c/pi) + eta^2 c);
           (iii) the pathwise bound M_l <= M_{l-1} (1 + eta_l sigma_l sqrt(S_l))^2 with independent
                S_l, so E[M_l^2] <= M_0^2 prod E(1 + eta sigma sqrt(S))^4.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks

__all__ = [
    "BLOCKS",
    "LengthSpec",
    "LengthSummary",
    "feedforward",
    "resnet",
    "he_variances",
    "width_profile",
    "geometric_scales",
    "layer_lengths",
    "simulate",
    "empirical_variance",
    "mean_length",
    "second_moment",
    "mean_bounds",
    "second_moment_bound",
    "expected_empirical_variance",
    "summarize",
    "plot_lengths",
    "study",
    "lengths_command",
]

BLOCKS = ("relu", "linear")
_MEMORY = 256 * 2**20  # bytes of weights drawn at once per chunk of seeds


# ----------------------------------------------------------------------------- specs


def _int_tuple(name, values) -> Tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    out = []
    for j, v in enumerate(list(values)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}[{j}] must be an int >= 1, got {v!r}")
        if v < 1:
            raise ValueError(f"{name}[{j}] must be an int >= 1, got {int(v)}")
        out.append(int(v))
    return tuple(out)


def _real_tuple(name, values, length: int, *, allow_zero: bool) -> Tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of {length} numbers, got {type(values).__name__}")
    values = list(values)
    if len(values) != length:
        raise ValueError(f"{name} must have one entry per layer: expected {length}, got {len(values)}")
    out = []
    bound = ">= 0" if allow_zero else "> 0"
    for j, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}[{j}] must be a real number, got {v!r}")
        v = float(v)
        if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
            raise ValueError(f"{name}[{j}] must be finite and {bound}, got {v}")
        out.append(v)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class LengthSpec:
    """A finite-width ReLU net for length statistics (see the module docstring).

    widths: (n_0, ..., n_d), the input and the d layer widths (depth d >= 1; a ResNet has
            one width n for all).
    sigma2: (sigma_1^2, ..., sigma_d^2), the weight variance of each layer's W_j
            (He initialization: sigma_j^2 = 2 / n_{j-1}, see `he_variances`).
    scales: None for an FFNet; for a ResNet the residual scales (eta_1, ..., eta_d).
    block:  the ResNet block, "relu" (Hanin & Rolnick: N(x) = relu(W x)) or "linear"
            (N(x) = V relu(W x), V ~ N(0, 1/n)); not read for an FFNet.
    """

    widths: Tuple[int, ...]
    sigma2: Tuple[float, ...]
    scales: Optional[Tuple[float, ...]] = None
    block: str = "relu"

    def __post_init__(self):
        widths = _int_tuple("widths", self.widths)
        if not widths:
            raise ValueError("widths must list n_0, ..., n_d (depth d >= 1); got an empty sequence")
        if len(widths) < 2:
            raise ValueError(f"depth must be >= 1: widths must list n_0, ..., n_d with d >= 1, got {widths}")
        depth = len(widths) - 1
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "sigma2", _real_tuple("sigma2", self.sigma2, depth, allow_zero=False))
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.scales is not None:
            object.__setattr__(self, "scales", _real_tuple("scales", self.scales, depth, allow_zero=True))
            if len(set(widths)) != 1:
                raise ValueError(f"a ResNet has one width for every layer; got widths {widths}")

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def kind(self) -> str:
        """"ffnet", "relu" (Hanin-Rolnick ResNet block) or "linear" (ResNet, linear readout)."""
        return "ffnet" if self.scales is None else self.block

    @property
    def exact(self) -> bool:
        """Whether mean_length / second_moment are exact at finite width (not for block "relu")."""
        return self.kind != "relu"

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "sigma2": list(self.sigma2),
                "scales": None if self.scales is None else list(self.scales), "block": self.block}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LengthSpec":
        scales = d.get("scales")
        return cls(tuple(d["widths"]), tuple(d["sigma2"]), None if scales is None else tuple(scales),
                   d.get("block", "relu"))


def he_variances(widths, gain: float = 1.0) -> Tuple[float, ...]:
    """sigma_j^2 = gain * 2 / n_{j-1}, j = 1..d: He initialization (critical) at gain = 1."""
    widths = _int_tuple("widths", widths)
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not 0 < gain < math.inf:
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
    return tuple(gain * 2.0 / n for n in widths[:-1])


def _variances(widths, sigma2):
    if sigma2 is None:
        return he_variances(widths)
    if isinstance(sigma2, numbers.Real) and not isinstance(sigma2, bool):
        return (sigma2,) * (len(widths) - 1)
    return sigma2


def feedforward(widths, sigma2=None) -> LengthSpec:
    """FFNet with widths (n_0..n_d); sigma2 None (He), one number, or d numbers."""
    widths = _int_tuple("widths", widths)
    return LengthSpec(widths, _variances(widths, sigma2))


def resnet(width: int, scales, sigma2=None, *, block: str = "relu") -> LengthSpec:
    """ResNet of constant width with residual scales (eta_1..eta_d); sigma2 as in `feedforward`."""
    width = _checks.positive_int("width", width)
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__len__"):
        raise TypeError(f"scales must be a sequence of residual scales, got {type(scales).__name__}")
    if len(scales) < 1:
        raise ValueError("depth must be >= 1: scales must have one entry per residual block, got none")
    widths = (width,) * (len(scales) + 1)
    return LengthSpec(widths, _variances(widths, sigma2), tuple(scales), block)


def width_profile(first: int, last: int, depth: int) -> Tuple[int, ...]:
    """(n_0..n_depth) interpolated linearly from `first` to `last`, rounded: constant,
    increasing or decreasing."""
    first, last = _checks.positive_int("first", first), _checks.positive_int("last", last)
    depth = _checks.positive_int("depth", depth)
    return tuple(int(round(v)) for v in np.linspace(first, last, depth + 1))


def geometric_scales(b: float, depth: int) -> Tuple[float, ...]:
    """eta_l = b^l, l = 1..depth: summable for 0 <= b < 1 (Hanin & Rolnick's choice)."""
    if isinstance(b, bool) or not isinstance(b, numbers.Real) or not 0 <= b < math.inf:
        raise ValueError(f"b must be a finite number >= 0, got {b!r}")
    depth = _checks.positive_int("depth", depth)
    return tuple(b ** l for l in range(1, depth + 1))


# ------------------------------------------------------------------------ simulation


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


# ---------------------------------------------------------------------------- theory


def _input_stats(spec, x0):
    x = np.asarray(_x0(spec, x0), dtype=np.float64)
    return float(x @ x) / x.size, float(x.mean())


def _factors(spec):
    """Per-layer (E factor, E factor^2) for the exact kinds, float64 (d,) arrays."""
    n = np.array(spec.widths, dtype=np.float64)
    s2 = np.array(spec.sigma2)
    if spec.kind == "ffnet":
        c = n[:-1] * s2 / 2
        return c, c * c * (1 + 5 / n[1:])
    e = np.array(spec.scales) ** 2 * n[1:] * s2 / 2
    w = n[1:]
    return 1 + e, 1 + 2 * e + 4 * e / w + e * e * (1 + 5 / w) * (1 + 2 / w)


def _with_input(m0, factors):
    return m0 * np.concatenate([[1.0], np.cumprod(factors)])


def mean_length(spec: LengthSpec, x0=None) -> np.ndarray:
    """(depth+1,) E[M_j], float64.  Exact for FFNets (M_0 prod c_j) and "linear" ResNets
    (M_0 prod (1 + e_l)); for "relu" ResNets the n -> inf recursion of the module docstring,
    exact at layers 0 and 1 (finite-width corrections O(1/n) after)."""
    m0, mean0 = _input_stats(spec, x0)
    if spec.exact:
        return _with_input(m0, _factors(spec)[0])
    q, mu, out = m0, mean0, [m0]
    for eta, s2, n in zip(spec.scales, spec.sigma2, spec.widths[1:]):
        drift = eta * math.sqrt(n * s2 / 2 * q / math.pi)
        q, mu = q + 2 * mu * drift + eta * eta * n * s2 / 2 * q, mu + drift
        out.append(q)
    return np.array(out)


def second_moment(spec: LengthSpec, x0=None) -> np.ndarray:
    """(depth+1,) E[M_j^2], float64, exact for FFNets (M_0^2 prod c_j^2 (1 + 5/n_j)) and
    "linear" ResNets; NaN past layer 0 for "relu" ResNets (see `second_moment_bound`)."""
    m0, _ = _input_stats(spec, x0)
    if spec.exact:
        return _with_input(m0 * m0, _factors(spec)[1])
    return np.concatenate([[m0 * m0], np.full(spec.depth, np.nan)])


def mean_bounds(spec: LengthSpec, x0=None) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (depth+1,): closed-form bounds on E[M_j].  Equal to
    `mean_length` for the exact kinds; for "relu" ResNets, per block,
      lower factor 1 + eta^2 c  (when mean(x_0) >= 0; else 1 - 2 eta sqrt(c/pi) + eta^2 c),
      upper factor 1 + 2 eta sqrt(c/pi) + eta^2 c,   c = n sigma^2 / 2."""
    m0, mean0 = _input_stats(spec, x0)
    if spec.exact:
        mean = _with_input(m0, _factors(spec)[0])
        return mean, mean.copy()
    eta = np.array(spec.scales)
    c = np.array(spec.widths[1:]) * np.array(spec.sigma2) / 2
    cross = 2 * eta * np.sqrt(c / math.pi)
    lower = 1 + eta * eta * c - (0 if mean0 >= 0 else cross)
    return _with_input(m0, lower), _with_input(m0, 1 + cross + eta * eta * c)


def _chi_moments(n: int, powers) -> np.ndarray:
    """E[S^(p/2)] for S = sum of n relu(g)^2 = chi^2_K, K ~ Binomial(n, 1/2)."""
    from scipy.special import gammaln

    k = np.arange(1, n + 1, dtype=np.float64)
    logpmf = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - n * math.log(2)
    return np.array([np.sum(np.exp(logpmf + p / 2 * math.log(2) + gammaln((k + p) / 2) - gammaln(k / 2)))
                     for p in powers])


def second_moment_bound(spec: LengthSpec, x0=None) -> np.ndarray:
    """(depth+1,) upper bound on E[M_j^2]: `second_moment` for the exact kinds; for "relu"
    ResNets M_0^2 prod_l E(1 + b_l sqrt(S))^4, b_l = eta_l sigma_l, from the pathwise bound
    M_l <= M_{l-1} (1 + b_l |relu(g_l)|)^2 (Cauchy-Schwarz on the cross term)."""
    if spec.exact:
        return second_moment(spec, x0)
    m0, _ = _input_stats(spec, x0)
    s = _chi_moments(spec.widths[0], (1, 2, 3, 4))
    b = np.array(spec.scales) * np.sqrt(np.array(spec.sigma2))
    f = 1 + 4 * b * s[0] + 6 * b**2 * s[1] + 4 * b**3 * s[2] + b**4 * s[3]
    return _with_input(m0 * m0, f)


def expected_empirical_variance(spec: LengthSpec, x0=None) -> float:
    """E of Hanin & Rolnick's empirical variance across layers 1..d (FM2), exact for the exact
    kinds: (1/d) sum_j s_j - (1/d^2) sum_{j,k} s_min(j,k) mu_max / mu_min, with s_j = E[M_j^2],
    mu_j = E[M_j] (later factors are independent of the past with mean mu_k / mu_j).
    NaN for "relu" ResNets."""
    if not spec.exact:
        return float("nan")
    mu, s = mean_length(spec, x0)[1:], second_moment(spec, x0)[1:]
    j, k = np.meshgrid(np.arange(spec.depth), np.arange(spec.depth), indexing="ij")
    lo, hi = np.minimum(j, k), np.maximum(j, k)
    cross = s[lo] * mu[hi] / mu[lo]
    return float(np.mean(s) - np.mean(cross))


# --------------------------------------------------------------------------- summary


@dataclasses.dataclass(frozen=True)
class LengthSummary:
    """Measured statistics (mean over seeds, standard error) beside theory, per layer j = 0..d.

    Arrays are float64 (depth+1,): mean, mean_se, mean_theory, mean_lower, mean_upper;
    second (E M^2), second_se, second_theory, second_upper; ratio = E[M^2]/E[M]^2, ratio_se
    (delta method), ratio_theory; q05, q95 (percentiles over seeds).  Scalars: fm2 (mean
    empirical variance across layers), fm2_se, fm2_theory; beta = sum_{j=1..d} 1/n_j.
    """

    spec: LengthSpec
    seeds: int
    mean: np.ndarray
    mean_se: np.ndarray
    mean_theory: np.ndarray
    mean_lower: np.ndarray
    mean_upper: np.ndarray
    second: np.ndarray
    second_se: np.ndarray
    second_theory: np.ndarray
    second_upper: np.ndarray
    ratio: np.ndarray
    ratio_se: np.ndarray
    ratio_theory: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    fm2: float
    fm2_se: float
    fm2_theory: float
    beta: float

    @property
    def mean_z(self) -> np.ndarray:
        """(mean - mean_theory) / mean_se per layer (0 where both agree exactly)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (self.mean - self.mean_theory) / self.mean_se
        return np.where(self.mean == self.mean_theory, 0.0, z)

    def to_dict(self) -> dict:
        def enc(v):
            if isinstance(v, np.ndarray):
                return [None if not np.isfinite(x) else float(x) for x in v]
            if isinstance(v, float):
                return None if not math.isfinite(v) else v
            return v

        d = {f.name: enc(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "spec"}
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "LengthSummary":
        def dec(v):
            if isinstance(v, list):
                return np.array([np.nan if x is None else x for x in v], dtype=np.float64)
            return float("nan") if v is None else v

        kw = {f.name: dec(d[f.name]) for f in dataclasses.fields(cls) if f.name != "spec"}
        kw["seeds"] = int(d["seeds"])
        return cls(spec=LengthSpec.from_dict(d["spec"]), **kw)


def summarize(spec: LengthSpec, lengths, x0=None) -> LengthSummary:
    """Measured mean (and E[M^2], their ratio, percentiles, FM2) of `lengths` (seeds, depth+1)
    from `simulate(spec, ..., x0)`, with standard errors, beside the theory for `spec`."""
    m = np.asarray(lengths, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != spec.depth + 1:
        raise ValueError(f"lengths must have shape (seeds, depth+1) = (seeds, {spec.depth + 1}), got {m.shape}")
    s = m.shape[0]
    if s < 2:
        raise ValueError(f"lengths needs at least 2 seeds for standard errors, got {s}")
    root = math.sqrt(s)
    mean, m2 = m.mean(0), (m * m).mean(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = m2 / mean**2
        influence = (m * m) / mean**2 - 2 * m2 * m / mean**3  # delta method for m2 / mean^2
        ratio_se = influence.std(0, ddof=1) / root
    inner = m[:, 1:]
    fm2 = (inner * inner).mean(1) - inner.mean(1) ** 2  # float64, as empirical_variance
    lower, upper = mean_bounds(spec, x0)
    theory, second = mean_length(spec, x0), second_moment(spec, x0)
    return LengthSummary(
        spec=spec, seeds=s,
        mean=mean, mean_se=m.std(0, ddof=1) / root, mean_theory=theory, mean_lower=lower, mean_upper=upper,
        second=m2, second_se=(m * m).std(0, ddof=1) / root, second_theory=second,
        second_upper=second_moment_bound(spec, x0),
        ratio=ratio, ratio_se=ratio_se, ratio_theory=second / theory**2,
        q05=np.percentile(m, 5, axis=0), q95=np.percentile(m, 95, axis=0),
        fm2=float(fm2.mean()), fm2_se=float(fm2.std(ddof=1) / root),
        fm2_theory=expected_empirical_variance(spec, x0),
        beta=float(sum(1.0 / n for n in spec.widths[1:])),
    )


# ------------------------------------------------------------------------------ plot

_TITLES = {"ffnet": "FFNet", "relu": "ResNet, relu block (Hanin-Rolnick)", "linear": "ResNet, linear-readout block"}


def plot_lengths(summaries: Mapping[str, LengthSummary], path) -> Path:
    """PNG of E[M_j] vs layer j (log scale): measured mean with its 5-95 percentile band and the
    theory curve (dashed; dotted bounds for "relu" ResNets), one panel per kind, plus a panel
    of E[M_j^2]/E[M_j]^2 for the FFNets against prod (1 + 5/n_j) (FM2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not summaries:
        raise ValueError("summaries must hold at least one LengthSummary")
    kinds = [k for k in _TITLES if any(s.spec.kind == k for s in summaries.values())]
    ffnets = {name: s for name, s in summaries.items() if s.spec.kind == "ffnet"}
    panels = len(kinds) + (1 if ffnets else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    axes = axes[0]
    for ax, kind in zip(axes, kinds):
        for i, (name, s) in enumerate((n, s) for n, s in summaries.items() if s.spec.kind == kind):
            color, layers = f"C{i}", np.arange(s.spec.depth + 1)
            ax.fill_between(layers, s.q05, s.q95, color=color, alpha=0.18, linewidth=0)
            ax.plot(layers, s.mean, "o", ms=3, color=color, label=f"{name} (measured)")
            ax.plot(layers, s.mean_theory, "--", color=color, lw=1.2)
            if not s.spec.exact:
                ax.plot(layers, s.mean_lower, ":", color=color, lw=0.9)
                ax.plot(layers, s.mean_upper, ":", color=color, lw=0.9)
        ax.set_yscale("log", nonpositive="mask")
        ax.set_title(f"{_TITLES[kind]}\nmean, 5-95% band; dashed: theory", fontsize=9)
        ax.set_xlabel("layer j")
        ax.set_ylabel("M_j = |x_j|^2 / n_j")
        ax.legend(fontsize=7)
    if ffnets:
        ax = axes[-1]
        for i, (name, s) in enumerate(ffnets.items()):
            layers = np.arange(s.spec.depth + 1)
            ax.errorbar(layers, s.ratio, yerr=2 * s.ratio_se, fmt="o", ms=3, color=f"C{i}",
                        label=f"{name} (measured, 2 s.e.)")
            ax.plot(layers, s.ratio_theory, "--", color=f"C{i}", lw=1.2)
        ax.set_title("FM2: E[M_j^2] / E[M_j]^2 vs prod (1 + 5/n_i)", fontsize=10)
        ax.set_xlabel("layer j")
        ax.set_yscale("log")
        ax.set_ylabel("second-moment ratio")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------- study & CLI


def _atomic(path: Path, write, *, binary: bool = False):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _configs(width, depth, b, gains):
    n, prof = width, width_profile
    lo, hi = max(1, width // 2), 2 * width
    out = {"ffnet_he": feedforward((n,) * (depth + 1))}
    for g in gains:
        widths = (n,) * (depth + 1)
        out[f"ffnet_gain_{g:g}"] = feedforward(widths, he_variances(widths, g))
    out["ffnet_increasing"] = feedforward(prof(lo, hi, depth))
    out["ffnet_decreasing"] = feedforward(prof(hi, lo, depth))
    for block in BLOCKS:
        out[f"resnet_{block}_eta_1"] = resnet(n, (1.0,) * depth, block=block)
        out[f"resnet_{block}_eta_{b:g}^l"] = resnet(n, geometric_scales(b, depth), block=block)
    return out


def study(out, *, width: int = 64, depth: int = 50, seeds: int = 1000, b: float = 0.9,
          gains: Sequence[float] = (0.9, 1.1), seed: int = 0, chunk: Optional[int] = None,
          progress: bool = True) -> dict:
    """Simulate and summarize the standard configurations (FFNet He / non-He gains /
    increasing / decreasing widths; ResNets of both blocks with eta_l = 1 and b^l), writing
    out/lengths.json after each (atomically; entries already there with the same parameters
    are skipped) and out/lengths.png.  Returns {"computed": [...], "skipped": [...], "path": ...}."""
    from tqdm.auto import tqdm

    width = _checks.positive_int("width", width)
    depth = _checks.positive_int("depth", depth)
    seeds = _checks.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for standard errors, got {seeds}")
    gains = tuple(_real_tuple("gains", gains, len(gains), allow_zero=False))
    configs = _configs(width, depth, b, gains)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lengths.json"
    params = {"width": width, "depth": depth, "seeds": seeds, "b": float(b), "gains": list(gains),
              "seed": int(seed), "x64": bool(jax.config.jax_enable_x64)}
    results = {}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("params") == params:
            results = dict(old.get("results", {}))
    computed, skipped = [], []
    key = jax.random.PRNGKey(seed)
    for i, (name, spec) in enumerate(tqdm(configs.items(), desc="lengths", disable=not progress)):
        if name in results:
            skipped.append(name)
            continue
        lengths = simulate(spec, jax.random.fold_in(key, i), seeds, chunk=chunk)
        results[name] = summarize(spec, lengths).to_dict()
        computed.append(name)
        _atomic(path, lambda f: json.dump({"params": params, "results": results}, f, indent=1))
    summaries = {name: LengthSummary.from_dict(results[name]) for name in configs}
    png = plot_lengths(summaries, out / "lengths.png")
    return {"computed": computed, "skipped": skipped, "path": str(path), "png": str(png)}


def _lengths_command():
    import click

    @click.command("lengths")
    @click.option("--out", default="results/lengths", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for lengths.json and lengths.png.")
    @click.option("--width", default=64, show_default=True, type=click.IntRange(min=1), help="Width n.")
    @click.option("--depth", default=50, show_default=True, type=click.IntRange(min=1), help="Depth d.")
    @click.option("--seeds", default=1000, show_default=True, type=click.IntRange(min=2),
                  help="Networks per configuration.")
    @click.option("--b", default=0.9, show_default=True, type=click.FloatRange(min=0.0),
                  help="Summable residual scales eta_l = b^l.")
    @click.option("--gain", "gains", multiple=True, type=click.FloatRange(min=0.0, min_open=True),
                  help="Non-critical FFNet variances sigma^2 = gain * 2 / fan-in (repeatable; default 0.9, 1.1).")
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--chunk", default=None, type=click.IntRange(min=1), help="Seeds per vmapped batch.")
    @click.option("--x64/--no-x64", default=True, show_default=True, help="Simulate in float64.")
    def lengths(out, width, depth, seeds, b, gains, seed, chunk, x64):
        """Activation lengths M_j = |x_j|^2/n_j (Hanin & Rolnick 2018): measured vs exact theory."""
        old = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", x64)
        try:
            res = study(out, width=width, depth=depth, seeds=seeds, b=b, gains=gains or (0.9, 1.1),
                        seed=seed, chunk=chunk)
        finally:
            jax.config.update("jax_enable_x64", old)
        summaries = json.loads(Path(res["path"]).read_text())["results"]
        for name, s in summaries.items():
            z = LengthSummary.from_dict(s).mean_z
            click.echo(f"{name:28s} E[M_d] = {s['mean'][-1]:.4g} +- {s['mean_se'][-1]:.2g}"
                       f"  theory {s['mean_theory'][-1]:.4g}  max|z| {np.nanmax(np.abs(z)):.2f}")
        click.echo(f"wrote {res['path']} and {res['png']} ({len(res['computed'])} computed, "
                   f"{len(res['skipped'])} reused)")

    return lengths


lengths_command = _lengths_command()
