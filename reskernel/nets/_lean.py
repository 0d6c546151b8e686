"""Memory-lean empirical NNGP/NTK: weights drawn layer by layer from per-layer keys, never stored.

A depth-100 ResNet of width 8192 has 2 * 100 * 8192^2 = 13.4e9 weights (54 GB in float32);
here each layer's weights are generated inside the `lax.scan` from the key of that layer,
used, and dropped. The forward scan stores the n activations entering each layer (and, for
the ResNet, the block's hidden relu outputs), (L, n, m) each; the backward scan regenerates
the same weights and accumulates the structured NTK
  sum_layers c^2 <u, u'> <delta, delta'>
(c^2 and the (u, delta) pairs exactly as reskernel.empirical's "structured" method).

Weights: every layer's matrices are regenerated twice (forward and backward), so drawing them
dominates the cost unless it is cheap. jax.random.normal costs ~65 ns per float32 on a CPU core
(threefry, rbg and unsafe_rbg alike: 1.1-1.4 s for 4096^2 with jax 0.10.2), ~10x a 64-row matmul
over the same matrix. Here the Gaussians come from a keyed counter hash instead: two rounds of
the lowbias32 integer mixer (Wellons), u = H(H(i ^ k0) + k1) over the element index i, with
the two 32-bit words (k0, k1) of each layer drawn by jax.random from that layer's key; the top
23 bits give a uniform on the open interval (-1, 1) and z = sqrt(2) erfinv(u) a standard normal
(the transform jax.random.normal uses), truncated at |z| < 5.3 (probability 1e-7).
That is ~7 ns per float32, plain uint32 arithmetic that runs unchanged on GPUs.
The moments, tails and independence of the draws are tested in tests/test_sweeps.py.

Key layout (`lean_params` materializes the same weights for checks at small size):
  key -> (k_first, k_layers) = split(key)
  [first | v] = N(k_first, (m, d + 1)): the first layer (FFNet W_1, ResNet A) and the readout v
  FFNet:  W_l = N(fold_in(k_layers, l), (m, m)), l = 2..L
  ResNet: (W_l, V_l) = N(fold_in(k_layers, l), (2, m, m)), l = 1..L
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core.arch import FeedForward

# Full float32 products also on GPUs/TPUs (whose default may round float32 matmuls to
# TF32/bfloat16, a 1e-3 error that would floor the width sweeps); a no-op on CPUs.
_HI = jax.lax.Precision.HIGHEST


def _mm(a, b):
    return jnp.matmul(a, b, precision=_HI)


def _gram(a):
    return _mm(a, a.T)


def _mix(x):
    """lowbias32 (C. Wellons): a bijective uint32 mixer with near-ideal avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_normal(key, shape, dtype=jnp.float32):
    """Standard normals of `shape` from `key` (raw uint32 or typed), by the keyed counter hash
    described in the module docstring. Computed in float32, returned in `dtype`."""
    size = math.prod(shape)
    if size >= 2 ** 32:
        raise ValueError(f"hash_normal draws fewer than 2^32 numbers at once, got shape {shape}")
    k = jax.random.bits(key, (2,), jnp.uint32)
    i = jax.lax.iota(jnp.uint32, size).reshape(shape)
    b = _mix(_mix(i ^ k[0]) + k[1])
    one_two = jax.lax.bitcast_convert_type((b >> 9) | jnp.uint32(0x3F800001), jnp.float32)  # (1, 2), odd mantissa
    u = (one_two - 1.5) * 2.0  # exact: symmetric in (-1, 1), never +-1
    return (math.sqrt(2.0) * jax.lax.erf_inv(u)).astype(dtype)


def _normal(key, shape, dtype):
    return hash_normal(key, shape, dtype)


def _ffnet_layer(k_layers, l, m, dtype):
    return _normal(jax.random.fold_in(k_layers, l), (m, m), dtype)


def _resnet_block(k_layers, l, m, dtype):
    wv = _normal(jax.random.fold_in(k_layers, l), (2, m, m), dtype)  # one draw: fewer RNG sites to compile
    return wv[0], wv[1]


