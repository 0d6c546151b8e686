"""Kernels across processes: JAX's multi-controller runtime, input agreement, a resumable disk store.

One process per host or per accelerator, each started by the cluster's launcher and calling
`initialize` (jax.distributed.initialize, with JAX's CPU collectives switched on). Then either

  * `reskernel.sharded_kernel(arch, x)` over the mesh of all processes' devices (the default):
    a global jax.Array sharded by rows, each process computing its own rows; `gather` brings
    the whole to every host, or it stays sharded; or
  * `write_kernel(folder, arch, x)`: row blocks of `block` rows (block b to process
    b mod process_count), each computed by its process alone (reskernel.core.blocked.row_block,
    equal bit for bit to reskernel.blocked_kernel with that block) and written to disk as it
    finishes. `read_kernel(folder)` reads the whole back with NumPy.

Disk layout (format "reskernel-kernel-store/1"): `folder/manifest.json` (n1, n2, dtype, the
kernels, shape of the leading depth axis, arch, settings, the inputs' SHA-256, block and the
list of row ranges) and one file `folder/{kernel}_{r0:09d}_{r1:09d}.npy` per kernel and row
block, shape ([L,] r1 - r0, n2), readable by numpy.load (mmap_mode="r" too). Every file is
written to a temporary name in the folder and renamed into place (os.replace, atomic on one
file system), so a file that exists is complete: a rerun skips the blocks whose files all
exist, a killed process leaves at most an unreferenced `.*.tmp` file, and two runs writing
the same folder write identical bytes under the same names. A folder holding a different
kernel (other inputs, arch or settings) is refused.

Every process must pass the same arch, settings and whole inputs: `check_agreement` compares a
SHA-256 of each (process_allgather of the digests) and raises a ValueError naming what differs.
"""
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import blocked, precise
from .analytic import Kernel, _check_get, plan, prepare
from .conv_arch import ConvNet, ConvResNet, check_conv_arch
from .tiles import TILE

__all__ = ["initialize", "check_agreement", "fields", "gather", "refine", "ShardedRows", "row_blocks",
           "write_kernel", "read_kernel", "missing_blocks", "Written", "FORMAT"]

FORMAT = "reskernel-kernel-store/1"


def initialize(coordinator_address=None, num_processes=None, process_id=None, *, local_device_ids=None,
               timeout: int = 300):
    """jax.distributed.initialize with JAX's CPU collectives (gloo) switched on; call once, first.

    Arguments left None come from a torchrun-style environment (MASTER_ADDR, MASTER_PORT,
    WORLD_SIZE, RANK) when MASTER_ADDR is set, else from JAX's own detection (Slurm, Open MPI,
    TPU). The CPU collectives matter only for CPU devices (tests, this machine's benchmarks);
    GPUs use NCCL.

    Args:
      coordinator_address: "host:port" of process 0's coordinator service.
      num_processes, process_id: the process count and this process's index 0..count-1.
      local_device_ids: the local devices this process uses (e.g. its one GPU).
      timeout: seconds to wait for all processes to connect.
    """
    env = os.environ
    if coordinator_address is None and env.get("MASTER_ADDR"):
        coordinator_address = f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '29500')}"
        num_processes = int(env["WORLD_SIZE"]) if num_processes is None else num_processes
        process_id = int(env["RANK"]) if process_id is None else process_id
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, local_device_ids=local_device_ids,
                               initialization_timeout=_checks.positive_int("timeout", timeout))


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def fields(arch, x1, x2=None, **settings) -> dict:
    """The strings every process must agree on: inputs' shapes and dtype, arch, settings, inputs' SHA-256."""
    x1 = np.asarray(x1)
    x2 = None if x2 is None else np.asarray(x2)
    return {"shapes": f"x1 {x1.shape} {x1.dtype}, x2 {None if x2 is None else (x2.shape, str(x2.dtype))}",
            "arch": repr(arch),
            "settings": ", ".join(f"{k}={v!r}" for k, v in sorted(settings.items())),
            "inputs": _sha256(x1, x2)}


