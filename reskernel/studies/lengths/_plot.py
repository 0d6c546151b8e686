"""The figure of a length study: mean length vs layer per kind of net, and the FM2 ratio."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from ... import plotting
from ._summary import LengthSummary

_TITLES = {"ffnet": "FFNet", "relu": "ResNet, relu block (Hanin-Rolnick)", "linear": "ResNet, linear-readout block"}
_THEORY = {"ffnet": "exact theory", "linear": "exact theory", "relu": "large-width recursion"}


def plot_lengths(summaries: Mapping[str, LengthSummary], path) -> Path:
    """PNG of E[M_j] vs layer j (log scale): measured mean with its 5-95 percentile band and the
    theory curve (dashed; for "relu" ResNets, whose mean has no exact form, the large-width
    recursion dashed and the closed-form bounds dotted), one panel per kind, plus a panel of
    E[M_j^2]/E[M_j]^2 for the FFNets against prod (1 + 5/n_j) (FM2). Panels two per row."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    if not summaries:
        raise ValueError("summaries must hold at least one LengthSummary")
    kinds = [k for k in _TITLES if any(s.spec.kind == k for s in summaries.values())]
    ffnets = {name: s for name, s in summaries.items() if s.spec.kind == "ffnet"}
    panels = len(kinds) + (1 if ffnets else 0)
    ncols = min(2, panels)
    fig, axes = plotting.figure(ncols, nrows=math.ceil(panels / ncols), width=6.0, height=4.4, squeeze=False)
    axes = axes.ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax, kind in zip(axes, kinds):
        for i, (name, s) in enumerate((n, s) for n, s in summaries.items() if s.spec.kind == kind):
            color, layers = f"C{i}", np.arange(s.spec.depth + 1)
            ax.fill_between(layers, s.q05, s.q95, color=color, alpha=0.12, linewidth=0)
            ax.plot(layers, s.mean, "o", ms=3, color=color, label=name)
            ax.plot(layers, s.mean_theory, "--", color=color, lw=1.2)
            if not s.spec.exact:
                ax.plot(layers, s.mean_lower, ":", color=color, lw=1.0)
                ax.plot(layers, s.mean_upper, ":", color=color, lw=1.0)
        keys = [Line2D([], [], marker="o", ls="", ms=3, color="gray", label="measured mean (band: 5-95%)"),
                Line2D([], [], ls="--", color="gray", label=_THEORY[kind])]
        if kind == "relu":
            keys.append(Line2D([], [], ls=":", color="gray", label="closed-form bounds on the mean"))
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + keys, fontsize=7)
        ax.set_yscale("log", nonpositive="mask")
        ax.set_title(f"{_TITLES[kind]}: mean length")
        ax.set_xlabel("layer $j$")
        ax.set_ylabel(r"$M_j = |x_j|^2 / n_j$")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if ffnets:
        ax = axes[panels - 1]
        for i, (name, s) in enumerate(ffnets.items()):
            layers = np.arange(s.spec.depth + 1)
            ax.errorbar(layers, s.ratio, yerr=2 * s.ratio_se, fmt="o", ms=3, color=f"C{i}", label=name)
            ax.plot(layers, s.ratio_theory, "--", color=f"C{i}", lw=1.2)
        keys = [Line2D([], [], marker="o", ls="", ms=3, color="gray", label="measured (bars: 2 s.e.)"),
                Line2D([], [], ls="--", color="gray", label=r"theory $(1 + 5/n_1) \cdots (1 + 5/n_j)$")]
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + keys, fontsize=7)
        ax.set_title("FFNet fluctuations (FM2): the theory does not depend on the gain")
        ax.set_xlabel("layer $j$")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel(r"$E[M_j^2]\, /\, E[M_j]^2$")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return plotting.save(fig, path)
