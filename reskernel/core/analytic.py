"""Analytic infinite-width NNGP and NTK, for every depth in one pass.

Three layers (see docs/conventions.md for the derivations):
  1. arc-cosine maps k0, k1 on correlations (reskernel.arccos; the recursion uses
     `angle_sine`, theta = arccos rho and sin theta in one pass);
  2. `correlation_kernels`: the depth recursion on normalized kernels, elementwise
     on any array of input correlations rho_0, one `lax.scan` over depth;
  3. `kernel`: Gram-matrix level. float32, by default: every entry interpolated from a
     float64 table of the kernels as functions of the input angle (reskernel.tabulated;
     one table per depth for all depths). Otherwise (the recursion) tile by tile: each
     tile of rho_0 = <x, x'> / (|x| |x'|) runs through all layers in cache (one fused loop per layer, compile time
     independent of depth), scaled back by |x| |x'| and written into the output.
     Symmetric kernels compute the tiles above the diagonal and the diagonal tiles in
     pairs (one tile holds two triangles); `get` skips writing the kernel not asked for.

Normalized recursions (K = |x||x'| * nngp_n, Theta = |x||x'| * ntk_n):
  FeedForward:  rho_l = k1(rho_{l-1});  t_l = (t_{l-1} + rho_{l-1}) k0(rho_{l-1}).
  ResNet (block scale a, diagonal growth s_l = prod_{i<=l} (1 + a_i^2)):
     rho_l = (rho_{l-1} + a^2 k1(rho_{l-1})) / (1 + a^2),   nngp_n = s_l rho_l,
     t_l   = t_{l-1} (1 + a^2 k0) + a^2 s_{l-1} (rho_{l-1} k0 + k1).
  trained="all" adds the readout (+ nngp) and, for the ResNet, the embedding
  (+ rho_0 prod_l (1 + a_l^2 k0(rho_{l-1}))), which obeys t's update and is carried
  in t from t_0 = rho_0.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from . import tabulated
from .arccos import angle_sine
from .arch import FeedForward, ResNet, check_arch, check_trained

__all__ = ["Kernel", "kernel", "correlation_kernels", "correlations"]

# XLA:CPU vectorizes with 256-bit registers unless told otherwise. The recursion is bound by
# its two square roots and ~45 vector operations per entry and layer, and 512-bit vectors
# (AVX-512) run one 512 x 512 tile through 100 ResNet layers 2.2x faster (1.14e9 -> 2.57e9
# entry-layers/s on a 2-core Xeon). The option is scoped to reskernel's own kernels; machines
# without AVX-512 keep their widest vectors, and other backends ignore it.
COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": "512"}


def _jit(static_argnames):
    """jax.jit with COMPILER_OPTIONS at the top level. JAX accepts compiler options only on a
    top-level jit, so a call with traced arguments (inside the caller's jit, grad or vmap)
    goes to the same function jitted without them."""
    def wrap(fn):
        tuned = jax.jit(fn, static_argnames=static_argnames, compiler_options=COMPILER_OPTIONS)
        plain = jax.jit(fn, static_argnames=static_argnames)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            return (plain if _checks.traced(*args) else tuned)(*args, **kwargs)

        return call
    return wrap


class Kernel(NamedTuple):
    """NNGP and NTK of the same shape: (n1, n2), or (depth, n1, n2) for all depths."""

    nngp: jax.Array
    ntk: jax.Array


def correlations(x1, x2=None):
    """rho_0 = <x, x'> / (|x| |x'|) clipped to [-1, 1], shape (n1, n2), and the norms.

    When x2 is None the diagonal is exactly 1; correlations within 4 ulp of +-1 are
    set to +-1 (parallel and antipodal inputs).
    """
    y = x1 if x2 is None else x2
    n1 = jnp.linalg.norm(x1, axis=-1)
    n2 = jnp.linalg.norm(y, axis=-1)
    gram = jnp.matmul(x1, y.T, precision=jax.lax.Precision.HIGHEST)
    rho = jnp.clip(gram / (n1[:, None] * n2[None, :]), -1.0, 1.0)
    # Parallel or antipodal rows come out as +-(1 - 2 ulp); arccos turns that into an
    # error of sqrt(ulp) (1e-8 in float64). Snap within 4 ulp of +-1, far below the
    # 1 - rho = 5e-13 of inputs that differ by 1e-6.
    snap = 4 * jnp.finfo(rho.dtype).eps
    rho = jnp.where(jnp.abs(rho) > 1 - snap, jnp.sign(rho), rho)
    if x2 is None:
        rho = jnp.where(jnp.eye(x1.shape[0], dtype=bool), jnp.ones_like(rho), rho)
    return rho, n1, n2


def _stepper(kind, rho0, table, trained):
    """The depth recursion, one layer at a time, on a state (rho, t) packed as one array.

    Returns (init, xs, step, read): `step(state, x)` advances one layer, `read(state, x)`
    gives the normalized (nngp, ntk) after that layer. Per entry and layer: one angle and
    sine (`angle_sine`: two square roots, one polynomial), then 6 (FFNet) or 14 (ResNet)
    multiplies and adds; no divisions (1/pi and a^2 / (pi (1 + a^2)) are per-layer
    scalars). The correlation moves by pi (k1 - rho) = sin - theta rho, which is exactly 0
    at rho = 1, so identical inputs keep rho = 1 exactly through every layer.
    """
    dtype = rho0.dtype
    pi = jnp.asarray(math.pi, dtype)
    inv_pi = jnp.asarray(1.0 / math.pi, dtype)
    every = trained == "all"
    if kind == "ffnet":
        def step(state, _):
            rho, t = _unpack(state)
            theta, sine = angle_sine(rho)
            t = (t + rho) * ((pi - theta) * inv_pi)            # (t + rho) k0
            rho = rho + (sine - theta * rho) * inv_pi          # k1(rho)
            return jax.lax.complex(rho, t)

        def read(state, _):
            rho, t = _unpack(state)
            return rho, (t + rho if every else t)

        return jax.lax.complex(rho0, jnp.zeros_like(rho0)), table, step, read

    xs = table

    def step(state, x):
        c, s, sc, move = x[0], x[1], x[2], x[3]
        rho, t = _unpack(state)
        theta, sine = angle_sine(rho)
        sup = pi - theta
        gain = c * sup                                         # a^2 k0
        # t (1 + a^2 k0) + a^2 s (rho k0 + k1), with pi k1 = sin + sup rho
        t = t + gain * (t + s * rho) + sc * (sine + sup * rho)
        rho = rho + move * (sine - theta * rho)                # (rho + a^2 k1) / (1 + a^2)
        return jax.lax.complex(rho, t)

    def read(state, x):
        rho, t = _unpack(state)
        nngp = x[4] * rho
        return nngp, (t + nngp if every else t)

    # trained="all": the embedding's term rho0 prod (1 + a^2 k0) obeys t's own update, so
    # it rides along in t from t_0 = rho0.
    return jax.lax.complex(rho0, rho0 if every else jnp.zeros_like(rho0)), xs, step, read


def _unpack(state):
    # The state (rho, t) travels as one complex array, rho + i t (no complex
    # arithmetic is done on it): XLA's CPU loop fusions have one output, so two real
    # state arrays would make two fused loops per layer, each recomputing the angle;
    # packed, each layer is one loop (measured 1.6x faster on a 2-core EPYC).
    return jnp.real(state), jnp.imag(state)


def _stored(state):
    """The new state, materialized before it is read for the output. Without the barrier XLA
    fuses the whole layer into the (single-threaded) fusion that writes the layer's output,
    computing the layer twice and the square roots as separate arrays (measured at n = 1000,
    L = 100, NTK only: 0.30 s, with the barrier 0.19 s; one depth: 0.03 s)."""
    return jax.lax.optimization_barrier(state)


def _last(xs):
    return jax.tree_util.tree_map(lambda v: v[-1], xs)


def _recursion(kind, rho0, table, trained, all_depths):
    """Normalized (nngp, ntk) of the correlations rho0 (any shape), or (L,) + shape."""
    init, xs, step, read = _stepper(kind, rho0, table, trained)
    if all_depths:
        def body(state, x):
            state = _stored(step(state, x))
            return state, read(state, x)
        return jax.lax.scan(body, init, xs)[1]
    state = jax.lax.scan(lambda st, x: (step(st, x), None), init, xs)[0]
    return read(state, _last(xs))


@_jit(("kind", "depth", "trained", "all_depths"))
def _correlation_kernels(rho0, table, *, kind, depth, trained, all_depths):
    return _recursion(kind, rho0, table, trained, all_depths)


def _layer_table(arch, dtype):
    """Per-layer scalars of the recursion, (depth, 5), computed in float64 on the host:
    ResNet rows (a^2/pi, s_{l-1}, s_{l-1} a^2/pi, a^2 / (pi (1 + a^2)), s_l) with
    s_l = prod_{i<=l} (1 + a_i^2); FFNet rows are zeros (only the scan length is used)."""
    dtype = np.dtype(dtype)  # a NumPy table: jnp.asarray here would cost a compilation on first use
    if not isinstance(arch, ResNet):
        return np.zeros((arch.depth, 5), dtype)
    a2 = np.asarray(arch.branch_scales, np.float64) ** 2
    growth = 1.0 + a2
    s_new = np.cumprod(growth)
    s_old = np.concatenate([[1.0], s_new[:-1]])
    c = a2 / math.pi
    return np.stack([c, s_old, s_old * c, c / growth, s_new], axis=1).astype(dtype)


def _check_range(arch, dtype, log10_norm2):
    """Raise when the kernel's magnitude leaves the dtype's range (ResNets grow like prod (1 + a_l^2))."""
    if not isinstance(arch, ResNet):
        return
    log10_growth = sum(math.log1p(a * a) for a in arch.branch_scales) / math.log(10.0)
    log10_max = math.log10(float(jnp.finfo(dtype).max))
    total = log10_growth + math.log10(arch.depth + 1.0) + log10_norm2
    if total > log10_max - 1:
        raise ValueError(
            f"the ResNet kernel grows like prod_l (1 + a_l^2) = 10^{log10_growth:.0f} over {arch.depth} blocks, "
            f"beyond the range of {jnp.dtype(dtype).name} (10^{log10_max:.0f}); use gamma >= 1/2 "
            "(a_l = depth^-gamma) or smaller branch scales")


def correlation_kernels(arch, rho0, *, trained="hidden", all_depths=False) -> Kernel:
    """Normalized kernels as functions of the input correlation.

    Args:
      arch: FeedForward or ResNet.
      rho0: array of correlations in [-1, 1], any shape S.
      trained: "hidden" (paper: hidden layers) or "all" (every layer, as in neural-tangents).
      all_depths: if True, a leading axis of depths 1..L.
    Returns:
      Kernel(nngp, ntk) of shape S, or (L,) + S, for unit-norm inputs; multiply by
      |x| |x'| for other norms.
    """
    arch, trained = check_arch(arch), check_trained(trained)
    rho0 = jnp.asarray(rho0)
    if not jnp.issubdtype(rho0.dtype, jnp.floating):
        rho0 = rho0.astype(jnp.result_type(float))
    _check_range(arch, rho0.dtype, 0.0)
    kind = "ffnet" if isinstance(arch, FeedForward) else "resnet"
    nngp, ntk = _correlation_kernels(rho0, _layer_table(arch, rho0.dtype), kind=kind, depth=arch.depth,
                                     trained=trained, all_depths=all_depths)
    return Kernel(nngp, ntk)


# Largest tile edge (tiles are balanced: n = 4000 gives 4 tiles of 1000). Measured on a 2-core
# Xeon (AVX-512, jax 0.10, float32 ResNet NTK, depth 100, 512-bit vectors, warm): n = 4000 edge
# 256: 0.77 s, 384: 0.59 s, 512: 0.50 s, 768: 0.53 s, 1024: 0.46 s; n = 8000 512: 1.89 s, 1024: 1.70 s;
# n = 2000 within 3% for every edge. Fewer, larger tiles mean fewer per-layer loop launches; a
# 1024 x 1024 state (8 MB) still runs from cache. One tile through 100 layers: edge 128:
# 1.6e9 entry-layers/s, 256: 2.1e9, 512: 3.0e9, 1000: 3.1e9, 1448: 3.2e9; one 10^7-entry array
# (80 MB state, from memory): 1.9e9.
TILE = 1024

# The kernels a Gram-matrix call can return, in the order of Kernel's fields.
GET = ("nngp", "ntk")


def _pad_rows(x, rows):
    # Padding rows are ones (nonzero, so no 0/0 norms even in gradients); sliced off after.
    extra = rows - x.shape[0]
    return x if extra == 0 else jnp.concatenate([x, jnp.ones((extra, x.shape[1]), x.dtype)])


def _rho(gram, norms):
    """Correlations gram / norms clipped to [-1, 1], snapped to +-1 within 4 ulp."""
    rho = jnp.clip(gram / norms, -1.0, 1.0)
    snap = 4 * jnp.finfo(rho.dtype).eps
    return jnp.where(jnp.abs(rho) > 1 - snap, jnp.sign(rho), rho)


def _tile_rho(a, b, na, nb, symmetric=False):
    """rho_0 between the rows of a and b; symmetric (b is a): exactly symmetric, ones on the diagonal."""
    rho = _rho(jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST), na[:, None] * nb[None, :])
    if symmetric:
        rho = jnp.where(jnp.eye(a.shape[0], dtype=bool), jnp.ones_like(rho), (rho + rho.T) / 2)
    return rho


def _edge(n, tile):
    """Tile edge <= tile splitting n into equal tiles (n = 4000, tile 512: 8 tiles of 500), so
    that padding, and the copy that slices it off, is rare."""
    count = -(-n // tile)
    return -(-n // count)


def _fused(x1, x2, table, angles=None, *, kind, depth, trained, all_depths, symmetric, tile, get=GET):
    """The kernels named by `get` (a sub-tuple of GET), tile by tile: each tile of rho_0 runs
    through the whole depth recursion in one scan, its state in cache; or, given `angles` (the
    (len(get), [L,] 4, M) tables of reskernel.tabulated), every entry is interpolated.
    Tiles have edge <= tile, balanced (_edge); the last rows are padded and sliced off."""
    if angles is not None:
        return _interpolated(x1, x2, angles, symmetric)
    n1, n2 = x1.shape[0], x2.shape[0]
    t1 = _edge(n1, tile)
    t2 = t1 if symmetric else _edge(n2, tile)
    nb1, nb2 = -(-n1 // t1), -(-n2 // t2)
    x1p = _pad_rows(x1, nb1 * t1)
    m1 = jnp.linalg.norm(x1p, axis=-1)
    if symmetric:  # x2 is x1 (a second argument XLA cannot know to be the same)
        x2p, m2 = x1p, m1
    else:
        x2p = _pad_rows(x2, nb2 * t2)
        m2 = jnp.linalg.norm(x2p, axis=-1)
    pick = tuple(GET.index(g) for g in get)
    geometry = (t1, t2, nb1, nb2)
    run = _all_depths if all_depths else _one_depth
    outs = run(x1p, x2p, m1, m2, table, geometry, kind=kind, depth=depth, trained=trained,
               symmetric=symmetric, pick=pick)
    return tuple(o[..., :n1, :n2] for o in outs)


def _interpolated(x1, x2, angles, symmetric):
    """One depth, or every depth, from tables (reskernel.tabulated): rho_0 from one Gram product
    (`correlations`), each entry interpolated (for each depth), times |x| |x'|; one elementwise
    pass after the product (no tiles: the product is the cost, and computed whole it needs no
    gathers, which also keeps XLA's compilation at ~0.08 s instead of ~0.2 s). Symmetric: the
    diagonal is exactly rho_0 = 1; off it the output is as symmetric as the backend's matmul of
    x with x^T (bitwise on XLA:CPU, tested)."""
    rho, m1, m2 = correlations(x1, None if symmetric else x2)
    norms = m1[:, None] * m2[None, :]
    return tuple(tabulated.evaluate(a, rho) * norms for a in angles)


def _one_depth(x1p, x2p, m1, m2, table, geometry, *, kind, depth, trained, symmetric, pick):
    """One depth. The tiles of rho_0 come from one batched product (a matmul inside the loop
    over tiles ran at a third of the speed), run through the recursion in a `lax.map`, and are
    put in place and scaled by |x| |x'| in one final gather (writing each tile into the output
    inside the loop, plus a transposed second write when symmetric, made XLA:CPU copy the whole
    output at every tile).

    Symmetric: the off-diagonal tiles i < j, and the diagonal tiles in pairs: one tile holds
    the upper triangle (with the diagonal) of tile (i, i) and the lower triangle of tile
    (i + 1, i + 1) (an odd last tile pairs with itself); both are mirrored from that triangle,
    so the output is exactly symmetric, and their diagonals agree (rho_0 = 1 there, and the
    tiles are normalized). n = 4000 in tiles of 1000 runs 8 tiles, not 10 (or 16).
    """
    t1, t2, nb1, nb2 = geometry
    if symmetric:
        ii, jj = np.triu_indices(nb1, 1)
        diag = np.arange(nb1)
        first, second = diag[0::2], diag[1::2]
        second = np.concatenate([second, diag[-1:]]) if nb1 % 2 else second
        off, pairs = ii.shape[0], first.shape[0]
        ri, rj = np.concatenate([ii, first, second]), np.concatenate([jj, first, second])
    else:
        ri, rj = np.divmod(np.arange(nb1 * nb2), nb2)
    rows, cols = x1p.reshape((nb1, t1, -1)), x2p.reshape((nb2, t2, -1))
    gram = jnp.einsum("kid,kjd->kij", rows[ri], cols[rj], precision=jax.lax.Precision.HIGHEST)
    rhos = _rho(gram, m1.reshape((nb1, t1))[ri][:, :, None] * m2.reshape((nb2, t2))[rj][:, None, :])
    pos = np.arange(nb1 * nb2)
    if symmetric:
        upper = np.triu(np.ones((t1, t1), bool))
        paired = jnp.where(upper, rhos[off:off + pairs], rhos[off + pairs:])
        paired = jnp.where(np.eye(t1, dtype=bool), jnp.ones_like(paired), paired)
        rhos = jnp.concatenate([rhos[:off], paired])
        # sources of the output blocks: [off tiles, transposed, first of pairs, second of pairs]
        blocks = np.zeros((nb1, nb1), np.int64)
        blocks[ii, jj], blocks[jj, ii] = np.arange(off), off + np.arange(off)
        blocks[diag, diag] = 2 * off + (diag % 2) * pairs + diag // 2
        pos = blocks.reshape(-1)

    def one(rho0):
        init, xs, step, read = _stepper(kind, rho0, table, trained)
        state = jax.lax.scan(lambda st, x: (step(st, x), None), init, xs)[0]
        vals = read(state, _last(xs))
        return tuple(vals[p] for p in pick)

    norms = m1[:, None] * m2[None, :]
    outs = []
    for tiles in jax.lax.map(one, rhos):  # each (tiles, t1, t2), normalized
        if symmetric:
            o, p = tiles[:off], tiles[off:]
            o_t, p_t = jnp.swapaxes(o, -1, -2), jnp.swapaxes(p, -1, -2)
            tiles = jnp.concatenate([o, o_t, jnp.where(upper, p, p_t), jnp.where(upper.T, p, p_t)])
        if not np.array_equal(pos, np.arange(tiles.shape[0])):
            tiles = jnp.take(tiles, jnp.asarray(pos, jnp.int32), axis=0)
        outs.append(tiles.reshape((nb1, nb2, t1, t2)).transpose(0, 2, 1, 3).reshape(norms.shape) * norms)
    return tuple(outs)


def _all_depths(x1p, x2p, m1, m2, table, geometry, *, kind, depth, trained, symmetric, pick):
    """Every depth: each layer's block is written as it is produced into the preallocated
    (L, n1, n2) outputs (dynamic_update_slice in a fori_loop over tiles, in place), so the
    output, L n1 n2 numbers per kernel, is written once (plus the zero fill of the allocation).
    A transposed second write per layer would make XLA copy the whole output, so symmetric
    all-depths kernels compute every tile, from one exactly symmetric rho_0 (n x n, ones on
    the diagonal): entries (i, j) and (j, i) go through the same arithmetic, so the result is
    symmetric (bitwise with jax 0.10; to ~1 ulp with jax 0.5.3).
    """
    t1, t2, nb1, nb2 = geometry
    ii, jj = np.divmod(np.arange(nb1 * nb2), nb2)
    ii, jj = jnp.asarray(ii, jnp.int32), jnp.asarray(jj, jnp.int32)
    if symmetric:
        rho_all = _tile_rho(x1p, x1p, m1, m1, True)

        def tile_rho(r0, c0):
            return jax.lax.dynamic_slice(rho_all, (r0, c0), (t1, t2))
    else:
        def tile_rho(r0, c0):
            a = jax.lax.dynamic_slice_in_dim(x1p, r0, t1)
            b = jax.lax.dynamic_slice_in_dim(x2p, c0, t2)
            return _tile_rho(a, b, jax.lax.dynamic_slice_in_dim(m1, r0, t1), jax.lax.dynamic_slice_in_dim(m2, c0, t2))

    shape = (depth, nb1 * t1, nb2 * t2)
    # Distinct zero arrays (the value of the second depends on m1, 0 * |x_0| = 0): with one
    # shared zeros XLA copies it to give each loop-carried output its own buffer.
    zeros = tuple(jnp.zeros(shape, x1p.dtype) if q == 0 else jnp.broadcast_to(0 * m1[0], shape)
                  for q in range(len(pick)))

    def one(k, outs):
        r0, c0 = ii[k] * t1, jj[k] * t2
        norms = jax.lax.dynamic_slice_in_dim(m1, r0, t1)[:, None] * jax.lax.dynamic_slice_in_dim(m2, c0, t2)[None, :]
        init, xs, step, read = _stepper(kind, tile_rho(r0, c0), table, trained)

        def layer(carry, lx):
            state, outs = carry
            l, x = lx
            state = _stored(step(state, x))
            vals = read(state, x)
            outs = tuple(jax.lax.dynamic_update_slice(o, (vals[p] * norms)[None], (l, r0, c0))
                         for o, p in zip(outs, pick))
            return (state, outs), None

        layers = jnp.arange(depth, dtype=jnp.int32)
        return jax.lax.scan(layer, (init, outs), (layers, xs))[0][1]

    return jax.lax.fori_loop(0, ii.shape[0], one, zeros)


@_jit(("kind", "depth", "trained", "all_depths", "symmetric", "tile", "get"))
def _kernel(x1, x2, table, angles=None, *, kind, depth, trained, all_depths, symmetric, tile=TILE, get=GET):
    """The outputs named by `get`, a tuple."""
    return _fused(x1, x2, table, angles, kind=kind, depth=depth, trained=trained, all_depths=all_depths,
                  symmetric=symmetric, tile=tile, get=get)


def _check_get(get):
    """The tuple of kernels to compute for `get` (None: both)."""
    if get is None:
        return GET
    if not isinstance(get, str) or get not in GET:
        raise ValueError(f"get must be None, 'nngp' or 'ntk', got {get!r}")
    return (get,)


# How a Gram matrix (one depth or all depths) is computed (reskernel.tabulated): "auto"
# interpolates float32 kernels from a float64 table when one reaches tabulated.TOL (concrete inputs; under the
# caller's jit or grad, and in float64, the recursion runs), "table" always (error if no table
# reaches it), "recursion" never.
METHODS = ("auto", "table", "recursion")


def _angles(arch, kind, trained, picked, dtype, entries, *, method, all_depths, traced):
    """The (len(picked), [L,] 4, M) tables `_kernel` interpolates from, in dtype, or None (recursion).
    `entries` = n1 n2: "auto" builds no table larger than entries / 64 nodes (the float64 build,
    ~2 M depth steps in NumPy, then costs less than the recursion's n1 n2 depth steps)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "recursion":
        return None
    if method == "auto" and (traced or jnp.finfo(dtype).bits > 32):
        return None
    layers = _layer_table(arch, np.float64)
    cap = tabulated.MAX_NODES if method == "table" else entries // 64
    values = tabulated.angle_table(kind, tuple(map(tuple, layers)), trained, cap, bool(all_depths))
    if values is None:
        if method == "table":
            raise ValueError(f"no table of <= {tabulated.MAX_NODES} + 1 nodes interpolates this kernel to "
                             f"{tabulated.TOL:g} of its largest value; use method='recursion'")
        return None
    return values[[GET.index(g) for g in picked]].astype(dtype)


def _result(outs, get):
    """What the Gram-matrix entry points return for `get`: Kernel(nngp, ntk), or the one array."""
    return Kernel(*outs) if get is None else outs[0]


def _prepare(arch, x1, x2, trained):
    """Validated (arch, kind, trained, x1, x2) for the Gram-matrix entry points (`kernel`,
    reskernel.blocked): arch and trained checked, inputs validated and cast to a common
    float dtype, and the kernel's growth checked against that dtype's range."""
    arch, trained = check_arch(arch), check_trained(trained)
    x1, x2 = _checks.inputs(x1, x2)
    v1 = _checks.concrete(x1)
    log10_norm2 = 0.0 if v1 is None else 2 * math.log10(max(float(np.abs(v1).max()), 1e-300) * math.sqrt(x1.shape[1]))
    _check_range(arch, x1.dtype, log10_norm2)
    kind = "ffnet" if isinstance(arch, FeedForward) else "resnet"
    return arch, kind, trained, x1, x2


def kernel(arch, x1, x2=None, *, all_depths=False, trained="hidden", get=None, method="auto"):
    """Infinite-width NNGP and NTK of `arch` between the rows of x1 and x2.

    Args:
      arch: FeedForward(depth) or ResNet(depth, gamma | alpha | scales).
      x1: (n1, d) nonzero, finite inputs (any norm).
      x2: (n2, d), or None for x2 = x1 (symmetric; diagonal correlations exactly 1).
      all_depths: return every depth 1..L from the same single recursion pass. For a
        ResNet this is the family of nets truncated after l blocks, each keeping the
        branch scales of `arch` (a_l = L^-gamma of the full depth L, not l^-gamma);
        for per-depth alphas call `kernel` with `arch.with_depth(l)`.
      trained: "hidden" (default, Huang et al.: NNGP = readout trained, NTK = hidden
        layers; ResNet embedding A and readout v fixed) or "all" (standard NTK,
        every layer, as neural-tangents computes it).
      get: None for both kernels, or "nngp" / "ntk" for that one only, returned as an
        array (as neural-tangents' `get`); the other is then never written, which
        halves the output (and its time) of large all-depths calls.
      method: "auto" (default), "table" or "recursion". "table" runs the recursion
        once, in float64, on a grid of input angles and interpolates every entry (at
        every depth, with all_depths) from it (reskernel.tabulated: error <= 1e-6 of
        the kernel's largest value, checked for each table; a float32 depth-100 NTK of
        n = 4000 in ~0.2 s instead of ~0.45 s, compiled in ~0.08 s instead of ~0.25 s).
        "auto" uses it for float32 inputs outside the caller's jit/grad/vmap, with
        n1 n2 >= 16,384, when such a table exists (a 1000-layer FFNet has none); else the recursion runs.
        Interpolated kernels are not differentiable at identical inputs.
    Returns:
      Kernel(nngp, ntk), each (n1, n2), or (L, n1, n2) with all_depths; or the one array
      named by `get`. dtype follows the inputs (float64 when jax_enable_x64 is on and
      the inputs are float64).
    Memory: the outputs, plus (table) the n1 x n2 Gram matrix, or (one depth, recursion)
    the stacked tiles of rho_0 and of each output, about half an output each
    for symmetric kernels (n = 10,000 float32, both kernels: 0.8 GB of output, 1.7 GB
    peak). Larger than that: reskernel.blocked_kernel.
    """
    arch, kind, trained, x1, x2 = _prepare(arch, x1, x2, trained)
    picked = _check_get(get)
    symmetric = x2 is None
    angles = _angles(arch, kind, trained, picked, x1.dtype, x1.shape[0] * (x1 if symmetric else x2).shape[0],
                     method=method, all_depths=all_depths, traced=_checks.traced(x1, x2))
    outs = _kernel(x1, x1 if symmetric else x2, _layer_table(arch, x1.dtype), angles, kind=kind, depth=arch.depth,
                   trained=trained, all_depths=bool(all_depths), symmetric=symmetric, get=picked)
    return _result(outs, get)
