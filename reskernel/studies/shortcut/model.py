"""Two-layer non-overlapping convolutional nets with and without a shortcut, and
their population loss in closed form (teacher-student, Gaussian input).

Input Z = [Z_1, ..., Z_k] in R^{p x k}, patches Z_j i.i.d. N(0, I_p); parameters
w in R^p (the shared filter) and a in R^k (the second layer):

  CNN    (Du et al. 2018):  f(Z; w, a) = sum_j a_j relu(w . Z_j)
  ResNet (Liu et al. 2019): f(Z; w, a) = sum_j a_j relu(w . Z_j) + (1/k) sum_j w . Z_j

Labels come from a teacher of the same architecture, y = f(Z; w*, a*), and the
loss is l = E[(f - y)^2] / 2.

What the sources say, and what is assumed here. Du, Lee, Tian, Poczos, Singh
(ICML 2018, arXiv 1712.00779), abstract and Sec. 1: the CNN above, Gaussian
input, a teacher of the same architecture with weights (w*, a*), gradient
descent *with weight normalization* (the filter enters as w / |w|) from a random
initialization, which reaches the global minimum with constant probability and
the spurious local minimum with constant probability, in two phases (slow, then
fast). Liu, Chen, Zhou, Du, Zhou, Zhao (NeurIPS 2019, arXiv 1909.04653),
abstract and Fig. 1 ("the non-overlapping two layer residual network with
normalization layer"): a two-layer non-overlapping convolutional ResNet whose
training problem has a spurious local optimum; gradient descent *combined with
proper normalization*, with the first layer initialized at w_0 = 0 and the second
layer anywhere in a ball, avoids it and converges to a global optimum in
polynomial time, in two stages (Stage I escapes the spurious optimum, Stage II
converges jointly), with adaptive step sizes; their Fig. 4 reports success rates
of reaching the global optimum. Only the abstracts, introductions and figure
captions of the two papers could be read for this module (the stored copies
searched stop there), so three things are ASSUMPTIONS, not the papers' text:
(1) the shortcut's form, the average pooling of the filter outputs w . Z_j added
to the output (it skips the ReLU and the second layer); (2) no normalization
layer: both nets are un-normalized, the ReLU branch's scale carried by |w| and
a; (3) the step-size schedule (dynamics.Schedule). Assumption (2) matters:
without normalization the ReLU branch vanishes at w = 0, so a gets no gradient
while w = 0 and a first-layer warm-up cannot let a move first (see dynamics).

Second moments (u, v filters, b, c second layers, rho the angle theta's cosine):
  E[relu(u.Z) relu(v.Z)] = |u||v| (sin theta + (pi - theta) cos theta) / (2 pi)
  E[relu(u.Z_i) relu(v.Z_j)] = |u||v| / (2 pi)         (i != j, independent patches)
  E[(u.Z) relu(v.Z)] = u . v / 2,   E[(u.Z)(v.Z)] = u . v
so E[f f'] = (b.c) C(u, v) + ((1.b)(1.c) - b.c) |u||v|/(2 pi)
             + [shortcut] (u.v) ((1.b + 1.c) / (2k) + 1/k).

The loss is not differentiable at w = 0 (it is positively homogeneous there in
the cone terms |w| and theta). Gradient descent from w_0 = 0 needs a rule: the
derivatives here are the symmetric ones, the average of the one-sided
derivatives along +t and -t, which equals the expectation taken with
relu'(0) = 1/2 (the angle to w = 0 counts as pi/2 and d|w| = 0 at w = 0). Away
from w = 0 they are the exact gradient.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..._checks import positive_int as _positive_int

__all__ = ["ConvNet", "Params", "output", "population_loss",
           "monte_carlo_loss", "angle", "relu_cross"]


@dataclasses.dataclass(frozen=True)
class ConvNet:
    """Non-overlapping two-layer conv net: `patches` (k) patches of `patch_dim` (p)
    inputs each, one shared ReLU filter, a linear second layer, and the
    average-pooling shortcut when `shortcut` is True (Liu et al.'s ResNet;
    False gives Du et al.'s CNN)."""

    patch_dim: int
    patches: int
    shortcut: bool = True

    def __post_init__(self):
        for name in ("patch_dim", "patches"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if not isinstance(self.shortcut, bool):
            raise TypeError(f"shortcut must be a bool, got {self.shortcut!r}")


class Params(NamedTuple):
    """Filter w (..., p) and second layer a (..., k); leading axes are runs."""

    w: jax.Array
    a: jax.Array


def _unit(u, norm):
    pos = norm > 0
    return jnp.where(pos, u / jnp.where(pos, norm, 1.0), 0.0)


def _angle_terms(uh, vh):
    """(theta, sin theta, cos theta) of unit (or zero) vectors, accurate near 0 and pi:
    theta = 2 atan2(|uh - vh|, |uh + vh|). A zero vector gives theta = pi/2."""
    d = jnp.linalg.norm(uh - vh, axis=-1)
    s = jnp.linalg.norm(uh + vh, axis=-1)
    r2 = jnp.where(d * d + s * s > 0, d * d + s * s, 1.0)
    return 2.0 * jnp.arctan2(d, s), 2.0 * d * s / r2, (s * s - d * d) / r2


@jax.custom_jvp
def _norm(u):
    return jnp.linalg.norm(u, axis=-1)


@_norm.defjvp
def _norm_jvp(primals, tangents):
    (u,), (t,) = primals, tangents
    n = _norm(u)
    return n, jnp.sum(_unit(u, n[..., None]) * t, axis=-1)


@jax.custom_jvp
def relu_cross(u, v):
    """E[relu(u . z) relu(v . z)] for z ~ N(0, I): u, v (..., p) -> (...)."""
    nu, nv = _norm(u), _norm(v)
    theta, sin, cos = _angle_terms(_unit(u, nu[..., None]), _unit(v, nv[..., None]))
    return nu * nv * (sin + (jnp.pi - theta) * cos) / (2 * jnp.pi)


@relu_cross.defjvp
def _relu_cross_jvp(primals, tangents):
    (u, v), (tu, tv) = primals, tangents
    nu, nv = _norm(u), _norm(v)
    uh, vh = _unit(u, nu[..., None]), _unit(v, nv[..., None])
    theta, sin, cos = _angle_terms(uh, vh)
    out = nu * nv * (sin + (jnp.pi - theta) * cos) / (2 * jnp.pi)
    # d/du = |v| (sin theta u^ + (pi - theta) v^) / (2 pi); at u = 0: u^ = 0, theta = pi/2.
    du = jnp.sum((sin[..., None] * uh + (jnp.pi - theta)[..., None] * vh) * tu, axis=-1)
    dv = jnp.sum((sin[..., None] * vh + (jnp.pi - theta)[..., None] * uh) * tv, axis=-1)
    return out, (nv * du + nu * dv) / (2 * jnp.pi)


def angle(u, v):
    """Angle in [0, pi] between u and v (..., p); pi/2 when either is zero."""
    return _angle_terms(_unit(u, _norm(u)[..., None]), _unit(v, _norm(v)[..., None]))[0]


def _output(net, params, z):
    pre = z @ params.w                                   # (n, k): w . Z_j
    out = jax.nn.relu(pre) @ params.a
    if net.shortcut:
        out = out + jnp.mean(pre, axis=-1)
    return out


def output(net: ConvNet, params: Params, z):
    """Network output f(Z; w, a) of one network (w (p,), a (k,)) for patches z (n, k, p) -> (n,)."""
    params = check_params(net, params, "params")
    z = jnp.asarray(z)
    if params.w.ndim != 1 or z.ndim != 3 or z.shape[1:] != (net.patches, net.patch_dim):
        raise ValueError(f"output takes w of shape (p,), a of shape (k,) and z of shape (n, k = {net.patches}, "
                         f"p = {net.patch_dim}); got {params.w.shape}, {params.a.shape} and {z.shape}")
    return _output(net, params, z)


def second_moment(net: ConvNet, p1: Params, p2: Params):
    """E[f(Z; p1) f(Z; p2)] in closed form; parameters may carry leading run axes."""
    ab = jnp.sum(p1.a * p2.a, axis=-1)
    sa, sb = jnp.sum(p1.a, axis=-1), jnp.sum(p2.a, axis=-1)
    out = ab * relu_cross(p1.w, p2.w) + (sa * sb - ab) * _norm(p1.w) * _norm(p2.w) / (2 * jnp.pi)
    if net.shortcut:
        k = p1.a.shape[-1]
        out = out + jnp.sum(p1.w * p2.w, axis=-1) * ((sa + sb) / 2 + 1) / k
    return out


def loss(net: ConvNet, params: Params, teacher: Params):
    """Closed-form population loss, unchecked and traceable (used inside training)."""
    return 0.5 * (second_moment(net, params, params) - 2 * second_moment(net, params, teacher)
                  + second_moment(net, teacher, teacher))


_loss_jit = jax.jit(loss, static_argnums=0)


def check_params(net: ConvNet, params, name: str) -> Params:
    """params as a Params of floating arrays with w (..., p) and a (..., k) for `net`."""
    if not isinstance(net, ConvNet):
        raise TypeError(f"net must be a reskernel.shortcut.ConvNet, got {type(net).__name__}")
    try:
        w, a = params
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a Params(w, a) pair, got {type(params).__name__}") from None
    w, a = jnp.asarray(w), jnp.asarray(a)
    dtype = jnp.result_type(w, a, float)
    if w.shape[-1:] != (net.patch_dim,) or a.shape[-1:] != (net.patches,) or w.shape[:-1] != a.shape[:-1]:
        raise ValueError(f"{name} must have w of shape (..., {net.patch_dim}) and a of shape "
                         f"(..., {net.patches}) with the same leading axes; got {w.shape} and {a.shape}")
    return Params(w.astype(dtype), a.astype(dtype))


def population_loss(net: ConvNet, params: Params, teacher: Params):
    """l(w, a) = E[(f(Z; w, a) - f(Z; w*, a*))^2] / 2 in closed form -> (...).

    Differentiable everywhere (symmetric derivatives at w = 0, see the module notes).
    """
    params, teacher = check_params(net, params, "params"), check_params(net, teacher, "teacher")
    return _loss_jit(net, params, teacher)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _monte_carlo(net, params, teacher, key, samples):
    z = jax.random.normal(key, (samples, net.patches, net.patch_dim), dtype=params.w.dtype)
    sq = 0.5 * (_output(net, params, z) - _output(net, teacher, z)) ** 2
    return jnp.mean(sq), jnp.std(sq) / jnp.sqrt(samples)


def monte_carlo_loss(net: ConvNet, params: Params, teacher: Params, key, samples: int):
    """Monte Carlo estimate of the loss from `samples` Gaussian inputs, for one
    parameter pair (w (p,), a (k,)): (mean, standard error of the mean)."""
    params, teacher = check_params(net, params, "params"), check_params(net, teacher, "teacher")
    if params.w.ndim != 1 or teacher.w.ndim != 1:
        raise ValueError("monte_carlo_loss takes one network: w of shape (p,), a of shape (k,)")
    samples = _positive_int("samples", samples)
    return _monte_carlo(net, params, teacher, key, samples)
