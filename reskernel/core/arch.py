"""Architecture specs: one frozen, hashable description read by the analytic
kernels and by the finite-width networks alike (see docs/conventions.md).

Width m; every weight and bias entry i.i.d. N(0, 1); phi the activation; sigma_w^2 = w_var,
sigma_b^2 = b_var, and the first layer's weight variance in_var acts on the raw inputs:

FeedForward(depth):  z_1 = sqrt(in_var) W_1 x + sqrt(b_var) b_1,
                     z_l = sqrt(w_var / m) W_l phi(z_{l-1}) + sqrt(b_var) b_l,   l = 2..depth,
                     f = sqrt(w_var / m) v . phi(z_depth) + sqrt(b_var) b_out
ResNet(depth, ...):  x_0 = (sqrt(in_var) A x + sqrt(b_var) b_0) / sqrt(m),
                     x_l = x_{l-1} + a_l V_l phi(sqrt(w_var) W_l x_{l-1} + sqrt(b_var) b_l) / m,
                     f = sqrt(out_var) v . x_depth + sqrt(b_var) b_out
(x_l is normalized so that x_l . x_l' is the stream's kernel K_l; the bias sits in the branch's
pre-activation; the branch's output map V has none). With branch scales a_l = depth^-gamma
(default gamma = 1), a fixed alpha, or per-block scales (Hanin & Rolnick's eta_l). The
defaults (ReLU, w_var = 2, b_var = 0, in_var = out_var = 1) are the He-scaled bias-free nets
    FeedForward: x_l = sqrt(2/m) relu(W_l x_{l-1}), f = v . x_L;
    ResNet:      x_l = x_{l-1} + a_l V_l relu(sqrt(2/m) W_l x_{l-1}) / sqrt(m), f = v . x_L.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

from . import activations as _activations

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


def _check_layers(spec, names):
    """Validate the variances `names` (>= 0, finite; weight variances > 0) and the activation."""
    for name in names:
        object.__setattr__(spec, name, _check_scale(name, getattr(spec, name), allow_zero=name == "b_var"))
    object.__setattr__(spec, "activation", _activations.get(spec.activation))


def _is_default(spec) -> bool:
    return (spec.activation == _activations.relu() and spec.w_var == 2.0 and spec.b_var == 0.0
            and spec.in_var == 1.0 and getattr(spec, "out_var", 1.0) == 1.0)


@dataclasses.dataclass(frozen=True)
class FeedForward:
    """Feedforward net of `depth` hidden layers (module doc for the parametrization).

    w_var, b_var: weight and bias variances of the hidden layers and the readout (Lee et al.'s
    sigma_w^2, sigma_b^2); in_var: the first layer's weight variance on the raw inputs
    (Lee et al.'s sigma_w^2 / d_in); activation: a name in reskernel.activations.NAMES, an
    Activation, or an elementwise callable. Defaults: the He-scaled bias-free ReLU net.
    """

    depth: int
    w_var: float = 2.0
    b_var: float = 0.0
    activation: object = "relu"
    in_var: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "depth", _check_depth(self.depth))
        _check_layers(self, ("w_var", "b_var", "in_var"))

    @property
    def default(self) -> bool:
        """True for the bias-free He-scaled ReLU net (the engine's fast ReLU path)."""
        return _is_default(self)

    def with_depth(self, depth: int) -> "FeedForward":
        return dataclasses.replace(self, depth=depth)


@dataclasses.dataclass(frozen=True)
class ResNet:
    """ResNet of `depth` residual blocks with branch scales a_1..a_L (module doc).

    Give at most one of
      gamma:  a_l = depth^-gamma for every block (default gamma = 1.0);
      alpha:  a_l = alpha for every block;
      scales: a sequence of `depth` per-block scales (eta_l, e.g. b**l).
    w_var, b_var: the branch's weight and bias variances (b_var also the embedding's and the
    readout's bias); in_var, out_var: the embedding's and the readout's weight variances;
    activation as for FeedForward. Defaults: the He-scaled bias-free ReLU ResNet.
    """

    depth: int
    gamma: Optional[float] = None
    alpha: Optional[float] = None
    scales: Optional[Tuple[float, ...]] = None
    w_var: float = 2.0
    b_var: float = 0.0
    activation: object = "relu"
    in_var: float = 1.0
    out_var: float = 1.0

    def __post_init__(self):
        _check_layers(self, ("w_var", "b_var", "in_var", "out_var"))
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
        return dataclasses.replace(self, depth=depth)

    @property
    def default(self) -> bool:
        """True for the bias-free He-scaled ReLU ResNet (the engine's fast ReLU path)."""
        return _is_default(self)


Arch = Union[FeedForward, ResNet]


def check_arch(arch) -> Arch:
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a reskernel.FeedForward or reskernel.ResNet, got {type(arch).__name__}")
    return arch


def check_trained(trained) -> str:
    if trained not in TRAINED:
        raise ValueError(f"trained must be one of {TRAINED}, got {trained!r}")
    return trained
