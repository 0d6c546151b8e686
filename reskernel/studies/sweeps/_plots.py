"""Sweep figures: error vs width per depth (sweep.png) and the width needed for a target
error vs depth (sweep_joint.png)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._spec import KERNELS

__all__ = ["plot_sweep", "plot_joint"]


def plot_sweep(results: dict, path, metric: str = "frob") -> Path:
    """Median error vs width with 5-95% bands, one curve per depth; a panel per arch and kernel."""
    from ...plotting import figure, save

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
    """Width needed for the target NTK/NNGP error vs depth, per arch (log-log): measured (dots,
    crosses where extrapolated beyond the swept widths) beside theory (open diamonds, dashed).
    Lines join depths only where there are several, and the legend shows what is drawn."""
    from matplotlib.lines import Line2D

    from ...plotting import figure, save

    joint = results["summary"]["joint"]
    fig, axes = figure(2)
    for ax, kern in zip(axes, KERNELS):
        handles, extrapolated = [], False
        for c, name in enumerate(results["config"]["archs"]):
            pts = [j for j in joint if j["arch"] == name and j["kernel"] == kern and math.isfinite(j["width"])]
            if not pts:
                continue
            color, depths = f"C{c}", [p["depth"] for p in pts]
            line = "-" if len(pts) > 1 else "none"
            if len(pts) > 1:
                ax.plot(depths, [p["width"] for p in pts], linestyle=line, color=color)
            for extra, marker in ((False, "o"), (True, "x")):
                sel = [p for p in pts if bool(p["extrapolated"]) == extra]
                if sel:
                    ax.plot([p["depth"] for p in sel], [p["width"] for p in sel], marker, color=color, ms=7)
                    extrapolated |= extra
            ax.plot(depths, [p["theory_width"] for p in pts], linestyle="--" if len(pts) > 1 else "none",
                    marker="D", mfc="none", color=color, ms=6)
            inside = "o" if not all(p["extrapolated"] for p in pts) else "x"
            handles += [Line2D([], [], color=color, linestyle=line, marker=inside, ms=7, label=f"{name} measured"),
                        Line2D([], [], color=color, linestyle="--" if len(pts) > 1 else "none", marker="D",
                               mfc="none", ms=6, label=f"{name} theory (NNGP diagonal)")]
        if extrapolated:
            handles.append(Line2D([], [], color="k", linestyle="none", marker="x", ms=7,
                                  label="measured, extrapolated past the swept widths"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        target = joint[0]["target"] if joint else float("nan")
        ax.set_xlabel("depth L")
        ax.set_ylabel(f"width for median relative error {target:g}")
        depths = sorted({j["depth"] for j in joint})
        trend = ("FFNet theory ~ L, ResNet ~ const" if len(depths) > 1 else
                 "one depth: no trend in L" if depths else "no cell has two widths")
        ax.set_title(f"joint limit: {kern.upper()} ({trend})")
        if handles:  # below the panel: with few depths, any place inside would hide points
            ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    return save(fig, path)
