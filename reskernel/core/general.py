"""Gram-matrix kernels of general architectures: any activation, weight and bias variances.

The engine's general maps (reskernel.core.engine.general_*) run on the unnormalized pair state,
tile by tile as in reskernel.core.tiles, with each input's diagonal computed first on the host
in float64 (`engine.general_diagonal`): the variance the activation sees in every layer gives
each row's terms (activations.Activation.row_terms), which travel with the tile through the
depth. Fast path: when every input has the same norm (e.g. standardized images) every row's
terms are the same, and one row of terms serves all.

Precision: concrete inputs run in float64 and are rounded to the inputs' dtype at the end;
under the caller's jit/grad the recursion runs in the inputs' dtype (closed-form activations
only: numerical ones need concrete inputs for their series).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import engine
from .arch import FeedForward, ResNet
from .tiles import GET, TILE, _edge, _jit

__all__ = ["kind_of", "terms", "general_kernel", "correlation_kernels", "check_values"]


def kind_of(arch) -> str:
    return "ffnet" if isinstance(arch, FeedForward) else "resnet"


def _a2(arch, dtype):
    depth = arch.depth
    a = np.asarray(arch.branch_scales, np.float64) if isinstance(arch, ResNet) else np.zeros(depth)
    return (a * a).astype(dtype)


def terms(arch, sq1, sq2=None, trained="hidden"):
    """Host float64: the row terms of x1's and x2's inputs (sq: squared norms, (n,)), leaves
    (L, n, ...) or (L, 1, ...) when every input of both shares one norm (the fast path), and
    the largest |entry| of the output kernels (from the diagonals, by Cauchy-Schwarz)."""
    kind = kind_of(arch)
    sq1 = np.asarray(sq1, np.float64)
    sq2 = sq1 if sq2 is None else np.asarray(sq2, np.float64)
    both = np.concatenate([sq1, sq2])
    same = both.max() - both.min() <= 1e-15 * both.max()
    use = both[:1] if same else both
    seen, nngp, ntk = engine.general_diagonal(kind, arch, use, trained)
    top = float(max(np.abs(nngp).max(), np.abs(ntk).max()))
    rows = arch.activation.row_terms(seen) if not arch.activation.exact else (seen,)
    if same:
        return rows, rows, top
    n1 = sq1.shape[0]
    return (tuple(r[:, :n1] for r in rows), tuple(r[:, n1:] for r in rows), top)


def largest(arch, sq, trained="hidden"):
    """The largest |entry| of the output kernels of inputs of squared norms sq (Cauchy-Schwarz:
    the largest diagonal entry of the NNGP or NTK at the last depth, or any depth before)."""
    _, nngp, ntk = engine.general_diagonal(kind_of(arch), arch, np.asarray(sq, np.float64), trained)
    return float(max(np.abs(nngp).max(), np.abs(ntk).max()))


def check_values(arch, top, dtype):
    """Raise when the kernel's largest entry leaves the range of dtype."""
    info = jnp.finfo(dtype)
    if not np.isfinite(top) or top > float(info.max) / 16:
        raise ValueError(f"kernel entries of {arch} reach {top:.3g}, beyond the range of {jnp.dtype(dtype).name}: "
                         "the diagonal grows with depth (smaller variances or branch scales, rescaled inputs, "
                         "or float64)")


def _slice_rows(leaf, start, size, axis):
    """The rows start..start+size of a terms leaf (L, n, ...), or the one shared row, with the
    row axis moved to `axis` (1: rows of a tile; 2: its columns) of (L, t1, t2, ...)."""
    if leaf.shape[1] != 1:
        leaf = jax.lax.dynamic_slice_in_dim(leaf, start, size, axis=1)
    return jnp.expand_dims(leaf, 2 if axis == 1 else 1)


def _snap(gram, sq1, sq2):
    """Gram entries within 4 ulp of +-|x| |x'| set to it: identical (or antipodal) rows then
    start, and stay, exactly on their diagonal (the ReLU family's duals have a square-root
    singularity there)."""
    bound = jnp.sqrt(sq1[:, None] * sq2[None, :])
    near = jnp.abs(gram) >= (1 - 4 * jnp.finfo(gram.dtype).eps) * bound
    return jnp.where(near, jnp.sign(gram) * bound, gram)


class Layers(NamedTuple):
    """What the engine's general maps read of an arch: its activation (static under jit) and its
    variances (traced: one compilation serves every w_var, b_var, in_var, out_var)."""

    activation: object
    w_var: object
    b_var: object
    in_var: object
    out_var: object


def _variances(arch):
    return np.array([arch.w_var, arch.b_var, arch.in_var, getattr(arch, "out_var", 1.0)], np.float64)


