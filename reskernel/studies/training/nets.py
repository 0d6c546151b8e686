"""Trainable finite-width nets in plain JAX: ReLU MLPs of constant width and fully
connected ResNets with optional batch norm and SkipInit on the residual branch.

Standard (fan-in) parametrization: weights carry their scale, so learning rates mean
what they mean in De & Smith (2020) and Bernstein et al. (2020). One output (two-class
problems with labels +1/-1). Inputs are expected with features of mean square ~1
(|x|^2 ~ d; scale unit-sphere data by sqrt(d)).

MLP(depth, width):
    x_l = relu(W_l x_{l-1} + b_l), l = 1..depth;   f = v . x_L + c
    init "he": W_l ~ N(0, 2/fan_in), b_l = 0;  "pytorch": torch.nn.Linear's default,
    W_l, b_l ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the Fromage paper's MLP).
ResidualMLP(depth, width, norm, skipinit, alpha | gamma):
    x_0 = E x + e
    x_l = x_{l-1} + a s_l u_l,   u_l = V_l relu(W_l N_l(x_{l-1}) + b_l) + c_l,  l = 1..depth
    f = v . x_L + c
  N_l: batch norm over the batch (train mode, biased variance, eps; learnable gain g_l
  and shift h_l, init 1 and 0) when norm="batch", else the identity. s_l: the SkipInit
  scalar (learnable, init `skipinit`) or the constant 1 when skipinit is None.
  a: the fixed branch scale, alpha, depth^-gamma, or 1.
  init: E ~ N(0, 1/d), W_l ~ N(0, 2/m) (He), V_l ~ N(0, 1/m), v ~ N(0, 1/m); biases 0.

Parameters are nested dicts of arrays; per-layer arrays are stacked on axis 0 and run
with lax.scan. `spec.layout()` gives each leaf a role, read by the optimizers (per-layer
norms, zero-initialized leaves) and by the deep-relative-trust measurements:
  "weight"  one matrix (or the readout vector)    "weights" per-layer matrices (axis 0)
  "gains"   per-layer BN gains (init 1)           "bias"/"biases" one / per-layer bias
  "skip"    per-layer SkipInit scalars
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ..._checks import positive_int

__all__ = ["MLP", "ResidualMLP", "ROLES", "STACKED_ROLES", "Trace", "check_spec"]

ROLES = ("weight", "weights", "gains", "bias", "biases", "skip")
STACKED_ROLES = ("weights", "gains", "biases", "skip")
INITS = ("he", "pytorch")
NORMS = ("none", "batch")


def _real(name, value, *, lo=None, allow_lo=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if lo is not None and (value < lo or (value == lo and not allow_lo)):
        raise ValueError(f"{name} must be {'>=' if allow_lo else '>'} {lo}, got {value}")
    return value


class Trace(NamedTuple):
    """Forward pass of a batch of n examples through a depth-L net."""

    out: jax.Array          # f(x), (n,)
    stream: jax.Array       # mean square of x_l over batch and features, (L+1,) [ResidualMLP]
    branch: jax.Array       # mean square of a s_l u_l, (L,) [ResidualMLP]
    mean: jax.Array         # BN batch means per block, (L, m) (zeros without BN)
    var: jax.Array          # BN batch variances per block, (L, m) (ones without BN)


@dataclasses.dataclass(frozen=True)
class MLP:
    """ReLU MLP with `depth` hidden layers of `width` units and a scalar readout."""

    depth: int
    width: int
    init: str = "he"
    bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "depth", positive_int("depth", self.depth))
        object.__setattr__(self, "width", positive_int("width", self.width))
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"bias must be a bool, got {self.bias!r}")

    def init_params(self, key, d_in: int, dtype=jnp.float32) -> dict:
        """Parameters for inputs of dimension d_in (see module doc)."""
        return _mlp_init(self, key, positive_int("d_in", d_in), jnp.dtype(dtype))

    def apply(self, params, x, stats=None):
        """f(x): x (n, d) -> (n,). `stats` is accepted for a uniform API and ignored."""
        return _forward(self, params, _as_batch(x, params), None).out

    def trace(self, params, x, stats=None) -> Trace:
        return _forward(self, params, _as_batch(x, params), None)

    def batch_stats(self, params, x):
        """No batch norm: None."""
        return None

    def layout(self) -> dict:
        b = "bias" if self.bias else None
        out = {"input": {"w": "weight"}, "hidden": {"w": "weights"}, "readout": {"w": "weight"}}
        if self.bias:
            out["input"]["b"], out["hidden"]["b"], out["readout"]["b"] = b, "biases", b
        return out

    def weight_paths(self):
        """(path, stacked) of the weight matrices in forward order."""
        return ((("input", "w"), False), (("hidden", "w"), True), (("readout", "w"), False))


@dataclasses.dataclass(frozen=True)
class ResidualMLP:
    """Fully connected ResNet of `depth` blocks (see module doc).

    norm: "none" or "batch" (BN at the start of each branch).
    skipinit: None (no scalar) or the initial value of the learnable branch scalars
      (0.0 is SkipInit).
    alpha / gamma: fixed branch scale a = alpha or depth^-gamma (at most one; default 1).
    """

    depth: int
    width: int
    norm: str = "none"
    skipinit: Optional[float] = None
    alpha: Optional[float] = None
    gamma: Optional[float] = None
    eps: float = 1e-5

    def __post_init__(self):
        object.__setattr__(self, "depth", positive_int("depth", self.depth))
        object.__setattr__(self, "width", positive_int("width", self.width))
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.skipinit is not None:
            object.__setattr__(self, "skipinit", _real("skipinit", self.skipinit))
        if self.alpha is not None and self.gamma is not None:
            raise ValueError("give at most one of alpha and gamma")
        if self.alpha is not None:
            object.__setattr__(self, "alpha", _real("alpha", self.alpha, lo=0.0))
        if self.gamma is not None:
            object.__setattr__(self, "gamma", _real("gamma", self.gamma, lo=0.0))
        object.__setattr__(self, "eps", _real("eps", self.eps, lo=0.0, allow_lo=False))

    @property
    def branch_scale(self) -> float:
        """The fixed multiplier a of every branch."""
        if self.alpha is not None:
            return self.alpha
        if self.gamma is not None:
            return float(self.depth) ** (-self.gamma)
        return 1.0

    def init_params(self, key, d_in: int, dtype=jnp.float32) -> dict:
        """Parameters for inputs of dimension d_in (see module doc)."""
        return _res_init(self, key, positive_int("d_in", d_in), jnp.dtype(dtype))

    def apply(self, params, x, stats=None):
        """f(x): x (n, d) -> (n,). BN uses the batch's statistics unless `stats`
        (from `batch_stats`, e.g. of the training set) is given."""
        return _forward(self, params, _as_batch(x, params), stats).out

    def trace(self, params, x, stats=None) -> Trace:
        """Forward pass with per-block mean squares and BN statistics (see Trace)."""
        return _forward(self, params, _as_batch(x, params), stats)

    def batch_stats(self, params, x):
        """Per-block BN (mean, var), each (L, m), of the batch x; None without BN."""
        if self.norm != "batch":
            return None
        tr = _forward(self, params, _as_batch(x, params), None)
        return tr.mean, tr.var

    def layout(self) -> dict:
        blocks = {"w1": "weights", "b1": "biases", "w2": "weights", "b2": "biases"}
        if self.norm == "batch":
            blocks.update(gain="gains", shift="biases")
        if self.skipinit is not None:
            blocks["skip"] = "skip"
        return {"embed": {"w": "weight", "b": "bias"}, "blocks": blocks,
                "readout": {"w": "weight", "b": "bias"}}

    def weight_paths(self):
        return ((("embed", "w"), False), (("blocks", "w1"), True), (("blocks", "w2"), True),
                (("readout", "w"), False))


def check_spec(spec):
    if not isinstance(spec, (MLP, ResidualMLP)):
        raise TypeError(f"spec must be a reskernel.training MLP or ResidualMLP, got {type(spec).__name__}")
    return spec


def _as_batch(x, params):
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    first = params["input"]["w"] if "input" in params else params["embed"]["w"]
    if x.shape[1] != first.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but params expect {first.shape[1]}")
    return x


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _mlp_init(spec: MLP, key, d: int, dtype):
    m, L = spec.width, spec.depth
    ks = jax.random.split(key, 6)

    def draw(k, shape, fan_in):
        if spec.init == "he":
            return jax.random.normal(k, shape, dtype) * math.sqrt(2.0 / fan_in)
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(k, shape, dtype, -bound, bound)

    def bias(k, shape, fan_in):
        if spec.init == "he":
            return jnp.zeros(shape, dtype)
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(k, shape, dtype, -bound, bound)

    if spec.init == "he":
        v = jax.random.normal(ks[2], (m,), dtype) / math.sqrt(m)
    else:
        v = draw(ks[2], (m,), m)
    p = {"input": {"w": draw(ks[0], (m, d), d)}, "hidden": {"w": draw(ks[1], (L - 1, m, m), m)},
         "readout": {"w": v}}
    if spec.bias:
        p["input"]["b"] = bias(ks[3], (m,), d)
        p["hidden"]["b"] = bias(ks[4], (L - 1, m), m)
        p["readout"]["b"] = bias(ks[5], (), m)
    return p


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _res_init(spec: ResidualMLP, key, d: int, dtype):
    m, L = spec.width, spec.depth
    k1, k2, k3, k4 = jax.random.split(key, 4)
    normal = lambda k, shape, var: jax.random.normal(k, shape, dtype) * math.sqrt(var)
    blocks = {"w1": normal(k2, (L, m, m), 2.0 / m), "b1": jnp.zeros((L, m), dtype),
              "w2": normal(k3, (L, m, m), 1.0 / m), "b2": jnp.zeros((L, m), dtype)}
    if spec.norm == "batch":
        blocks["gain"] = jnp.ones((L, m), dtype)
        blocks["shift"] = jnp.zeros((L, m), dtype)
    if spec.skipinit is not None:
        blocks["skip"] = jnp.full((L,), spec.skipinit, dtype)
    return {"embed": {"w": normal(k1, (m, d), 1.0 / d), "b": jnp.zeros((m,), dtype)},
            "blocks": blocks,
            "readout": {"w": normal(k4, (m,), 1.0 / m), "b": jnp.zeros((), dtype)}}


def _relu(u):
    return jnp.maximum(u, 0)


@functools.partial(jax.jit, static_argnums=0)
def _forward(spec, params, x, stats) -> Trace:
    dtype = params["readout"]["w"].dtype
    x = x.astype(dtype)
    L, m = spec.depth, spec.width
    if isinstance(spec, MLP):
        h = x @ params["input"]["w"].T
        if spec.bias:
            h = h + params["input"]["b"]
        hidden = params["hidden"]

        def layer(z, p):
            u = z @ p["w"].T
            return _relu(u + p["b"] if spec.bias else u), None

        z, _ = jax.lax.scan(layer, _relu(h), hidden)
        out = z @ params["readout"]["w"] + (params["readout"]["b"] if spec.bias else 0.0)
        empty = jnp.zeros((0,), dtype)
        return Trace(out, empty, empty, jnp.zeros((0, m), dtype), jnp.zeros((0, m), dtype))

    a = spec.branch_scale
    x0 = x @ params["embed"]["w"].T + params["embed"]["b"]
    blocks = params["blocks"]
    if stats is None:
        given = (jnp.zeros((L, m), dtype), jnp.ones((L, m), dtype))
    else:
        given = tuple(jnp.asarray(s, dtype) for s in stats)

    def block(xl, inp):
        p, mu_given, var_given = inp
        if spec.norm == "batch":
            if stats is None:
                mu = xl.mean(0)
                var = jnp.mean(jnp.square(xl - mu), 0)
            else:
                mu, var = mu_given, var_given
            h = (xl - mu) * jax.lax.rsqrt(var + spec.eps) * p["gain"] + p["shift"]
        else:
            h, mu, var = xl, mu_given, var_given
        u = _relu(h @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]
        scale = a * p["skip"] if spec.skipinit is not None else a
        br = scale * u
        return xl + br, (jnp.mean(jnp.square(xl)), jnp.mean(jnp.square(br)), mu, var)

    xL, (ms_in, ms_branch, mu, var) = jax.lax.scan(block, x0, (blocks,) + given)
    stream = jnp.concatenate([ms_in, jnp.mean(jnp.square(xL))[None]])
    out = xL @ params["readout"]["w"] + params["readout"]["b"]
    return Trace(out, stream, ms_branch, mu, var)
