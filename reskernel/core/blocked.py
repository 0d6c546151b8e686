"""Analytic kernels of any size: row/column blocks streamed to host memory, or rows
sharded over several devices.

`kernel` (reskernel.analytic) already runs fused over depth, tile by tile, on one
device. For matrices that do not fit on the device, `blocked_kernel` computes square
blocks of `block` rows and columns (only blocks i <= j when x2 is None), each a single
compiled call reused for every block (the last block is padded, so any n works), and
copies each block into a NumPy array as soon as it is done. For several devices,
`sharded_kernel` splits the rows of x1 over a `jax.sharding.Mesh` axis and returns a
jax.Array sharded by rows (NamedSharding), computed where it lives; the mesh may span the
devices of several processes (jax.distributed, reskernel.core.distributed), each process then
computing only the rows on its own devices. `row_block` gives one row block of `blocked_kernel`'s
result on its own (what each process of reskernel.core.distributed.write_kernel computes).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import _checks
from ..precision import enable_x64
from . import precise
from .analytic import _check_get, compute, kind_of, plan, prepare, result, schedule
from . import tabulated
from .arccos import arccos
from .conv_arch import ConvNet, ConvResNet
from .tiles import GET, TILE, _fused, _jit, _pad_rows

__all__ = ["blocked_kernel", "sharded_kernel", "row_mesh", "row_block"]


def blocked_kernel(arch, x1, x2=None, *, trained="hidden", all_depths=False, block: int = 2048,
                   tile: int = TILE, to_host: bool = True, get=None, method="auto"):
    """`reskernel.kernel` computed in blocks of `block` x `block` entries.

    Args:
      arch, x1, x2, trained, all_depths, get, method: as in reskernel.kernel.
      block: rows and columns per block (any n; the last block is padded). Device
        memory ~ block^2 (times depth with all_depths).
      tile: the fused recursion's tile edge within a block.
      to_host: write each block into NumPy arrays as it finishes (results larger
        than device memory); False assembles jax arrays on the default device.
    Returns:
      Kernel(nngp, ntk), each (n1, n2) or (L, n1, n2), NumPy arrays when to_host; or the
      one array named by `get`.
    """
    s = _setup(arch, x1, x2, trained, all_depths, block, tile, get, method)
    arch, picked, symmetric, (n1, n2), (b1, b2), (xp, yp) = s.arch, s.picked, s.symmetric, s.n, s.block, s.padded
    lead = (arch.depth,) if s.all_depths else ()
    dtype = np.dtype(xp.dtype)
    if to_host:
        out = [np.empty(lead + (n1, n2), dtype) for _ in picked]
    else:
        out = [jnp.zeros(lead + (n1, n2), dtype) for _ in picked]

    def call(a, b, sym):
        return compute(arch, s.trained, picked, a, None if sym else b, s.plan, all_depths=s.all_depths, tile=s.tile)

    def put(k, i, j, vals):
        r0, c0 = i * b1, j * b2
        r1, c1 = min(r0 + b1, n1), min(c0 + b2, n2)
        vals = vals[..., :r1 - r0, :c1 - c0]
        if to_host:
            out[k][..., r0:r1, c0:c1] = vals
            if symmetric and i != j:
                out[k][..., c0:c1, r0:r1] = np.swapaxes(vals, -1, -2)
        else:
            out[k] = out[k].at[..., r0:r1, c0:c1].set(vals)
            if symmetric and i != j:
                out[k] = out[k].at[..., c0:c1, r0:r1].set(jnp.swapaxes(vals, -1, -2))

    nb1, nb2 = xp.shape[0] // b1, yp.shape[0] // b2
    pairs = [(i, j) for i in range(nb1) for j in range(nb2) if not symmetric or i <= j]
    pending = None
    for i, j in pairs:
        res = call(xp[i * b1:(i + 1) * b1], yp[j * b2:(j + 1) * b2], symmetric and i == j)
        if pending is not None:  # copy the previous block while this one computes (async dispatch)
            _store(put, *pending, to_host)
        pending = (i, j, res)
    _store(put, *pending, to_host)
    return result(out, get)


def _store(put, i, j, res, to_host):
    for k, r in enumerate(res):
        put(k, i, j, np.asarray(r) if to_host else r)


@dataclasses.dataclass(frozen=True)
class _Setup:
    """blocked_kernel's and row_block's checked arguments: n = (n1, n2), block = (b1, b2) the
    block edges, padded = (x1, x2 or x1) padded to whole blocks, plan the analytic Plan."""
    arch: object
    trained: str
    all_depths: bool
    picked: tuple
    tile: int
    symmetric: bool
    n: tuple
    block: tuple
    padded: tuple
    plan: object


def _setup(arch, x1, x2, trained, all_depths, block, tile, get, method, plan_=None) -> _Setup:
    """The arguments checked and the inputs padded to whole blocks, one way for blocked_kernel and
    row_block (so that a row block is computed on the same padded inputs as the whole)."""
    arch, trained, x1, x2, all_depths = prepare(arch, x1, x2, trained, all_depths)
    picked = _check_get(get)
    block = _checks.positive_int("block", block)
    tile = _checks.positive_int("tile", tile)
    symmetric = x2 is None
    y = x1 if symmetric else x2
    n1, n2 = x1.shape[0], y.shape[0]
    b1 = min(block, n1)
    b2 = b1 if symmetric else min(block, n2)
    padded = (_pad_rows(x1, -(-n1 // b1) * b1), _pad_rows(y, -(-n2 // b2) * b2))
    p = plan(arch, trained, picked, x1, x2, method=method, all_depths=all_depths) if plan_ is None else plan_
    return _Setup(arch, trained, all_depths, picked, tile, symmetric, (n1, n2), (b1, b2), padded, p)


def row_block(arch, x1, x2=None, *, rows, trained="hidden", all_depths=False, block: int = 2048,
              tile: int = TILE, get=None, method="auto", plan_=None):
    """Rows `rows` = (r0, r1) of `blocked_kernel`'s result, computed alone and equal to them bit for bit.

    The same compiled block calls on the same padded inputs as blocked_kernel with this `block`
    (r0 a multiple of it): square blocks (i, j) for the row block i, the diagonal block a
    symmetric call, and when x2 is None the blocks j < i taken transposed from the call (j, i),
    as blocked_kernel mirrors them. Memory ~ block^2 on the device (times depth with
    all_depths) plus the (r1 - r0, n2) result on the host.

    Args:
      arch, x1, x2, trained, all_depths, block, tile, get, method: as in blocked_kernel.
      rows: (r0, r1) with r0 a multiple of `block` and r1 = min(r0 + block, n1).
      plan_: the analytic Plan for the full inputs (computed when None; callers of many row
        blocks pass it once).
    Returns:
      A tuple of NumPy arrays, one per kernel in ("nngp", "ntk") or `get`, each ([L,] r1 - r0, n2).
    """
    s = _setup(arch, x1, x2, trained, all_depths, block, tile, get, method, plan_)
    symmetric, (n1, n2), (b1, b2), (xp, yp) = s.symmetric, s.n, s.block, s.padded
    r0, r1 = rows
    if r0 % b1 or r0 < 0 or r0 >= n1 or r1 != min(r0 + b1, n1):
        raise ValueError(f"rows must be (r0, min(r0 + {b1}, {n1})) with r0 a multiple of {b1} below {n1}, got {rows}")

    def call(a, b):
        return compute(s.arch, s.trained, s.picked, a, b, s.plan, all_depths=s.all_depths, tile=s.tile)

    i = r0 // b1
    out = [np.empty(((s.arch.depth,) if s.all_depths else ()) + (r1 - r0, n2), np.dtype(xp.dtype)) for _ in s.picked]
    for j in range(yp.shape[0] // b2):
        c0, c1 = j * b2, min((j + 1) * b2, n2)
        if symmetric and j < i:   # blocked_kernel's mirror of block (j, i)
            vals = [np.swapaxes(np.asarray(r), -1, -2) for r in call(xp[c0:c0 + b2], yp[r0:r0 + b1])]
        else:
            vals = [np.asarray(r) for r in call(xp[r0:r0 + b1], None if symmetric and i == j else yp[c0:c0 + b2])]
        for o, v in zip(out, vals):
            o[..., :, c0:c1] = v[..., :r1 - r0, :c1 - c0]
    return tuple(out)


def row_mesh(devices=None) -> Mesh:
    """A one-axis Mesh named "rows" over `devices` (default: all of jax.devices())."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty sequence of jax devices")
    return Mesh(np.asarray(devices), ("rows",))