def _tiles(x1p, x2p, t1s, t2s, a2, geometry, *, kind, arch, trained, symmetric, reads, pick):
    """Every tile through the depth; reads: None (the last depth) or the sorted depths whose
    kernels are written, (R, n1, n2). Closed-form activations (t1s = t2s = ()): each tile also
    carries its rows' and columns' diagonals through the same layer map, so an entry between
    identical inputs goes through exactly the arithmetic of their diagonal (and stays there);
    numerical activations read the host's row terms t1s, t2s (leaves (L, n, ...))."""
    te1, te2, nb1, nb2 = geometry
    depth = a2.shape[0]
    ii, jj = np.triu_indices(nb1) if symmetric else np.divmod(np.arange(nb1 * nb2), nb2)
    ii, jj = jnp.asarray(ii, jnp.int32), jnp.asarray(jj, jnp.int32)
    if symmetric:
        full = jnp.matmul(x1p, x1p.T, precision=jax.lax.Precision.HIGHEST)
        full = (full + full.T) / 2
        sq1 = sq2 = jnp.diagonal(full)

        def gram(r0, c0):
            return jax.lax.dynamic_slice(full, (r0, c0), (te1, te2))
    else:
        sq1, sq2 = jnp.sum(x1p * x1p, axis=1), jnp.sum(x2p * x2p, axis=1)

        def gram(r0, c0):
            a = jax.lax.dynamic_slice_in_dim(x1p, r0, te1)
            b = jax.lax.dynamic_slice_in_dim(x2p, c0, te2)
            return jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)

    shape = (() if reads is None else (len(reads),)) + (nb1 * te1, nb2 * te2)
    every = reads is not None and len(reads) == depth
    slots = np.full(depth, -1, np.int32)
    if reads is not None:
        slots[np.asarray(reads) - 1] = np.arange(len(reads))
    # distinct zero arrays (as in reskernel.core.tiles: one shared zeros would be copied)
    zeros = tuple(jnp.zeros(shape, x1p.dtype) if q == 0 else jnp.broadcast_to(0 * x1p[0, 0], shape)
                  for q in range(len(pick)))
    exact = not t1s

    def one(k, outs):
        r0, c0 = ii[k] * te1, jj[k] * te2
        s1 = jax.lax.dynamic_slice_in_dim(sq1, r0, te1)
        s2 = jax.lax.dynamic_slice_in_dim(sq2, c0, te2)
        pair = engine.general_initial(kind, arch, _snap(gram(r0, c0), s1, s2), trained)
        if exact:
            diags = (engine.general_initial(kind, arch, s1, trained)[0][:, None],
                     engine.general_initial(kind, arch, s2, trained)[0][None, :])
            rows = cols = ()
        else:
            diags = ()
            rows = tuple(_slice_rows(t, r0, te1, 1) for t in t1s)
            cols = tuple(_slice_rows(t, c0, te2, 2) for t in t2s)

        def layer(carry, lx):
            (pair, diags), outs = carry
            slot, r, c, h = lx
            if exact:
                r, c = ((engine.general_seen(kind, arch, d),) for d in diags)
                diags = tuple(engine.general_layer(kind, arch, (d, 0.0 * d), t, t, h)[0] for d, t in zip(diags, (r, c)))
            pair = engine.general_layer(kind, arch, pair, r, c, h)
            if reads is not None:
                pair = jax.lax.optimization_barrier(pair)
                if every:
                    outs = write(outs, engine.general_read(kind, arch, pair, trained), r0, c0, slot)
                else:
                    outs = jax.lax.cond(slot >= 0, lambda o: write(o, engine.general_read(kind, arch, pair, trained),
                                                                   r0, c0, slot), lambda o: o, outs)
            return ((pair, diags), outs), None

        (pair, _), outs = jax.lax.scan(layer, ((pair, diags), outs), (jnp.asarray(slots), rows, cols, a2))[0]
        if reads is None:
            outs = write(outs, engine.general_read(kind, arch, pair, trained), r0, c0)
        return outs

    def write(outs, vals, r0, c0, l=None):
        """The tile (r0, c0) of each picked kernel (and, symmetric, its mirror (c0, r0))."""
        new = []
        for o, p in zip(outs, pick):
            v = vals[p] if l is None else vals[p][None]
            at = (r0, c0) if l is None else (l, r0, c0)
            o = jax.lax.dynamic_update_slice(o, v, at)
            if symmetric:
                mirror = (c0, r0) if l is None else (l, c0, r0)
                o = jax.lax.dynamic_update_slice(o, jnp.swapaxes(v, -1, -2), mirror)
            new.append(o)
        return tuple(new)

    return jax.lax.fori_loop(0, ii.shape[0], one, zeros)


