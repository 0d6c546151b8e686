"""The depth-width joint limit in theory: the exact relative variance of one empirical NNGP
diagonal entry (Hanin & Rolnick's layer factors) and the width that brings it to a target."""
from __future__ import annotations

import math

import numpy as np

from ...core.arch import FeedForward, ResNet

__all__ = ["diagonal_relative_variance", "theory_width"]

def diagonal_relative_variance(arch, width) -> float:
    """Exact Var[E(x, x)] / K(x, x)^2 for the empirical NNGP diagonal E(x, x) = |x_L|^2 of one
    network of `width` with Gaussian weights (any input x != 0; the depth-width joint limit).

    Every layer multiplies |x|^2 by an independent factor (Hanin & Rolnick 2018; the exact
    moments are derived in reskernel.lengths):
      FFNet:  (2/m) chi^2 of Binomial(m, 1/2) dof, second moment 1 + 5/m:
              prod_{l=1..L} (1 + 5/m) - 1  ~  5 L / m  (exp(5 L / m) - 1 for L ~ m).
      ResNet: the embedding |A x|^2 / m (second moment 1 + 2/m) and per block, e = a_l^2,
              E Z = 1 + e, E Z^2 = 1 + 2e + 4e/m + e^2 (1 + 5/m)(1 + 2/m):
              (1 + 2/m) prod_l E Z_l^2 / (E Z_l)^2 - 1  ~  (2 + 4 sum_l a_l^2) / m,
              bounded in depth when sum_l a_l^2 = L^(1 - 2 gamma) is (gamma >= 1/2).
    `width` may be any real > 0 (used to solve for the width); returns a float64 number.
    """
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a FeedForward or a ResNet, got {type(arch).__name__}")
    m = float(width)
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    s = _log_second_moment_ratio(arch, m)
    return math.expm1(s) if s < 700 else float("inf")


def _log_second_moment_ratio(arch, m):
    """log(E[E(x,x)^2] / K(x,x)^2) (see diagonal_relative_variance), float64."""
    if isinstance(arch, FeedForward):
        return arch.depth * math.log1p(5.0 / m)
    e = np.asarray(arch.branch_scales, np.float64) ** 2
    ratio = (1 + 2 * e + 4 * e / m + e * e * (1 + 5 / m) * (1 + 2 / m)) / (1 + e) ** 2
    return float(math.log1p(2.0 / m) + np.sum(np.log(ratio)))


def theory_width(arch, target: float) -> float:
    """Width m (real) at which the relative standard deviation of the empirical NNGP diagonal,
    sqrt(diagonal_relative_variance(arch, m)), equals `target` (> 0): ~ 5 L / target^2 for
    the FFNet (linear in depth), -> 2 / target^2 for ResNets with gamma > 1/2 (bounded)."""
    from scipy.optimize import brentq

    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a finite number > 0, got {target!r}")
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a FeedForward or a ResNet, got {type(arch).__name__}")

    def f(lm):  # log(relative variance) - log(target^2), computed without overflow
        s = _log_second_moment_ratio(arch, math.exp(lm))
        return (s + math.log(-math.expm1(-s)) if s > 1e-300 else -math.inf) - 2 * math.log(target)
    lo, hi = math.log(1e-3), math.log(1e15)
    if f(hi) > 0:
        return float("inf")
    return float(math.exp(brentq(f, lo, hi, xtol=1e-10)))


