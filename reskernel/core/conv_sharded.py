"""Convolutional kernels over several devices and processes (reskernel.sharded_kernel's conv path).

The image-pair blocks of reskernel.core.conv (block_pairs: i <= j only when x2 is None) are
dealt round-robin over the devices of a mesh, in order: block pair k goes to device k mod D.
Each process dispatches the blocks of its own devices (asynchronously, at most 2 per device in
flight, so host memory holds a few blocks beyond the result) and writes them into a zero
kernel of the full shape on its host. With several processes (after
reskernel.core.distributed.initialize) the processes' kernels are then summed across
processes (process_allgather): each entry was computed by exactly one process, so the sum is
exact and every process ends with the whole kernel. Every block is the same compiled program
as in conv_kernel on the same inputs, so the result equals conv_kernel's bit for bit.

Memory: per device, two blocks (conv.block_bytes); per host, the kernel (n1 n2 [L] itemsize
bytes per array), and with several processes process_count times that while they are summed.
"""
from __future__ import annotations

import numpy as np

from .analytic import result
from .conv import Plan, _plan, block_pairs, place, run_block

__all__ = ["sharded_conv_kernel"]


def sharded_conv_kernel(arch, x1, x2=None, *, mesh=None, all_depths=False, trained="hidden", get=None, block=None,
                        method="auto"):
    """reskernel.core.conv.conv_kernel with the image-pair blocks dealt over the devices of `mesh`.

    Args:
      arch, x1, x2, all_depths, trained, get, block, method: as conv_kernel.
      mesh: a jax.sharding.Mesh (its devices, in order; default reskernel.core.blocked.row_mesh():
        every device of every process).
    Returns:
      Kernel(nngp, ntk) of NumPy arrays (n1, n2) or (L, n1, n2), the whole kernel on every
      process (unlike the dense path's row-sharded jax.Arrays: conv kernels are small beside
      their cost); or the one array named by `get`.

    Several processes: each calls this with the same arch, settings and whole inputs (checked:
    a ValueError names what differs) and computes the blocks of its own devices.
    """
    import jax
    from jax.sharding import Mesh

    from .blocked import row_mesh

    mesh = row_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    devices = list(mesh.devices.flat)
    multi = any(d.process_index != jax.process_index() for d in devices)
    if multi:
        from . import distributed

        if any(isinstance(x, jax.core.Tracer) for x in (x1, x2)):
            raise TypeError("sharded_kernel over several processes needs concrete inputs, not traced ones")
        distributed.check_agreement(distributed.fields(arch, np.asarray(x1), None if x2 is None else np.asarray(x2),
                                                       trained=trained, all_depths=all_depths, get=get,
                                                       block=block, method=method, conv=True,
                                                       mesh=[d.id for d in devices]))
    plan = _plan(arch, x1, x2, all_depths=all_depths, trained=trained, get=get, block=block, method=method)
    if not isinstance(plan, Plan):   # traced inputs: one block of all the images, on the default device
        return plan
    mine = [(k, d) for k, d in enumerate(devices) if d.process_index == jax.process_index()]
    outs = tuple(np.zeros_like(o) for o in plan.outs) if multi else plan.outs
    pending = []
    for k, (i, j) in enumerate(block_pairs(plan)):
        device = devices[k % len(devices)]
        if device.process_index != jax.process_index():
            continue
        pending.append((i, j, run_block(plan, i, j, device)))
        if len(pending) >= 2 * len(mine):
            i0, j0, vals = pending.pop(0)
            place(plan, i0, j0, vals, outs)
    for i0, j0, vals in pending:
        place(plan, i0, j0, vals, outs)
    if multi:
        from jax.experimental import multihost_utils

        outs = tuple(np.asarray(multihost_utils.process_allgather(o)).sum(axis=0, dtype=o.dtype) for o in outs)
    return result(outs, get)
