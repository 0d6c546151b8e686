"""Finite-width networks in plain JAX, in exactly the parametrization of the kernels.

Parameters are dicts of arrays, weights stored (out, in), all entries i.i.d. N(0, 1):
  FeedForward: {"input": W_1 (m, d), "hidden": W_2..W_L (L-1, m, m), "readout": v (m,)}
  ResNet:      {"embed": A (m, d), "W": (L, m, m), "V": (L, m, m), "readout": v (m,)}
`Network.forward` also returns the inputs of every linear map and accepts additive
perturbations of their outputs; reskernel.empirical differentiates through those
to get the per-layer backward vectors (structured NTK).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.arch import FeedForward, check_arch

__all__ = ["Network", "network", "param_groups"]


def param_groups(arch, which: str):
    """Names of the parameter arrays trained in `which` = "nngp" | "hidden" | "all"."""
    if which == "nngp":
        return ("readout",)
    if isinstance(arch, FeedForward):
        return ("input", "hidden") if which == "hidden" else ("input", "hidden", "readout")
    return ("W", "V") if which == "hidden" else ("embed", "W", "V", "readout")


class Trace(NamedTuple):
    """Forward pass of a batch (n examples): output and the inputs of each linear map."""

    out: jax.Array           # (n,)
    inputs: dict             # group name -> input activations, (n, fan_in) or (L, n, fan_in)
    features: jax.Array      # x_L, (n, m)


@dataclasses.dataclass(frozen=True)
class Network:
    """A finite-width `arch` of hidden width `width`; see `network`."""

    arch: object
    width: int

    def init(self, key, d_in: int, dtype=None) -> dict:
        """Parameters for inputs of dimension d_in; all entries i.i.d. N(0, 1).

        vmap over keys for an ensemble: jax.vmap(lambda k: net.init(k, d))(keys).
        """
        d_in = _checks.positive_int("d_in", d_in)
        dtype = jnp.result_type(float) if dtype is None else dtype
        m, depth = self.width, self.arch.depth
        k1, k2, k3, k4 = jax.random.split(key, 4)
        normal = functools.partial(jax.random.normal, dtype=dtype)
        if isinstance(self.arch, FeedForward):
            return {"input": normal(k1, (m, d_in)), "hidden": normal(k2, (depth - 1, m, m)),
                    "readout": normal(k3, (m,))}
        return {"embed": normal(k1, (m, d_in)), "W": normal(k2, (depth, m, m)),
                "V": normal(k3, (depth, m, m)), "readout": normal(k4, (m,))}

    def apply(self, params, x):
        """Outputs f(x): x (n, d) -> (n,), or (d,) -> scalar."""
        x = jnp.asarray(x)
        if x.ndim not in (1, 2):
            raise ValueError(f"x must have shape (n, d) or (d,), got {x.shape}")
        self._check_params(params, x.shape[-1])
        out = _forward(self, params, jnp.atleast_2d(x), None).out
        return out[0] if x.ndim == 1 else out

    def features(self, params, x):
        """Last hidden layer x_L, (n, m): the readout's input, so NNGP = features @ features.T."""
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, d), got {x.shape}")
        self._check_params(params, x.shape[-1])
        return _forward(self, params, x, None).features

    def forward(self, params, x, perturb=None) -> Trace:
        """Forward pass with the inputs of every linear map (see module doc)."""
        return _forward(self, params, x, perturb)

    def _check_params(self, params, d):
        first = "input" if isinstance(self.arch, FeedForward) else "embed"
        if not isinstance(params, dict) or first not in params:
            raise TypeError(f"params must be the dict made by this network's init (with key {first!r})")
        shape = params[first].shape
        if shape[-2:] != (self.width, d):
            raise ValueError(f"params expect inputs of dimension {shape[-1]} at width {shape[-2]}; "
                             f"got inputs of dimension {d} for a width-{self.width} network")


def network(arch, width: int) -> Network:
    """The finite-width network of `arch` with hidden width `width` (plain JAX)."""
    return Network(check_arch(arch), _checks.width(width))


def _relu(x):
    return jnp.maximum(x, 0)


@functools.partial(jax.jit, static_argnums=0)
def _forward(net: Network, params, x, perturb) -> Trace:
    """perturb: None or dict of additive terms on the linear maps' outputs, shaped like
    "input": (n, m), "hidden": (L-1, n, m) (FFNet); "embed": (n, m), "W"/"V": (L, n, m) (ResNet)."""
    m = net.width
    dtype = params["readout"].dtype
    x = x.astype(dtype)
    c = math.sqrt(2.0 / m)
    if isinstance(net.arch, FeedForward):
        pert = perturb or {}
        h = x @ params["input"].T + pert.get("input", 0.0)
        x1 = c * _relu(h)
        hidden = params["hidden"]
        eps = pert.get("hidden", jnp.zeros((hidden.shape[0], 1, 1), dtype))

        def layer(xl, w_e):
            w, e = w_e
            return c * _relu(xl @ w.T + e), xl

        xL, xs = jax.lax.scan(layer, x1, (hidden, eps))
        return Trace(xL @ params["readout"], {"input": x, "hidden": xs, "readout": xL}, xL)

    pert = perturb or {}
    a = jnp.asarray(np.asarray(net.arch.branch_scales), dtype)
    depth = net.arch.depth
    x0 = x @ params["embed"].T / math.sqrt(m) + pert.get("embed", 0.0)
    eps_w = pert.get("W", jnp.zeros((depth, 1, 1), dtype))
    eps_v = pert.get("V", jnp.zeros((depth, 1, 1), dtype))

    def block(xl, inp):
        w, v, al, ew, ev = inp
        z = _relu(c * (xl @ w.T) + ew)
        return xl + al / math.sqrt(m) * (z @ v.T) + ev, (xl, z)

    xL, (us, zs) = jax.lax.scan(block, x0, (params["W"], params["V"], a, eps_w, eps_v))
    return Trace(xL @ params["readout"], {"embed": x, "W": us, "V": zs, "readout": xL}, xL)
