"""Analytic infinite-width NNGP and NTK: the public kernel functions.

Layers (see docs/conventions.md for the derivations):
  1. arc-cosine maps (reskernel.core.arccos) and the layer maps on the normalized state
     (reskernel.core.engine: one definition of each layer, used by every path below);
  2. `correlation_kernels`: the depth recursion, elementwise on any array of input
     correlations rho_0, one `lax.scan` over depth;
  3. `kernel`: Gram-matrix level (reskernel.core.tiles). float32: every entry interpolated
     from a float64 table of the kernel as a function of the input angle
     (reskernel.core.tabulated), the rows with ill-conditioned angles recomputed in float64
     (reskernel.core.precise); where no table reaches its bound, the recursion in float64.
     float64 (or under the caller's jit/grad, or method="recursion"): the recursion in the
     inputs' dtype, tile by tile.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import engine, general, precise, tabulated
from .arch import FeedForward, ResNet, check_arch, check_trained
from .conv_arch import ConvNet, ConvResNet
from .tiles import GET, TILE, _jit, _kernel, correlations, recursion

__all__ = ["Kernel", "kernel", "correlation_kernels", "correlations", "METHODS"]


class Kernel(NamedTuple):
    """NNGP and NTK of the same shape: (n1, n2), or (depth, n1, n2) for all depths."""

    nngp: object
    ntk: object


def kind_of(arch) -> str:
    return "ffnet" if isinstance(arch, FeedForward) else "resnet"


def schedule(arch, dtype) -> np.ndarray:
    """engine.schedule(arch) as a NumPy array of dtype (a NumPy table: jnp.asarray here would
    cost a compilation on first use)."""
    return engine.schedule(arch).astype(np.dtype(dtype))


@_jit(("kind", "depth", "trained", "all_depths"))
def _correlation_kernels(rho0, sched, *, kind, depth, trained, all_depths):
    return recursion(kind, rho0, sched, trained, all_depths)


def _growth_log10(arch) -> float:
    """log10 of the largest normalized kernel value: prod_l (1 + a_l^2) (ResNet) times the
    depth + 2 terms an NTK can sum."""
    growth = 0.0
    if isinstance(arch, ResNet):
        growth = sum(math.log1p(a * a) for a in arch.branch_scales) / math.log(10.0)
    return growth + math.log10(arch.depth + 2.0)


def _check_range(arch, dtype, norms=((1.0, 1.0), (1.0, 1.0))):
    """Raise when the kernel's entries leave the dtype's normal range, or the rows of one input
    span more than 2^50 in norm (their products in the Gram matrix would underflow). norms:
    (min, max) row norms of x1 and x2; entries are ~ |x| |x'| times the normalized kernel."""
    info = jnp.finfo(dtype)
    (lo1, hi1), (lo2, hi2) = norms
    for name, (lo, hi) in (("x1", norms[0]), ("x2", norms[1])):
        if hi > 2.0 ** 50 * lo:
            raise ValueError(f"the rows of {name} have norms from {lo:.3g} to {hi:.3g}, a spread beyond 2^50: "
                             "their products in the Gram matrix cannot all be represented; rescale the rows")
    growth = _growth_log10(arch)
    top = growth + math.log10(hi1) + math.log10(hi2)
    if top > math.log10(float(info.max)) - 1:
        cause = []
        if isinstance(arch, ResNet) and growth > 3:
            cause.append(f"the ResNet's diagonal grows like prod_l (1 + a_l^2) = 10^{growth:.0f} over {arch.depth} "
                         "blocks (use gamma >= 1/2, a_l = depth^-gamma, or smaller branch scales)")
        if math.log10(hi1) + math.log10(hi2) > 1:
            cause.append(f"the inputs' norms reach {hi1:.3g} and {hi2:.3g} (the kernels scale like |x| |x'|: "
                         "rescale the inputs)")
        raise ValueError(f"kernel entries would reach ~10^{top:.0f}, beyond the range of {jnp.dtype(dtype).name} "
                         f"(10^{math.log10(float(info.max)):.0f}): " + "; ".join(cause or ["use float64"]))
    if math.log10(lo1) + math.log10(lo2) < math.log10(float(info.tiny)) + 1:
        raise ValueError(f"the inputs' norms go down to {lo1:.3g} and {lo2:.3g}: kernel entries ~|x| |x'| would fall "
                         f"below the smallest normal {jnp.dtype(dtype).name} ({float(info.tiny):.3g}) and lose their "
                         "precision; rescale the inputs (K(c x, x') = c K(x, x') for c > 0) or use float64")


