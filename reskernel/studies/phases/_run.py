"""The study: kernel regression at every (activation, architecture, grid point), all depths and
precisions of a unit at once, merged into the result store (out/phases_<dataset>.json/.csv)
as each unit ends; a rerun skips the units already there, also those another run into the same
folder finished meanwhile."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from ...core.arch import check_trained
from ...inference.regression import _as_kernels, _check_ridge, _solve, check_depths, depth_kernels, scores
from ...precision import enable_x64
from .._depths import by_depth
from .._store import Table
from ..depth_study import KERNELS, MAX_JITTER, PRECISIONS, parse_list
from ._spec import (critical_w, family, grid_points, parse_activations, parse_archs, parse_values, point_signal,
                    resnet_chi_total)

__all__ = ["study", "KEY_FIELDS"]

KEY_FIELDS = ("dataset", "classes", "n_train", "n_test", "seed", "ridge", "trained", "activation", "arch",
              "w_var", "b_var", "precision", "kernel", "depth")
_BASE = KEY_FIELDS[:7]
META = {
    "rows": "one per (activation, arch, w_var, b_var, precision, kernel, depth): test accuracy and MSE of kernel "
            "ridge regression (float64 Cholesky, ridge x mean diagonal, ridge_used after jitter)",
    "inputs": "images centred and projected on the unit sphere; in_var = 1, so the first layer's variance is "
              "q_1 = 1 + b_var",
    "precision": "dtype of the inputs given to reskernel's depth kernels (float32: its tables or float64 "
                 "recursion, rounded to float32); the solve is float64",
    "signal": "phase, chi_1, q_star, c_star, xi_c: the FFNet's signal propagation at (w_var, b_var) (null: "
              "q_star unbounded, c_star none, xi_c infinite); w_crit: the critical w_var at b_var; chi_total: the "
              "ResNet's slope at rho = 1 at that depth",
    "majority": "accuracy of predicting the test set's more frequent class (chance)",
    "kernel_spread": "(max - min) of the test x train kernel over its largest |entry|: what regression can read",
    "kernel_err": "float32 rows computed beside float64 in the same run: max |K32 - K64| / max |K64|",
    "status": "ok, or why there is no accuracy (e.g. kernels beyond the dtype's range)",
}


def _values(values, name, positive):
    if isinstance(values, str):
        return parse_values(values, name=name, positive=positive)
    return parse_values(",".join(repr(float(v)) for v in values), name=name, positive=positive)


def _kernels(fam, x_tr, x_te, depths, dtype, trained) -> dict:
    """{depth: (train (2, n, n), test x train (2, m, n)) float64 (nngp, ntk)} or {depth: why not}."""
    def at(ds):
        with enable_x64(dtype == "float64"):
            a, b = jnp.asarray(x_tr, dtype), jnp.asarray(x_te, dtype)
            k_tr = depth_kernels(fam, a, None, ds, trained=trained)
            k_te = depth_kernels(fam, b, a, ds, trained=trained)
            return {int(d): (np.stack([np.asarray(k_tr.nngp[j], np.float64), np.asarray(k_tr.ntk[j], np.float64)]),
                             np.stack([np.asarray(k_te.nngp[j], np.float64), np.asarray(k_te.ntk[j], np.float64)]))
                    for j, d in enumerate(ds)}
    return by_depth(at, depths)   # e.g. the deepest kernels leave the dtype's range: keep the others


def _regress(k_tr, k_te, y_tr, y_te, ridge):
    """(accuracy, mse, ridge_used) arrays over the leading axis, or raises ValueError/LinAlgError."""
    pred, used = _solve(*_as_kernels(k_tr, k_te, y_tr), ridge, MAX_JITTER)
    acc, mse = scores(pred, y_te)
    return acc, mse, used


def _unit_rows(base, activation, arch, point, depths, kernels, precisions, ds, ridge, trained, majority):
    """Every row of one (activation, arch, point): kernels of each precision, regression, signal."""
    sig = point_signal(activation, point.w_var, point.b_var)
    try:
        wc = critical_w(activation, point.b_var)
    except ValueError:   # an activation without a critical line (e.g. GELU) run with critical=False
        wc = None
    fam = family(arch, activation, point.w_var, point.b_var)
    gamma = None if arch == "ffnet" else float(arch.split(":")[1])
    chi_total = {d: resnet_chi_total(arch, activation, point.w_var, point.b_var, d) for d in depths}
    rows, seconds, ref = [], {}, None
    for p in sorted(precisions, key=PRECISIONS.index):   # float64 first: float32 is compared with it
        start = time.perf_counter()
        ks = _kernels(fam, ds.x_train, ds.x_test, depths, p, trained)
        seconds[p] = round(time.perf_counter() - start, 2)
        if p == "float64":
            ref = ks
        for ki, kname in enumerate(("nngp", "ntk")):
            if kname not in kernels:
                continue
            for d in depths:
                row = dict(base, activation=activation, arch=arch, gamma=gamma, w_var=point.w_var,
                           b_var=point.b_var, on_line=point.on_line, precision=p, kernel=kname, depth=int(d),
                           accuracy=None, majority=majority, mse=None, ridge_used=None, kernel_spread=None,
                           kernel_err=None, **sig, w_crit=wc, chi_total=chi_total[d], status="ok", kernel_s=seconds[p])
                k = ks[d]
                if isinstance(k, str):
                    row["status"] = k
                    rows.append(row)
                    continue
                k_tr, k_te = k[0][ki], k[1][ki]
                top = float(np.abs(k_te).max()) or 1.0
                row["kernel_spread"] = float((k_te.max() - k_te.min()) / top)
                if p == "float32" and ref is not None and not isinstance(ref[d], str):
                    r_tr, r_te = ref[d][0][ki], ref[d][1][ki]
                    scale = max(float(np.abs(r_tr).max()), float(np.abs(r_te).max())) or 1.0
                    row["kernel_err"] = float(max(np.abs(k_tr - r_tr).max(), np.abs(k_te - r_te).max()) / scale)
                try:
                    acc, mse, used = _regress(k_tr[None], k_te[None], ds.y_train, ds.y_test, ridge)
                    row.update(accuracy=float(acc[0]), mse=float(mse[0]), ridge_used=float(used[0]))
                except (ValueError, np.linalg.LinAlgError) as e:
                    row["status"] = f"regression failed: {e}"
                rows.append(row)
    return rows, seconds


def study(dataset: str = "mnist2", *, activations: Sequence[str] = ("erf", "relu"), w_vars=(1.0, 2.0, 3.0),
          b_vars=(0.05,), critical: bool = True, depths: Sequence[int] = (1, 10, 100),
          ffnet_depths: Optional[Sequence[int]] = None,
          archs: Sequence[str] = ("ffnet", "resnet:0.5", "resnet:1"), kernels: Sequence[str] = KERNELS,
          precisions: Sequence[str] = ("float64",), classes=None, n_train: Optional[int] = 100,
          n_test: Optional[int] = 100, seed: int = 0, ridge: float = 1e-6, trained: str = "hidden",
          out="results/phases", data_dir=None, progress: bool = True, plot: bool = True) -> dict:
    """Run (or resume) the phase-diagram study on one data set.

    Units: (activation, arch, point), the points being w_vars x b_vars and, with critical, one
    point on the critical line per b_var. The FFNet runs at ffnet_depths (default: depths; one
    pass to the deepest, so extra depths are cheap), the ResNets at depths (each its own net).
    Each unit computes its kernels at every depth in each precision (float64 first; float32 rows
    then carry kernel_err against it), solves the regressions, and merges its rows into
    out/phases_<dataset>.json (and .csv) under the folder's lock. Units whose rows are all
    stored with these settings are skipped ("resumed").

    Returns {"rows" (every stored row with this run's data settings), "json", "csv", "pngs",
    "computed" (units with their kernel seconds), "resumed"}.
    """
    from tqdm.auto import tqdm

    from ...data import two_class

    activations = parse_activations(activations if isinstance(activations, str) else ",".join(activations))
    w_vars = _values(w_vars, "w_vars", True)
    b_vars = _values(b_vars, "b_vars", False)
    depths = sorted(set(int(d) for d in check_depths(depths)))
    ffnet_depths = depths if ffnet_depths is None else sorted(set(int(d) for d in check_depths(ffnet_depths)))
    archs = parse_archs(archs)
    kernels = parse_list(",".join(kernels), KERNELS, name="kernels")
    precisions = parse_list(",".join(precisions), PRECISIONS, name="precisions")
    ridge, trained = _check_ridge(ridge), check_trained(trained)
    grids = {a: grid_points(a, w_vars, b_vars, critical=critical) for a in activations}
    ds = two_class(dataset, classes, n_train, n_test, seed=seed, data_dir=data_dir)
    if ds.n_train < 2 or len(np.unique(ds.y_train)) < 2:
        raise ValueError(f"need at least 2 training images covering both classes, got {ds.n_train}")
    out = Path(out)
    table = Table(out, f"phases_{dataset}", KEY_FIELDS)
    base = {"dataset": dataset, "classes": list(ds.classes), "n_train": ds.n_train, "n_test": ds.n_test,
            "seed": int(seed), "ridge": float(ridge), "trained": trained}
    meta = dict(META, data=ds.metadata)
    majority = float(max(np.mean(ds.y_test > 0), np.mean(ds.y_test < 0)))

    def keys(act, arch, pt):
        return [table.key(dict(base, activation=act, arch=arch, w_var=pt.w_var, b_var=pt.b_var, precision=p,
                               kernel=k, depth=d)) for p in precisions for k in kernels for d in at(arch)]

    def at(arch):
        return ffnet_depths if arch == "ffnet" else depths

    have = {table.key(r) for r in table.merge()}   # checks the stored rows, repairs the CSV
    units = [(a, arch, pt) for a in activations for arch in archs for pt in grids[a]]
    computed, resumed = [], []
    bar = tqdm(units, desc=f"phases {dataset}", unit="unit", disable=not progress)
    for act, arch, pt in bar:
        name = {"activation": act, "arch": arch, "w_var": pt.w_var, "b_var": pt.b_var}
        if not all(k in have for k in keys(act, arch, pt)):
            have = {table.key(r) for r in table.read()}   # another run into `out` may have done it
        if all(k in have for k in keys(act, arch, pt)):
            resumed.append(name)
            continue
        bar.set_postfix_str(f"{act} {arch} w={pt.w_var:.4g} b={pt.b_var:g}")
        rows, seconds = _unit_rows(base, act, arch, pt, at(arch), kernels, precisions, ds, ridge, trained,
                                   majority)
        have = {table.key(r) for r in table.merge(rows, meta)}
        computed.append(dict(name, kernel_s=seconds))
    bar.close()
    sel = [r for r in table.read() if all(r.get(k) == base[k] for k in _BASE)]
    pngs = []
    if plot and sel:
        from ._plots import plot_depth_curves, plot_phase_diagrams

        pngs = plot_phase_diagrams(sel, out) + plot_depth_curves(sel, out)
    return {"rows": sel, "json": table.json, "csv": table.csv, "pngs": pngs, "computed": computed,
            "resumed": resumed}
