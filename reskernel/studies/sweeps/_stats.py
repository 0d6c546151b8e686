"""Sweep statistics: per-seed errors against the analytic kernel, width slopes, the width
needed for a target error, and the summary tables of a sweep's cells."""
from __future__ import annotations

import math

import numpy as np

from ._spec import KERNELS, METRICS, _arch, parse_arch
from ._theory import diagonal_relative_variance, theory_width

__all__ = ["fit_slope", "width_for_error", "joint_limit", "summarize"]

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

