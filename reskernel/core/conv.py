"""Analytic infinite-width NNGP and NTK of convolutional nets and convolutional ResNets.

The nets are reskernel.core.conv_arch's ConvNet and ConvResNet (parametrization, paddings and the
mapping to neural-tangents stax: that module's doc and docs/conventions.md). The layer maps are
those of reskernel.core._conv_maps: the dense engine's maps with a k x k windowed mean over
positions between layers, on the activation's duals (reskernel.core.activations).

Pairs of images are computed in square blocks of `block` images (the last block padded, so any
n works), each block one compiled call through every layer (`lax.scan` over depth), copied to a
NumPy array on the host as soon as it is done; x2=None computes only the blocks i <= j. Every
image's same-position diagonal is first run through the depth on the host in float64: it bounds
the kernels' entries (checked against the dtype's range) and gives numerical activations (tanh)
their per-position series terms.

On a CPU each layer's elementwise maps (the duals and the terms under the windows) run a tile
of rows of the first image's positions at a time (default_tile: ~256 KiB of pair state), so
that their dozen intermediates stay in the caches, writing (padding "same", filters up to
3 x 3) straight into the zero border the windows read; the windows then run on the whole block.

Cost per layer and block of b1 x b2 images (H x W images, k x k filters), and the memory of one
block (P = H W for flatten, (H W)^2 for gap; itemsize 4 for float32, 8 for float64):
  flatten: ~ b1 b2 H W (2k + duals) flops;        memory ~ BLOCK_ARRAYS b1 b2 P itemsize bytes;
  gap:     ~ b1 b2 (H W)^2 (2k + duals) flops;    the same formula with P = (H W)^2.
"""

import contextlib
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import _conv_maps as maps
from .analytic import Kernel, _check_get, result
from .arch import check_trained
from .conv_arch import ConvNet, check_conv_arch, image_shape
from .general import TERMS_BYTES, check_values
from .tiles import GET, _jit

__all__ = ["conv_kernel", "block_bytes", "block_pairs", "run_block", "place", "Plan", "block_budget", "default_block",
           "default_tile", "BLOCK_ARRAYS", "BLOCK_BYTES", "CPU_BLOCK_BYTES", "TILE_BYTES"]

# Arrays of a block's shape (b1, b2) + positions alive at once (the state, the duals, the windowed
# sums and their padded inputs): XLA's memory analysis of a compiled float32 block counts
# 10.7-13.4 of them (ConvNet / ConvResNet, flatten / gap, closed-form duals; numerical ones add
# their series terms), checked in tests/test_conv_kernel.py.
BLOCK_ARRAYS = 14
# The memory a block may take when `block` is not given, on accelerators: 1 GiB. On a CPU a block
# whose arrays stay in the caches is faster: the flatten NTK of a depth-10 CNN on 256 images of
# 32 x 32 x 3 took 4.6-4.9 s with blocks of 16 images (~14 MB) against 12.4 s with the 1 GiB
# block (136 images) and 6.0 / 7.9 s with 8 / 24 (2-core Xeon, float32, load ~3.5, 2026-12-03).
BLOCK_BYTES = 1 << 30
CPU_BLOCK_BYTES = 16 << 20
# The pair state of one tile of a layer's elementwise maps on a CPU (default_tile): the duals'
# dozen intermediates of a tile then stay in the caches instead of each making a pass over
# memory, and (padding "same") the tiles write straight into the windows' zero border. The gap
# NTK of a depth-10 CNN on 32 x 32 images (benchmarks/roofline_conv.py, n = 8, idle 2-core Xeon,
# 2026-12-03): 21.6 ns per position pair and layer for whole layers, 10.2-10.6 with tiles,
# 8.2 with tiles into the border (2.1-2.3x the memory limit). Tiles of 64 KiB-2 MiB (tiles alone, n = 3):
# 8.2-11.7 ns, no clear best beyond the run-to-run spread (256 KiB alone: 8.2-10.4).
TILE_BYTES = 256 << 10


