"""Figures: the binned calibration of the NNGP posterior (calibration.png), and the NTK ensemble's
predicted spread against trained networks over training (spread.png; per point: spread_points.png)."""
from pathlib import Path

import numpy as np

__all__ = ["plot_calibration", "plot_spread", "plot_spread_points"]


def _loglog(ax, x=True, y=True):
    """Log axes labelled at 1, 2, 5 x 10^n in plain numbers (matplotlib's minor labels overlap)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    for on, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if on:
            scale("log")
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())


def plot_calibration(rows, out) -> str:
    """One panel per (dataset, arch): the bins' mean realized squared error (+- 1 standard error)
    against their mean predicted variance, log-log, with the line of perfect calibration; the
    bins' test accuracy on a second axis."""
    from ...plotting import figure, save

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    several = len({(r["w_var"], r["b_var"], r["activation"]) for r in rows}) > 1
    label = (lambda r: f"{r['arch']} {r['activation']} {r['w_var']:g}/{r['b_var']:g}") if several else \
        (lambda r: r["arch"])
    archs = list(dict.fromkeys(label(r) for r in rows))
    fig, axes = figure(len(archs), nrows=len(datasets), width=4.2, height=3.6, squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, arch in enumerate(archs):
            ax = axes[i, j]
            sel = [r for r in rows if r["dataset"] == dataset and label(r) == arch]
            if not sel:
                ax.set_visible(False)
                continue
            r = sel[0]
            p, e, se = (np.asarray(r[f"bin_{k}"]) for k in ("predicted", "realized", "stderr"))
            lo, hi = min(p.min(), e.min()) * 0.7, max(p.max(), e.max()) * 1.4
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="calibrated (realized = predicted)")
            ax.errorbar(p, e, yerr=se, fmt="o", color="tab:blue", ms=4, capsize=2, label="bin mean +- 1 s.e.")
            _loglog(ax)
            ax.set_xlabel("predicted variance s (sigma^2 + noise)")
            ax.set_ylabel("realized squared error (mean over 10 outputs)")
            ax.set_title(f"{dataset}, {arch}: n_train {r['n_train']}, n_test {r['n_test']}, accuracy {r['accuracy']:.3f}\n"
                         f"ratio {r['ratio']:.2f}, log-slope {r['log_slope']:.2f}, corr {r['pearson']:.2f}, "
                         f"within 2 s.e. {r['within_2se']:.0%}", fontsize=8)
            acc = ax.twinx()
            acc.plot(p, r["bin_accuracy"], "s:", color="tab:green", ms=3, label="bin test accuracy")
            acc.set_ylim(0, 1.05)
            acc.set_ylabel("bin test accuracy", color="tab:green")
            acc.set_xlabel(ax.get_xlabel())
            acc.grid(False)

    fig.suptitle(f"NNGP posterior: realized squared error (blue, bin mean +- 1 s.e.) vs predicted variance in quantile "
                 f"bins\ndashed: calibrated; green: the bins' test accuracy"
                 + ("" if several else f" (w_var {rows[0]['w_var']:g}, b_var {rows[0]['b_var']:g}, "
                                       f"{rows[0]['activation']})"), fontsize=10)
    return str(save(fig, Path(out) / "calibration.png"))


def _steps_axis(ax, last):
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(-0.2, last * 1.5)
    ax.set_xlabel("gradient-descent step t")


