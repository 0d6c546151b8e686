"""Empirical NNGP and NTK of a finite-width network.

NNGP: the readout-gradient kernel, features . features' + b_var (the readout v and bias b_out).
NTK:  sum over the trained weights and biases (networks.param_groups) of <df/dW(x), df/dW(x')>, by
  - "structured" (default): for a linear map y = s W u, df/dW = s delta u^T, so its
    contribution is s^2 <u, u'> <delta, delta'> (a bias: u = 1, s^2 = b_var); the backward
    vectors delta come from one reverse scan per batch; nothing of size (n, #params) is formed;
  - "jacobian": explicit Jacobians contracted (memory n * #params; small nets, checks).
Both run in row blocks of `batch_size`, so n is unbounded by the Jacobian's size.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.analytic import Kernel
from ..core.arch import FeedForward, check_trained
from .conv import ConvNetwork
from .networks import Network, _branch_scales, _forward, param_groups

__all__ = ["empirical_kernel", "METHODS"]

METHODS = ("structured", "jacobian")


def _scales2(net: Network, dtype):
    """s^2 of each group's linear maps y = s W u (scalar, or per layer), u = Trace.inputs[group]
    and y the quantity whose backward vector `_structured_features` pairs with u. A bias is
    the map of the constant input 1 into its layer's y."""
    arch, m, depth = net.arch, net.width, net.arch.depth
    b_var = arch.b_var
    if isinstance(arch, FeedForward):
        return {"input": arch.in_var, "input_bias": b_var, "hidden": jnp.ones((depth - 1,), dtype),
                "hidden_bias": jnp.full((depth - 1,), b_var, dtype)}
    a = jnp.asarray(np.asarray(arch.branch_scales), dtype)
    # y of the branch is the pre-activation as _forward computes it (scaled by 1/sqrt(m) for a
    # homogeneous phi, networks._branch_scales), and so is its backward vector.
    pre = 1.0 / m if arch.activation.homogeneous else 1.0
    return {"embed": arch.in_var / m, "embed_bias": b_var / m, "W": jnp.full((depth,), arch.w_var * pre, dtype),
            "b": jnp.full((depth,), b_var * pre, dtype), "V": a * a / m}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _structured_features(net: Network, params, x, groups):
    """Per group: (inputs u, backward vectors delta) of its linear maps y = s W u, with delta
    the derivative of f (summed over the batch) with respect to y; and the readout's input.

    The forward pass (networks._forward) stores each layer's input and phi' at its
    pre-activation (for ReLU the mask); one reverse scan carries the backward vector (written
    out, not by autodiff: differentiating the forward scan made JAX save every layer's weight
    slice as a residual, 10x the cost of the two passes).
    """
    arch, m = net.arch, net.width
    dtype = params["readout"].dtype
    trace = _forward(net, params, x, None, True)
    inputs, slopes = trace.inputs, trace.slopes
    v = params["readout"]
    if isinstance(arch, FeedForward):
        c = math.sqrt(arch.w_var / m)
        hidden = params["hidden"]

        def backward(delta, inp):                            # delta: d f / d z_l
            w, slope = inp
            return c * (delta @ w) * slope, delta

        # slopes[l-1] is phi'(z_l); the map W_l (l >= 2) reads phi(z_{l-1}), slopes[:-1]
        d_input, ds = jax.lax.scan(backward, c * v * slopes[-1], (hidden, slopes[:-1]), reverse=True)
        deltas = {"input": d_input, "input_bias": d_input, "hidden": ds, "hidden_bias": ds}
    else:
        a = jnp.asarray(np.asarray(arch.branch_scales), dtype)
        s = 1.0 / math.sqrt(m)
        ws, _, _, post = _branch_scales(arch, m)

        def backward(g, inp):                                # g: d f / d (block output x_l)
            w, v_l, al, slope = inp
            d_p = al * s * (g @ v_l) * slope                 # d f / d (pre-activation p, as computed)
            if post is not None:
                d_p = post * d_p
            return g + ws * (d_p @ w), (d_p, g)

        g_top = jnp.broadcast_to(v if arch.out_var == 1 else math.sqrt(arch.out_var) * v, trace.features.shape)
        g0, (d_ps, d_vs) = jax.lax.scan(backward, g_top, (params["W"], params["V"], a, slopes), reverse=True)
        deltas = {"embed": g0, "embed_bias": g0, "W": d_ps, "b": d_ps, "V": d_vs}
    return {g: (inputs[g], deltas[g]) for g in groups if g not in _READOUT}, trace.features