def check_agreement(values: dict):
    """ValueError unless every process passed equal `values` (a dict of strings, same keys everywhere).

    One process_allgather of the SHA-256 of each value; a no-op in a single process. The error
    names the keys that differ, the processes that differ from process 0, and this process's value.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = sorted(values)
    mine = np.stack([np.frombuffer(hashlib.sha256(f"{k}={values[k]}".encode()).digest(), np.uint8) for k in names])
    every = np.asarray(multihost_utils.process_allgather(mine))          # (processes, keys, 32)
    bad = [(k, np.flatnonzero((every[:, f] != every[0, f]).any(axis=-1)).tolist()) for f, k in enumerate(names)]
    bad = [(k, p) for k, p in bad if p]
    if bad:
        what = "; ".join(f"{k} (process(es) {p} differ from process 0; here, process {jax.process_index()}: "
                         f"{values[k][:200]})" for k, p in bad)
        raise ValueError(f"processes disagree on {', '.join(k for k, _ in bad)}: every process must pass the same "
                         f"arch, settings and whole inputs x1, x2. {what}")


def gather(x):
    """The whole of x (a jax.Array sharded over processes, or a Kernel of them) as NumPy on every process."""
    if isinstance(x, Kernel):
        return Kernel(*(gather(a) for a in x))
    if not isinstance(x, jax.Array):
        raise TypeError(f"x must be a jax.Array or a Kernel of them, got {type(x).__name__}")
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def refine(outs, x1, x2, cubics):
    """reskernel.core.precise.refine for kernels sharded by rows over processes: the same result.

    Each process finds the flagged (NaN) rows among its own; all learn the whole set (one
    process_allgather), compute the same float64 rows as precise.refine (precise.refined_rows),
    and write them, and when symmetric the same columns, into their own shards only.
    """
    from jax.experimental import multihost_utils

    first = outs[0]
    flags = np.zeros(first.shape[-2], bool)
    for s in first.addressable_shards:
        data = np.asarray(s.data)
        flags[s.index[-2]] |= np.isnan(data[0] if data.ndim == 3 else data).any(axis=-1)
    flags = np.asarray(multihost_utils.process_allgather(flags)).any(axis=0)
    rows = np.flatnonzero(flags)
    if rows.size == 0:
        return outs
    symmetric = x2 is None
    new = []
    for o, v in zip(outs, precise.refined_rows(rows, x1, x2, cubics)):
        v = v.astype(o.dtype)
        parts = []
        for s in o.addressable_shards:
            local = np.array(s.data)
            span = np.arange(o.shape[-2])[s.index[-2]]
            hit = np.isin(span, rows)
            local[..., hit, :] = v[..., np.searchsorted(rows, span[hit]), :]
            if symmetric:
                local[..., :, rows] = np.swapaxes(v[..., :, span], -1, -2)
            parts.append(jax.device_put(local, s.device))
        new.append(jax.make_array_from_single_device_arrays(o.shape, o.sharding, parts))
    return tuple(new)


@jax.jit
def _gemm(k, v):
    return jnp.dot(k.astype(jnp.float64), v, precision=jax.lax.Precision.HIGHEST)


class ShardedRows:
    """A kernel sharded by rows over processes (sharded_kernel's result) as a cg_solve operator.

    Every process calls cg_solve(ShardedRows(k), ...) with the same right-hand sides and
    settings; each product and read is computed by each process on its own rows (float64
    products on its devices) and the pieces exchanged with one process_allgather, so every
    process holds the same (n, m) float64 results and runs the same iterations. Memory per
    process: its rows of K plus a few (n, m) float64 arrays (times the process count, briefly,
    in the exchange). `rows` reads columns (K[:, idx]^T): it assumes K symmetric, as the
    training kernel of cg_solve is.

    Args:
      k: a jax.Array (n1, n2) sharded by rows (e.g. sharded_kernel(..., get="ntk")).
    """

    def __init__(self, k):
        if not isinstance(k, jax.Array) or k.ndim != 2:
            raise TypeError(f"k must be a 2-d jax.Array sharded by rows, got {type(k).__name__} "
                            f"{getattr(k, 'shape', '')}")
        self.k, self.shape, self.dtype = k, tuple(k.shape), np.dtype(k.dtype)
        seen = {}
        for s in k.addressable_shards:
            r = range(k.shape[0])[s.index[0]]
            if s.index[1] != slice(None) and range(k.shape[1])[s.index[1]] != range(k.shape[1]):
                raise ValueError("k must be sharded by rows only (each shard holding whole rows)")
            seen.setdefault((r.start, r.stop), s.data)
        self._parts = sorted(seen.items())

    def _collect(self, pieces, m):
        """(n1, m) float64 on every process from this process's (r0, r1, values) pieces."""
        full = np.zeros((self.shape[0], m))
        count = np.zeros(self.shape[0])
        for (r0, r1), v in pieces:
            full[r0:r1] = v
            count[r0:r1] = 1
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            full = np.asarray(multihost_utils.process_allgather(full)).sum(axis=0)
            count = np.asarray(multihost_utils.process_allgather(count)).sum(axis=0)
        if not (count > 0).all():
            raise ValueError("k's shards do not cover every row")
        return full / count[:, None]

    def matmul(self, v):
        v = np.ascontiguousarray(v, np.float64)
        with enable_x64():
            vd = jnp.asarray(v)
            pieces = [(r, np.asarray(_gemm(data, vd))) for r, data in self._parts]
        return self._collect(pieces, v.shape[1])

    def rows(self, idx):
        idx = np.asarray(idx)
        pieces = [(r, np.asarray(data[:, idx], np.float64)) for r, data in self._parts]
        return self._collect(pieces, idx.size).T

    def diagonal(self):
        pieces = [((r0, r1), np.diagonal(np.asarray(data[:, r0:r1], np.float64))[:, None])
                  for (r0, r1), data in self._parts]
        return self._collect(pieces, 1)[:, 0]


def row_blocks(n: int, block: int):
    """[(r0, r1), ...]: the row blocks of n rows, `block` each (the last one shorter)."""
    return [(r, min(r + block, n)) for r in range(0, n, block)]


class Written(NamedTuple):
    """What `write_kernel` did in this process: the row blocks it computed and those it found done."""

    computed: tuple
    skipped: tuple


def _file(folder, name, r0, r1):
    return Path(folder) / f"{name}_{r0:09d}_{r1:09d}.npy"


def _atomic(path, write):
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _manifest(folder):
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no kernel store (no manifest.json)")
    m = json.loads(path.read_text())
    if m.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {m.get('format')!r})")
    return m