def plot_spread(rows, out) -> str:
    """Per arch (columns): (1) mean variance of the test outputs over training, predicted by the
    NTK ensemble (line) and measured over seeds (markers, one colour per width); (2) the
    networks' mean variance over the predicted one with its 95% bootstrap interval over seeds;
    (3) the rms z-score of the networks' mean against the predicted mean, beside its expectation
    when the means agree (sqrt((S - 1) / (S - 3)) for S seeds: z is Student's t)."""
    from ...plotting import figure, save

    archs = list(dict.fromkeys(r["arch"] for r in rows))
    widths = sorted({r["width"] for r in rows})
    colors = dict(zip(widths, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"] * 4))
    last = max(r["step"] for r in rows)
    fig, axes = figure(len(archs), nrows=3, width=4.2, height=3.0, squeeze=False)
    for j, arch in enumerate(archs):
        for i, w in enumerate(widths):
            sel = sorted((r for r in rows if r["arch"] == arch and r["width"] == w), key=lambda r: r["step"])
            if not sel:
                continue
            t = np.array([r["step"] for r in sel], dtype=float)
            c, seeds = colors[w], sel[0]["seeds"]
            if w == widths[0]:
                axes[0, j].plot(t, [r["var_pred"] for r in sel], "k-", lw=1.5, label="NTK ensemble (predicted)")
            axes[0, j].plot(t, [r["var_sample"] for r in sel], "o", color=c, ms=4,
                            label=f"width {w}, {seeds} nets (measured)")
            ratio = np.array([r["var_ratio"] for r in sel])
            err = [ratio - [r["var_ratio_low"] for r in sel], [r["var_ratio_high"] for r in sel] - ratio]
            shift = 1.0 + 0.06 * (i - (len(widths) - 1) / 2)          # side by side on the log axis
            axes[1, j].errorbar(np.where(t > 0, t * shift, t + 0.05 * (shift - 1) / 0.06), ratio, yerr=err, fmt="o-",
                                color=c, ms=3, lw=1, capsize=2, label=f"width {w}, {seeds} nets")
            axes[2, j].plot(t, [r["z_rms"] for r in sel], "o-", color=c, ms=3, label=f"width {w}")
            axes[2, j].axhline(np.sqrt((seeds - 1) / (seeds - 3)) if seeds > 3 else np.nan, color=c, lw=0.8, ls=":",
                               label=f"expected if the means agree ({seeds} nets)")
        axes[1, j].axhline(1.0, color="k", lw=0.8)
        _loglog(axes[0, j], x=False)
        axes[0, j].set_ylabel("variance of a test output")
        axes[1, j].set_ylabel("measured / predicted variance")
        axes[2, j].set_ylabel("rms z of the mean")
        r0 = next(r for r in rows if r["arch"] == arch)
        axes[0, j].set_title(f"{arch}, {r0['dataset']} n={r0['n_train']}, lr={r0['lr']:.3g} "
                             f"(={r0['lr_factor']:g}/lambda_max)", fontsize=8)
        for i in range(3):
            _steps_axis(axes[i, j], last)
            axes[i, j].legend(fontsize=6)
    fig.suptitle("NTK ensemble vs trained finite networks: spread of the test outputs over seeds "
                 "(bars: 95% bootstrap over seeds)", fontsize=10)
    return str(save(fig, Path(out) / "spread.png"))


def plot_spread_points(arrays, out) -> str:
    """Per (arch, width) (rows): the networks' sample mean against the predicted mean of every
    (test point, output) at the last step, and each point's sample variance (pooled over the
    outputs) against the predicted one, at step 0 and at the last step."""
    from ...plotting import figure, save

    keys = list(arrays)
    fig, axes = figure(2, nrows=len(keys), width=4.0, height=3.6, squeeze=False)
    for i, key in enumerate(keys):
        a = arrays[key]
        ens, f = a["ensemble"], a["outputs"]
        mean, var = ens["mean"], ens["variance"]
        ax = axes[i, 0]
        ax.plot(mean[-1].ravel(), f[:, -1].mean(0).ravel(), ".", ms=2, alpha=0.5, color="tab:blue")
        lim = [min(mean[-1].min(), f[:, -1].mean(0).min()), max(mean[-1].max(), f[:, -1].mean(0).max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel("predicted mean (NTK ensemble)")
        ax.set_ylabel(f"mean of {f.shape[0]} trained nets")
        ax.set_title(f"{key[0]}, width {key[1]}: outputs at the last step", fontsize=9)
        ax = axes[i, 1]
        for t, c, name in ((0, "tab:grey", "initialization"), (-1, "tab:red", "last step")):
            ax.plot(var[t], f[:, t].var(0, ddof=1).mean(-1), ".", ms=3, alpha=0.6, color=c, label=name)
        lo = min(var.min(), f.var(0, ddof=1).mean(-1).min()) * 0.8
        hi = max(var.max(), f.var(0, ddof=1).mean(-1).max()) * 1.25
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        _loglog(ax)
        ax.set_xlabel("predicted variance")
        ax.set_ylabel("sample variance (pooled over outputs)")
        ax.set_title(f"{key[0]}, width {key[1]}: each test point", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Per test point: trained networks against the NTK ensemble", fontsize=10)
    return str(save(fig, Path(out) / "spread_points.png"))
