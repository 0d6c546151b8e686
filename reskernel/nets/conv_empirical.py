"""Empirical NNGP and NTK of a finite convolutional net (reskernel.nets.conv).

NNGP: the readout-gradient kernel, features . features' + b_var (the readout v and bias b_out).
NTK:  sum over the trained weights and biases (networks.param_groups of `arch.dense`: the same
  names and meaning of trained="hidden" | "all" as the dense nets) of <df/dW(x), df/dW(x')>, by
  - "structured" (default): a convolution y = s conv(W, u) has df/dW[t] = s sum_p u(p + t) delta(p)^T
    with delta = df/dy (a bias: s sum_p delta(p)); the backward vectors of every layer come from
    one reverse pass per row block (autodiff of the forward in additive perturbations of each y),
    and each layer's per-image filter gradient (k, k, C_in, C) is formed only inside the
    contraction of a pair of row blocks, layer by layer: nothing of size (n, #params) exists;
  - "jacobian": explicit Jacobians of the row blocks contracted (memory batch_size * #params;
    small nets, checks).
Both run in row blocks of `batch_size`, any n.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.analytic import Kernel
from ..core.arch import check_trained
from ..core.conv_arch import ConvNet, image_shape
from .conv import ConvNetwork, _forward, conv
from .empirical import _READOUT, _jacobian_block
from .networks import param_groups

__all__ = ["empirical_kernel", "METHODS"]

METHODS = ("structured", "jacobian")
# group -> (its convolutions' input in Trace.inputs or None for a bias, the perturbation whose
# derivative is its backward vector)
_SOURCES = {"input": ("input", "input"), "input_bias": (None, "input"), "hidden": ("hidden", "hidden"),
            "hidden_bias": (None, "hidden"), "embed": ("embed", "embed"), "embed_bias": (None, "embed"),
            "W": ("W", "W"), "b": (None, "W"), "V": ("V", "V")}


def _scales2(net: ConvNetwork, dtype) -> dict:
    """s^2 of each group's maps y = s conv(W, u) (per layer for stacked groups); b_var for biases."""
    arch, c, k = net.arch, net.channels, net.arch.filter_size
    hid = arch.w_var / (k * k * c)
    if isinstance(arch, ConvNet):
        scales = {"input": arch.in_var / k ** 2, "hidden": jnp.full((arch.depth - 1,), hid, dtype)}
    else:
        a = np.asarray(arch.branch_scales)
        scales = {"embed": arch.in_var / k ** 2, "W": jnp.full((arch.depth,), hid, dtype),
                  "V": jnp.asarray(a * a / (k * k * c), dtype)}
    return scales


@functools.partial(jax.jit, static_argnums=(0, 3))
def _structured_features(net: ConvNetwork, params, x, groups):
    """{group: (u, delta)} for the trained non-readout groups, u the convolutions' input (None
    for a bias) and delta = df/dy of its outputs, each (n, H, W, C) or (L, n, H, W, C); and the
    features. df_i/dy_i by one reverse pass of sum_i f_i (the images are independent)."""
    dtype = params["readout"].dtype
    n, h, w = x.shape[:3]
    c = net.channels
    stacks = {"hidden": net.arch.depth - 1, "W": net.arch.depth, "V": net.arch.depth}
    keys = sorted({_SOURCES[g][1] for g in groups})
    zeros = {p: jnp.zeros(((stacks[p],) if p in stacks else ()) + (n, h, w, c), dtype) for p in keys}

    def total(pert):
        trace = _forward(net, params, x, pert)
        return trace.out.sum(), trace

    deltas, trace = jax.grad(total, has_aux=True)(zeros)
    feats = {g: (None if _SOURCES[g][0] is None else trace.inputs[_SOURCES[g][0]], deltas[_SOURCES[g][1]])
             for g in groups}
    return feats, trace.features


def _filter_grads(u, d, k, padding):
    """Per image, the gradient in W of <conv(W, u), d>: u (n, H, W, C_in), d (n, H, W, C) ->
    (n, k k C_in C)."""
    w0 = jnp.zeros((k, k, u.shape[-1], d.shape[-1]), u.dtype)

    def one(ui, di):
        return jax.vjp(lambda w: conv(ui[None], w, padding), w0)[1](di[None])[0]

    return jax.vmap(one)(u, d).reshape(u.shape[0], -1)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _contract(net: ConvNetwork, feats1, feats2, f1, f2, scales2, same: bool):
    """(nngp, ntk without the readout) of a pair of row blocks; same: the blocks are one
    (each filter gradient formed once)."""
    k, pad = net.arch.filter_size, net.arch.padding
    b_var = net.arch.b_var
    ntk = jnp.zeros((f1.shape[0], f2.shape[0]), f1.dtype)

    def weight_term(u1, d1, u2, d2):
        g1 = _filter_grads(u1, d1, k, pad)
        g2 = g1 if same else _filter_grads(u2, d2, k, pad)
        return jnp.matmul(g1, g2.T, precision=jax.lax.Precision.HIGHEST)

    for g, (u1, d1) in feats1.items():
        u2, d2 = feats2[g]
        if u1 is None:                                  # a bias: s^2 = b_var, df/db = sum_p delta(p)
            s1, s2 = d1.sum(axis=(-3, -2)), d2.sum(axis=(-3, -2))
            term = s1 @ s2.T if s1.ndim == 2 else jnp.einsum("lic,ljc->ij", s1, s2)
            ntk = ntk + b_var * term
        elif u1.ndim == 4:
            ntk = ntk + scales2[g] * weight_term(u1, d1, u2, d2)
        else:
            def layer(acc, inp):
                a1, e1, a2, e2, s = inp
                return acc + s * weight_term(a1, e1, a2, e2), None
            ntk, _ = jax.lax.scan(layer, ntk, (u1, d1, u2, d2, scales2[g]))
    return f1 @ f2.T + b_var, ntk


