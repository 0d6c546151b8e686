"""Kernels of a family of nets at selected depths: FFNets of depths l, and ResNets of depth l
with their own branch scale alpha = l^-gamma (or a fixed alpha), each a separate network
(not the truncated nets of kernel(..., all_depths=True)). The depth study's kernels.

The same engine and the same float32 policy as reskernel.kernel: float32 kernels come from
the float64 tables (rows with ill-conditioned angles refined in float64), or, where no
table reaches its bound, from the recursion in float64; float64 kernels from the recursion
(FFNet: one pass to the largest depth, read at each requested depth; ResNet: each depth its
own recursion, cost sum(depths) layers).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import engine, general
from .analytic import Kernel, _check_get, compute, correlation_kernels, kind_of, plan, prepare
from .arch import FeedForward, ResNet, check_arch, check_trained
from .tiles import GET, correlations

__all__ = ["check_depths", "family_alphas", "depth_correlation_kernels", "depth_kernels"]


def check_depths(depths) -> np.ndarray:
    """Depths as a 1-d int64 array of integers >= 1 (non-empty); raises ValueError otherwise."""
    if isinstance(depths, (str, bytes)):
        raise TypeError(f"depths must be a sequence of ints >= 1, got a string {depths!r}")
    arr = np.atleast_1d(np.asarray(depths))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"depths must be a non-empty 1-d sequence of ints >= 1, got {depths!r}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))):
        raise ValueError(f"depths must be integers >= 1, got {depths!r}")
    arr = arr.astype(np.int64)
    if (arr < 1).any():
        raise ValueError(f"depths must be >= 1, got {int(arr.min())}")
    return arr


def family_alphas(family, depths) -> np.ndarray:
    """Branch scale of each depth's ResNet: l^-gamma, or the family's fixed alpha."""
    if family.scales is not None:
        raise ValueError("a ResNet with explicit per-block scales has no other depths; give gamma or alpha")
    if family.alpha is not None:
        return np.full(np.shape(depths), family.alpha)
    return np.asarray(depths, np.float64) ** (-family.gamma)


def _report(progress, layers, pending=None):
    """progress(layers), once `pending` (an array being computed) is ready."""
    if progress is not None:
        if pending is not None:
            pending.block_until_ready()
        progress(layers)


@functools.partial(jax.jit, static_argnames=("kind",))
def _advance(rho, q, h, count, *, kind):
    return engine.advance(kind, (rho, q), jnp.full_like(rho, h), count)


def _recursion_depths(family, rho0, uniq, trained, progress=None):
    """Normalized (nngp, ntk) at the sorted unique depths, each (len(uniq),) + rho0.shape.
    progress(layers) is called as each depth is done (after its computation finished)."""
    kind = kind_of(family)
    zero = jnp.zeros((), rho0.dtype)
    outs = []
    if kind == "ffnet":
        rho, q = engine.initial(kind, rho0, trained)
        q = q + jnp.zeros_like(rho0)
        prev = 0
        for depth in uniq:
            rho, q = _advance(rho, q, zero, int(depth - prev), kind=kind)   # rho: the FFNet's u = 1 - rho
            outs.append(engine.read(kind, rho, q, 1.0, trained))
            _report(progress, int(depth) - prev, rho)
            prev = int(depth)
    else:
        for depth, a in zip(uniq, family_alphas(family, uniq)):
            rho, q = engine.initial(kind, rho0, trained)
            h = jnp.asarray(a * a / (1 + a * a), rho0.dtype)
            rho, q = _advance(rho, q + jnp.zeros_like(rho0), h, int(depth), kind=kind)
            outs.append(engine.read(kind, rho, q, float((1 + a * a) ** int(depth)), trained))
            _report(progress, int(depth), rho)
    return tuple(jnp.stack(v) for v in zip(*outs))


def depth_correlation_kernels(family, rho0, depths, *, trained="hidden", progress=None) -> Kernel:
    """Normalized NNGP/NTK (unit inputs) at each requested depth, any-shape rho0, in its dtype.

    family: FeedForward (its depth is ignored) or ResNet with gamma or alpha (depth ignored;
    each depth l its own alpha = l^-gamma). Returns (k,) + rho0.shape, depths in the order
    given (duplicates allowed). progress: None, or a callable of the number of layers just
    computed (e.g. a tqdm bar's update).
    """
    family, trained = check_arch(family), check_trained(trained)
    depths = check_depths(depths)
    rho0 = jnp.asarray(rho0)
    if not jnp.issubdtype(rho0.dtype, jnp.floating):
        rho0 = rho0.astype(jnp.result_type(float))
    values = _checks.concrete(rho0)
    if values is not None and not (np.abs(values) <= 1).all():
        raise ValueError("rho0 must hold correlations in [-1, 1]")
    if isinstance(family, ResNet):
        family_alphas(family, depths[:1])
    uniq, inverse = np.unique(depths, return_inverse=True)
    if not family.default:
        outs = [correlation_kernels(_member(family, d), rho0, trained=trained) for d in uniq]
        for d in uniq:
            _report(progress, int(d))
        nngp, ntk = jnp.stack([o.nngp for o in outs]), jnp.stack([o.ntk for o in outs])
    else:
        nngp, ntk = _recursion_depths(family, rho0, uniq, trained, progress)
    idx = jnp.asarray(inverse.reshape(-1))
    return Kernel(nngp[idx], ntk[idx])


def _member(family, depth):
    """The family's net of the given depth (same activation and variances)."""
    return family.with_depth(int(depth))


def depth_kernels(family, x1, x2=None, depths=(1,), *, trained="hidden", get=None, method="auto",
                  progress=None) -> Kernel:
    """NNGP/NTK Gram matrices of `family` at the requested depths, (k, n1, n2).

    Equal to stacking reskernel.kernel(member(l), x1, x2) over l in depths, with the same
    methods and float32 policy (see reskernel.kernel), in one pass where possible: float64
    FFNets by a single recursion to max(depths); ResNet(gamma) each depth with its own
    alpha = l^-gamma. Memory: k kernels, never all max(depths) of them. get: as in
    reskernel.kernel. progress: None, or a callable of the number of layers just done; the
    calls add up to max(depths) (FFNet) or sum(depths) (ResNet).
    """
    family = check_arch(family)
    arch, trained, x1, x2, _ = prepare(family, x1, x2, trained)
    depths = check_depths(depths)
    if isinstance(family, ResNet):
        family_alphas(family, depths[:1])
    picked = _check_get(get)
    uniq, inverse = np.unique(depths, return_inverse=True)
    found = {}
    if not family.default and isinstance(family, FeedForward):  # general FFNets: one pass, every depth read
        deepest = _member(family, uniq[-1])
        reads = tuple(int(d) for d in uniq)
        p = plan(deepest, trained, picked, x1, x2, method=method, all_depths=False, reads=reads)
        outs = (compute(deepest, trained, picked, x1, x2, p, all_depths=True) if p.angles is not None else
                general.general_kernel(deepest, trained, picked, x1, x2, reads=reads, norm=p.norm))
        found = {d: tuple(o[j] for o in outs) for j, d in enumerate(reads)}
        _report(progress, reads[-1])
    elif not family.default:  # general ResNets (reskernel.core.general): each depth its own alpha
        for d in uniq:
            member = _member(family, d)
            p = plan(member, trained, picked, x1, x2, method=method, all_depths=False)
            found[int(d)] = compute(member, trained, picked, x1, x2, p, all_depths=False)
            _report(progress, int(d))
    elif isinstance(family, FeedForward):
        p = plan(FeedForward(int(uniq[-1])), trained, picked, x1, x2, method=method, all_depths=False,
                 reads=tuple(int(d) for d in uniq))
        if p.angles is not None:
            outs = compute(FeedForward(int(uniq[-1])), trained, picked, x1, x2, p, all_depths=True)
            found = {int(d): tuple(o[j] for o in outs) for j, d in enumerate(uniq)}
            _report(progress, int(uniq[-1]))
    else:
        for d in uniq:
            member = _member(family, d)
            p = plan(member, trained, picked, x1, x2, method=method, all_depths=False)
            if p.angles is not None:
                found[int(d)] = compute(member, trained, picked, x1, x2, p, all_depths=False)
                _report(progress, int(d))
    rest = [int(d) for d in uniq if int(d) not in found]
    if rest:  # the recursion: in float64 for concrete float32 inputs (method "auto"), as reskernel.kernel
        single = jnp.finfo(x1.dtype).bits <= 32
        dtype = x1.dtype if method == "recursion" or _checks.traced(x1, x2) or not single else jnp.float64
        for d, vals in zip(rest, zip(*_gram_recursion(family, x1, x2, rest, trained, picked, dtype, progress))):
            found[d] = vals
    stacked = tuple(jnp.stack([found[int(d)][g] for d in uniq]) for g in range(len(picked)))
    idx = jnp.asarray(inverse.reshape(-1))
    outs = tuple(o[idx] for o in stacked)
    return Kernel(*outs) if get is None else outs[0]


def _gram_recursion(family, x1, x2, depths, trained, picked, dtype, progress=None):
    """The recursion at the Gram level in `dtype` (float64 for float32 inputs without a table),
    on the upper triangle only when symmetric; each (k, n1, n2) in x1's dtype."""
    out_dtype = x1.dtype
    with enable_x64(jnp.dtype(dtype) == jnp.float64):
        a = jnp.asarray(np.asarray(x1) if _checks.concrete(x1) is not None else x1, dtype)
        b = None if x2 is None else jnp.asarray(np.asarray(x2) if _checks.concrete(x2) is not None else x2, dtype)
        rho, n1, n2 = correlations(a, b)
        if b is None:
            iu = np.triu_indices(a.shape[0])
            k = depth_correlation_kernels(family, rho[iu], depths, trained=trained, progress=progress)
        else:
            k = depth_correlation_kernels(family, rho, depths, trained=trained, progress=progress)
        norms = n1[:, None] * n2[None, :]
        outs = []
        for g in picked:
            v = k[GET.index(g)]
            if b is None:
                full = jnp.zeros((len(depths),) + rho.shape, dtype).at[:, iu[0], iu[1]].set(v)
                v = full.at[:, iu[1], iu[0]].set(v)
            outs.append((v * norms).astype(out_dtype))
        return outs
