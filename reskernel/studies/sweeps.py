"""Convergence sweeps: empirical NNGP/NTK of finite networks against the analytic kernels.

For a grid of architectures (FFNet, ResNets of several gamma), depths, widths and seeds,
draws networks with the memory-lean simulator (reskernel._lean: weights generated layer by
layer from per-layer keys, seeds vmapped in chunks), and reports per seed
  frob:  |E - K|_F / |K|_F                      (per matrix)
  entry: mean_ij |E_ij - K_ij| / sqrt(K_ii K_jj)   (per entry, relative to the kernel's scale)
with their 5/50/95 percentiles over seeds, the slope of log error vs log width (theory -1/2:
the empirical kernels are averages over m neurons, fluctuations O(m^-1/2)), and the joint
limit: the width needed for a target error as a function of depth. Theory for the latter:
FFNet relative NTK variance ~ 5 L / m (Hanin & Nica 2019: exp(5 L / m) - 1), so the width for
a relative error eps grows like m ~ L / eps^2 (exponent 1 in depth); ResNet with a = L^-gamma,
gamma >= 1/2: the per-block contributions carry a^2 and the sum over blocks stays O(1), so the
relative fluctuation is O(m^-1/2) uniformly in depth (exponent 0).

Results: out/sweep.json (atomic writes after every chunk; per-seed results are kept, so a
rerun skips every (arch, depth, width, seed) already computed), out/sweep.png (error vs
width, 5-95% bands, one curve per depth, one panel per arch and kernel) and
out/sweep_joint.png (width for the target error vs depth).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ._io import read_json, write_json_atomic
from ..nets._lean import bytes_per_seed, hash_normal, lean_kernels, lean_params
from ..core.analytic import kernel
from ..core.arch import FeedForward, ResNet, check_trained
from ..precision import enable_x64

__all__ = ["sweep", "summarize", "fit_slope", "width_for_error", "parse_arch", "arch_name",
           "lean_kernels", "lean_params", "seed_chunk", "memory_budget", "plot_sweep", "plot_joint",
           "sweep_command", "joint_limit", "theory_width", "diagonal_relative_variance",
           "hash_normal", "KERNELS", "METRICS"]

KERNELS = ("nngp", "ntk")
METRICS = ("frob", "entry")


# --- specs ---------------------------------------------------------------------------

def parse_arch(spec):
    """"ffnet" | "resnet" (gamma = 1) | "resnet:GAMMA", or a FeedForward/ResNet(gamma=...)
    (its depth is ignored) -> (kind, gamma or None)."""
    if isinstance(spec, FeedForward):
        return ("ffnet", None)
    if isinstance(spec, ResNet):
        if spec.gamma is None:
            raise ValueError("sweeps need ResNet families a = depth^-gamma; give gamma, not alpha or scales")
        return ("resnet", float(spec.gamma))
    if not isinstance(spec, str):
        raise TypeError(f"arch must be 'ffnet', 'resnet[:gamma]' or a FeedForward/ResNet, got {spec!r}")
    s = spec.strip().lower()
    if s in ("ffnet", "feedforward"):
        return ("ffnet", None)
    if s == "resnet":
        return ("resnet", 1.0)
    if s.startswith("resnet:"):
        try:
            gamma = float(s.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"arch {spec!r}: gamma after 'resnet:' must be a number") from None
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"arch {spec!r}: gamma must be finite and >= 0")
        return ("resnet", gamma)
    raise ValueError(f"arch must be 'ffnet', 'resnet' or 'resnet:GAMMA', got {spec!r}")


def arch_name(family) -> str:
    kind, gamma = family
    return "ffnet" if kind == "ffnet" else f"resnet:{gamma:g}"


def _arch(family, depth):
    kind, gamma = family
    return FeedForward(depth) if kind == "ffnet" else ResNet(depth, gamma=gamma)


def _int_grid(name, values, *, minimum=1):
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty list of ints >= {minimum}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        if v < minimum:
            raise ValueError(f"{name} must hold ints >= {minimum}, got {int(v)}")
        out.append(int(v))
    return sorted(set(out))


def _inputs(x, n_inputs, d_in, seed):
    if x is None:
        n = _checks.positive_int("n_inputs", n_inputs)
        d = _checks.positive_int("d_in", d_in)
        z = np.random.default_rng(seed).normal(size=(n, d))
        return z / np.linalg.norm(z, axis=1, keepdims=True), "unit sphere"
    x1, _ = _checks.inputs(x)
    x = np.asarray(x1, np.float64)
    if d_in is not None and x.shape[1] != d_in:
        raise ValueError(f"inputs have dimension {x.shape[1]} but d_in = {d_in}")
    return x, "given"


# --- memory --------------------------------------------------------------------------

def memory_budget(fraction: float = 0.5) -> int:
    """Bytes the vmapped seeds may use: `fraction` of the default device's memory limit
    (accelerators report it through memory_stats) or of the host's available memory."""
    dev = jax.devices()[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # not every backend implements memory_stats
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(fraction * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        avail = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(fraction * avail)


def seed_chunk(arch, width, n, itemsize, seeds, budget) -> int:
    """Seeds per vmapped batch that fit `budget` bytes (at least 1, at most `seeds`)."""
    return int(max(1, min(seeds, budget // max(1, bytes_per_seed(arch, width, n, itemsize)))))


# --- statistics ----------------------------------------------------------------------

def _errors(emp, theory):
    """emp (S, n, n), theory (n, n) float64 -> dict of per-seed errors."""
    diff = emp - theory[None]
    frob = np.linalg.norm(diff, axis=(1, 2)) / np.linalg.norm(theory)
    d = np.sqrt(np.abs(np.diag(theory)))
    entry = (np.abs(diff) / (d[:, None] * d[None, :])[None]).mean(axis=(1, 2))
    return {"frob": frob.tolist(), "entry": entry.tolist()}


def fit_slope(widths, errors):
    """OLS slope of log error vs log width over every (width, seed) point, with its standard
    error from the residuals. widths (k,), errors: list of k arrays of per-seed errors.
    Returns (slope, stderr) (stderr nan with fewer than 3 points)."""
    lx = np.concatenate([np.full(len(e), math.log(w)) for w, e in zip(widths, errors)])
    ly = np.log(np.concatenate([np.asarray(e, np.float64) for e in errors]))
    if len(set(lx.tolist())) < 2:
        return float("nan"), float("nan")
    A = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    dof = len(ly) - 2
    if dof < 1:
        return float(coef[0]), float("nan")
    s2 = float(np.sum((ly - A @ coef) ** 2) / dof)
    cov = s2 * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


def width_for_error(widths, medians, target):
    """Width at which the median error reaches `target`, from the log-log fit of median error
    vs width (extrapolated when outside the measured range). Returns (width, extrapolated)."""
    lw, le = np.log(np.asarray(widths, float)), np.log(np.asarray(medians, float))
    if len(lw) < 2:
        return float("nan"), True
    slope, icept = np.polyfit(lw, le, 1)
    if slope >= 0:
        return float("inf"), True
    w = math.exp((math.log(target) - icept) / slope)
    return float(w), not (min(widths) <= w <= max(widths))


# --- joint limit: theory ------------------------------------------------------------

def diagonal_relative_variance(arch, width) -> float:
    """Exact Var[E(x, x)] / K(x, x)^2 for the empirical NNGP diagonal E(x, x) = |x_L|^2 of one
    network of `width` with Gaussian weights (any input x != 0; the depth-width joint limit).

    Every layer multiplies |x|^2 by an independent factor (Hanin & Rolnick 2018; the exact
    moments are derived in reskernel.lengths):
      FFNet:  (2/m) chi^2 of Binomial(m, 1/2) dof, second moment 1 + 5/m:
              prod_{l=1..L} (1 + 5/m) - 1  ~  5 L / m  (exp(5 L / m) - 1 for L ~ m).
      ResNet: the embedding |A x|^2 / m (second moment 1 + 2/m) and per block, e = a_l^2,
              E Z = 1 + e, E Z^2 = 1 + 2e + 4e/m + e^2 (1 + 5/m)(1 + 2/m):
              (1 + 2/m) prod_l E Z_l^2 / (E Z_l)^2 - 1  ~  (2 + 4 sum_l a_l^2) / m,
              bounded in depth when sum_l a_l^2 = L^(1 - 2 gamma) is (gamma >= 1/2).
    `width` may be any real > 0 (used to solve for the width); returns a float64 number.
    """
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a FeedForward or a ResNet, got {type(arch).__name__}")
    m = float(width)
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    s = _log_second_moment_ratio(arch, m)
    return math.expm1(s) if s < 700 else float("inf")


def _log_second_moment_ratio(arch, m):
    """log(E[E(x,x)^2] / K(x,x)^2) (see diagonal_relative_variance), float64."""
    if isinstance(arch, FeedForward):
        return arch.depth * math.log1p(5.0 / m)
    e = np.asarray(arch.branch_scales, np.float64) ** 2
    ratio = (1 + 2 * e + 4 * e / m + e * e * (1 + 5 / m) * (1 + 2 / m)) / (1 + e) ** 2
    return float(math.log1p(2.0 / m) + np.sum(np.log(ratio)))


def theory_width(arch, target: float) -> float:
    """Width m (real) at which the relative standard deviation of the empirical NNGP diagonal,
    sqrt(diagonal_relative_variance(arch, m)), equals `target` (> 0): ~ 5 L / target^2 for
    the FFNet (linear in depth), -> 2 / target^2 for ResNets with gamma > 1/2 (bounded)."""
    from scipy.optimize import brentq

    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a finite number > 0, got {target!r}")
    if not isinstance(arch, (FeedForward, ResNet)):
        raise TypeError(f"arch must be a FeedForward or a ResNet, got {type(arch).__name__}")

    def f(lm):  # log(relative variance) - log(target^2), computed without overflow
        s = _log_second_moment_ratio(arch, math.exp(lm))
        return (s + math.log(-math.expm1(-s)) if s > 1e-300 else -math.inf) - 2 * math.log(target)
    lo, hi = math.log(1e-3), math.log(1e15)
    if f(hi) > 0:
        return float("inf")
    return float(math.exp(brentq(f, lo, hi, xtol=1e-10)))


def joint_limit(results: dict, target_error: float = 0.1) -> dict:
    """The joint depth-width limit from a sweep's content (sweep.json), theory beside measurement.

    Returns {"rows": [...], "exponents": [...]}:
      rows, per (arch, depth, kernel): "width", the width at which the median relative
        Frobenius error reaches `target_error` (log-log fit over the swept widths,
        "extrapolated" when outside them), and "theory_width", the width at which the
        relative std of the NNGP diagonal reaches it (`theory_width`; the same number for
        both kernels, a scale reference: the metrics differ by O(1) factors).
      exponents, per (arch, kernel) with >= 2 depths: the fitted log-log slope of width vs
        depth, "measured" and "theory_fit" (of theory_width over the same depths), and the
        asymptotic "theory": 1 for the FFNet, 0 for ResNets with gamma >= 1/2, None otherwise.
    """
    if not (isinstance(target_error, (int, float)) and math.isfinite(target_error) and target_error > 0):
        raise ValueError(f"target_error must be a finite number > 0, got {target_error!r}")
    cfg = results["config"]
    rows = []
    for name in cfg["archs"]:
        fam = parse_arch(name)
        for depth in cfg["depths"]:
            th = theory_width(_arch(fam, depth), target_error)
            for kern in KERNELS:
                ws, meds = [], []
                for width in cfg["widths"]:
                    cell = results["cells"].get(f"{name}|{depth}|{width}")
                    if not cell:
                        continue
                    e = [v for s, v in zip(cell["seeds"], cell[kern]["frob"]) if s < cfg["seeds"]]
                    if e:
                        ws.append(width)
                        meds.append(float(np.median(e)))
                if len(ws) < 2:
                    continue
                w, extra = width_for_error(ws, meds, target_error)
                rows.append({"arch": name, "depth": depth, "kernel": kern, "target": target_error,
                             "width": w, "extrapolated": extra, "theory_width": th})
    exponents = []
    for name in cfg["archs"]:
        fam = parse_arch(name)
        asym = 1.0 if fam[0] == "ffnet" else (0.0 if fam[1] >= 0.5 else None)
        for kern in KERNELS:
            pts = [(r["depth"], r["width"], r["theory_width"]) for r in rows
                   if r["arch"] == name and r["kernel"] == kern and math.isfinite(r["width"])]
            if len(set(p[0] for p in pts)) >= 2:
                ld = np.log([p[0] for p in pts])
                exponents.append({"arch": name, "kernel": kern, "target": target_error,
                                  "measured": float(np.polyfit(ld, np.log([p[1] for p in pts]), 1)[0]),
                                  "theory_fit": float(np.polyfit(ld, np.log([p[2] for p in pts]), 1)[0]),
                                  "theory": asym, "depths": [p[0] for p in pts]})
    return {"rows": rows, "exponents": exponents}


def summarize(results: dict, target_error: float = 0.05) -> dict:
    """Percentiles, width slopes and the joint depth-width table from sweep.json's content.

    Each row also carries "theory_diag_std", sqrt(diagonal_relative_variance): the exact
    relative std of one diagonal NNGP entry, the scale the per-matrix errors should track."""
    cfg = results["config"]
    rows, slopes = [], []
    for name in cfg["archs"]:
        for depth in cfg["depths"]:
            for kern in KERNELS:
                per_width = {}
                for width in cfg["widths"]:
                    cell = results["cells"].get(f"{name}|{depth}|{width}")
                    if not cell:
                        continue
                    sel = [i for i, s in enumerate(cell["seeds"]) if s < cfg["seeds"]]
                    if not sel:
                        continue
                    row = {"arch": name, "depth": depth, "width": width, "kernel": kern, "seeds": len(sel),
                           "theory_diag_std": math.sqrt(diagonal_relative_variance(
                               _arch(parse_arch(name), depth), width))}
                    for met in METRICS:
                        e = np.asarray(cell[kern][met])[sel]
                        p5, p50, p95 = np.percentile(e, [5, 50, 95])
                        row.update({f"{met}_p5": float(p5), f"{met}_p50": float(p50), f"{met}_p95": float(p95)})
                        per_width.setdefault(met, []).append((width, e))
                    rows.append(row)
                for met, pts in per_width.items():
                    if len(pts) < 2:
                        continue
                    ws = [w for w, _ in pts]
                    slope, se = fit_slope(ws, [e for _, e in pts])
                    med = np.polyfit(np.log(ws), np.log([np.median(e) for _, e in pts]), 1)[0]
                    slopes.append({"arch": name, "depth": depth, "kernel": kern, "metric": met,
                                   "slope": slope, "stderr": se, "slope_of_medians": float(med),
                                   "widths": ws})
    joint = joint_limit(results, target_error)
    return {"rows": rows, "slopes": slopes, "joint": joint["rows"], "depth_exponents": joint["exponents"]}


# --- the sweep -----------------------------------------------------------------------

def _config(archs, depths, widths, seeds, x, source, trained, seed, dtype):
    digest = hashlib.sha256(np.ascontiguousarray(x, np.float64).tobytes()).hexdigest()[:16]
    return {"archs": archs, "depths": depths, "widths": widths, "seeds": seeds, "trained": trained,
            "seed": seed, "dtype": dtype, "inputs": source, "n_inputs": int(x.shape[0]),
            "d_in": int(x.shape[1]), "inputs_sha256": digest}


_IDENTITY = ("trained", "seed", "dtype", "inputs_sha256")


def sweep(out, *, archs: Sequence = ("ffnet", "resnet:1", "resnet:0.75", "resnet:0.5"),
          depths: Iterable[int] = (4, 16), widths: Iterable[int] = (64, 128, 256, 512, 1024),
          seeds: int = 8, x=None, n_inputs: int = 64, d_in: Optional[int] = None, trained: str = "hidden",
          seed: int = 0, dtype="float32", chunk: Optional[int] = None, memory_bytes: Optional[int] = None,
          target_error: float = 0.05, progress: bool = True, plot: bool = True, log=print) -> dict:
    """Run (or resume) a convergence sweep; returns the content of out/sweep.json with a "summary".

    Args:
      out: folder for sweep.json, sweep.png, sweep_joint.png.
      archs: "ffnet", "resnet[:gamma]" or FeedForward/ResNet(gamma=...) families.
      depths, widths: non-empty grids of ints >= 1.
      seeds: networks per (arch, depth, width), >= 1.
      x: (n, d) inputs, or None for n_inputs random points on the unit sphere in R^d_in (d_in default 16).
      trained: "hidden" or "all", as in reskernel.kernel.
      dtype: simulation dtype of the networks ("float32", or "float64" which enables x64 locally);
        the analytic kernels are always float64.
      chunk: seeds per vmapped batch; default: as many as fit `memory_bytes` (default half of the
        available device/host memory, see `memory_budget`). The chunk used is logged per cell.
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
    x, source = _inputs(x, n_inputs, 16 if (x is None and d_in is None) else d_in, seed)
    for fam in families:  # the analytic kernels must stay in float64 range
        for depth in depths:
            _arch(fam, depth)
    out = Path(out)
    path = out / "sweep.json"
    cfg = _config(names, depths, widths, seeds, x, source, trained, int(seed), dtype)
    results = read_json(path)
    if results is not None:
        old = results.get("config", {})
        bad = [k for k in _IDENTITY if old.get(k) != cfg[k]]
        if bad:
            raise ValueError(f"{path} holds a sweep with different {', '.join(bad)}; "
                             "use another --out folder or delete the file")
        results["config"] = cfg
    else:
        results = {"config": cfg, "cells": {}}
    budget = memory_budget() if memory_bytes is None else int(memory_bytes)
    max_depth = max(depths)
    itemsize = np.dtype(dtype).itemsize
    base = jax.random.PRNGKey(int(seed))

    todo = []  # depth innermost: one compilation per (arch, width) serves every depth
    for fam in families:
        for width in widths:
            for depth in depths:
                cell = results["cells"].get(f"{arch_name(fam)}|{depth}|{width}", {"seeds": []})
                missing = [s for s in range(seeds) if s not in set(cell["seeds"])]
                if missing:
                    todo.append((fam, depth, width, missing))
    total = sum(len(t[3]) for t in todo)
    done_before = sum(1 for fam in families for d in depths for w in widths for s in range(seeds)) - total
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
                cell = results["cells"].setdefault(cell_key, {"arch": name, "depth": depth, "width": width,
                                                              "seeds": [], "nngp": {m: [] for m in METRICS},
                                                              "ntk": {m: [] for m in METRICS}, "seconds": 0.0,
                                                              "chunk": size})
                cell["seeds"].extend(part)
                for kern, emp, th in (("nngp", nngp, th_nngp), ("ntk", ntk, th_ntk)):
                    for met, vals in _errors(emp, th).items():
                        cell[kern][met].extend(vals)
                cell["seconds"] += seconds
                cell["chunk"] = size
                write_json_atomic(path, results)
                bar.update(len(part))
    bar.close()
    results["summary"] = summarize(results, target_error)
    write_json_atomic(path, results)
    if plot:
        plot_sweep(results, out / "sweep.png")
        plot_joint(results, out / "sweep_joint.png")
    return results


# --- plots ---------------------------------------------------------------------------

def plot_sweep(results: dict, path, metric: str = "frob") -> Path:
    """Median error vs width with 5-95% bands, one curve per depth; a panel per arch and kernel."""
    from ..plotting import figure, save

    rows = results["summary"]["rows"]
    archs = results["config"]["archs"]
    fig, axes = figure(len(archs), width=4.5, height=7.0)
    fig.clf()
    axes = fig.subplots(2, len(archs), squeeze=False)
    cmap = __import__("matplotlib").colormaps["viridis"]
    depths = results["config"]["depths"]
    for j, name in enumerate(archs):
        for i, kern in enumerate(KERNELS):
            ax = axes[i, j]
            for c, depth in enumerate(depths):
                sel = [r for r in rows if r["arch"] == name and r["kernel"] == kern and r["depth"] == depth]
                if not sel:
                    continue
                col = cmap(c / max(1, len(depths) - 1))
                w = [r["width"] for r in sel]
                ax.plot(w, [r[f"{metric}_p50"] for r in sel], "o-", color=col, label=f"depth {depth}")
                ax.fill_between(w, [r[f"{metric}_p5"] for r in sel], [r[f"{metric}_p95"] for r in sel],
                                color=col, alpha=0.2)
                if kern == "nngp" and "theory_diag_std" in sel[0]:
                    ax.plot(w, [r["theory_diag_std"] for r in sel], "--", color=col, lw=1,
                            label=f"theory, depth {depth}: std of diagonal")
            if any(r["arch"] == name and r["kernel"] == kern for r in rows):
                w0 = np.array(results["config"]["widths"], float)
                ref = [r[f"{metric}_p50"] for r in rows if r["arch"] == name and r["kernel"] == kern]
                ax.plot(w0, np.median(ref) * np.sqrt(np.median(w0) / w0), "k:", lw=1, label="m^-1/2")
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel("width m")
            ax.set_ylabel(f"relative {'Frobenius' if metric == 'frob' else 'per-entry'} error")
            ax.set_title(f"{name}: {kern.upper()}")
            ax.legend()
    return save(fig, path)


def plot_joint(results: dict, path) -> Path:
    """Width needed for the target NTK/NNGP error vs depth, per arch (log-log): measured
    (crosses where extrapolated beyond the swept widths) beside theory (dashed)."""
    from ..plotting import figure, save

    joint = results["summary"]["joint"]
    fig, axes = figure(2)
    for ax, kern in zip(axes, KERNELS):
        for name in results["config"]["archs"]:
            pts = [j for j in joint if j["arch"] == name and j["kernel"] == kern and math.isfinite(j["width"])]
            if pts:
                line, = ax.plot([p["depth"] for p in pts], [p["width"] for p in pts], "-", label=f"{name} measured")
                for extra, marker in ((False, "o"), (True, "x")):
                    sel = [p for p in pts if bool(p["extrapolated"]) == extra]
                    if sel:
                        ax.plot([p["depth"] for p in sel], [p["width"] for p in sel], marker, color=line.get_color(),
                                ms=7, label=f"{name} extrapolated past the swept widths" if extra else None)
                ax.plot([p["depth"] for p in pts], [p["theory_width"] for p in pts], "--", color=line.get_color(),
                        label=f"{name} theory (NNGP diagonal)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        target = joint[0]["target"] if joint else float("nan")
        ax.set_xlabel("depth L")
        ax.set_ylabel(f"width for median relative error {target:g}")
        ax.set_title(f"joint limit: {kern.upper()} (FFNet theory ~ L, ResNet ~ const)")
        if any(ax.get_lines()):
            ax.legend()
    return save(fig, path)


# --- command -------------------------------------------------------------------------

def _sweep_command():
    import click

    def ints(name):
        def convert(ctx, param, value):
            try:
                vals = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise click.BadParameter(f"{name} must be comma-separated ints, got {value!r}") from None
            if not vals:
                raise click.BadParameter(f"give at least one {name[:-1]}")
            if min(vals) < 1:
                raise click.BadParameter(f"{name} must be >= 1, got {min(vals)}")
            return vals
        return convert

    @click.command("sweep")
    @click.option("--out", default="results/sweep", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for sweep.json, sweep.png, sweep_joint.png.")
    @click.option("--archs", default="ffnet,resnet:1,resnet:0.75,resnet:0.5", show_default=True,
                  help="Comma-separated: ffnet, resnet, resnet:GAMMA.")
    @click.option("--depths", default="4,16", show_default=True, callback=ints("depths"))
    @click.option("--widths", default="64,128,256,512,1024", show_default=True, callback=ints("widths"))
    @click.option("--seeds", default=8, show_default=True, type=click.IntRange(min=1))
    @click.option("--n-inputs", default=64, show_default=True, type=click.IntRange(min=1),
                  help="Random unit-sphere inputs (ignored with --inputs).")
    @click.option("--d-in", default=None, type=click.IntRange(min=1), help="Input dimension [16].")
    @click.option("--inputs", "inputs_path", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="A .npy file of (n, d) inputs instead of random ones.")
    @click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]))
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]))
    @click.option("--chunk", default=None, type=click.IntRange(min=1),
                  help="Seeds per vmapped batch [as many as fit the memory budget].")
    @click.option("--memory-gb", default=None, type=click.FloatRange(min=0.0, min_open=True),
                  help="Memory budget for a chunk [half of the available device/host memory].")
    @click.option("--target-error", default=0.05, show_default=True, type=click.FloatRange(min=0.0, min_open=True),
                  help="Relative error for the width-for-error vs depth table.")
    @click.option("--plot/--no-plot", default=True, show_default=True)
    def sweep_cmd(out, archs, depths, widths, seeds, n_inputs, d_in, inputs_path, trained, seed, dtype, chunk,
                  memory_gb, target_error, plot):
        """Empirical NNGP/NTK vs analytic kernels over widths, depths, architectures and seeds."""
        x = None if inputs_path is None else np.load(inputs_path)
        try:
            res = sweep(out, archs=[a for a in archs.split(",") if a.strip()], depths=depths, widths=widths,
                        seeds=seeds, x=x, n_inputs=n_inputs, d_in=d_in, trained=trained, seed=seed, dtype=dtype,
                        chunk=chunk, memory_bytes=None if memory_gb is None else int(memory_gb * 2**30),
                        target_error=target_error, plot=plot, log=click.echo)
        except (ValueError, TypeError) as e:
            raise click.UsageError(str(e)) from None
        s = res["summary"]
        click.echo(f"{'arch':<13}{'depth':>6}{'kernel':>7}{'slope (frob, all seeds)':>26}{'median-slope':>14}")
        for r in s["slopes"]:
            if r["metric"] == "frob":
                click.echo(f"{r['arch']:<13}{r['depth']:>6}{r['kernel']:>7}{r['slope']:>17.3f} +- {r['stderr']:.3f}"
                           f"{r['slope_of_medians']:>14.3f}")
        click.echo(f"joint limit: width for median relative Frobenius error {target_error:g} (measured) beside the "
                   f"width for NNGP-diagonal relative std {target_error:g} (theory)")
        for r in s["joint"]:
            click.echo(f"  {r['arch']:<13} depth {r['depth']:>5} {r['kernel']:<5} measured {r['width']:>10.0f}"
                       f"{' (extrapolated)' if r['extrapolated'] else '               '}  theory {r['theory_width']:>10.0f}")
        for r in s["depth_exponents"]:
            th = "" if r["theory"] is None else f", asymptotic {r['theory']:g}"
            click.echo(f"width-for-error ~ depth^{r['measured']:.2f} measured, depth^{r['theory_fit']:.2f} theory{th}: "
                       f"{r['arch']} {r['kernel']}")
        click.echo(f"wrote {Path(out) / 'sweep.json'}" + (", sweep.png, sweep_joint.png" if plot else ""))

    return sweep_cmd


sweep_command = _sweep_command()
