"""The sweep: draw the networks of every (arch, depth, width, seed) cell, compare their empirical
kernels with the analytic ones, and keep the per-seed errors in out/sweep.json.

sweep.json is a result store that concurrent runs share: a run first claims the folder (the
networks' identity, below, must match what is there), then merges each chunk of seeds into the
stored cells under the folder's lock, so runs over different grids into one folder keep every
cell. The stored "config" is the union of the grids written there.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ... import _checks
from ...core.analytic import kernel
from ...core.arch import FeedForward, ResNet, check_trained
from ...nets._lean import bytes_per_seed, lean_kernels
from ...precision import enable_x64
from .._store import REMEDY, update_document
from ._plots import plot_joint, plot_sweep
from ._spec import (KERNELS, METRICS, _arch, _inputs, _int_grid, arch_name, check_fits, check_scale, memory_budget,
                    parse_arch, seed_chunk)
from ._stats import _errors, summarize

__all__ = ["sweep"]

# Settings that decide which networks a cell's seeds are: runs that differ in them cannot share a file.
_IDENTITY = ("trained", "seed", "dtype", "inputs_sha256")
_FIELDS = {"config": dict, "cells": dict, "summary": dict}


def _config(archs, depths, widths, seeds, x, source, trained, seed, dtype):
    digest = hashlib.sha256(np.ascontiguousarray(x, np.float64).tobytes()).hexdigest()[:16]
    return {"archs": archs, "depths": depths, "widths": widths, "seeds": seeds, "trained": trained,
            "seed": seed, "dtype": dtype, "inputs": source, "n_inputs": int(x.shape[0]),
            "d_in": int(x.shape[1]), "inputs_sha256": digest}


def _checked(path, doc, cfg) -> dict:
    """The stored sweep `doc` (None: a fresh one for `cfg`), checked against `cfg`'s identity,
    with the union of both grids as its config."""
    if doc is None:
        return {"config": dict(cfg), "cells": {}}
    old = doc.get("config", {})
    bad = [k for k in _IDENTITY if old.get(k) != cfg[k]]
    if bad:
        raise ValueError(f"{path} holds a sweep with different {', '.join(bad)}; "
                         "use another --out folder or delete the file")
    cells = doc.setdefault("cells", {})
    for key, cell in cells.items():
        try:
            n = len(cell["seeds"])
            ok = all(len(cell[kern][met]) == n for kern in KERNELS for met in METRICS)
        except (TypeError, KeyError):
            ok = False
        if not ok:
            raise ValueError(f"the result file {path}: cell {key!r} is damaged (seeds and errors differ in number "
                             f"or are missing); {REMEDY}")
    union = dict(cfg)
    union["archs"] = list(dict.fromkeys(list(old.get("archs", [])) + list(cfg["archs"])))
    union["depths"] = sorted(set(old.get("depths", [])) | set(cfg["depths"]))
    union["widths"] = sorted(set(old.get("widths", [])) | set(cfg["widths"]))
    union["seeds"] = max(int(old.get("seeds", 0)), cfg["seeds"])
    doc["config"] = union
    return doc


def _merge_chunk(path, cfg, cell_key, new_cell, seeds, errors, seconds, size):
    """Under the lock: add the `seeds` (and their `errors`) the stored cell lacks."""
    def change(doc):
        doc = _checked(path, doc, cfg)
        cell = doc["cells"].setdefault(cell_key, new_cell)
        have = set(cell["seeds"])
        for i, s in enumerate(seeds):
            if s not in have:
                cell["seeds"].append(s)
                for kern in KERNELS:
                    for met in METRICS:
                        cell[kern][met].append(errors[kern][met][i])
        cell["seconds"] = cell.get("seconds", 0.0) + seconds
        cell["chunk"] = size
        return doc
    return update_document(path, change, _FIELDS)


def sweep(out, *, archs: Sequence = ("ffnet", "resnet:1", "resnet:0.75", "resnet:0.5"),
          depths: Iterable[int] = (4, 16), widths: Iterable[int] = (64, 128, 256, 512, 1024),
          seeds: int = 8, x=None, n_inputs: int = 64, d_in: Optional[int] = None, trained: str = "hidden",
          seed: int = 0, dtype="float32", chunk: Optional[int] = None, memory_bytes: Optional[int] = None,
          target_error: float = 0.05, progress: bool = True, plot: bool = True, log=print) -> dict:
    """Run (or resume) a convergence sweep; returns {"config", "cells", "summary"}: this run's
    grid, every stored cell, and the summary of this run's grid.

    Args:
      out: folder for sweep.json, sweep.png, sweep_joint.png (the figures show every stored cell).
      archs: "ffnet", "resnet[:gamma]" or FeedForward/ResNet(gamma=...) families.
      depths, widths: non-empty grids of ints >= 1.
      seeds: networks per (arch, depth, width), >= 1.
      x: (n, d) inputs, or None for n_inputs random points on the unit sphere in R^d_in (d_in default 16).
      trained: "hidden" or "all", as in reskernel.kernel.
      dtype: simulation dtype of the networks ("float32", or "float64" which enables x64 locally);
        the analytic kernels are always float64.
      chunk: seeds per vmapped batch; default: as many as fit `memory_bytes` (default half of the
        available device/host memory, see `memory_budget`). The chunk used is logged per cell.
        A cell whose single network needs more than the budget is refused before anything runs.
      target_error: relative Frobenius NTK/NNGP error for the width-for-error (joint limit) table.
      log: callable for progress messages (chunk sizes, skips).
    """
    families = [parse_arch(a) for a in (archs if not isinstance(archs, (str, FeedForward, ResNet)) else [archs])]
    if not families:
        raise ValueError("archs must name at least one architecture")
    names = list(dict.fromkeys(arch_name(f) for f in families))
    families = [parse_arch(n) for n in names]
    depths, widths = _int_grid("depths", depths), _int_grid("widths", widths)
    seeds = _checks.positive_int("seeds", seeds)
    trained = check_trained(trained)
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if chunk is not None:
        chunk = _checks.positive_int("chunk", chunk)
    if not (isinstance(target_error, (int, float)) and 0 < target_error):
        raise ValueError(f"target_error must be a number > 0, got {target_error!r}")
    if memory_bytes is not None and not (isinstance(memory_bytes, (int, np.integer)) and memory_bytes > 0):
        raise ValueError(f"memory_bytes must be an int > 0, got {memory_bytes!r}")
    x, source = _inputs(x, n_inputs, 16 if (x is None and d_in is None) else d_in, seed)
    for fam in families:  # the specs must be valid at every depth
        for depth in depths:
            _arch(fam, depth)
    check_scale(families, depths, x, dtype)
    budget = memory_budget() if memory_bytes is None else int(memory_bytes)
    check_fits(families, depths, widths, x.shape, dtype, budget)
    out = Path(out)
    path = out / "sweep.json"
    cfg = _config(names, depths, widths, seeds, x, source, trained, int(seed), dtype)
    stored = update_document(path, lambda doc: _checked(path, doc, cfg), _FIELDS)  # claim the folder
    max_depth = max(depths)
    itemsize = np.dtype(dtype).itemsize
    base = jax.random.PRNGKey(int(seed))

    todo = []  # depth innermost: one compilation per (arch, width) serves every depth
    for fam in families:
        for width in widths:
            for depth in depths:
                cell = stored["cells"].get(f"{arch_name(fam)}|{depth}|{width}", {"seeds": []})
                missing = [s for s in range(seeds) if s not in set(cell["seeds"])]
                if missing:
                    todo.append((fam, depth, width, missing))
    total = sum(len(t[3]) for t in todo)
    done_before = len(families) * len(depths) * len(widths) * seeds - total
    if done_before:
        log(f"resuming: {done_before} networks already in {path}, {total} to compute")
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="sweep", unit="net", disable=not progress)
    with enable_x64(True):
        xs64 = jnp.asarray(x, jnp.float64)
        theories = {}
        for fam in families:
            for depth in depths:
                k = kernel(_arch(fam, depth), xs64, trained=trained)
                theories[(arch_name(fam), depth)] = (np.asarray(k.nngp), np.asarray(k.ntk))
    with enable_x64(dtype == "float64"):
        xd = jnp.asarray(x, dtype)
        for fam, depth, width, missing in todo:
            arch, name = _arch(fam, depth), arch_name(fam)
            deepest = _arch(fam, max_depth)
            # The chunk depends on (arch, width) only, so every depth and resume reuses one compilation.
            fit = seed_chunk(deepest, width, x.shape[0], itemsize, seeds, budget)
            size = min(chunk, seeds) if chunk is not None else fit
            if chunk is not None and chunk > fit:
                log(f"{name} depth {depth} width {width}: chunk {chunk} may exceed the memory budget "
                    f"({budget / 2**30:.1f} GiB, ~{bytes_per_seed(deepest, width, x.shape[0], itemsize) / 2**30:.2f} "
                    f"GiB per seed); {fit} would fit")
            elif chunk is not None and size < len(missing):
                log(f"{name} depth {depth} width {width}: chunks of {size} seeds (as given; {fit} would fit "
                    f"the {budget / 2**30:.1f} GiB budget)")
            elif size < len(missing):
                log(f"{name} depth {depth} width {width}: {len(missing)} seeds do not fit at once in "
                    f"{budget / 2**30:.1f} GiB; using chunks of {size} seeds")
            bar.set_postfix_str(f"{name} L={depth} m={width} chunk={size}")
            cell_key = f"{name}|{depth}|{width}"
            cell_base = jax.random.fold_in(jax.random.fold_in(base, depth), width)
            th_nngp, th_ntk = theories[(name, depth)]
            for start in range(0, len(missing), size):
                part = missing[start:start + size]
                padded = part + [part[-1]] * (size - len(part))  # one compiled shape per cell
                keys = jnp.stack([jax.random.fold_in(cell_base, s) for s in padded])
                t0 = time.perf_counter()
                nngp, ntk = lean_kernels(keys, xd, arch=arch, width=width, trained=trained, max_depth=max_depth)
                nngp = np.asarray(nngp, np.float64)[:len(part)]
                ntk = np.asarray(ntk, np.float64)[:len(part)]
                seconds = time.perf_counter() - t0
                new_cell = {"arch": name, "depth": depth, "width": width, "seeds": [],
                            "nngp": {m: [] for m in METRICS}, "ntk": {m: [] for m in METRICS}, "seconds": 0.0,
                            "chunk": size}
                errors = {"nngp": _errors(nngp, th_nngp), "ntk": _errors(ntk, th_ntk)}
                _merge_chunk(path, cfg, cell_key, new_cell, part, errors, seconds, size)
                bar.update(len(part))
    bar.close()

    def finish(doc):
        doc = _checked(path, doc, cfg)
        doc["summary"] = summarize(doc, target_error)
        return doc
    stored = update_document(path, finish, _FIELDS)
    if plot:
        plot_sweep(stored, out / "sweep.png")
        plot_joint(stored, out / "sweep_joint.png")
    return {"config": cfg, "cells": stored["cells"], "summary": summarize({"config": cfg, "cells": stored["cells"]},
                                                                         target_error)}

