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
from collections.abc import Mapping
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

    def __post_init__(self):
        check_arch(self.arch)
        object.__setattr__(self, "width", _checks.width(self.width))

    def init(self, key, d_in: int, dtype=None) -> dict:
        """Parameters for inputs of dimension d_in; all entries i.i.d. N(0, 1).

        dtype: float32 or float64 (default: JAX's default float).
        vmap over keys for an ensemble: jax.vmap(lambda k: net.init(k, d))(keys).
        """
        d_in = _checks.positive_int("d_in", d_in)
        dtype = jnp.result_type(float) if dtype is None else _checks.float_dtype("dtype", dtype)
        m, depth = self.width, self.arch.depth
        k1, k2, k3, k4 = jax.random.split(key, 4)
        normal = functools.partial(jax.random.normal, dtype=dtype)
        if isinstance(self.arch, FeedForward):
            return {"input": normal(k1, (m, d_in)), "hidden": normal(k2, (depth - 1, m, m)),
                    "readout": normal(k3, (m,))}
        return {"embed": normal(k1, (m, d_in)), "W": normal(k2, (depth, m, m)),
                "V": normal(k3, (depth, m, m)), "readout": normal(k4, (m,))}

    def apply(self, params, x):
        """Outputs f(x): x (n, d) -> (n,), or (d,) -> scalar, in params' dtype.

        params are checked against the network first (keys, shapes, one float32 or
        float64 dtype, finite values when concrete): ValueError/TypeError otherwise.
        """
        x = _input(x, (1, 2))
        self._check_params(params, x.shape[-1])
        out = _forward(self, params, jnp.atleast_2d(x), None).out
        return out[0] if x.ndim == 1 else out

    def features(self, params, x):
        """Last hidden layer x_L, (n, m): the readout's input, so NNGP = features @ features.T."""
        x = _input(x, (2,))
        self._check_params(params, x.shape[-1])
        return _forward(self, params, x, None).features

    def forward(self, params, x, perturb=None) -> Trace:
        """Forward pass with the inputs of every linear map (see module doc); x (n, d)."""
        x = _input(x, (2,))
        self._check_params(params, x.shape[-1])
        if perturb is not None and not isinstance(perturb, dict):
            raise TypeError(f"perturb must be None or a dict of arrays, got {type(perturb).__name__}")
        return _forward(self, params, x, perturb)

    def param_shapes(self, d_in: int) -> dict:
        """{name: shape} of the parameters for inputs of dimension d_in (the layout of `init`)."""
        m, depth = self.width, self.arch.depth
        if isinstance(self.arch, FeedForward):
            return {"input": (m, d_in), "hidden": (depth - 1, m, m), "readout": (m,)}
        return {"embed": (m, d_in), "W": (depth, m, m), "V": (depth, m, m), "readout": (m,)}

    def _check_params(self, params, d):
        """The common dtype of `params` after checking them against this network and input
        dimension d: the keys of `init`, their shapes, one floating dtype (float32 or float64),
        and finite values (concrete params only; under jit/grad/vmap only shapes and dtypes)."""
        shapes = self.param_shapes(d)
        what = f"{type(self.arch).__name__}(depth={self.arch.depth}) of width {self.width}"
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be the dict made by net.init, with keys {list(shapes)}; "
                            f"got {type(params).__name__}")
        if set(params) != set(shapes):
            missing = [k for k in shapes if k not in params]
            extra = sorted(map(str, set(params) - set(shapes)))
            raise ValueError(f"params of a {what} must have the keys {list(shapes)}; "
                             + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                     f"unexpected {extra}" if extra else "") if p))
        dtypes = {}
        for name, want in shapes.items():
            leaf = params[name]
            if not isinstance(leaf, (jax.Array, np.ndarray)):
                raise TypeError(f"params[{name!r}] must be an array of shape {want}, got {type(leaf).__name__}")
            dtypes[name] = dt = np.dtype(leaf.dtype)
            if dt not in _checks.FLOAT_DTYPES:
                raise TypeError(f"params[{name!r}] has dtype {dt}; parameters must be float32 or float64, "
                                "as net.init makes them")
            got = tuple(leaf.shape)
            if got != want:
                raise ValueError(f"params[{name!r}] has shape {got}, expected {want} for a {what} "
                                 f"and inputs of dimension {d}" + _shape_hint(self.arch, name, got, want))
        if len(set(dtypes.values())) > 1:
            mix = ", ".join(f"{k} {v}" for k, v in dtypes.items())
            raise TypeError(f"params mix dtypes ({mix}); all must share one dtype, float32 or float64")
        for name in shapes:
            bad = _nonfinite(params[name])
            if bad:
                raise ValueError(f"params[{name!r}] has {bad} non-finite entries (nan or inf) of "
                                 f"{params[name].size}; parameters must be finite")
        return dtypes[next(iter(shapes))]


def _shape_hint(arch, name, got, want) -> str:
    if name in ("input", "embed") and len(got) == 2 and got[0] == want[0]:
        return f": these params expect inputs of dimension {got[1]}, got inputs of dimension {want[1]}"
    if name in ("hidden", "W", "V") and len(got) == 3 and got[1:] == want[1:]:
        depth = got[0] + 1 if name == "hidden" else got[0]
        return f": {got[0]} stacked matrices are the parameters of a depth-{depth} net, this one has depth {arch.depth}"
    return ""


def _nonfinite(leaf) -> int:
    """Number of non-finite entries of a concrete array; 0 for a tracer (unknown under jit)."""
    if _checks.traced(leaf):
        return 0
    if isinstance(leaf, jax.Array) and any(d.platform != "cpu" for d in leaf.devices()):
        with jax.ensure_compile_time_eval():  # also for a concrete array closed over in the caller's jit
            return int(_count_nonfinite(leaf))
    a = np.asarray(leaf)  # host memory: no copy, and no compilation per shape
    return int(a.size - np.count_nonzero(np.isfinite(a)))


@jax.jit
def _count_nonfinite(a):
    return jnp.sum(~jnp.isfinite(a))


def _input(x, ranks):
    """x for the forward pass: an array of real numbers of one of `ranks`, finite when concrete."""
    x = _checks.real_array("x", x)
    if x.ndim not in ranks:
        want = " or ".join({1: "(d,)", 2: "(n, d)"}[r] for r in sorted(ranks, reverse=True))
        raise ValueError(f"x must have shape {want}, got {x.shape}")
    if x.shape[-1] < 1:
        raise ValueError(f"x must have at least one feature, got shape {x.shape}")
    if _nonfinite(x):
        raise ValueError("x has non-finite entries (nan or inf)")
    return x


def network(arch, width: int) -> Network:
    """The finite-width network of `arch` with hidden width `width` (plain JAX)."""
    return Network(arch, width)


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