_READOUT = ("readout", "readout_bias")


@jax.jit
def _contract(feats1, feats2, scales2, f1, f2, b_var, readout_trained):
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
    nngp = f1 @ f2.T + b_var                                  # the readout v and bias b_out
    return nngp, ntk + readout_trained * nngp


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def _jacobians(forward, net, params, x, groups):
    """(Jacobian (n, #params of `groups`) of the outputs, features) of a row block x; forward:
    the net's trace function, networks._forward or conv._forward."""
    def out(sel):
        return forward(net, {**params, **sel}, x, None).out

    jac = jax.jacrev(out)({g: params[g] for g in groups})
    n = x.shape[0]
    return jnp.concatenate([jac[g].reshape(n, -1) for g in groups], axis=1), forward(net, params, x, None).features


def _jacobian_block(forward, net, params, b1, b2, groups):
    """The "jacobian" method: block(i, j) -> (nngp, ntk) of the row blocks b1[i] and b2[j] (b2
    None: b1), from each block's Jacobian formed once."""
    jac1 = [_jacobians(forward, net, params, b, groups) for b in b1]
    jac2 = jac1 if b2 is None else [_jacobians(forward, net, params, b, groups) for b in b2]

    def block(i, j):
        (ja, ha), (jb, hb) = jac1[i], jac2[j]
        return ha @ hb.T + net.arch.b_var, ja @ jb.T
    return block


def _blocks(x, batch_size):
    return [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)]


def empirical_kernel(net: Network, params, x1, x2=None, *, trained="hidden", method="structured",
                     batch_size: Optional[int] = None) -> Kernel:
    """Empirical NNGP and NTK of `net` at `params`.

    Args:
      net: a reskernel.network(arch, width); a convolutional one (reskernel ConvNet /
        ConvResNet) goes to reskernel.nets.conv_empirical.empirical_kernel, images (n, H, W, C0).
      params: that network's parameters (net.init): checked first against `net` (keys,
        shapes, one float32/float64 dtype, finite values), ValueError/TypeError otherwise.
      x1: (n1, d) inputs; x2: (n2, d) or None for x1.
      trained: "hidden" (the analytic default) or "all", as in reskernel.kernel.
      method: "structured" (no Jacobians formed) or "jacobian".
      batch_size: rows per block (None: 256; convolutional nets 32); memory ~ batch_size * width * depth per block.
    Returns:
      Kernel(nngp, ntk), each (n1, n2), in params' dtype (the inputs are cast to it). Their expectation over
      initializations is the analytic kernel of the same `trained` choice.
    """
    if isinstance(net, ConvNetwork):
        from . import conv_empirical   # here, not at the top: it imports _jacobian_block from here

        return conv_empirical.empirical_kernel(net, params, x1, x2, trained=trained, method=method,
                                     batch_size=32 if batch_size is None else batch_size)
    if not isinstance(net, Network):
        raise TypeError(f"net must be made by reskernel.network, got {type(net).__name__}")
    trained = check_trained(trained)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    batch_size = _checks.positive_int("batch_size", 256 if batch_size is None else batch_size)
    x1, x2 = _checks.inputs(x1, x2)
    dtype = net._check_params(params, x1.shape[1])
    groups = param_groups(net.arch, trained)
    b1 = _blocks(x1, batch_size)
    b2 = b1 if x2 is None else _blocks(x2, batch_size)

    if method == "structured":
        body = tuple(g for g in groups if g not in _READOUT)
        scales2 = {g: s for g, s in _scales2(net, dtype).items() if g in body}
        feats1 = [_structured_features(net, params, b, body) for b in b1]
        feats2 = feats1 if x2 is None else [_structured_features(net, params, b, body) for b in b2]
        readout = jnp.asarray(1.0 if "readout" in groups else 0.0, dtype)
        b_var = jnp.asarray(net.arch.b_var, dtype)

        def block(i, j):
            (fa, ha), (fb, hb) = feats1[i], feats2[j]
            return _contract(fa, fb, scales2, ha, hb, b_var, readout)
    else:
        block = _jacobian_block(_forward, net, params, b1, None if x2 is None else b2, groups)

    rows_nngp, rows_ntk = [], []
    for i in range(len(b1)):
        cols = [block(i, j) for j in range(len(b2))]
        rows_nngp.append(jnp.concatenate([c[0] for c in cols], axis=1))
        rows_ntk.append(jnp.concatenate([c[1] for c in cols], axis=1))
    return Kernel(jnp.concatenate(rows_nngp, axis=0), jnp.concatenate(rows_ntk, axis=0))
