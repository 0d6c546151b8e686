"""PNG plots of the training studies (matplotlib, Agg backend)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .studies import summarize_fromage

__all__ = ["plot_stream", "plot_skipinit", "plot_fromage"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return str(path)


def plot_stream(result: dict, path) -> str:
    """Stream mean square E[Q_l] / q0 and branch/skip ratio vs block l: measured
    (markers, +- 2 standard errors) and closed form (lines), one colour per method."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    q0 = result["config"]["q0"]
    for i, (method, r) in enumerate(result["methods"].items()):
        c = f"C{i}"
        s, se, th = (np.asarray(r[k], float) for k in ("stream", "stream_se", "theory_stream"))
        ls = np.arange(len(s))
        ax1.plot(ls, th / q0, color=c, label=f"{method} (theory)")
        ax1.errorbar(ls, s / q0, yerr=2 * se / q0, fmt="o", ms=2, color=c, alpha=0.6)
        ax2.plot(ls[1:], np.asarray(r["theory_ratio"], float), color=c, label=method)
        ax2.plot(ls[1:], np.asarray(r["ratio"], float), "o", ms=2, color=c, alpha=0.6)
    ax1.set_yscale("log")
    ax1.set_xlabel("block l")
    ax1.set_ylabel("mean square of x_l / q_0")
    ax1.set_title(f"residual stream at init (width {result['config']['width']})")
    ax1.legend(fontsize=8)
    ax2.set_yscale("symlog", linthresh=1e-2)
    ax2.set_xlabel("block l")
    ax2.set_ylabel("branch / skip scale, sqrt(E B_l / E Q_{l-1})")
    ax2.legend(fontsize=8)
    return _save(fig, path)


def plot_skipinit(result: dict, path) -> str:
    """Final training loss and test accuracy vs depth, one colour per method, one line
    style per learning rate: the mean over the seeds that did not diverge, error bars
    one standard deviation over seeds; x at the top: every seed diverged."""
    from .studies import summarize_skipinit

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    rows = summarize_skipinit(result)
    lrs = sorted({r["learning_rate"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    finite = [r["train_loss"] for r in rows if r["train_loss"] is not None]
    top = 10 * max(finite + [1.0])
    styles = ["-", "--", ":", "-."]
    nan = lambda v: np.nan if v is None else v
    for i, m in enumerate(methods):
        for j, lr in enumerate(lrs):
            rs = sorted((r for r in rows if r["method"] == m and r["learning_rate"] == lr), key=lambda r: r["depth"])
            if not rs:
                continue
            d = [r["depth"] for r in rs]
            label = f"{m}, lr {lr:g}"
            ax1.errorbar(d, [nan(r["train_loss"]) for r in rs], yerr=[nan(r["train_loss_std"]) for r in rs],
                         fmt=styles[j % 4], color=f"C{i}", capsize=2, label=label)
            div = [(r["depth"], top) for r in rs if r["diverged"] == r["seeds"]]
            if div:
                ax1.plot(*zip(*div), "x", color=f"C{i}", ms=8)
            ax2.errorbar(d, [nan(r["test_accuracy"]) for r in rs], yerr=[nan(r["test_accuracy_std"]) for r in rs],
                         fmt=styles[j % 4], marker="o", ms=3, color=f"C{i}", capsize=2, label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("depth (residual blocks)")
    ax1.set_yscale("log")
    ax1.axhline(math.log(2), color="gray", lw=0.8)
    ax1.set_ylabel("final training loss (x: all seeds diverged; line: log 2)")
    ax2.set_ylabel("test accuracy")
    ax2.legend(fontsize=7, ncol=2)
    cfg = result["config"]
    ax1.set_title(f"{cfg['optimizer']}, {cfg['steps']} steps, width {cfg['width']}, "
                  f"{cfg.get('n_seeds', 1)} seeds (mean +- sd)", fontsize=9)
    return _save(fig, path)


def plot_fromage(result: dict, path, fromage_lr: float = 0.01) -> str:
    """Final training accuracy vs depth: each optimizer at its grid value with the best
    mean over seeds, and Fromage at `fromage_lr` alone (dashed); error bars one standard
    deviation over seeds."""
    plt = _pyplot()
    s = summarize_fromage(result, fromage_lr=fromage_lr)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (opt, table) in enumerate(sorted(s["best"].items())):
        d = sorted(table)
        ax.errorbar(d, [table[k][0] for k in d], yerr=[table[k][1] for k in d], fmt="o-", ms=3, capsize=2,
                    color=f"C{i}", label=f"{opt} (best of grid)")
    if s["fromage_at"]:
        d = sorted(s["fromage_at"])
        ax.errorbar(d, [s["fromage_at"][k][0] for k in d], yerr=[s["fromage_at"][k][1] for k in d],
                    fmt="k--", capsize=2, label=f"fromage, lr {fromage_lr:g}")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("final training accuracy")
    cfg = result["config"]
    ax.set_title(f"MLP width {cfg['width']}, {cfg['init']} init, {cfg['steps']} steps, "
                 f"{cfg.get('n_seeds', 1)} seeds (mean +- sd)", fontsize=9)
    ax.set_ylim(0.4, 1.02)
    ax.legend(fontsize=8)
    return _save(fig, path)