def _claim(folder, manifest):
    """Create the folder and its manifest, or check that the one there describes this kernel."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
        if diff:
            raise ValueError(f"folder {folder} holds a different kernel (manifest differs in {', '.join(diff)}); "
                             "use another folder or delete it")
        return
    text = json.dumps(manifest, indent=1) + "\n"
    _atomic(path, lambda f: f.write(text.encode()))


def _done(folder, manifest, r0, r1):
    lead = tuple(manifest["lead"])
    for name in manifest["kernels"]:
        path = _file(folder, name, r0, r1)
        if not path.is_file():
            return False
        a = np.load(path, mmap_mode="r")
        if a.shape != lead + (r1 - r0, manifest["n2"]) or a.dtype != np.dtype(manifest["dtype"]):
            raise ValueError(f"{path} has shape {a.shape} and dtype {a.dtype}, not the manifest's "
                             f"{lead + (r1 - r0, manifest['n2'])} {manifest['dtype']}")
    return True


def write_kernel(folder, arch, x1, x2=None, *, block: int = 2048, trained="hidden", all_depths=False, get=None,
                 method="auto", tile: int = TILE, progress=None) -> Written:
    """The kernel between x1 and x2 written to `folder` in row blocks, each process its own (module doc).

    Every process (jax.distributed, or just one) calls it with the same arguments and whole
    inputs. Blocks already on disk are skipped, so a rerun after a killed process (with any
    number of processes) finishes the rest; the call returns after a barrier across processes.

    Args:
      folder: the store's folder (created; reused when it holds this same kernel).
      arch, x1, x2, trained, all_depths, get, method, tile: as in reskernel.kernel.
      block: rows per block and the square blocks computed (device memory ~ block^2, times
        depth with all_depths; host ~ block n2 per kernel). A ConvNet / ConvResNet (images
        (n, H, W, C)) computes each row block with reskernel.core.conv.conv_kernel against
        every column (its own image-pair blocks, conv.block_bytes): equal to conv_kernel's
        whole kernel to rounding (blocks of other shapes), not bit for bit.
      progress: called as progress(r0, r1) after each block this process writes.
    Returns:
      Written(computed, skipped): this process's row blocks, as (r0, r1) pairs.
    """
    conv = isinstance(arch, (ConvNet, ConvResNet))
    if conv:   # images (n, H, W, C): each row block by reskernel.core.conv.conv_kernel
        from .arch import check_trained
        from .conv import _images

        arch, trained = check_conv_arch(arch), check_trained(trained)
        all_depths = _checks.boolean("all_depths", all_depths)
        x1, x2 = _images(arch, x1, x2)
    else:
        arch, trained, x1, x2, all_depths = prepare(arch, x1, x2, trained, all_depths)
    picked = _check_get(get)
    block = _checks.positive_int("block", block)
    tile = _checks.positive_int("tile", tile)
    if _checks.traced(x1, x2):
        raise TypeError("write_kernel needs concrete inputs x1, x2, not traced ones")
    x1h = np.asarray(x1)
    x2h = None if x2 is None else np.asarray(x2)
    n1 = x1h.shape[0]
    n2 = n1 if x2 is None else x2h.shape[0]
    settings = dict(trained=trained, all_depths=bool(all_depths), method=method, block=block, tile=tile)
    check_agreement(fields(arch, x1h, x2h, get=picked, **settings))
    b1 = min(block, n1)
    blocks = row_blocks(n1, b1)
    folder = Path(folder)
    manifest = {"format": FORMAT, "n1": n1, "n2": n2, "dtype": str(x1h.dtype), "kernels": list(picked),
                "lead": [arch.depth] if all_depths else [], "symmetric": x2 is None, "arch": repr(arch),
                **settings, "inputs_sha256": _sha256(x1h, x2h), "blocks": [list(b) for b in blocks],
                "files": "{kernel}_{r0:09d}_{r1:09d}.npy"}
    _claim(folder, manifest)
    p = None if conv else plan(arch, trained, picked, x1, x2, method=method, all_depths=all_depths)
    computed, skipped = [], []
    for r0, r1 in blocks[jax.process_index()::jax.process_count()]:
        if _done(folder, manifest, r0, r1):
            skipped.append((r0, r1))
            continue
        if conv:   # rows r0:r1 against every column (no mirrored blocks: each row block alone)
            from .conv import conv_kernel

            k = conv_kernel(arch, x1h[r0:r1], x1h if x2h is None else x2h, trained=trained, all_depths=all_depths,
                            get=picked[0] if len(picked) == 1 else None, method=method)
            vals = (k,) if len(picked) == 1 else tuple(getattr(k, name) for name in picked)
        else:
            vals = blocked.row_block(arch, x1, x2, rows=(r0, r1), trained=trained, all_depths=all_depths,
                                     block=block, tile=tile, get=get, method=method, plan_=p)
        for name, v in zip(picked, vals):
            _atomic(_file(folder, name, r0, r1), lambda f, v=v: np.save(f, v))
        computed.append((r0, r1))
        if progress is not None:
            progress(r0, r1)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"reskernel.write_kernel {folder}")
    return Written(tuple(computed), tuple(skipped))


def missing_blocks(folder):
    """The row blocks (r0, r1) of the store in `folder` whose files are not all there yet."""
    m = _manifest(folder)
    return [tuple(b) for b in m["blocks"] if not _done(folder, m, *b)]


def read_kernel(folder, *, get=None):
    """The stored kernel, assembled in host memory: Kernel(nngp, ntk) of NumPy arrays ([L,] n1, n2),
    or the one array named by `get` (which must be stored). FileNotFoundError when blocks are missing."""
    folder = Path(folder)
    m = _manifest(folder)
    missing = missing_blocks(folder)
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(m['blocks'])} row blocks of {folder} are missing (first: "
                                f"rows {missing[0]}); rerun write_kernel with the same arguments to finish them")
    names = m["kernels"] if get is None else list(_check_get(get))
    if not set(names) <= set(m["kernels"]):
        raise ValueError(f"get={get!r}: the store holds {m['kernels']}")
    out = []
    for name in names:
        a = np.empty(tuple(m["lead"]) + (m["n1"], m["n2"]), np.dtype(m["dtype"]))
        for r0, r1 in m["blocks"]:
            a[..., r0:r1, :] = np.load(_file(folder, name, r0, r1), mmap_mode="r")
        out.append(a)
    return Kernel(*out) if get is None and len(out) == 2 else out[0]
