"""Architecture specs: one frozen, hashable description read by the analytic
kernels and by the finite-width networks alike (see docs/conventions.md).

FeedForward(depth):  x_l = sqrt(2/m) relu(W_l x_{l-1}),  l = 1..depth,  f = v . x_L
ResNet(depth, ...):  x_0 = A x / sqrt(m),
                     x_l = x_{l-1} + a_l V_l relu(sqrt(2/m) W_l x_{l-1}) / sqrt(m),  f = v . x_L
with branch scales a_l = depth^-gamma (default gamma = 1), a fixed alpha, or
per-block scales (Hanin & Rolnick's eta_l).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

__all__ = ["FeedForward", "ResNet", "Arch", "TRAINED"]

# Which parameters the NTK differentiates. "hidden": the paper's choice (every
# weight matrix between input and readout; the ResNet's embedding A and the
# readout v fixed). "all": the standard NTK, every layer trained.
TRAINED = ("hidden", "all")


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise TypeError(f"depth must be an int >= 1, got {depth!r} ({type(depth).__name__})")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return int(depth)


def _check_scale(name: str, value, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class FeedForward:
    """ReLU feedforward net of `depth` hidden layers in He/NTK-style scaling.

    x_l = sqrt(2/m) relu(W_l x_{l-1}), W_1: (m, d), W_l: (m, m); f(x) = v . x_L.
    """

    depth: int

    def __post_init__(self):
        object.__setattr__(self, "depth", _check_depth(self.depth))

    def with_depth(self, depth: int) -> "FeedForward":
        return FeedForward(depth)


@dataclasses.dataclass(frozen=True)
class ResNet:
    """ReLU ResNet of `depth` residual blocks with branch scales a_1..a_L.

    Give at most one of
      gamma:  a_l = depth^-gamma for every block (default gamma = 1.0);
      alpha:  a_l = alpha for every block;
      scales: a sequence of `depth` per-block scales (eta_l, e.g. b**l).
    """

    depth: int
    gamma: Optional[float] = None
    alpha: Optional[float] = None
    scales: Optional[Tuple[float, ...]] = None

    def __post_init__(self):
        depth = _check_depth(self.depth)
        object.__setattr__(self, "depth", depth)
        given = [n for n in ("gamma", "alpha", "scales") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of gamma, alpha, scales; got {', '.join(given)}")
        if not given:
            object.__setattr__(self, "gamma", 1.0)
        if self.gamma is not None:
            object.__setattr__(self, "gamma", _check_scale("gamma", self.gamma, allow_zero=True))
        if self.alpha is not None:
            object.__setattr__(self, "alpha", _check_scale("alpha", self.alpha, allow_zero=False))
        if self.scales is not None:
            scales = self.scales
            if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) and not hasattr(scales, "__len__"):
                raise TypeError(f"scales must be a sequence of {depth} numbers, got {type(scales).__name__}")
            scales = list(scales)
            for i, s in enumerate(scales):
                if isinstance(s, (bool, str, bytes)) or not isinstance(s, numbers.Real):
                    raise TypeError(f"scales must be a sequence of real numbers; scales[{i}] is {s!r}")
            scales = tuple(float(s) for s in scales)
            if len(scales) != depth:
                raise ValueError(f"scales must have one entry per block: expected {depth}, got {len(scales)}")
            for i, s in enumerate(scales):
                _check_scale(f"scales[{i}]", s, allow_zero=True)
            object.__setattr__(self, "scales", scales)

    @property
    def branch_scales(self) -> Tuple[float, ...]:
        """The per-block scales a_1..a_L (a tuple of `depth` floats)."""
        if self.scales is not None:
            return self.scales
        a = self.alpha if self.alpha is not None else float(self.depth) ** (-self.gamma)
        return (a,) * self.depth

    def with_depth(self, depth: int) -> "ResNet":
        """The same family at another depth: gamma is kept (so alpha = depth^-gamma
        changes), a fixed alpha is kept, per-block scales cannot be re-depthed."""
        if self.scales is not None:
            raise ValueError("a ResNet with explicit per-block scales has no other depths")
        if self.alpha is not None:
            return ResNet(depth, alpha=self.alpha)
        return ResNet(depth, gamma=self.gamma)


Arch = Union[FeedForward, ResNet]


def check_arch(arch) -> Arch:
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a reskernel.FeedForward or reskernel.ResNet, got {type(arch).__name__}")
    return arch


def check_trained(trained) -> str:
    if trained not in TRAINED:
        raise ValueError(f"trained must be one of {TRAINED}, got {trained!r}")
    return trained