@_jit(("kind", "depth", "trained", "all_depths", "tile", "sharding", "n1", "get", "symmetric"))
def _sharded(x1r, x2, table, angles, band, *, kind, depth, trained, all_depths, tile, sharding, n1, get=GET,
             symmetric=False):
    per = x1r.shape[1]

    def rows(xb, first):
        k = _fused(xb, x2, table, angles, band, kind=kind, depth=depth, trained=trained, all_depths=all_depths,
                   symmetric=False, tile=tile, get=get)
        if symmetric and angles is not None:
            k = _exact_diagonal(k, xb, angles, first)
        return k

    k = jax.vmap(rows)(x1r, jnp.arange(x1r.shape[0]) * per)  # (devices, [L,] rows per device, n2)
    return tuple(jax.lax.with_sharding_constraint(merge_rows(a, all_depths, n1), sharding) for a in k)


def _exact_diagonal(k, xb, angles, first):
    """A symmetric kernel's rows computed against all of x1 (the table pass): the entries on the
    diagonal at rho_0 = 1 exactly, as the symmetric pass writes them, instead of the NaN that
    marks the float32 product's 1 - O(eps) for refinement (which refined every row in float64)."""
    m = jnp.linalg.norm(xb, axis=-1)
    theta = arccos(jnp.ones_like(m))
    eye = (first + jnp.arange(xb.shape[0]))[:, None] == jnp.arange(k[0].shape[-1])[None, :]
    return tuple(jnp.where(eye, (tabulated.evaluate(a, theta) * (m * m))[..., None], o) for o, a in zip(k, angles))


