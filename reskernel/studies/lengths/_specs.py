"""Specs of the finite-width ReLU nets whose activation lengths are measured: `LengthSpec`
(widths, weight variances, residual scales, block) and the helpers that build them."""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Mapping, Optional, Tuple

import numpy as np

from ... import _checks

BLOCKS = ("relu", "linear")


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
    """A finite-width ReLU net for length statistics (see the package docstring, `reskernel.lengths`).

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