def _check_default(arch):
    """The simulator writes out the default nets only (ReLU, w_var = 2, no biases, unit
    in/out variances): refuse others rather than simulate the wrong net."""
    if not arch.default:
        raise ValueError(f"the lean simulator covers the default bias-free He-scaled ReLU nets only, got {arch}; "
                         "use reskernel.empirical_kernel(reskernel.network(arch, width), ...) for other nets")


def lean_params(arch, width: int, key, d_in: int, dtype=None) -> dict:
    """The weights the lean simulator draws from `key`, in reskernel.networks' layout.

    For checks at small size only (this is what the simulator avoids materializing).
    """
    _check_default(arch)
    dtype = jnp.result_type(float) if dtype is None else dtype
    m, depth = width, arch.depth
    k_layers, first, v = _first(key, m, d_in, dtype)
    if isinstance(arch, FeedForward):
        hidden = [_ffnet_layer(k_layers, l, m, dtype) for l in range(2, depth + 1)]
        hidden = jnp.stack(hidden) if hidden else jnp.zeros((0, m, m), dtype)
        return {"input": first, "hidden": hidden, "readout": v}
    ws, vs = zip(*[_resnet_block(k_layers, l, m, dtype) for l in range(1, depth + 1)])
    return {"embed": first, "W": jnp.stack(ws), "V": jnp.stack(vs), "readout": v}


def _first(key, m, d, dtype):
    k_first, k_layers = jax.random.split(key)
    fv = _normal(k_first, (m, d + 1), dtype)
    return k_layers, fv[:, :d], fv[:, d]


def _ffnet_one(key, x, depth, *, max_depth, width, trained):
    m, dtype = width, x.dtype
    c = math.sqrt(2.0 / m)
    k_layers, w1, v = _first(key, m, x.shape[1], dtype)
    h1 = _mm(x, w1.T)
    x1 = c * jnp.maximum(h1, 0)

    def fwd(xl, l):
        def step(xl):
            return c * jnp.maximum(_mm(xl, _ffnet_layer(k_layers, l, m, dtype).T), 0)
        return jax.lax.cond(l <= depth, step, lambda xl: xl, xl), xl

    ls = jnp.arange(2, max_depth + 1)
    xL, xs = jax.lax.scan(fwd, x1, ls)
    nngp = _gram(xL)
    g = jnp.broadcast_to(v, xL.shape)

    def bwd(carry, inp):
        l, xl = inp  # xl enters layer l; carry's x_out leaves it (relu'(h_l) = [x_out > 0])

        def step(carry):
            g, ntk, x_out = carry
            w = _ffnet_layer(k_layers, l, m, dtype)
            delta = c * g * (x_out > 0)
            return _mm(delta, w), ntk + _gram(xl) * _gram(delta), x_out
        g, ntk, _ = jax.lax.cond(l <= depth, step, lambda c: c, carry)
        return (g, ntk, xl), None  # skipped layers pass x through: their input is x_L as well

    ntk0 = jnp.zeros((x.shape[0],) * 2, dtype)
    (g, ntk, _), _ = jax.lax.scan(bwd, (g, ntk0, xL), (ls, xs), reverse=True)
    delta = c * g * (h1 > 0)
    ntk = ntk + _gram(x) * _gram(delta)
    return nngp, (ntk + nngp if trained == "all" else ntk)


