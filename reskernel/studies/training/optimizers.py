"""The optimizers of the training studies, as optax GradientTransformations.

  sgd      optax.sgd, with heavy-ball momentum (default 0.9; 0 for plain SGD)
  adam     optax.adam
  lars     optax.lars (trust ratio trust_coefficient |W| / |g| per layer, momentum)
  fromage  optax.fromage: W <- (W - lr |W| / |g| g) / sqrt(1 + lr^2) per layer
           (Bernstein, Vahdat, Yue and Liu, NeurIPS 2020)

LARS and Fromage scale each layer's step by that layer's weight norm, which needs two
things a plain optax call does not know (pass `layout=spec.layout()`):
  - per-layer norms: a stack of layers stored as one array (L, m, m) is one leaf, so
    the layerwise transformation is vmapped over its leading axis (`per_layer`);
  - zero-initialized leaves (biases, BN shifts, SkipInit scalars): Fromage's step on a
    leaf of norm 0 is lr * min_norm (1e-6) / |g| times g, so such a leaf barely moves.
    Leaves whose role is in `plain_roles` get a plain update instead (`plain`, default
    Adam for Fromage and momentum SGD for LARS, at `plain_learning_rate`, default the
    same learning rate), through optax.multi_transform.
"""
from __future__ import annotations

import math
import numbers

import jax
import numpy as np
import optax

from ..._checks import concrete
from .nets import ROLES, STACKED_ROLES

__all__ = ["OPTIMIZERS", "PLAIN_ROLES", "optimizer", "per_layer", "check_learning_rate"]

OPTIMIZERS = ("sgd", "adam", "lars", "fromage")
LAYERWISE = ("lars", "fromage")
PLAIN_ROLES = ("bias", "biases", "skip")
_DEFAULT_PLAIN = {"fromage": "adam", "lars": "sgd"}


def check_name(name) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return name


def check_learning_rate(learning_rate, name="learning_rate"):
    """Raise unless every concrete entry is finite and >= 0 (tracers pass unchecked)."""
    if isinstance(learning_rate, bool) or isinstance(learning_rate, (str, bytes)):
        raise TypeError(f"{name} must be a real number, got {learning_rate!r}")
    values = concrete(learning_rate)
    if values is None:
        return learning_rate
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise TypeError(f"{name} must be a real number, got {learning_rate!r}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {learning_rate!r}")
    if np.any(values < 0):
        raise ValueError(f"{name} must be >= 0, got {learning_rate!r}")
    return learning_rate


def per_layer(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` applied separately to each slice along axis 0 of every leaf (vmapped)."""

    def init(params):
        if not jax.tree_util.tree_leaves(params):
            return inner.init(params)
        return jax.vmap(inner.init)(params)

    def update(updates, state, params=None):
        if not jax.tree_util.tree_leaves(updates):
            return inner.update(updates, state, params)
        if params is None:
            return jax.vmap(lambda u, s: inner.update(u, s))(updates, state)
        return jax.vmap(inner.update)(updates, state, params)

    return optax.GradientTransformation(init, update)


def _base(name, learning_rate, momentum, min_norm, trust_coefficient):
    if name == "sgd":
        return optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None)
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "lars":
        return optax.lars(learning_rate, trust_coefficient=trust_coefficient, momentum=momentum)
    return optax.fromage(learning_rate, min_norm=min_norm)


def optimizer(name: str, learning_rate, *, layout=None, momentum: float = 0.9,
              plain: str | None = None, plain_learning_rate=None,
              plain_roles=PLAIN_ROLES, min_norm: float = 1e-6,
              trust_coefficient: float = 0.001) -> optax.GradientTransformation:
    """The optax transformation for `name` in OPTIMIZERS.

    learning_rate: float >= 0 (a tracer is accepted, e.g. to vmap over a grid).
    layout: the params' roles (`spec.layout()`); used by lars and fromage for per-layer
      norms and to route `plain_roles` leaves to `plain` (see module doc). Without it
      they are optax's own, one norm per leaf and no routing.
    momentum: heavy-ball momentum of sgd and lars (and of a plain sgd route), in [0, 1).
    """
    check_name(name)
    check_learning_rate(learning_rate)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must be a real number in [0, 1), got {momentum!r}")
    for arg, value in (("min_norm", min_norm), ("trust_coefficient", trust_coefficient)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{arg} must be a finite real number >= 0, got {value!r}")
    base = _base(name, learning_rate, momentum, min_norm, trust_coefficient)
    if name not in LAYERWISE or layout is None:
        return base
    plain = _DEFAULT_PLAIN[name] if plain is None else check_name(plain)
    if plain in LAYERWISE:
        raise ValueError(f"plain must be 'sgd' or 'adam', got {plain!r}")
    plain_lr = learning_rate if plain_learning_rate is None else check_learning_rate(
        plain_learning_rate, "plain_learning_rate")
    bad = [r for r in plain_roles if r not in ROLES]
    if bad:
        raise ValueError(f"plain_roles must be drawn from {ROLES}, got {bad}")

    def label(role):
        if role not in ROLES:
            raise ValueError(f"layout has unknown role {role!r}; roles are {ROLES}")
        if role in plain_roles:
            return "plain"
        return "stacked" if role in STACKED_ROLES else "whole"

    labels = jax.tree_util.tree_map(label, layout)
    transforms = {"plain": _base(plain, plain_lr, momentum, min_norm, trust_coefficient),
                  "stacked": per_layer(base), "whole": base}
    return optax.multi_transform(transforms, labels)