@_jit(("kind", "activation", "trained", "reads", "symmetric", "tile", "get"))
def _general(x1, x2, t1s, t2s, a2, variances, *, kind, activation, trained, reads, symmetric, tile, get):
    arch = Layers(activation, *(variances[i] for i in range(4)))
    n1, n2 = x1.shape[0], x2.shape[0]
    te1 = _edge(n1, tile)
    te2 = te1 if symmetric else _edge(n2, tile)
    nb1, nb2 = -(-n1 // te1), -(-n2 // te2)

    def pad(x, ts, rows):
        extra = rows - x.shape[0]
        if extra == 0:
            return x, ts
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, x.shape[1]))])
        ts = tuple(t if t.shape[1] == 1 else
                   jnp.concatenate([t, jnp.broadcast_to(t[:, :1], (t.shape[0], extra) + t.shape[2:])], axis=1)
                   for t in ts)
        return x, ts

    x1p, t1p = pad(x1, t1s, nb1 * te1)
    x2p, t2p = (x1p, t1p) if symmetric else pad(x2, t2s, nb2 * te2)
    pick = tuple(GET.index(g) for g in get)
    outs = _tiles(x1p, x2p, t1p, t2p, a2, (te1, te2, nb1, nb2), kind=kind, arch=arch, trained=trained,
                  symmetric=symmetric, reads=reads, pick=pick)
    return tuple(o[..., :n1, :n2] for o in outs)


def general_kernel(arch, trained, picked, x1, x2, *, all_depths=False, reads=None, tile=TILE, norm=None):
    """The kernels `picked` of a general arch between x1 and x2 (None: symmetric), a tuple of
    arrays in x1's dtype, (n1, n2); with all_depths (L, n1, n2); with reads, a sorted tuple of
    depths, (len(reads), n1, n2) from the same pass. Concrete inputs: float64 inside (module doc).
    norm: None, or a squared norm q0 that every row is projected to before the recursion (one
    row of terms serves all), the kernels then scaled by |x| |x'| / q0 (float32 inputs whose
    norms agree to within the tables' check: `common_norm`, `norm_deviation`)."""
    symmetric = x2 is None
    if all_depths:
        reads = tuple(range(1, arch.depth + 1))
    reads = None if reads is None else tuple(int(r) for r in reads)
    kw = dict(kind=kind_of(arch), activation=arch.activation, trained=trained, reads=reads, symmetric=symmetric,
              tile=tile, get=picked)
    exact = arch.activation.exact
    if _checks.traced(x1, x2):
        if not exact:
            raise ValueError(f"activation {arch.activation.label} has numerical duals, computed from concrete "
                             "inputs: call reskernel.kernel outside jit/grad/vmap, or use a closed-form activation")
        return _general(x1, x1 if symmetric else x2, (), (), _a2(arch, x1.dtype), _variances(arch).astype(x1.dtype),
                        **kw)
    a = np.asarray(x1, np.float64)
    b = a if symmetric else np.asarray(x2, np.float64)
    sq1 = np.einsum("ij,ij->i", a, a)
    sq2 = sq1 if symmetric else np.einsum("ij,ij->i", b, b)
    if norm is not None:
        scale1, scale2 = np.sqrt(sq1 / norm), np.sqrt(sq2 / norm)
        a = a / scale1[:, None]
        b = a if symmetric else b / scale2[:, None]
        sq1 = np.full_like(sq1, norm)
        sq2 = sq1 if symmetric else np.full_like(sq2, norm)
    t1s, t2s, top = terms(arch, sq1, None if symmetric else sq2, trained)
    check_values(arch, top, x1.dtype)
    if exact:
        t1s = t2s = ()
    _check_memory(arch, t1s, t2s, symmetric)
    with enable_x64():
        outs = _general(jnp.asarray(a), jnp.asarray(b), tuple(map(jnp.asarray, t1s)), tuple(map(jnp.asarray, t2s)),
                        jnp.asarray(_a2(arch, np.float64)), jnp.asarray(_variances(arch)), **kw)
        outs = tuple(np.asarray(o) for o in outs)
    if norm is not None:
        outs = tuple(o * (scale1[:, None] * scale2[None, :]) for o in outs)
    return tuple(o.astype(x1.dtype) for o in outs)


# The most memory the host's row terms of a numerical activation may take (they are copied to the
# device once more): beyond it the inputs' norms differ too much for one shared row.
TERMS_BYTES = 4 << 30


def _check_memory(arch, t1s, t2s, symmetric):
    """Raise, before allocating on the device, when the row terms (L, n, K) exceed TERMS_BYTES."""
    leaves = tuple(t1s) + (() if symmetric or t2s is t1s else tuple(t2s))
    size = sum(int(t.nbytes) for t in leaves)
    if size > TERMS_BYTES:
        depth, rows, k = t1s[1].shape
        raise ValueError(f"the numerical activation {arch.activation.label} needs {size / 2 ** 30:.1f} GiB of series "
                         f"terms ({depth} layers x {rows} inputs x {k} terms, for inputs of different norms), beyond "
                         f"{TERMS_BYTES / 2 ** 30:.0f} GiB: give every input one norm (e.g. per-image "
                         "standardization or the unit sphere: one row of terms serves all), or fewer inputs per call "
                         "(reskernel.blocked_kernel), or fewer layers")