def correlation_kernels(arch, rho0, *, trained="hidden", all_depths=False) -> Kernel:
    """Normalized kernels as functions of the input correlation.

    Args:
      arch: FeedForward or ResNet.
      rho0: array of correlations in [-1, 1], any shape S (values outside, or NaN, raise).
      trained: "hidden" (paper: hidden layers) or "all" (every layer, as in neural-tangents).
      all_depths: True for a leading axis of depths 1..L.
    Returns:
      Kernel(nngp, ntk) of shape S, or (L,) + S, for unit-norm inputs; multiply by
      |x| |x'| for other norms. The recursion runs in rho0's dtype.
    """
    arch, trained = check_arch(arch), check_trained(trained)
    all_depths = _checks.boolean("all_depths", all_depths)
    rho0 = jnp.asarray(rho0)
    if not jnp.issubdtype(rho0.dtype, jnp.floating):
        rho0 = rho0.astype(jnp.result_type(float))
    values = _checks.concrete(rho0)
    if values is not None and not (np.abs(values) <= 1).all():
        bad = values[~(np.abs(values) <= 1)].ravel()[0]
        raise ValueError(f"rho0 must hold correlations in [-1, 1]; found {bad!r}")
    if not arch.default:
        if values is None:
            raise ValueError("correlation_kernels of a general arch (activation, variances) needs concrete rho0")
        return Kernel(*general.correlation_kernels(arch, rho0, trained, all_depths))
    _check_range(arch, rho0.dtype)
    nngp, ntk = _correlation_kernels(rho0, schedule(arch, rho0.dtype), kind=kind_of(arch), depth=arch.depth,
                                     trained=trained, all_depths=all_depths)
    return Kernel(nngp, ntk)


def _check_get(get):
    """The tuple of kernels to compute for `get` (None: both)."""
    if get is None:
        return GET
    if not isinstance(get, str) or get not in GET:
        raise ValueError(f"get must be None, 'nngp' or 'ntk', got {get!r}")
    return (get,)


# How a Gram matrix is computed: "auto" interpolates float32 kernels from a float64 table when
# one reaches tabulated.TOL (concrete inputs; under the caller's jit or grad, and in float64, the
# recursion runs; float32 without a table runs the recursion in float64), "table" always
# (error if no table reaches it), "recursion" never (in the inputs' dtype).
METHODS = ("auto", "table", "recursion")


class Plan(NamedTuple):
    """How `compute` runs: tables (angles in the inputs' dtype, float64 cubics, the refine band)
    or the recursion in `dtype`; `norm`: for general archs' float32 recursion, the squared norm
    every input is projected to first (their norms spread less than the tables' check allows)."""

    angles: Optional[np.ndarray]
    cubics: Optional[np.ndarray]
    band: Optional[np.ndarray]
    dtype: object
    norm: Optional[float] = None


