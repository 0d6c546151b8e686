"""Exact finite-width moments of the lengths, and bounds where no exact form exists (Gaussian
weights, float64 NumPy); the derivation is in the package docstring (`reskernel.lengths`)."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ._simulation import _x0
from ._specs import LengthSpec


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
    (M_0 prod (1 + e_l)); for "relu" ResNets the n -> inf recursion of the package docstring,
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