def common_norm(x1, x2=None):
    """(q0, lo, hi): the squared norm the rows of x1 and x2 share (their median, float32
    rounded: a stable table key) and their smallest and largest; None when they spread by more
    than SPREAD relative (`norm_deviation` then could not pass)."""
    sq = [np.einsum("ij,ij->i", v, v, dtype=np.float64) for v in (x1, x2) if v is not None]
    sq = np.concatenate([np.asarray(v) for v in sq])
    lo, hi = float(sq.min()), float(sq.max())
    if not (hi > 0 and hi - lo <= SPREAD * hi):
        return None
    return float(np.float32(np.median(sq))), lo, hi


# Largest relative spread of the squared norms tried by the tables' fast path (float32 rows
# normalized in float32 spread by ~4e-7 at n = 4000; each case is checked by `norm_deviation`).
SPREAD = 2.0 ** -16


@functools.lru_cache(maxsize=64)   # warm calls on the same inputs: for tanh ~1 s per call otherwise
def norm_deviation(arch, trained, reads, q0, lo, hi) -> float:
    """How far the kernels of inputs of squared norms lo and hi are from the table of q0, both
    divided by their squared norm (the tables' pass multiplies by |x| |x'|): the largest
    difference on 257 correlations cos(pi (k/256)^2), relative to the largest value."""
    phi = np.arange(257) / 256
    rho = np.cos(np.pi * phi * phi)
    rho[0], rho[-1] = 1.0, -1.0
    base = table_values(arch, q0, trained, reads)(rho)
    scale = np.abs(base).max(axis=-1, keepdims=True)
    return float(max(np.max(np.abs(table_values(arch, q, trained, reads)(rho) - base) / scale) for q in (lo, hi)))


def table_values(arch, q0, trained, reads=None):
    """values(rho) for reskernel.core.tabulated.value_table: the (nngp, ntk) of inputs of squared
    norm q0 at correlations rho (N,), divided by q0 (the tables' pass multiplies by |x| |x'|),
    (2, N) or (2, R, N) for the depths `reads`; the general maps in NumPy float64."""
    kind = kind_of(arch)
    a2 = _a2(arch, np.float64)
    wanted = None if reads is None else set(reads)

    def values(rho):
        seen = engine.general_diagonal(kind, arch, np.array([q0]), trained)[0]
        rows = arch.activation.row_terms(seen)
        state = engine.general_initial(kind, arch, q0 * np.asarray(rho, np.float64), trained)
        out = []
        for layer in range(arch.depth):
            t = tuple(r[layer] for r in rows)
            state = engine.general_layer(kind, arch, state, t, t, a2[layer])
            if wanted is not None and layer + 1 in wanted:
                out.append(engine.general_read(kind, arch, state, trained))
        if wanted is None:
            return np.stack(engine.general_read(kind, arch, state, trained)) / q0
        return np.stack([np.stack(v) for v in zip(*out)]) / q0

    return values


def correlation_kernels(arch, rho0, trained, all_depths):
    """(nngp, ntk) of unit-norm inputs at correlations rho0 (any shape S): ([L,] + S) arrays in
    rho0's dtype (float64 inside for concrete rho0)."""
    flat = jnp.reshape(rho0, (1, -1)) if rho0.ndim else jnp.reshape(rho0, (1, 1))
    t1s, t2s, top = terms(arch, np.ones(1), trained=trained)
    check_values(arch, top, rho0.dtype)
    kind = kind_of(arch)

    def run(rho, t1s, t2s, a2):
        state = engine.general_initial(kind, arch, rho, trained)
        t1s = tuple(t[:, :, None] for t in t1s)
        t2s = tuple(t[:, None] for t in t2s)

        def layer(state, lx):
            r, c, h = lx
            state = engine.general_layer(kind, arch, state, r, c, h)
            return state, engine.general_read(kind, arch, state, trained)

        state, reads = jax.lax.scan(layer, state, (t1s, t2s, a2))
        return reads if all_depths else engine.general_read(kind, arch, state, trained)

    dtype = rho0.dtype
    with enable_x64():
        outs = jax.jit(run)(jnp.asarray(np.asarray(flat), jnp.float64), tuple(map(jnp.asarray, t1s)),
                            tuple(map(jnp.asarray, t2s)), jnp.asarray(_a2(arch, np.float64)))
        shape = ((arch.depth,) if all_depths else ()) + rho0.shape
        return tuple(np.asarray(o).reshape(shape).astype(dtype) for o in outs)