def plan(arch, trained, picked, x1, x2, *, method, all_depths, reads=None) -> Plan:
    """The Plan for inputs x1, x2 (x2 None: symmetric). `reads`: the depths of the tables
    (None: the last depth, or every depth with all_depths). "auto" builds no table larger than
    n1 n2 / 64 nodes (the float64 build, ~2 M depth steps in NumPy, then costs less than the
    recursion's n1 n2 depth steps)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dtype = x1.dtype
    traced = _checks.traced(x1, x2)
    single = jnp.finfo(dtype).bits <= 32
    if not arch.default:
        return _general_plan(arch, trained, picked, x1, x2, method=method, all_depths=all_depths, reads=reads)
    if method == "recursion" or (method == "auto" and (traced or not single)):
        return Plan(None, None, None, dtype)
    if reads is None and all_depths:
        reads = tuple(range(1, arch.depth + 1))
    entries = x1.shape[0] * (x1 if x2 is None else x2).shape[0]
    cap = tabulated.MAX_NODES if method == "table" else entries // 64
    if method == "auto" and cap < 256:   # tiny kernels: the float64 recursion is cheaper than a table
        return Plan(None, None, None, jnp.float64)
    sched = tuple(map(tuple, engine.schedule(arch)))
    values = tabulated.angle_table(kind_of(arch), sched, trained, cap, reads)
    if values is None:
        if method == "table":
            raise ValueError(f"no table of <= {tabulated.MAX_NODES} + 1 nodes interpolates this kernel to "
                             f"{tabulated.TOL:g} of its largest value; use method='recursion'")
        return Plan(None, None, None, jnp.float64 if single and not traced else dtype)
    cubics = values[[GET.index(g) for g in picked]]
    band = precise.band(cubics) if single and not traced else np.array([2.0, -2.0])
    return Plan(cubics.astype(dtype), cubics, band.astype(dtype), dtype)


def _general_plan(arch, trained, picked, x1, x2, *, method, all_depths, reads):
    """General archs: tables (float32, concrete inputs that all share one norm: the kernels are
    then functions of the correlation alone; norms that spread are accepted when the kernels at
    the extreme norms stay within TOL / 4 of the table's) or the float64 recursion
    (reskernel.core.general)."""
    dtype = x1.dtype
    single = jnp.finfo(dtype).bits <= 32
    norms = None
    if method != "recursion" and single and not _checks.traced(x1, x2):
        norms = general.common_norm(_checks.concrete(x1), _checks.concrete(x2) if x2 is not None else None)
    entries = x1.shape[0] * (x1 if x2 is None else x2).shape[0]
    cap = tabulated.MAX_NODES if method == "table" else entries // 64
    if method == "table" and norms is None:
        raise ValueError("method='table' needs float32 inputs that all share one norm for this arch "
                         f"({arch.activation.label}, w_var={arch.w_var:g}, b_var={arch.b_var:g}): its kernels depend "
                         "on the norms; use method='recursion'")
    if norms is None or cap < 256:
        return Plan(None, None, None, dtype)
    if reads is None and all_depths:
        reads = tuple(range(1, arch.depth + 1))
    q0, lo, hi = norms
    if general.norm_deviation(arch, trained, reads, q0, lo, hi) > tabulated.TOL / 4:
        if method == "table":
            raise ValueError("method='table' needs float32 inputs that all share one norm for this arch: the norms "
                             f"spread by {(hi - lo) / hi:.2g}, moving its kernels beyond {tabulated.TOL / 4:g}; "
                             "use method='recursion'")
        return Plan(None, None, None, dtype)
    general.check_values(arch, general.largest(arch, [q0], trained), dtype)
    values = tabulated.value_table(("general", arch, q0, trained, reads),
                                   general.table_values(arch, q0, trained, reads), cap)
    if values is None:
        if method == "table":
            raise ValueError(f"no table of <= {tabulated.MAX_NODES} + 1 nodes interpolates this kernel to "
                             f"{tabulated.TOL:g} of its largest value; use method='recursion'")
        return Plan(None, None, None, dtype, q0)   # the recursion on inputs of one norm: one row of terms
    cubics = values[[GET.index(g) for g in picked]]
    return Plan(cubics.astype(dtype), cubics, precise.band(cubics).astype(dtype), dtype)


def _exponent(x) -> int:
    """k such that x / 2^k has rows of norm ~1, when x's norms are far from 1 (|k| > 20), else 0;
    0 for traced x. Scaling by 2^k is exact."""
    v = _checks.concrete(x)
    if v is None:
        return 0
    top = float(np.abs(v).max())
    k = int(np.frexp(top * math.sqrt(v.shape[1]))[1])
    return k if abs(k) > 20 else 0


def compute(arch, trained, picked, x1, x2, p: Plan, *, all_depths, tile=TILE):
    """The kernels `picked` between x1 and x2 (None: symmetric) as planned: a tuple of arrays
    in x1's dtype, ([L,] n1, n2). Inputs whose norms are far from 1 are scaled by powers of two
    (exact) before the Gram product, and the kernels scaled back (they are homogeneous).
    General archs (activation, variances): reskernel.core.general."""
    if not arch.default and p.angles is None:
        return general.general_kernel(arch, trained, picked, x1, x2, all_depths=all_depths, tile=tile, norm=p.norm)
    e1 = _exponent(x1) if arch.default else 0      # general kernels are not homogeneous
    e2 = e1 if x2 is None or not arch.default else _exponent(x2)
    if e1 or e2:
        a = np.asarray(x1) * np.asarray(2.0 ** -e1, x1.dtype)
        b = None if x2 is None else np.asarray(x2) * np.asarray(2.0 ** -e2, x2.dtype)
        outs = compute(arch, trained, picked, a, b, p, all_depths=all_depths, tile=tile)
        return tuple(o * np.asarray(2.0 ** (e1 + e2), x1.dtype) for o in outs)
    symmetric = x2 is None
    kw = dict(kind=kind_of(arch), depth=arch.depth, trained=trained, all_depths=bool(all_depths),
              symmetric=symmetric, tile=tile, get=picked)
    y = x1 if symmetric else x2
    if p.angles is not None:
        outs = _kernel(x1, y, schedule(arch, x1.dtype), p.angles, p.band, **kw)
        return outs if _checks.traced(x1, x2) else precise.refine(outs, x1, x2, p.cubics)
    if jnp.dtype(p.dtype) == jnp.dtype(x1.dtype):
        return _kernel(x1, y, schedule(arch, x1.dtype), **kw)
    with enable_x64():  # float32 inputs, float64 recursion (no table reaches the bound)
        a = jnp.asarray(np.asarray(x1), jnp.float64)
        b = a if symmetric else jnp.asarray(np.asarray(x2), jnp.float64)
        outs = _kernel(a, b, schedule(arch, np.float64), **kw)
        return tuple(o.astype(x1.dtype) for o in outs)


def result(outs, get):
    """What the Gram-matrix entry points return for `get`: Kernel(nngp, ntk), or the one array."""
    return Kernel(*outs) if get is None else outs[0]


def _norm_range(x):
    """(min, max) row norm of concrete x; (1, 1) for traced x. In x's dtype when that is safe
    (one pass, no copy), else in float64 with rows scaled by the largest entry."""
    v = _checks.concrete(x)
    if v is None:
        return (1.0, 1.0)
    sq = np.einsum("ij,ij->i", v, v)
    tiny = np.finfo(v.dtype).tiny / np.finfo(v.dtype).eps
    if np.isfinite(sq).all() and sq.min() > tiny and sq.max() < np.finfo(v.dtype).max / 4:
        return float(np.sqrt(sq.min())), float(np.sqrt(sq.max()))
    top = float(np.abs(v).max())
    n = np.linalg.norm(v.astype(np.float64) / top, axis=1) * top
    return float(n.min()), float(n.max())


def prepare(arch, x1, x2, trained, all_depths=False):
    """Validated (arch, trained, x1, x2, all_depths) for the Gram-matrix entry points (`kernel`,
    reskernel.blocked): arch, trained and the flag checked, inputs validated and cast to a
    common float dtype, and the kernel's magnitude checked against that dtype's range."""
    arch, trained = check_arch(arch), check_trained(trained)
    all_depths = _checks.boolean("all_depths", all_depths)
    x1, x2 = _checks.inputs(x1, x2)
    if not arch.default:  # range checked from the diagonals (reskernel.core.general)
        return arch, trained, x1, x2, all_depths
    r1 = _norm_range(x1)
    _check_range(arch, x1.dtype, (r1, r1 if x2 is None else _norm_range(x2)))
    return arch, trained, x1, x2, all_depths


def kernel(arch, x1, x2=None, *, all_depths=False, trained="hidden", get=None, method="auto"):
    """Infinite-width NNGP and NTK of `arch` between the rows of x1 and x2.

    Args:
      arch: FeedForward(depth) or ResNet(depth, gamma | alpha | scales); or ConvNet / ConvResNet
        (reskernel.core.conv_arch) with images x1, x2 (n, H, W, C): reskernel.core.conv.conv_kernel.
      x1: (n1, d) nonzero, finite inputs (any norm within the dtype's range: rows are
        normalized before the Gram product and |x| |x'| is applied last).
      x2: (n2, d), or None for x2 = x1 (symmetric; diagonal correlations exactly 1).
      all_depths: True to return every depth 1..L from the same single recursion pass. For a
        ResNet this is the family of nets truncated after l blocks, each keeping the
        branch scales of `arch` (a_l = L^-gamma of the full depth L, not l^-gamma);
        for per-depth alphas see reskernel.regression.depth_kernels.
      trained: "hidden" (default, Huang et al.: NNGP = readout trained, NTK = hidden
        layers; ResNet embedding A and readout v fixed) or "all" (standard NTK,
        every layer, as neural-tangents computes it).
      get: None for both kernels, or "nngp" / "ntk" for that one only, returned as an
        array (as neural-tangents' `get`); the other is then never written, which
        halves the output (and its time) of large all-depths calls.
      method: "auto" (default), "table" or "recursion".
        - "auto", float32 inputs outside the caller's jit/grad/vmap: every entry is
          interpolated from a float64 table of the kernel as a function of the input angle
          (reskernel.core.tabulated); rows holding a pair whose angle float32 cannot resolve
          well enough (nearly parallel or antipodal inputs of a deep net) are recomputed in
          float64 (reskernel.core.precise). Where no table reaches its bound (e.g. a
          1000-layer FFNet) or the kernel is tiny (n1 n2 < 16,384), the recursion runs in
          float64 and the result is rounded to float32. Every entry is then within 1e-6 of
          the kernel's largest value of the exact kernel of the float32 inputs
          (docs/conventions.md).
        - "auto", float64, or traced inputs: the depth recursion in the inputs' dtype.
        - "table": tables always (error if none reaches the bound); "recursion": the
          recursion in the inputs' dtype always (float32 rounds in every layer: errors up to
          ~1e-2 of the largest value for 100-layer FFNets near rho_0 = 1).
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
    if isinstance(arch, (ConvNet, ConvResNet)):   # images (n, H, W, C): reskernel.core.conv
        from .conv import conv_kernel

        return conv_kernel(arch, x1, x2, all_depths=all_depths, trained=trained, get=get, method=method)
    arch, trained, x1, x2, all_depths = prepare(arch, x1, x2, trained, all_depths)
    picked = _check_get(get)
    p = plan(arch, trained, picked, x1, x2, method=method, all_depths=all_depths)
    return result(compute(arch, trained, picked, x1, x2, p, all_depths=all_depths), get)
