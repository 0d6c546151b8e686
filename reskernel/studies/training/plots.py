"""PNG plots of the training studies, in the package style (`reskernel.plotting`)."""
from __future__ import annotations

import math

import numpy as np

from ... import plotting
from .studies import summarize_fromage

__all__ = ["plot_stream", "plot_skipinit", "plot_fromage"]


def _key(**kw):
    """A legend entry for a line style or marker alone (gray), not a data series."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=kw.pop("color", "gray"), **kw)


def plot_stream(result: dict, path) -> str:
    """Stream mean square E[Q_l] / q0 and branch/skip ratio vs block l: measured
    (markers, +- 2 standard errors) and closed form (lines), one colour per method."""
    fig, (ax1, ax2) = plotting.figure(2, width=5.6, height=4.2)
    q0 = result["config"]["q0"]
    for i, (method, r) in enumerate(result["methods"].items()):
        c = f"C{i}"
        s, se, th = (np.asarray(r[k], float) for k in ("stream", "stream_se", "theory_stream"))
        ls = np.arange(len(s))
        ax1.plot(ls, th / q0, color=c, label=method)
        ax1.errorbar(ls, s / q0, yerr=2 * se / q0, fmt="o", ms=2.5, color=c, alpha=0.7)
        ax2.plot(ls[1:], np.asarray(r["theory_ratio"], float), color=c, label=method)
        ax2.plot(ls[1:], np.asarray(r["ratio"], float), "o", ms=2.5, color=c, alpha=0.7)
    keys = [_key(ls="-", label="closed form"), _key(marker="o", ls="", ms=3, label="measured (bars: 2 s.e.)")]
    for ax in (ax1, ax2):
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + keys)
        ax.set_xlabel("residual block $l$")
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax1.set_yscale("log")
    ax1.set_ylabel(r"stream mean square $E[Q_l]\,/\,q_0$")
    ax1.set_title(f"residual stream at init (width {result['config']['width']})")
    ax2.set_yscale("symlog", linthresh=1e-2)
    ax2.set_ylabel(r"branch / skip scale $\sqrt{E[B_l]\,/\,E[Q_{l-1}]}$")
    ax2.set_title("size of each branch relative to its input")
    return str(plotting.save(fig, path))


def _steps_at(steps: int, n_evals: int) -> np.ndarray:
    """The steps at which `train` recorded the loss history (as FitResult.steps)."""
    chunk, extra = divmod(steps, n_evals)
    return np.array([0] + [extra + chunk * (i + 1) for i in range(n_evals)])


def plot_skipinit(result: dict, path) -> str:
    """Training loss vs step at the deepest depth (mean over the seeds that did not diverge;
    x: every seed diverged), one colour per method, one line style per learning rate. With
    several depths, two more panels: final training loss and test accuracy vs depth (error
    bars one standard deviation over seeds; x at the top: every seed diverged); with one
    depth, the test accuracy of each method."""
    from .studies import summarize_skipinit

    rows = summarize_skipinit(result)
    cfg = result["config"]
    lrs = sorted({r["learning_rate"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    several = len(depths) > 1
    fig, axes = plotting.figure(3 if several else 2, width=4.8, height=4.2)
    styles = ["-", "--", ":", "-."]
    label = lambda m, lr: m if len(lrs) == 1 else f"{m}, lr {lr:g}"
    nan = lambda v: np.nan if v is None else v
    finite = [v for r in result["records"] for v in r["loss_history"] if v is not None and math.isfinite(v)]
    top = 10 * max(finite + [1.0])

    ax = axes[0]
    any_diverged = False
    for i, m in enumerate(methods):
        for j, lr in enumerate(lrs):
            recs = [r for r in result["records"]
                    if r["method"] == m and r["learning_rate"] == lr and r["depth"] == depths[-1]]
            if not recs:
                continue
            hist = np.array([[nan(v) for v in r["loss_history"]] for r in recs], float)
            at = _steps_at(cfg["steps"], hist.shape[1] - 1)
            ok = [k for k, r in enumerate(recs) if r["status"] != "diverged"]
            curve = np.mean(hist[ok], axis=0) if ok else hist[0]
            ax.plot(at, curve, styles[j % 4], marker="o", ms=3, color=f"C{i}", label=label(m, lr))
            if not ok:
                any_diverged = True
                gone = int(np.argmax(~np.isfinite(curve))) if not np.isfinite(curve).all() else len(at) - 1
                ax.plot(at[gone], top, "x", color=f"C{i}", ms=8, mew=2)
    ax.axhline(math.log(2), color="gray", lw=0.8, ls="--")
    keys = [_key(ls="--", lw=0.8, label="log 2: loss of a constant output")]
    if any_diverged:
        keys.append(_key(marker="x", ls="", ms=8, mew=2, color="k", label="diverged (loss not finite)"))
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + keys, fontsize=7)
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss")
    lr_text = f", lr {lrs[0]:g}" if len(lrs) == 1 else ""
    ax.set_title(f"depth {depths[-1]}: {cfg['optimizer']}{lr_text}, width {cfg['width']}, "
                 f"{cfg.get('n_seeds', 1)} seed(s)")

    if not several:
        ax = axes[1]
        names, accs, colors = [], [], []
        for i, m in enumerate(methods):
            for lr in lrs:
                r = next((r for r in rows if r["method"] == m and r["learning_rate"] == lr), None)
                if r is not None:
                    names.append(label(m, lr))
                    accs.append(r["test_accuracy"])
                    colors.append(f"C{i}")
        pos = np.arange(len(names))
        ax.bar(pos, [0 if a is None else a for a in accs], color=colors, width=0.6)
        for k, a in enumerate(accs):
            ax.text(pos[k], 0.02 if a is None else a + 0.01, "diverged" if a is None else f"{a:.3f}",
                    ha="center", va="bottom", fontsize=8)
        ax.set_xticks(pos, names, rotation=20 if len(names) > 4 else 0)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("method")
        ax.set_ylabel("test accuracy after training")
        ax.set_title(f"depth {depths[-1]}, {cfg['steps']} steps")
        return str(plotting.save(fig, path))

    ax1, ax2 = axes[1], axes[2]
    for i, m in enumerate(methods):
        for j, lr in enumerate(lrs):
            rs = sorted((r for r in rows if r["method"] == m and r["learning_rate"] == lr), key=lambda r: r["depth"])
            if not rs:
                continue
            d = [r["depth"] for r in rs]
            ax1.errorbar(d, [nan(r["train_loss"]) for r in rs], yerr=[nan(r["train_loss_std"]) for r in rs],
                         fmt=styles[j % 4], marker="o", ms=3, color=f"C{i}", capsize=2)
            div = [(r["depth"], top) for r in rs if r["diverged"] == r["seeds"]]
            if div:
                ax1.plot(*zip(*div), "x", color=f"C{i}", ms=8, mew=2)
            ax2.errorbar(d, [nan(r["test_accuracy"]) for r in rs], yerr=[nan(r["test_accuracy_std"]) for r in rs],
                         fmt=styles[j % 4], marker="o", ms=3, color=f"C{i}", capsize=2)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.minorticks_off()
        ax.set_xlabel("depth (residual blocks)")
    ax1.set_yscale("log")
    ax1.axhline(math.log(2), color="gray", lw=0.8, ls="--")
    ax1.set_ylabel("final training loss")
    ax1.set_title(f"after {cfg['steps']} steps (bars: sd over seeds)")
    ax2.set_ylabel("test accuracy")
    ax2.set_title("test accuracy (colours as on the left)")
    return str(plotting.save(fig, path))


def plot_fromage(result: dict, path, fromage_lr: float = 0.01) -> str:
    """Final training accuracy vs depth: each optimizer at its grid value with the best
    mean over seeds, and Fromage at `fromage_lr` alone (open markers, dashed); error bars
    one standard deviation over seeds. Curves are shifted sideways a little so that equal
    values (several optimizers at accuracy 1) stay visible."""
    s = summarize_fromage(result, fromage_lr=fromage_lr)
    fig, ax = plotting.figure(width=6.8, height=4.4)
    markers = "o^vD<>"
    curves = [(f"{opt} (best lr of its grid)", table, dict(fmt=markers[i % 6] + "-", color=f"C{i}", ms=5))
              for i, (opt, table) in enumerate(sorted(s["best"].items()))]
    if s["fromage_at"]:
        curves.append((f"fromage, lr {fromage_lr:g} alone", s["fromage_at"],
                       dict(fmt="s--", color="k", mfc="none", ms=9, zorder=5)))
    depths = sorted({d for _, table, _ in curves for d in table})
    # Equal values (several optimizers at accuracy 1) would hide each other: shift each curve
    # sideways by a small fraction of the smallest gap between depths.
    gap = min(np.diff(depths)) if len(depths) > 1 else 1.0
    for k, (label, table, style) in enumerate(curves):
        d = sorted(table)
        shift = 0.12 * gap * (k / max(len(curves) - 1, 1) - 0.5)
        ax.errorbar(np.asarray(d) + shift, [table[x][0] for x in d], yerr=[table[x][1] for x in d], capsize=2,
                    label=label, **style)
    ax.set_xticks(depths, [str(d) for d in depths])
    if len(depths) == 1:
        ax.set_xlim(depths[0] - 1, depths[0] + 1)
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("final training accuracy")
    cfg = result["config"]
    ax.set_title(f"MLP width {cfg['width']}, {cfg['init']} init, {cfg['steps']} steps, "
                 f"{cfg.get('n_seeds', 1)} seed(s), bars: sd")
    ax.set_ylim(0.4, 1.04)
    ax.legend(loc="lower left")
    return str(plotting.save(fig, path))