def block_bytes(block: int, height: int, width: int, readout: str, itemsize: int = 4) -> int:
    """The memory one block of block x block image pairs needs, in bytes (module doc)."""
    positions = height * width if readout == "flatten" else (height * width) ** 2
    return BLOCK_ARRAYS * block * block * positions * itemsize


def _expand(leaf, side, layout):
    """A per-image leaf (b, H, W, *rest) broadcast against the pair state of `layout`: rows
    (side 1) or columns (side 2)."""
    b, h, w = leaf.shape[:3]
    rest = leaf.shape[3:]
    if layout == "flatten":
        return leaf[:, None] if side == 1 else leaf[None]
    shape = (b, 1, h, w, 1, 1) if side == 1 else (1, b, 1, 1, h, w)
    return jnp.reshape(leaf, shape + rest)


def _by_rows(fn, args, height, tile, border=None):
    """fn(*args) computed `tile` first-image rows h at a time (a loop over height / tile tiles):
    every operand whose axis 2 has `height` entries (the pair states and the row side's
    per-image leaves, in both layouts) is cut along it, the others are broadcast whole; fn must
    be elementwise over that axis and return pair states (b1, b2, *positions). tile >= height:
    one call. border (lo, hi): the outputs are written into zero borders of that width on every
    position axis and returned as _conv_maps.Padded (the windows then pad no copy)."""
    if tile >= height:
        return fn(*args)
    leaves, tree = jax.tree.flatten(args)
    cut = [jnp.ndim(a) > 2 and jnp.shape(a)[2] == height for a in leaves]
    lo, hi = border or (0, 0)

    def piece(start):
        parts = [jax.lax.dynamic_slice_in_dim(a, start, tile, 2) if c else a for a, c in zip(leaves, cut)]
        return fn(*jax.tree.unflatten(tree, parts))

    def zeros(o):
        return jnp.zeros(o.shape[:2] + (height + lo + hi,) + tuple(n + lo + hi for n in o.shape[3:]), o.dtype)

    def body(i, outs):
        def put(o, part):
            return jax.lax.dynamic_update_slice(o, part, (0, 0, i * tile + lo) + (lo,) * (part.ndim - 3))
        return jax.tree.map(put, outs, piece(i * tile))

    outs = jax.lax.fori_loop(0, height // tile, body, jax.tree.map(zeros, jax.eval_shape(piece, 0)))
    return outs if border is None else jax.tree.map(maps.Padded, outs)


@_jit(("arch", "trained", "all_depths", "pick", "tile"))
def _block(x1, x2, t1s, t2s, *, arch, trained, all_depths, pick, tile=None):
    """The kernels `pick` (indices into GET) between the images x1 (b1, H, W, C) and x2: a tuple
    of (b1, b2) arrays, (L, b1, b2) with all_depths. t1s, t2s: the host's per-layer terms
    (L, b, H, W, ...) of a numerical activation, () for closed forms (each block then carries
    its images' same-position diagonals through the same maps on the device). tile: rows of
    the first image's positions per pass of each layer's elementwise maps (_by_rows; None: all H)."""
    layout = arch.readout
    act = arch.activation
    resnet = not isinstance(arch, ConvNet)
    need_ntk = GET.index("ntk") in pick
    exact = not t1s
    dtype = x1.dtype
    hi = jax.lax.Precision.HIGHEST
    state = maps.initial(arch, maps.gram(x1, x2, layout, hi), layout, trained)
    if not need_ntk:
        state = (state[0], jnp.zeros((), dtype))
    diags = ((maps.initial(arch, maps.self_gram(x1), "flatten", trained)[0],
              maps.initial(arch, maps.self_gram(x2), "flatten", trained)[0]) if exact else ())
    a2 = jnp.asarray(np.asarray(arch.branch_scales if resnet else np.zeros(arch.depth), np.float64) ** 2, dtype)

    height = x1.shape[1]
    tile = height if tile is None else tile

    def terms(diag_sigma, r, c):
        """The per-image leaves of the duals, broadcast against the pair state: (rows, columns)."""
        t1 = (diag_sigma[0],) if exact else r
        t2 = (diag_sigma[1],) if exact else c
        return tuple(_expand(t, 1, layout) for t in t1), tuple(_expand(t, 2, layout) for t in t2)

    def duals(sigma, t1, t2):
        """sigma (snapped to the diagonal where within 8 ulp) and V, Vdot of the pair at it."""
        sigma = maps.on_diagonal(sigma, t1[0], t2[0])
        return sigma, act.pair(t1, t2, sigma)

    # the terms under a window written into their zero border (padding "same", one-pass windows)
    bordered = maps.border(arch) if arch.padding == "same" and 1 < arch.filter_size <= 3 else None

    def convnet_ab(state, diags, r, c, last=False):
        def ab(sigma, theta, t12):
            sigma, (v, vdot) = duals(sigma, *t12)
            return maps.convnet_terms(arch, (sigma, theta), v, vdot) if need_ntk else arch.w_var * v

        t12, edge = terms(diags, r, c), None if last else bordered
        if need_ntk:
            return _by_rows(ab, (state[0], state[1], t12), height, tile, edge)
        return _by_rows(ab, (state[0], None, t12), height, tile, edge), state[1]

    def convnet_read(ab):
        if need_ntk:
            return maps.convnet_read(arch, ab, layout, trained)
        return maps.readout(ab[0], layout, arch) + arch.b_var, ab[1]

    def convnet_layer(carry, xs):
        state, diags = carry
        _, r, c = xs
        ab = convnet_ab(state, diags, r, c)
        out = convnet_read(ab) if all_depths else None
        if need_ntk:
            state = maps.convnet_next(arch, ab, layout)
        else:
            state = (maps.window(ab[0], arch, layout) + arch.b_var, ab[1])
        if exact:
            diags = tuple(maps.window(arch.w_var * act.duals(d, d, d)[0], arch, "flatten") + arch.b_var
                          for d in diags)
        return (state, diags), out

    def resnet_layer(carry, xs):
        state, diags = carry
        h, r, c = xs
        if need_ntk:
            sigma, s_theta = maps.resnet_sigma(arch, state, layout)
        else:
            sigma, s_theta = arch.w_var * maps.window(state[0], arch, layout) + arch.b_var, None
        seen = tuple(arch.w_var * maps.window(d, arch, "flatten") + arch.b_var for d in diags)

        def branch(sigma, s_theta, t12):
            """The branch's terms under the block's windows: V, and V + Vdot (Sigma + w_var S[Theta])."""
            sigma, (v, vdot) = duals(sigma, *t12)
            return (v, maps.resnet_theta_term(arch, sigma, s_theta, v, vdot)) if need_ntk else v

        terms_ = _by_rows(branch, (sigma, s_theta, terms(seen, r, c)), height, tile, bordered)
        if need_ntk:
            state = maps.resnet_update(arch, state, terms_, h, layout)
        else:
            state = (state[0] + h * maps.window(terms_, arch, layout), state[1])
        if exact:
            diags = tuple(d + h * maps.window(act.duals(s, s, s)[0], arch, "flatten") for d, s in zip(diags, seen))
        out = read(state) if all_depths else None
        return (state, diags), out

    def read(state):
        if need_ntk:
            return maps.resnet_read(arch, state, layout, trained)
        return arch.out_var * maps.readout(state[0], layout) + arch.b_var, state[1]

    def pick_out(vals):
        nngp, ntk = vals   # ntk is a placeholder of one value per depth unless picked
        return tuple(nngp if p == GET.index("nngp") else jnp.broadcast_to(ntk, jnp.shape(nngp)) for p in pick)

    if resnet:
        (state, _), outs = jax.lax.scan(resnet_layer, (state, diags), (a2, t1s, t2s))
        return pick_out(outs if all_depths else read(state))
    # ConvNet: the first L - 1 layers in the scan, the last one read alone (no window after it)
    head = tuple(t[:-1] for t in t1s), tuple(t[:-1] for t in t2s)
    (state, diags), outs = jax.lax.scan(convnet_layer, (state, diags), (a2[:-1],) + head)
    last = convnet_read(convnet_ab(state, diags, tuple(t[-1] for t in t1s), tuple(t[-1] for t in t2s), last=True))
    if not all_depths:
        return pick_out(last)
    return pick_out(tuple(jnp.concatenate([o, l[None]]) for o, l in zip(outs, last)))


def _images(arch, x1, x2):
    """Validated (x1, x2) as floating arrays of one dtype; x2 may be None."""
    x1 = _checks.real_array("x1", x1)
    x2 = None if x2 is None else _checks.real_array("x2", x2)
    dtype = _checks._float_dtype(*[x for x in (x1, x2) if x is not None])
    image_shape(arch, "x1", x1.shape)
    if x2 is not None:
        image_shape(arch, "x2", x2.shape, other=x1.shape)
    out = []
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None:
            out.append(None)
            continue
        x = x.astype(dtype) if x.dtype != dtype else x
        values = _checks.concrete(x)
        if values is not None:
            bad = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
            if bad.any():
                raise ValueError(f"{name} has non-finite entries (first in image {int(np.argmax(bad))})")
        out.append(x)
    return out[0], out[1]


def block_budget() -> int:
    """The memory of a default block: CPU_BLOCK_BYTES on a CPU backend, else BLOCK_BYTES."""
    return CPU_BLOCK_BYTES if jax.default_backend() == "cpu" else BLOCK_BYTES


def default_block(n: int, height: int, width: int, readout: str, itemsize: int = 4) -> int:
    """The block side for n images when `block` is not given: the fewest blocks whose memory
    (block_bytes) stays within block_budget(), all of one size (at least 1 image)."""
    unit = block_bytes(1, height, width, readout, itemsize)
    most = max(1, math.isqrt(block_budget() // unit))
    count = -(-n // most)
    return -(-n // count)


def default_tile(block1: int, block2: int, height: int, width: int, readout: str, itemsize: int = 4) -> int:
    """Rows of the first image's positions per pass of a layer's elementwise maps (_by_rows) for
    blocks of block1 x block2 images: on a CPU the most rows (a divisor of height) whose pair
    state stays within TILE_BYTES, so that the maps' intermediates stay in the caches; on
    accelerators height (one pass)."""
    if jax.default_backend() != "cpu":
        return height
    row = block1 * block2 * width * (1 if readout == "flatten" else height * width) * itemsize
    fits = [t for t in range(1, height + 1) if height % t == 0 and t * row <= TILE_BYTES]
    return max(fits, default=1)


def _check_block(block, arch, shape, itemsize):
    if block is None:
        return default_block(shape[0], shape[1], shape[2], arch.readout, itemsize)
    return _checks.positive_int("block", block)


# Images per chunk of the host's float64 diagonal pass (its memory: a few arrays of CHUNK H W).
CHUNK = 1024


def _diagonal_terms(arch, x, trained, dtype):
    """Every image's same-position pass through the depth (host float64, in chunks of images):
    the kernels' largest entry checked against dtype's range, and for a numerical activation its
    per-layer, per-position series terms (leaves (L, n, H, W, ...)); () for closed forms."""
    exact = arch.activation.exact
    top, seen = 0.0, []
    for start in range(0, x.shape[0], CHUNK):
        chunk = maps.self_gram(np.asarray(x[start:start + CHUNK], np.float64))
        s, t = maps.diagonal(arch, chunk, trained)
        top = max(top, t)
        if not exact:
            seen.append(s)
    check_values(arch, top, dtype)
    if exact:
        return ()
    terms = arch.activation.row_terms(np.concatenate(seen, axis=1))
    size = sum(int(t.nbytes) for t in terms)
    if size > TERMS_BYTES:   # copied to the device block by block, but held whole on the host
        raise ValueError(f"the numerical activation {arch.activation.label} needs {size / 2 ** 30:.1f} GiB of series "
                         f"terms (every layer, image and position), beyond {TERMS_BYTES / 2 ** 30:.0f} GiB: fewer "
                         "images per call (split x1 / x2), fewer layers, or a closed-form activation")
    return terms


def _pad(x, rows):
    """x with rows - len(x) copies of its first image appended (the last block's padding)."""
    extra = rows - x.shape[0]
    return x if extra == 0 else np.concatenate([x, np.broadcast_to(x[:1], (extra,) + x.shape[1:])])


def conv_kernel(arch, x1, x2=None, *, all_depths=False, trained="hidden", get=None, block=None, method="auto"):
    """Infinite-width NNGP and NTK of a ConvNet or ConvResNet between the images x1 and x2.

    Args:
      arch: reskernel ConvNet or ConvResNet (reskernel.core.conv_arch).
      x1: (n1, H, W, C) channels-last images, finite (float32 or float64; integers cast).
      x2: (n2, H, W, C), or None for x2 = x1 (symmetric: only blocks i <= j are computed).
      all_depths: True for every depth 1..L from the same pass, (L, n1, n2); a ConvResNet keeps
        the branch scales of `arch` (as reskernel.kernel's dense ResNets).
      trained: "hidden" (ConvNet: every conv layer, readout fixed; ConvResNet: the branches'
        convs and biases, embedding and readout fixed) or "all" (every layer, as
        neural-tangents computes the NTK).
      get: None for Kernel(nngp, ntk), or "nngp" / "ntk" for that array alone ("nngp" skips the
        NTK's recursion).
      block: images per block side (any n: the last block is padded); None: default_block, the
        fewest equal blocks whose memory, block_bytes(block, H, W, readout, itemsize) =
        BLOCK_ARRAYS block^2 P itemsize bytes with P = H W (flatten) or (H W)^2 (gap), stays
        within block_budget(): 16 MiB on a CPU (cache-sized blocks run faster there), 1 GiB on
        accelerators; e.g. 32 x 32 images in float32 on a CPU, gap: 1, flatten: 17.
      method: "auto" or "recursion" (the same here: there are no tables of conv kernels).
    Returns:
      Kernel(nngp, ntk), each (n1, n2) or (L, n1, n2), NumPy arrays in the inputs' dtype (the
      recursion runs in it: float32 rounds in every layer); or the one array named by `get`.
      Under the caller's jit/grad/vmap (closed-form activations only): one block of all the
      images, jax.Arrays.
    """
    plan = _plan(arch, x1, x2, all_depths=all_depths, trained=trained, get=get, block=block, method=method)
    if not isinstance(plan, Plan):   # traced inputs: one block of all the images, computed
        return plan
    for i, j in block_pairs(plan):
        place(plan, i, j, run_block(plan, i, j))
    return result(plan.outs, get)


class Plan(NamedTuple):
    """A conv_kernel call cut into blocks: the padded images ap, bp, the series terms t1, t2 of
    their blocks, block sides e1, e2 and counts nb1, nb2, the true sizes n1, n2, whether only
    the blocks i <= j are computed (symmetric), the static arguments kw of _block, the dtype and
    the result arrays outs (host NumPy, filled by `place`)."""
    ap: np.ndarray
    bp: np.ndarray
    t1: tuple
    t2: tuple
    e1: int
    e2: int
    nb1: int
    nb2: int
    n1: int
    n2: int
    symmetric: bool
    kw: dict
    dtype: np.dtype
    outs: tuple


def _plan(arch, x1, x2, *, all_depths, trained, get, block, method):
    """Checks every argument of conv_kernel and cuts the call into blocks: a Plan, or for traced
    inputs the result itself (a tuple/Kernel of jax.Arrays)."""
    arch, trained = check_conv_arch(arch), check_trained(trained)
    all_depths = _checks.boolean("all_depths", all_depths)
    picked = _check_get(get)
    if not isinstance(method, str) or method not in ("auto", "recursion"):
        raise ValueError(f"method must be 'auto' or 'recursion' for convolutional kernels (there are no tables of "
                         f"them), got {method!r}")
    x1, x2 = _images(arch, x1, x2)
    dtype = np.dtype(x1.dtype)
    pick = tuple(GET.index(g) for g in picked)
    kw = dict(arch=arch, trained=trained, all_depths=all_depths, pick=pick)
    _, height, width, _ = x1.shape
    if _checks.traced(x1, x2):
        if not arch.activation.exact:
            raise ValueError(f"activation {arch.activation.label} has numerical duals, computed from concrete "
                             "inputs: call outside jit/grad/vmap, or use a closed-form activation")
        n2 = x1.shape[0] if x2 is None else x2.shape[0]
        tile = default_tile(x1.shape[0], n2, height, width, arch.readout, dtype.itemsize)
        return result(_block(x1, x1 if x2 is None else x2, (), (), tile=tile, **kw), get)
    block = _check_block(block, arch, x1.shape, dtype.itemsize)
    a = np.asarray(x1)
    b = a if x2 is None else np.asarray(x2)
    terms = _diagonal_terms(arch, a if x2 is None else np.concatenate([a, b]), trained, dtype)
    n1, n2 = a.shape[0], b.shape[0]
    e1, e2 = min(block, n1), min(block, n2)
    nb1, nb2 = -(-n1 // e1), -(-n2 // e2)
    ap, bp = _pad(a, nb1 * e1), _pad(b, nb2 * e2)
    t1 = tuple(np.concatenate([t[:, :n1], np.repeat(t[:, :1], nb1 * e1 - n1, axis=1)], axis=1) for t in terms)
    t2 = t1 if x2 is None else tuple(
        np.concatenate([t[:, n1:], np.repeat(t[:, n1:n1 + 1], nb2 * e2 - n2, axis=1)], axis=1) for t in terms)
    if x2 is None:
        e2, nb2, bp = e1, nb1, ap
    kw["tile"] = default_tile(e1, e2, height, width, arch.readout, dtype.itemsize)
    shape = ((arch.depth,) if all_depths else ()) + (n1, n2)
    outs = tuple(np.empty(shape, dtype) for _ in pick)
    return Plan(ap, bp, t1, t2, e1, e2, nb1, nb2, n1, n2, x2 is None, kw, dtype, outs)


def block_pairs(plan: Plan) -> list:
    """The (i, j) block pairs a Plan computes, in order: j >= i only when symmetric."""
    return [(i, j) for i in range(plan.nb1) for j in range(i if plan.symmetric else 0, plan.nb2)]


def run_block(plan: Plan, i: int, j: int, device=None):
    """The kernels of block pair (i, j) (a tuple of jax.Arrays, dispatched asynchronously), on
    `device` when given (its inputs are put there; the computation follows them)."""
    rows, cols = slice(i * plan.e1, (i + 1) * plan.e1), slice(j * plan.e2, (j + 1) * plan.e2)
    args = (plan.ap[rows], plan.bp[cols], tuple(t[:, rows] for t in plan.t1), tuple(t[:, cols] for t in plan.t2))
    if device is not None:
        args = jax.device_put(args, device)
    with enable_x64() if plan.dtype == np.float64 else contextlib.nullcontext():
        return _block(*args, **plan.kw)


def place(plan: Plan, i: int, j: int, vals, outs=None):
    """Copies block pair (i, j)'s kernels into outs (default plan.outs), and their mirror
    (j, i) when the plan is symmetric."""
    e1, e2 = plan.e1, plan.e2
    r = slice(i * e1, min((i + 1) * e1, plan.n1))
    c = slice(j * e2, min((j + 1) * e2, plan.n2))
    for o, v in zip(plan.outs if outs is None else outs, vals):
        v = np.asarray(v)[..., :r.stop - r.start, :c.stop - c.start]
        o[..., r, c] = v
        if plan.symmetric and j != i:
            o[..., c, r] = np.swapaxes(v, -1, -2)