def _blocks(x, batch_size):
    """x in blocks of one size, min(batch_size, n), the last padded with zero images: every
    block reuses one compilation."""
    n = x.shape[0]
    size = min(batch_size, n)
    rows = -(-n // size) * size
    if rows > n:
        x = jnp.concatenate([jnp.asarray(x), jnp.zeros((rows - n,) + x.shape[1:], x.dtype)])
    return [x[i:i + size] for i in range(0, rows, size)]


def empirical_kernel(net: ConvNetwork, params, x1, x2=None, *, trained="hidden", method="structured",
                     batch_size: int = 32) -> Kernel:
    """Empirical NNGP and NTK of a convolutional `net` at `params`.

    Args:
      net: reskernel.network(conv_arch, channels=C).
      params: that net's parameters (net.init): checked first against `net` and the images
        (keys, shapes, one float32/float64 dtype, finite values), ValueError/TypeError otherwise.
      x1: images (n1, H, W, C0), channels-last; x2: (n2, H, W, C0) or None for x1.
      trained: "hidden" (the analytic default) or "all", as for the dense nets.
      method: "structured" (no Jacobians formed) or "jacobian".
      batch_size: images per row block (the last padded: every block has one shape, one
        compilation). "structured" keeps every block's layer inputs and backward vectors,
        ~2 depth n H W C numbers in all (ConvResNet: ~4 depth n H W C), and a pair of blocks
        needs ~2 batch_size k^2 C^2 more (one layer's filter gradients per block). Each pair
        forms both blocks' filter gradients afresh (memory stays bounded): ~n^2 / batch_size
        H W k^2 C^2 multiply-adds per layer, so larger blocks are faster while memory allows.
    Returns:
      Kernel(nngp, ntk), each (n1, n2), in params' dtype (the images are cast to it). Their
      expectation over initializations is the analytic kernel of the same `trained` choice.
    """
    if not isinstance(net, ConvNetwork):
        raise TypeError(f"net must be a convolutional net made by reskernel.network, got {type(net).__name__}")
    trained = check_trained(trained)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    batch_size = _checks.positive_int("batch_size", batch_size)
    x1 = _checks.real_array("x1", x1)
    x2 = None if x2 is None else _checks.real_array("x2", x2)
    if x2 is not None:
        image_shape(net.arch, "x2", x2.shape, other=x1.shape)
    x1 = net._checked(params, x1, "x1")
    x2 = None if x2 is None else net._checked(params, x2, "x2")
    dtype = params["readout"].dtype
    groups = param_groups(net.arch.dense, trained)
    body = tuple(g for g in groups if g not in _READOUT)
    readout = jnp.asarray(1.0 if "readout" in groups else 0.0, dtype)
    b1 = _blocks(x1, batch_size)
    b2 = b1 if x2 is None else _blocks(x2, batch_size)

    if method == "structured":
        scales2 = _scales2(net, dtype)
        feats1 = [_structured_features(net, params, b, body) for b in b1]
        feats2 = feats1 if x2 is None else [_structured_features(net, params, b, body) for b in b2]

        def block(i, j):
            (fa, ha), (fb, hb) = feats1[i], feats2[j]
            nngp, ntk = _contract(net, fa, fb, ha, hb, scales2, x2 is None and i == j)
            return nngp, ntk + readout * nngp
    else:
        block = _jacobian_block(_forward, net, params, b1, None if x2 is None else b2, groups)

    done = {}
    for i in range(len(b1)):
        for j in range(len(b2)):  # x2 None: the blocks below the diagonal are those above, transposed
            done[i, j] = block(i, j) if x2 is not None or j >= i else tuple(k.T for k in done[j, i])
    rows_nngp, rows_ntk = [], []
    for i in range(len(b1)):
        cols = [done[i, j] for j in range(len(b2))]
        rows_nngp.append(jnp.concatenate([c[0] for c in cols], axis=1))
        rows_ntk.append(jnp.concatenate([c[1] for c in cols], axis=1))
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    return Kernel(jnp.concatenate(rows_nngp, axis=0)[:n1, :n2], jnp.concatenate(rows_ntk, axis=0)[:n1, :n2])
