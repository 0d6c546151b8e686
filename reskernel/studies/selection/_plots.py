"""The study's figure: validation accuracy over the grid and the chosen models' test accuracy.

Top row, one panel per kernel: validation accuracy against depth, per (arch, activation) the best
over the (w_var, b_var) points (line) and their range (band); the model chosen by validation
accuracy in each (arch, kernel) scope as a star at its validation accuracy and a diamond at its
test accuracy; the NNGP chosen by marginal likelihood as a square (test accuracy).
The y axis shows the best curves and the chosen models; bands below it are clipped.
Bottom row, one panel per kernel: validation accuracy over (w_var, b_var) at the arch,
activation and depth of that kernel's validation-chosen model (red box).
"""
from pathlib import Path

import numpy as np

from ._spec import KERNEL_ORDER

__all__ = ["plot_selection"]


def _label(arch, act):
    return f"{arch} {act}"


def plot_selection(rows, chosen, path) -> Path:
    """Write the figure to `path` (PNG); rows: the grid's rows, chosen: the study's chosen rows."""
    from ...plotting import figure, save

    ok = [r for r in rows if r["status"] == "ok" and r["val_accuracy"] is not None]
    kernels = [k for k in KERNEL_ORDER if any(r["kernel"] == k for r in rows)]
    fig, axes = figure(len(kernels), nrows=2, width=5.2, height=4.4, squeeze=False)
    lines = sorted({(r["arch"], r["activation"]) for r in rows}, key=lambda t: (t[0] != "ffnet", t))
    colors = {ln: f"C{i % 10}" for i, ln in enumerate(lines)}
    for j, kname in enumerate(kernels):
        ax = axes[0, j]
        best = [max(r["val_accuracy"] for r in ok if r["kernel"] == kname and (r["arch"], r["activation"]) == ln
                    and r["depth"] == d) for ln in lines for d in {r["depth"] for r in ok}
                if any(r["kernel"] == kname and (r["arch"], r["activation"]) == ln and r["depth"] == d for r in ok)]
        for arch, act in lines:
            sel = [r for r in ok if r["kernel"] == kname and r["arch"] == arch and r["activation"] == act]
            if not sel:
                continue
            depths = sorted({r["depth"] for r in sel})
            acc = [[r["val_accuracy"] for r in sel if r["depth"] == d] for d in depths]
            c = colors[(arch, act)]
            ax.plot(depths, [max(a) for a in acc], "o-", color=c, ms=3, label=_label(arch, act))
            ax.fill_between(depths, [min(a) for a in acc], [max(a) for a in acc], color=c, alpha=0.12, lw=0)
        for ch in chosen:
            if ch["kernel"] != kname or ch["scope"] == "all":
                continue
            c = colors.get((ch["arch"], ch["activation"]), "k")
            if ch["criterion"] == "val_accuracy":
                ax.plot(ch["depth"], ch["val_accuracy"], "*", color=c, ms=11, mec="k", mew=0.6, zorder=4)
                if ch.get("test_accuracy") is not None:
                    ax.plot(ch["depth"], ch["test_accuracy"], "D", color=c, ms=6, mec="k", mew=0.6, zorder=4)
            elif ch.get("test_accuracy") is not None:
                ax.plot(ch["depth"], ch["test_accuracy"], "s", color=c, ms=6, mec="k", mew=0.6, zorder=4)
        ax.plot([], [], "k*", ms=9, label="chosen (val. accuracy): validation")
        ax.plot([], [], "kD", ms=5, label="its test accuracy")
        if kname == "nngp":
            ax.plot([], [], "ks", ms=5, label="chosen by marginal lik.: test")
        ax.set_xscale("log")
        ax.set_xlabel("depth L (hidden layers / blocks)")
        ax.set_ylabel("accuracy (validation; test where marked)")
        marks = [c[k] for c in chosen if c["kernel"] == kname for k in ("val_accuracy", "test_accuracy")
                 if c.get(k) is not None]
        if best:
            lo, hi = min(best + marks), max(best + marks)
            ax.set_ylim(lo - 0.15 * (hi - lo) - 0.01, hi + 0.1 * (hi - lo) + 0.005)
        ax.set_title(f"{kname.upper()}: best over (w_var, b_var); band: their range (clipped)", fontsize=9)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
        _heatmap(axes[1, j], ok, chosen, kname)
    r0 = rows[0]
    fig.suptitle(f"{r0['dataset']}: model selection on {r0['n_val']} validation images "
                 f"({r0['n_train']} training, {r0['precision']} kernels)", fontsize=10)
    return save(fig, Path(path))


def _heatmap(ax, ok, chosen, kname):
    best = [c for c in chosen if c["criterion"] == "val_accuracy" and c["kernel"] == kname and c["scope"] != "all"]
    if not best:
        ax.set_axis_off()
        return
    pick = max(best, key=lambda c: (c["val_accuracy"], -c["val_mse"]))
    sel = [r for r in ok if r["kernel"] == kname and r["arch"] == pick["arch"]
           and r["activation"] == pick["activation"] and r["depth"] == pick["depth"]]
    ws, bs = sorted({r["w_var"] for r in sel}), sorted({r["b_var"] for r in sel})
    grid = np.full((len(bs), len(ws)), np.nan)
    for r in sel:
        grid[bs.index(r["b_var"]), ws.index(r["w_var"])] = r["val_accuracy"]
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    for (i, k), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(k, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="w" if v < np.nanmean(grid) else "k")
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((ws.index(pick["w_var"]) - 0.46, bs.index(pick["b_var"]) - 0.46), 0.92, 0.92, fill=False,
                           ec="r", lw=2.2, zorder=4))
    ax.set_xticks(range(len(ws)), [f"{w:g}" for w in ws])
    ax.set_yticks(range(len(bs)), [f"{b:g}" for b in bs])
    ax.set_xlabel("weight variance w_var")
    ax.set_ylabel("bias variance b_var")
    ax.grid(False)
    ax.set_title(f"{kname.upper()} validation accuracy, {pick['arch']} {pick['activation']}, L = {pick['depth']} "
                 "(red box: chosen)", fontsize=9)
    ax.figure.colorbar(im, ax=ax, label="validation accuracy").ax.set_xlabel("scale", fontsize=6)
