"""Empirical NNGP and NTK of a finite-width network.

NNGP: inner products of the readout's inputs x_L (the readout-gradient kernel).
NTK:  sum over the trained weight matrices of <df/dW(x), df/dW(x')>, by
  - "structured" (default): for a linear map y = c W u, df/dW = c delta u^T, so its
    contribution is c^2 <u, u'> <delta, delta'>; the backward vectors delta come from one
    vjp per batch; nothing of size (n, #params) is formed;
  - "jacobian": explicit Jacobians contracted (memory n * #params; small nets, checks).
Both run in row blocks of `batch_size`, so n is unbounded by the Jacobian's size.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.analytic import Kernel
from ..core.arch import FeedForward, check_trained
from .networks import Network, _forward, _relu, param_groups

__all__ = ["empirical_kernel", "METHODS"]

METHODS = ("structured", "jacobian")


def _scales2(net: Network, dtype):
    """c^2 of each linear map y = c W u, per group (scalar or per layer)."""
    m = net.width
    if isinstance(net.arch, FeedForward):
        return {"input": 1.0, "hidden": jnp.ones((net.arch.depth - 1,), dtype), "readout": 1.0}
    a = jnp.asarray(np.asarray(net.arch.branch_scales), dtype)
    return {"embed": 1.0 / m, "W": jnp.full((net.arch.depth,), 2.0 / m, dtype), "V": a * a / m, "readout": 1.0}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _structured_features(net: Network, params, x, groups):
    """Per group: (inputs u, backward vectors delta) of its linear maps y = c W u, with delta
    the derivative of f (summed over the batch) with respect to y; and the readout's input x_L.

    One forward scan stores each layer's input and ReLU mask, one reverse scan carries the
    backward vector (written out, not by autodiff: differentiating the forward scan made JAX
    save every layer's weight slice as a residual, 10x the cost of the two passes).
    """
    m = net.width
    dtype = params["readout"].dtype
    x = x.astype(dtype)
    v = params["readout"]
    c = math.sqrt(2.0 / m)
    if isinstance(net.arch, FeedForward):
        h1 = x @ params["input"].T
        hidden = params["hidden"]

        def forward(xl, w):
            h = xl @ w.T
            return c * _relu(h), (xl, h > 0)

        x_last, (us, masks) = jax.lax.scan(forward, c * _relu(h1), hidden)
        first = h1 > 0
        below = jnp.concatenate([first[None], masks])[:-1]   # ReLU mask feeding each hidden layer

        def backward(delta, inp):                            # delta: d f / d (pre-activation of layer l)
            w, mask = inp
            return c * (delta @ w) * mask, delta

        top = masks[-1] if hidden.shape[0] else first
        d_input, ds = jax.lax.scan(backward, c * v * top, (hidden, below), reverse=True)
        feats = {"input": (x, d_input), "hidden": (us, ds)}
    else:
        a = jnp.asarray(np.asarray(net.arch.branch_scales), dtype)
        s = 1.0 / math.sqrt(m)

        def forward(xl, inp):
            w, v_l, al = inp
            p = c * (xl @ w.T)
            z = _relu(p)
            return xl + al * s * (z @ v_l.T), (xl, z, p > 0)

        x_last, (us, zs, masks) = jax.lax.scan(forward, s * (x @ params["embed"].T), (params["W"], params["V"], a))

        def backward(g, inp):                                # g: d f / d (block output x_l)
            w, v_l, al, mask = inp
            d_w = al * s * (g @ v_l) * mask                  # d f / d (pre-activation c W x_{l-1})
            return g + c * (d_w @ w), (d_w, g)

        g0, (d_ws, d_vs) = jax.lax.scan(backward, jnp.broadcast_to(v, x_last.shape),
                                        (params["W"], params["V"], a, masks), reverse=True)
        feats = {"embed": (x, g0), "W": (us, d_ws), "V": (zs, d_vs)}
    return {g: feats[g] for g in groups if g != "readout"}, x_last


@jax.jit
def _contract(feats1, feats2, scales2, f1, f2, readout_trained):
    ntk = jnp.zeros((f1.shape[0], f2.shape[0]), f1.dtype)
    for g, (u1, d1) in feats1.items():
        u2, d2 = feats2[g]
        s = scales2[g]
        if u1.ndim == 2:
            ntk = ntk + s * (u1 @ u2.T) * (d1 @ d2.T)
        else:
            def layer(acc, inp):
                a1, b1, a2, b2, sl = inp
                return acc + sl * (a1 @ a2.T) * (b1 @ b2.T), None
            ntk, _ = jax.lax.scan(layer, ntk, (u1, d1, u2, d2, s))
    nngp = f1 @ f2.T
    return nngp, ntk + readout_trained * nngp


@functools.partial(jax.jit, static_argnums=(0, 3))
def _jacobians(net: Network, params, x, groups):
    def out(sel):
        return _forward(net, {**params, **sel}, x, None).out

    jac = jax.jacrev(out)({g: params[g] for g in groups})
    n = x.shape[0]
    return jnp.concatenate([jac[g].reshape(n, -1) for g in groups], axis=1), _forward(net, params, x, None).features


def _blocks(x, batch_size):
    return [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)]


def empirical_kernel(net: Network, params, x1, x2=None, *, trained="hidden", method="structured",
                     batch_size: int = 256) -> Kernel:
    """Empirical NNGP and NTK of `net` at `params`.

    Args:
      net: a reskernel.network(arch, width).
      params: that network's parameters (net.init): checked first against `net` (keys,
        shapes, one float32/float64 dtype, finite values), ValueError/TypeError otherwise.
      x1: (n1, d) inputs; x2: (n2, d) or None for x1.
      trained: "hidden" (the analytic default) or "all", as in reskernel.kernel.
      method: "structured" (no Jacobians formed) or "jacobian".
      batch_size: rows per block; memory ~ batch_size * width * depth per block.
    Returns:
      Kernel(nngp, ntk), each (n1, n2), in params' dtype (the inputs are cast to it). Their expectation over
      initializations is the analytic kernel of the same `trained` choice.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be made by reskernel.network, got {type(net).__name__}")
    trained = check_trained(trained)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    batch_size = _checks.positive_int("batch_size", batch_size)
    x1, x2 = _checks.inputs(x1, x2)
    dtype = net._check_params(params, x1.shape[1])
    groups = param_groups(net.arch, trained)
    b1 = _blocks(x1, batch_size)
    b2 = b1 if x2 is None else _blocks(x2, batch_size)

    if method == "structured":
        body = tuple(g for g in groups if g != "readout")
        scales2 = {g: s for g, s in _scales2(net, dtype).items() if g in body}
        feats1 = [_structured_features(net, params, b, body) for b in b1]
        feats2 = feats1 if x2 is None else [_structured_features(net, params, b, body) for b in b2]
        readout = jnp.asarray(1.0 if "readout" in groups else 0.0, dtype)

        def block(i, j):
            (fa, ha), (fb, hb) = feats1[i], feats2[j]
            return _contract(fa, fb, scales2, ha, hb, readout)
    else:
        jac1 = [_jacobians(net, params, b, groups) for b in b1]
        jac2 = jac1 if x2 is None else [_jacobians(net, params, b, groups) for b in b2]

        def block(i, j):
            (ja, ha), (jb, hb) = jac1[i], jac2[j]
            return ha @ hb.T, ja @ jb.T

    rows_nngp, rows_ntk = [], []
    for i in range(len(b1)):
        cols = [block(i, j) for j in range(len(b2))]
        rows_nngp.append(jnp.concatenate([c[0] for c in cols], axis=1))
        rows_ntk.append(jnp.concatenate([c[1] for c in cols], axis=1))
    return Kernel(jnp.concatenate(rows_nngp, axis=0), jnp.concatenate(rows_ntk, axis=0))
