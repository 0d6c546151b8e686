"""Deep relative trust (Bernstein, Vahdat, Yue and Liu, NeurIPS 2020): how much the
function and the gradients of a deep net change when each layer's weights change by a
relative amount |dW_k|_F / |W_k|_F = eta_k.

The paper's Theorem 1 bounds the relative change of each layer's *gradient* ("gradient
breakdown") of a multilayer perceptron,
    |g_l(W + dW) - g_l(W)|_F / |g_l(W)|_F  <=  prod_k (1 + |dW_k|_F / |W_k|_F) - 1,
under approximate conditions it states with "~": layers and perturbations well
conditioned, and a nonlinearity whose value and derivative pass on a fixed fraction of
their input. It is a model, not a theorem about every net: ReLU's derivative is a step,
and a small perturbation flips some units, which changes a gradient by ~ sqrt(eta) rather
than ~ eta (`relative_change` measures it; the studies report where the bound fails).

What is a theorem (ReLU is 1-Lipschitz and relu(0) = 0), for a bias-free MLP,
f = v . relu(W_L ... relu(W_1 x)), with operator norms |.| (the readout's Euclidean norm):
    |f_{W+dW}(x) - f_W(x)|  <=  |x| prod_k |W_k| (prod_k (1 + |dW_k| / |W_k|) - 1),
by induction on e_l = |h'_l - h_l| <= |W'_l| e_{l-1} + |dW_l| |h_{l-1}| (`lipschitz_bound`;
loose at init, where |f(x)| << |x| prod_k |W_k|).

The relative form is attained by dW_k = eta W_k: a bias-free ReLU MLP is positively
homogeneous in each layer, so f scales by (1 + eta)^K (K weight layers), a relative change
of exactly prod_k (1 + eta) - 1, and each layer's gradient of f by (1 + eta)^(K-1). The
gradient of a loss changes by more, since the loss derivative moves with f.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .fit import labels_pm1, logistic_loss
from .nets import MLP, check_spec

__all__ = ["DIRECTIONS", "TrustMeasurement", "weight_layers", "relative_perturbation",
           "relative_change", "lipschitz_bound"]

DIRECTIONS = ("random", "scale", "gradient")


class TrustMeasurement(NamedTuple):
    """Relative changes under a perturbation dW of the K weight layers (forward order)."""

    function: jax.Array      # |f(W+dW) - f(W)| / |f(W)|, norms over the batch
    gradient: jax.Array      # (K,) |g_k(W+dW) - g_k(W)|_F / |g_k(W)|_F
    ratio: jax.Array         # (K,) |dW_k|_F / |W_k|_F
    bound: jax.Array         # prod_k (1 + ratio_k) - 1


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree, path, value):
    if len(path) == 1:
        return dict(tree, **{path[0]: value})
    return dict(tree, **{path[0]: _set(tree[path[0]], path[1:], value)})


def weight_layers(spec, tree):
    """The K weight matrices of `tree` (params or a like-shaped tree) in forward order.

    For a ResidualMLP the order is embed, W_1, V_1, W_2, V_2, ..., readout.
    """
    check_spec(spec)
    out = []
    paths = spec.weight_paths()
    stacked = [_get(tree, p) for p, s in paths if s]
    out.append(_get(tree, paths[0][0]))
    if len(stacked) == 1:
        out.extend(list(stacked[0]))
    else:
        for layers in zip(*stacked):
            out.extend(layers)
    out.append(_get(tree, paths[-1][0]))
    return out


def _zeros_like(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


def _norm(a, axes):
    return jnp.sqrt(jnp.sum(jnp.square(a), axis=axes, keepdims=True))


def relative_perturbation(spec, params, eta, key=None, *, direction: str = "random", x=None, y=None):
    """dW with |dW_k|_F = eta |W_k|_F for every weight layer (other leaves 0).

    direction: "random" (Gaussian direction per layer, needs `key`), "scale" (dW_k = eta W_k),
    "gradient" (dW_k = -eta |W_k| g_k / |g_k|, Fromage's step; needs x and y).
    """
    check_spec(spec)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    eta = float(eta)
    if not (np.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be a finite number >= 0, got {eta}")
    if direction == "random" and key is None:
        raise ValueError("direction='random' needs a key")
    if direction == "gradient":
        if x is None or y is None:
            raise ValueError("direction='gradient' needs x and y")
        x, y = jnp.asarray(x), jnp.asarray(labels_pm1(y))
    else:
        x = y = None
    return _perturbation(spec, direction, params, eta, key if direction == "random" else None, x, y)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _perturbation(spec, direction, params, eta, key, x, y):
    if direction == "gradient":
        dirs = jax.grad(lambda p: logistic_loss(spec.apply(p, x), y.astype(x.dtype)))(params)
        dirs = jax.tree_util.tree_map(jnp.negative, dirs)
    elif direction == "scale":
        dirs = params
    else:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(key, len(leaves))
        dirs = jax.tree_util.tree_unflatten(
            treedef, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
    deltas = _zeros_like(params)
    for path, stacked in spec.weight_paths():
        w, d = _get(params, path), _get(dirs, path)
        axes = tuple(range(1 if stacked else 0, w.ndim))
        deltas = _set(deltas, path, eta * d * _norm(w, axes) / _norm(d, axes))
    return deltas


def relative_change(spec, params, deltas, x, y=None) -> TrustMeasurement:
    """Measured relative change of f on the batch x and of each weight layer's gradient.

    The gradient is that of the logistic loss on (x, y), or of sum_n f(x_n) when y is None.
    """
    check_spec(spec)
    x = jnp.asarray(x)
    yy = None if y is None else jnp.asarray(labels_pm1(y), x.dtype)
    return _relative_change(spec, params, deltas, x, yy)


@functools.partial(jax.jit, static_argnums=0)
def _relative_change(spec, params, deltas, x, y):
    new = jax.tree_util.tree_map(jnp.add, params, deltas)

    def objective(p):
        f = spec.apply(p, x)
        return (jnp.sum(f) if y is None else logistic_loss(f, y)), f

    g0, f0 = jax.grad(objective, has_aux=True)(params)
    g1, f1 = jax.grad(objective, has_aux=True)(new)
    fro = lambda a: jnp.sqrt(jnp.sum(jnp.square(a)))
    grad = jnp.stack([fro(b - a) / fro(a) for a, b in zip(weight_layers(spec, g0), weight_layers(spec, g1))])
    ratio = jnp.stack([fro(d) / fro(w) for w, d in zip(weight_layers(spec, params), weight_layers(spec, deltas))])
    return TrustMeasurement(fro(f1 - f0) / fro(f0), grad, ratio, jnp.prod(1 + ratio) - 1)


def lipschitz_bound(spec: MLP, params, deltas, x):
    """(|f_{W+dW}(x_n) - f_W(x_n)|, the operator-norm bound of the module doc), each (n,).

    Only for a bias-free MLP (the bound uses relu(0) = 0 and no offsets).
    """
    if not isinstance(spec, MLP) or spec.bias:
        raise ValueError("lipschitz_bound needs an MLP with bias=False")
    return _lipschitz(spec, params, deltas, jnp.asarray(x))


@functools.partial(jax.jit, static_argnums=0)
def _lipschitz(spec, params, deltas, x):
    new = jax.tree_util.tree_map(jnp.add, params, deltas)
    change = jnp.abs(spec.apply(new, x) - spec.apply(params, x))
    op = lambda a: jnp.linalg.norm(a, 2) if a.ndim == 2 else jnp.linalg.norm(a)
    ws, ds = weight_layers(spec, params), weight_layers(spec, deltas)
    norms = jnp.stack([op(w) for w in ws])
    ratios = jnp.stack([op(d) for d in ds]) / norms
    bound = jnp.linalg.norm(x, axis=1) * jnp.prod(norms) * (jnp.prod(1 + ratios) - 1)
    return change, bound