def merge_rows(a, all_depths, n1):
    """(devices, [L,] rows, n2) -> ([L,] n1, n2)."""
    if all_depths:  # (D, L, r, n2) -> (L, D * r, n2)
        a = jnp.swapaxes(a, 0, 1)
        return a.reshape((a.shape[0], -1, a.shape[-1]))[:, :n1]
    return a.reshape((-1, a.shape[-1]))[:n1]


def sharded_kernel(arch, x1, x2=None, *, trained="hidden", all_depths=False, mesh: Mesh | None = None,
                   tile: int = TILE, get=None, method="auto"):
    """`reskernel.kernel` with the rows of x1 split over the devices of `mesh`.

    Args:
      arch, x1, x2, trained, all_depths, get, method: as in reskernel.kernel (x2 None means x1).
      mesh: a jax.sharding.Mesh whose first axis splits the rows (default: row_mesh()).
      tile: the fused recursion's tile edge on each device.
    Returns:
      Kernel(nngp, ntk), each (n1, n2) or (L, n1, n2), jax.Arrays sharded by rows over
      the mesh's first axis (NamedSharding) when the device count divides n1. Other
      n1 work too (rows are padded for the computation and sliced off), but JAX
      shardings must divide the axis, so that result is laid out as XLA chooses
      (replicated on CPU): pad x1 to a multiple of the device count to keep it split.
      With `get`, the one array it names. A ConvNet / ConvResNet (images x1, x2) goes to
      reskernel.core.conv_sharded.sharded_conv_kernel: its image-pair blocks dealt over the
      mesh's devices, the whole kernel as NumPy on every process.

    Several processes (after jax.distributed.initialize; mesh over jax.devices(), the default):
    every process calls this with the same arch, settings and whole inputs x1, x2 (checked: a
    ValueError names what differs), the device count must divide n1, and each process computes
    the rows on its own devices. The result is a global jax.Array: its addressable shards are
    this process's rows; reskernel.core.distributed.gather gives the whole on every host.
    Equal bit for bit to the one-process result over as many devices (same per-device program).
    """
    if isinstance(arch, (ConvNet, ConvResNet)):   # images: reskernel.core.conv_sharded
        from .conv_sharded import sharded_conv_kernel
        return sharded_conv_kernel(arch, x1, x2, mesh=mesh, all_depths=all_depths, trained=trained, get=get,
                                   method=method)
    arch, trained, x1, x2, all_depths = prepare(arch, x1, x2, trained, all_depths)
    picked = _check_get(get)
    tile = _checks.positive_int("tile", tile)
    mesh = row_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axis = mesh.axis_names[0]
    ndev = mesh.shape[axis]
    multi = any(d.process_index != jax.process_index() for d in mesh.devices.flat)
    if multi:
        from . import distributed
        if _checks.traced(x1, x2):
            raise TypeError("sharded_kernel over several processes needs concrete inputs, not traced ones")
        distributed.check_agreement(distributed.fields(arch, x1, x2, trained=trained, all_depths=all_depths,
                                                       get=picked, method=method, tile=tile,
                                                       mesh=[d.id for d in mesh.devices.flat]))
        if x1.shape[0] % ndev:
            raise ValueError(f"x1's {x1.shape[0]} rows must be a multiple of the mesh's {ndev} devices when they "
                             "span several processes: pad x1, or use reskernel.core.distributed.write_kernel")
    p = plan(arch, trained, picked, x1, x2, method=method, all_depths=all_depths)
    if p.angles is None and jnp.dtype(p.dtype) != jnp.dtype(x1.dtype):
        with enable_x64():  # float32 inputs without a table: the recursion in float64
            outs = _run_sharded(arch, trained, picked, jnp.asarray(np.asarray(x1), jnp.float64),
                                None if x2 is None else jnp.asarray(np.asarray(x2), jnp.float64), p, mesh, axis,
                                ndev, all_depths, tile)
            return result(tuple(o.astype(x1.dtype) for o in outs), get)
    outs = _run_sharded(arch, trained, picked, x1, x2, p, mesh, axis, ndev, all_depths, tile)
    if p.angles is not None and not _checks.traced(x1, x2):
        if multi:
            outs = distributed.refine(tuple(outs), np.asarray(x1), None if x2 is None else np.asarray(x2), p.cubics)
        else:
            outs = precise.refine(tuple(outs), x1, x2, p.cubics)
    return result(outs, get)


