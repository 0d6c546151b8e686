"""PNG figures of the shortcut study, in the package style (`reskernel.plotting`)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ... import plotting

__all__ = ["plot_success", "plot_dynamics"]


def _variant_label(e) -> str:
    arch = "ResNet" if e["shortcut"] else "CNN"
    init = "w0 = 0" if e["w_init_norm"] == 0 else "random w0"
    warm = f"warm-up {e['warmup']}" if e["warmup"] else "no warm-up"
    return f"{arch}, {init}, {warm}"


def plot_success(entries: Sequence[dict], path) -> Path:
    """Success rate vs k, one panel per p, one line per variant (error bars: the 95%
    Wilson interval over the runs). Writes a PNG at `path`."""
    if not entries:
        raise ValueError("entries is empty: nothing to plot")
    ps = sorted({e["p"] for e in entries})
    fig, axes = plotting.figure(len(ps), width=4.6, height=4.0, squeeze=False)
    for ax, p in zip(axes[0], ps):
        groups = {}
        for e in entries:
            if e["p"] == p:
                groups.setdefault(_variant_label(e), []).append(e)
        for label, es in sorted(groups.items()):
            es = sorted(es, key=lambda e: e["k"])
            e0 = es[0]
            # colour: architecture and w_0; dashed, open markers: with warm-up (often on top of the solid line).
            color = f"C{2 * (not e0['shortcut']) + (e0['w_init_norm'] != 0)}"
            rates = np.array([e["success_rate"] for e in es])
            if all("success_lo" in e for e in es):
                yerr = [rates - [e["success_lo"] for e in es], [e["success_hi"] for e in es] - rates]
            else:   # results written before the interval was recorded
                yerr = [e["success_se"] for e in es]
            ax.errorbar([e["k"] for e in es], rates, yerr=yerr, color=color, ls="--" if e0["warmup"] else "-",
                        marker="o" if e0["shortcut"] else "s", mfc="none" if e0["warmup"] else color,
                        capsize=2, label=label)
        ks = sorted({e["k"] for e in entries if e["p"] == p})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("number of patches k")
        ax.set_ylabel("fraction of runs reaching the global minimum")
        ax.set_title(f"patch dimension p = {p}")
        ax.set_ylim(0, 1.02)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                       title=f"{entries[0]['runs']} runs each;\nbars: 95% Wilson interval", title_fontsize=7)
    return plotting.save(fig, path)


def plot_dynamics(trajectories: Dict[str, tuple], path) -> Path:
    """Angle(w, w*), |w|, a_j vs a*_j (first trajectory) and the loss against the
    step, for {label: (Trajectory, teacher Params)} from dynamics_example."""
    if not trajectories:
        raise ValueError("trajectories is empty: nothing to plot")
    fig, axes = plotting.figure(2, nrows=2, width=6.0, height=3.8)
    (ax_angle, ax_norm), (ax_a, ax_loss) = axes
    # Later curves are drawn thinner and dashed, so that equal curves (both ResNets align
    # w with w* at the first step) stay visible on top of each other.
    styles = [dict(lw=3.0, alpha=0.6), dict(lw=1.5, ls="--"), dict(lw=1.5, ls="-."), dict(lw=1.0, ls=":")]
    for i, (label, (traj, _)) in enumerate(trajectories.items()):
        steps = np.arange(len(traj.loss))
        style = dict(styles[i % len(styles)], color=f"C{i}", label=label)
        ax_angle.plot(steps, traj.angle, **style)
        ax_norm.plot(steps, traj.w_norm, **style)
        ax_loss.semilogy(steps, np.maximum(traj.loss, 1e-9), **style)   # float32 rounding floor
    label, (traj, teacher) = next(iter(trajectories.items()))
    steps = np.arange(len(traj.loss))
    for j in range(traj.a.shape[1]):
        line, = ax_a.plot(steps, traj.a[:, j], lw=0.8)
        ax_a.axhline(teacher.a[j], color=line.get_color(), ls="--", lw=0.6)
    ax_angle.set_ylabel(r"angle$(w, w^*)$ [rad]")
    ax_angle.set_title("first layer: direction of the filter")
    ax_norm.set_ylabel(r"$|w|$  (teacher $|w^*| = 1$)")
    ax_norm.set_title("first layer: norm of the filter")
    ax_a.set_ylabel(r"$a_j$ (solid), teacher $a^*_j$ (dashed)")
    ax_a.set_title(f"second layer, {label}")
    ax_loss.set_ylabel("population loss (floor 1e-9: float32)")
    ax_loss.set_title("population loss")
    for ax in (ax_angle, ax_norm, ax_a, ax_loss):
        ax.set_xlabel("gradient-descent step")
    ax_angle.legend()
    return plotting.save(fig, path)
