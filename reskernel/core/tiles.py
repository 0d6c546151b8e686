"""The Gram-matrix kernels, tile by tile or interpolated: the compiled paths behind
reskernel.kernel (reskernel.analytic) and reskernel.blocked.

Recursion: each tile of rho_0 runs through every layer of the engine (reskernel.core.engine)
in cache, one fused loop per layer (compile time independent of depth), is scaled back by
|x| |x'| and placed in the output; symmetric kernels compute the tiles above the diagonal
and the diagonal tiles in pairs (one tile holds two triangles). Tables: the input angle of
every entry, then one interpolation (reskernel.core.tabulated). Inputs are normalized row
by row before the Gram product, so the kernels of rows of any norm within the dtype's range
are computed without overflow or underflow (the ReLU kernels are homogeneous of degree 1 in
each input; |x| |x'| is applied last).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from . import engine, tabulated
from .arccos import arccos

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


def correlations(x1, x2=None):
    """rho_0 = <x, x'> / (|x| |x'|) clipped to [-1, 1], shape (n1, n2), and the norms (n1,), (n2,).

    When x2 is None the diagonal is exactly 1. float64: correlations within 4 ulp of +-1 are
    set to +-1 (`_rho`). float32: nothing is rounded to +-1; the product's rounding (~1e-7)
    makes the angle of nearly parallel or antipodal rows uncertain by ~1e-7 / sin(theta), and
    reskernel.kernel recomputes the entries where that matters in float64
    (reskernel.core.precise).
    """
    y = x1 if x2 is None else x2
    n1 = jnp.linalg.norm(x1, axis=-1)
    n2 = n1 if x2 is None else jnp.linalg.norm(y, axis=-1)
    rho = _rho(jnp.matmul(x1, y.T, precision=jax.lax.Precision.HIGHEST), n1[:, None] * n2[None, :])
    if x2 is None:
        rho = jnp.where(jnp.eye(x1.shape[0], dtype=bool), jnp.ones_like(rho), rho)
    return rho, n1, n2


def _stepper(kind, rho0, sched, trained):
    """The engine's recursion on rho0 (any shape) as (init, xs, step, read) for lax.scan:
    `step(state, x)` advances one layer, `read(state, x)` gives the normalized (nngp, ntk)
    after it; xs = sched, the (depth, 2) rows (h_l, s_l) of engine.schedule in rho0's dtype.
    Per entry and layer: one angle and sine (`angle_sine`: two square roots, one polynomial)
    and the layer map's ~10 multiplies and adds."""
    def step(state, x):
        return jax.lax.complex(*engine.advance_layer(kind, *_unpack(state), x[0]))

    def read(state, x):
        return engine.read(kind, *_unpack(state), x[1], trained)

    first, q = engine.initial(kind, rho0, trained)
    return jax.lax.complex(first, q + jnp.zeros_like(first)), sched, step, read


def _unpack(state):
    # The state (rho or u, q) travels as one complex array, rho + i q (no complex
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


def recursion(kind, rho0, sched, trained, all_depths):
    """Normalized (nngp, ntk) of the correlations rho0 (any shape), or (L,) + shape."""
    init, xs, step, read = _stepper(kind, rho0, sched, trained)
    if all_depths:
        def body(state, x):
            state = _stored(step(state, x))
            return state, read(state, x)
        return jax.lax.scan(body, init, xs)[1]
    state = jax.lax.scan(lambda st, x: (step(st, x), None), init, xs)[0]
    return read(state, _last(xs))


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
    """Correlations gram / norms, clipped to [-1, 1]. float64 only: snapped to +-1 within 4 ulp
    (parallel or antipodal rows come out as +-(1 - 2 ulp), an angle error of sqrt(ulp) = 1.5e-8;
    the snap moves only rows that differ by less than ~1e-15 relative). float32 is not snapped
    (4 ulp there would merge rows ~1e-3 rad apart); see `correlations`."""
    rho = jnp.clip(gram / norms, -1.0, 1.0)
    if jnp.finfo(rho.dtype).bits <= 32:
        return rho
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


def _fused(x1, x2, table, angles=None, band=None, *, kind, depth, trained, all_depths, symmetric, tile, get=GET):
    """The kernels named by `get` (a sub-tuple of GET), tile by tile: each tile of rho_0 runs
    through the whole depth recursion in one scan, its state in cache; or, given `angles` (the
    (len(get), [L,] 4, M) tables of reskernel.tabulated) and `band`, every entry is
    interpolated, NaN where its row is to be refined (reskernel.core.precise).
    Tiles have edge <= tile, balanced (_edge); the last rows are padded and sliced off."""
    if angles is not None:
        return _interpolated(x1, x2, angles, band, symmetric)
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


def _interpolated(x1, x2, angles, band, symmetric):
    """One depth, or every depth, from tables (reskernel.tabulated): rho_0 from one Gram product
    (`correlations`), each entry interpolated at its angle (for each depth), times |x| |x'|; one
    elementwise pass after the product (no tiles: the product is the cost, and computed whole it
    needs no gathers, which also keeps XLA's compilation at ~0.08 s instead of ~0.2 s).
    Symmetric: the diagonal is exactly rho_0 = 1; off it the output is as symmetric as the
    backend's matmul of x with x^T (bitwise on XLA:CPU, tested).

    Entries whose correlation lies in the ill-conditioned band rho > band[0] or rho < band[1]
    (reskernel.core.precise), off the diagonal of a symmetric kernel, are written as NaN: the
    caller recomputes their rows in float64 (a NaN marker costs one select in the same pass; a
    row reduction here made XLA's compilation 0.15 s longer)."""
    y = x1 if symmetric else x2
    m1 = jnp.linalg.norm(x1, axis=-1)
    m2 = m1 if symmetric else jnp.linalg.norm(y, axis=-1)
    norms = m1[:, None] * m2[None, :]
    rho = jnp.clip(jnp.matmul(x1, y.T, precision=jax.lax.Precision.HIGHEST) / norms, -1.0, 1.0)
    flag = (rho > band[0]) | (rho < band[1])
    if symmetric:
        eye = jnp.eye(rho.shape[0], dtype=bool)
        flag = flag & ~eye
        rho = jnp.where(eye, jnp.ones_like(rho), rho)
    theta = arccos(rho)
    return tuple(jnp.where(flag, jnp.nan, tabulated.evaluate(a, theta) * norms) for a in angles)


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
def _kernel(x1, x2, table, angles=None, band=None, *, kind, depth, trained, all_depths, symmetric, tile=TILE, get=GET):
    """The outputs named by `get`, a tuple (with tables: NaN where rows are to be refined)."""
    return _fused(x1, x2, table, angles, band, kind=kind, depth=depth, trained=trained, all_depths=all_depths,
                  symmetric=symmetric, tile=tile, get=get)
