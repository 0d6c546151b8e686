"""Figures: the (w_var, b_var) phase diagram of each activation with the kernel-regression
accuracy of every architecture and depth on it (phases_<dataset>_<activation>_<kernel>.png),
and accuracy vs depth on and off the critical line (depth_<dataset>_<kernel>.png)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._spec import critical_w

__all__ = ["plot_phase_diagrams", "plot_depth_curves", "shown_rows"]

# Names of the two sides of the line: bounded activations' correlation phases, the ReLU
# family's variance phases (reskernel.core.signal).
_SIDES = {True: ("bounded", "unbounded"), False: ("ordered", "chaotic")}


def shown_rows(rows, kernel):
    """The rows a figure shows: `kernel`, float64 where the point has it at that depth, else float32."""
    sel = [r for r in rows if r["kernel"] == kernel]
    key = lambda r: (r["activation"], r["arch"], r["w_var"], r["b_var"], r["depth"])
    has64 = {key(r) for r in sel if r["precision"] == "float64"}
    return [r for r in sel if r["precision"] == "float64" or key(r) not in has64]


def _order(values, first):
    return sorted(dict.fromkeys(values), key=lambda a: (a != first, a))


def _line(activation, b_lo, b_hi, b_vars):
    """(b, w_crit) from b_lo to b_hi, log-spaced (the plot's b axis is symlog) and at the grid's
    b_vars; None where there is no line."""
    bs = sorted({max(0.0, b_lo), b_hi} | set(np.geomspace(max(b_lo, 1e-3 * b_hi, 1e-4), b_hi, 6).tolist())
                | set(b_vars))
    try:
        return np.array(bs), np.array([critical_w(activation, b) for b in bs])
    except ValueError:
        return None


def plot_phase_diagrams(rows, out, kernels=("ntk", "nngp")) -> list:
    """One figure per (activation, kernel): panels archs x depths over the (w_var, b_var) plane;
    background: the FFNet's phases either side of the critical line; squares: test accuracy
    (black edge: on the line; grey x: no accuracy, see the row's status)."""
    from ...plotting import save

    paths = []
    dataset = rows[0]["dataset"]
    for act in dict.fromkeys(r["activation"] for r in rows):
        for kname in kernels:
            sel = [r for r in shown_rows(rows, kname) if r["activation"] == act]
            if not sel:
                continue
            archs = _order((r["arch"] for r in sel), "ffnet")
            # the depths every architecture has (the FFNet may have more: depth curves show them)
            depths = sorted(set.intersection(*({r["depth"] for r in sel if r["arch"] == a} for a in archs)))
            ws, bs = [r["w_var"] for r in sel], [r["b_var"] for r in sel]
            w_hi = 1.08 * max(ws)
            lin = min([b for b in bs if b > 0], default=0.05)   # symlog: b_var = 0 and small b_var apart
            b_lo, b_hi = -0.3 * lin, 1.5 * max(max(bs), lin)
            line = _line(act, 0.0, b_hi, set(bs))
            homogeneous = act in ("relu", "leaky_relu", "abs", "identity")
            fig, axes = _panels(len(archs), len(depths), 3.3)
            image = None
            for i, arch in enumerate(archs):
                for j, depth in enumerate(depths):
                    ax = axes[i, j]
                    pts = [r for r in sel if r["arch"] == arch and r["depth"] == depth]
                    if line is not None:
                        lb, lw = line
                        left, right = _SIDES[homogeneous]
                        ax.fill_betweenx(lb, 0, lw, color="tab:blue", alpha=0.10, lw=0, label=f"{left} (FFNet)")
                        ax.fill_betweenx(lb, lw, w_hi, color="tab:red", alpha=0.10, lw=0, label=f"{right} (FFNet)")
                        ax.plot(lw, lb, "k-", lw=1.2, label="critical line")
                    ok = [r for r in pts if r["accuracy"] is not None]
                    bad = [r for r in pts if r["accuracy"] is None]
                    if ok:
                        image = ax.scatter([r["w_var"] for r in ok], [r["b_var"] for r in ok],
                                           c=[r["accuracy"] for r in ok], cmap="viridis", vmin=0.5, vmax=1.0,
                                           marker="s", s=70, edgecolors=["k" if r["on_line"] else "none" for r in ok],
                                           linewidths=1.2, zorder=3)
                    if bad:
                        ax.scatter([r["w_var"] for r in bad], [r["b_var"] for r in bad], marker="x", color="grey",
                                   s=40, zorder=3, label="no accuracy")
                    ax.set_xlim(0, w_hi)
                    ax.set_yscale("symlog", linthresh=lin, linscale=0.6)
                    ax.set_ylim(b_lo, b_hi)
                    ax.set_xlabel("weight variance w_var")
                    ax.set_ylabel("bias variance b_var")
                    ax.set_title(f"{arch}, L = {depth}", fontsize=9)
                    if i == 0 and j == 0:
                        ax.legend(fontsize=6, loc="upper left")
            _colorbars(fig, axes, image, f"{kname.upper()} test accuracy")
            fig.suptitle(f"{dataset}: {act}, {kname.upper()} regression (n_train={sel[0]['n_train']}, "
                         f"n_test={sel[0]['n_test']}); black edge: on the critical line", fontsize=10)
            paths.append(save(fig, Path(out) / f"phases_{dataset}_{act}_{kname}.png"))
    return paths


def _panels(nrows, ncols, width):
    """A nrows x ncols grid of panels and a narrow last column for each row's colorbar (a
    subplot, so that plotting.save's tight layout places it)."""
    from ...plotting import figure

    return figure(ncols + 1, nrows=nrows, width=(width * ncols + 0.7) / (ncols + 1), height=2.9, squeeze=False,
                  gridspec_kw={"width_ratios": [1.0] * ncols + [0.06]})


def _colorbars(fig, axes, mappable, label):
    for cax in axes[:, -1]:
        if mappable is None:
            cax.set_visible(False)
            continue
        fig.colorbar(mappable, cax=cax, label=label)


def _distance(r):
    """log chi_1 of the FFNet at the row's point (< 0 ordered/bounded, > 0 chaotic/unbounded)."""
    return math.log(r["chi_1"]) if r["chi_1"] else None


def plot_depth_curves(rows, out, kernels=("ntk", "nngp")) -> list:
    """One figure per kernel: panels archs x activations, test accuracy vs depth for every point,
    coloured by the FFNet's log chi_1 at the point; black: on the critical line."""
    import matplotlib

    from ...plotting import save

    paths = []
    dataset = rows[0]["dataset"]
    norm = matplotlib.colors.Normalize(-1.0, 1.0)
    cmap = matplotlib.colormaps["coolwarm"]
    for kname in kernels:
        sel = [r for r in shown_rows(rows, kname)]
        if not sel:
            continue
        acts = list(dict.fromkeys(r["activation"] for r in sel))
        archs = _order((r["arch"] for r in sel), "ffnet")
        fig, axes = _panels(len(archs), len(acts), 3.6)
        for i, arch in enumerate(archs):
            for j, act in enumerate(acts):
                ax = axes[i, j]
                pts = [r for r in sel if r["arch"] == arch and r["activation"] == act]
                for key in dict.fromkeys((r["w_var"], r["b_var"]) for r in pts):
                    curve = sorted((r["depth"], r["accuracy"]) for r in pts
                                   if (r["w_var"], r["b_var"]) == key and r["accuracy"] is not None)
                    if not curve:
                        continue
                    r0 = next(r for r in pts if (r["w_var"], r["b_var"]) == key)
                    d = _distance(r0)
                    if r0["on_line"]:
                        style = dict(color="k", lw=1.8, zorder=3)
                    else:
                        style = dict(color="grey" if d is None else cmap(norm(d)), lw=0.9)
                    ax.plot(*zip(*curve), marker="o", ms=2.5, **style)
                ax.axhline(0.5, color="grey", lw=0.6, ls=":")
                ax.set_xscale("log")
                ax.set_ylim(0.4, 1.0)
                ax.set_xlabel("depth L")
                ax.set_ylabel("test accuracy")
                ax.set_title(f"{arch}, {act}", fontsize=9)
        _colorbars(fig, axes, matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), "FFNet's log chi_1 at the point")
        fig.suptitle(f"{dataset}: {kname.upper()} test accuracy vs depth, coloured by the distance to the critical "
                     "line (black: on it)", fontsize=10)
        paths.append(save(fig, Path(out) / f"depth_{dataset}_{kname}.png"))
    return paths