def _run_sharded(arch, trained, picked, x1, x2, p, mesh, axis, ndev, all_depths, tile):
    y = x1 if x2 is None else x2
    n1 = x1.shape[0]
    per = -(-n1 // ndev)
    spec = PartitionSpec(None, axis, None) if all_depths else PartitionSpec(axis, None)
    sharding = NamedSharding(mesh, spec)   # the results': rows over the devices
    x1p = _pad_rows(x1, ndev * per)
    if not arch.default and p.angles is None:   # general archs' recursion: reskernel.core.general
        return _general_sharded(arch, trained, picked, x1p, n1, y, p, sharding, per, all_depths, tile)
    x1r = x1p.reshape((ndev, per, x1.shape[1]))
    x1r = _put(x1r, NamedSharding(mesh, PartitionSpec(axis)))
    y = _put(y, NamedSharding(mesh, PartitionSpec()))
    return _sharded(x1r, y, schedule(arch, x1.dtype), p.angles, p.band, kind=kind_of(arch), depth=arch.depth,
                    trained=trained, all_depths=bool(all_depths), tile=tile, sharding=sharding,
                    n1=n1, get=picked, symmetric=x2 is None)


def _general_sharded(arch, trained, picked, x1p, n1, y, p, sharding, per, all_depths, tile):
    """analytic.compute (general archs: reskernel.core.general's recursion), the rows of x1p (x1
    padded to `per` rows a device) against all of y, on each of this process's devices for its
    `per` rows, assembled into global arrays with `sharding` (rows over the mesh's devices); the
    rows past n1 sliced off (a multiple of the devices keeps the sharding)."""
    devices = list(sharding.mesh.devices.flat)
    x1p = np.asarray(x1p)
    parts = []
    for i, d in enumerate(devices):
        if d.process_index != jax.process_index():
            continue
        rows, cols = jax.device_put((x1p[i * per:(i + 1) * per], np.asarray(y)), d)
        vals = compute(arch, trained, picked, rows, cols, p, all_depths=all_depths, tile=tile)
        parts.append(tuple(jax.device_put(v, d) for v in vals))
    lead = (arch.depth,) if all_depths else ()
    shape = lead + (per * len(devices), y.shape[0])
    outs = tuple(jax.make_array_from_single_device_arrays(shape, sharding, [part[k] for part in parts])
                 for k in range(len(picked)))
    return outs if shape[-2] == n1 else tuple(o[..., :n1, :] for o in outs)


def _put(x, sharding):
    """x on the sharding's devices; over several processes each places only its own parts of the
    (identical) host array, as a global jax.Array."""
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