def _resnet_one(key, x, depth, scales, *, max_depth, width, trained):
    m, dtype = width, x.dtype
    c, rm = math.sqrt(2.0 / m), 1.0 / math.sqrt(m)
    k_layers, emb, v = _first(key, m, x.shape[1], dtype)
    x0 = _mm(x, emb.T) * rm

    def fwd(xl, inp):
        l, a = inp

        def step(xl):
            w, v = _resnet_block(k_layers, l, m, dtype)
            z = jnp.maximum(c * _mm(xl, w.T), 0)
            return xl + (a * rm) * _mm(z, v.T), z
        x_next, z = jax.lax.cond(l <= depth, step, lambda xl: (xl, jnp.zeros_like(xl)), xl)
        return x_next, (xl, z)

    ls = jnp.arange(1, max_depth + 1)
    xL, (xs, zs) = jax.lax.scan(fwd, x0, (ls, scales))
    nngp = _gram(xL)
    g = jnp.broadcast_to(v, xL.shape)

    def bwd(carry, inp):
        l, a, xl, z = inp

        def step(carry):
            g, ntk = carry
            w, v = _resnet_block(k_layers, l, m, dtype)
            dw = (a * rm) * _mm(g, v) * (z > 0)
            ntk = ntk + (a * a / m) * _gram(z) * _gram(g) + (2.0 / m) * _gram(xl) * _gram(dw)
            return g + c * _mm(dw, w), ntk
        return jax.lax.cond(l <= depth, step, lambda c: c, carry), None

    ntk0 = jnp.zeros((x.shape[0],) * 2, dtype)
    (g0, ntk), _ = jax.lax.scan(bwd, (g, ntk0), (ls, scales, xs, zs), reverse=True)
    if trained == "all":
        ntk = ntk + _gram(x) * _gram(g0) / m + nngp
    return nngp, ntk


@functools.partial(jax.jit, static_argnames=("kind", "max_depth", "width", "trained"))
def _lean_batch(keys, x, depth, scales, *, kind, max_depth, width, trained):
    """keys (S,), depth: traced int <= max_depth, scales (max_depth,): blocks past `depth` are
    skipped by lax.cond (the predicate is not batched), so one compilation serves all depths."""
    kw = dict(max_depth=max_depth, width=width, trained=trained)
    if kind == "ffnet":
        return jax.vmap(lambda k: _ffnet_one(k, x, depth, **kw))(keys)
    return jax.vmap(lambda k: _resnet_one(k, x, depth, scales, **kw))(keys)


def lean_kernels(keys, x, *, arch, width, trained="hidden", max_depth=None):
    """Empirical (NNGP, NTK) of one network per key, without materializing weights.

    Args:
      keys: (S,) PRNG keys (raw uint32 (S, 2) or typed); one network per key (vmapped).
      x: (n, d) inputs in the simulation dtype.
      arch, width, trained: as in reskernel.network / reskernel.empirical_kernel; arch a
        default net (arch.default: ReLU, w_var = 2, no biases), ValueError otherwise.
      max_depth: compile for this depth (>= arch.depth) and skip the extra blocks at run
        time, so that one compilation serves every depth up to it (memory as for max_depth).
    Returns:
      (nngp, ntk), each (S, n, n) in x's dtype; equal to reskernel.empirical_kernel of
      reskernel.network(arch, width) at lean_params(arch, width, key, d). Jitted (static
      arch kind, max_depth, width, trained). Memory per key: see `bytes_per_seed`.
    """
    _check_default(arch)
    max_depth = arch.depth if max_depth is None else int(max_depth)
    if max_depth < arch.depth:
        raise ValueError(f"max_depth must be >= the depth {arch.depth}, got {max_depth}")
    x = jnp.asarray(x)
    if isinstance(arch, FeedForward):
        kind, scales = "ffnet", jnp.zeros((max_depth,), x.dtype)
    else:
        kind = "resnet"
        a = np.zeros(max_depth)
        a[:arch.depth] = arch.branch_scales
        scales = jnp.asarray(a, x.dtype)
    return _lean_batch(keys, x, jnp.asarray(arch.depth, jnp.int32), scales, kind=kind, max_depth=max_depth,
                       width=int(width), trained=trained)


def bytes_per_seed(arch, width: int, n: int, itemsize: int) -> int:
    """Estimated peak bytes per vmapped network: stored activations ((depth, n, m), twice for
    the ResNet), the live weights of a layer with their uint32 hash buffers (~3 m^2 per
    matrix), and (n, m) work arrays."""
    mats = 1 if isinstance(arch, FeedForward) else 2
    return int(itemsize * (mats * arch.depth * n * width + 3 * mats * width * width
                           + 16 * n * width + 4 * n * n))
