"""The depth study's figure: test accuracy against depth (log x), one column per data set.
Top: kernel regression (one line per (arch, kernel): colour by arch, solid NNGP, dashed NTK).
Bottom: trained finite networks (centred, final step; markers, one line per arch) beside the
infinite-width network trained the same way (the NTK ensemble's mean at the same step, thin
line) and at t = infinity (dotted)."""
from pathlib import Path

import numpy as np

__all__ = ["plot_depths"]

_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


_COLORS = {"ffnet": "C0", "resnet:0.5": "C1", "resnet:0.75": "C2", "resnet:1": "C3"}


def _color(arch, archs):
    """One colour per arch in every panel (the usual four fixed; others after them)."""
    if arch in _COLORS:
        return _COLORS[arch]
    others = sorted(a for a in archs if a not in _COLORS)
    return f"C{(4 + others.index(arch)) % 10}"


def plot_depths(kernel_rows: dict, net_rows: dict, path) -> Path:
    """kernel_rows, net_rows: {dataset: rows of the kernel / network phase}; writes a PNG."""
    import matplotlib.ticker as mticker
    from matplotlib.lines import Line2D

    from ...plotting import figure, save

    datasets = list(dict.fromkeys(list(kernel_rows) + list(net_rows)))
    nrows = 2 if any(net_rows.get(d) for d in datasets) else 1
    fig, axes = figure(len(datasets), nrows=nrows, width=5.2, height=4.0, squeeze=False)
    for j, ds in enumerate(datasets):
        ax = axes[0, j]
        rows = [r for r in kernel_rows.get(ds, []) if r.get("test_accuracy") is not None]
        archs = sorted({r["arch"] for r in rows}, key=lambda a: (a != "ffnet", a))
        for arch in archs:
            for kernel, ls in (("nngp", "-"), ("ntk", "--")):
                sel = sorted((r for r in rows if r["arch"] == arch and r["kernel"] == kernel), key=lambda r: r["depth"])
                if sel:
                    ax.plot([r["depth"] for r in sel], [r["test_accuracy"] for r in sel], ls, marker="o", ms=3,
                            color=_color(arch, archs), label=f"{arch} {kernel.upper()}")
        if rows:
            r0 = rows[0]
            ax.set_title(f"{_NAMES.get(ds, ds)} kernels: {r0['n_train']:,} train, {r0['n_test']:,} test, "
                         f"{r0['activation']} {r0['w_var']:g}/{r0['b_var']:g}", fontsize=9)
            ax.legend(fontsize=7, loc="lower left")
        if nrows == 2:
            ax2 = axes[1, j]
            nets = net_rows.get(ds, [])
            narchs = sorted({r["arch"] for r in nets}, key=lambda a: (a != "ffnet", a))
            every = set(archs) | set(narchs)
            for arch in narchs:
                sel = sorted((r for r in nets if r["arch"] == arch), key=lambda r: r["depth"])
                depths = sorted({r["depth"] for r in sel})
                net = [np.mean([r["net_accuracy"][-1] for r in sel if r["depth"] == d]) for d in depths]
                ntk = [sel[[r["depth"] for r in sel].index(d)]["ntk_accuracy"][-1] for d in depths]
                inf = [sel[[r["depth"] for r in sel].index(d)]["ntk_inf_accuracy"] for d in depths]
                c = _color(arch, every)
                ax2.plot(depths, net, "s-", color=c, ms=5)
                ax2.plot(depths, ntk, "-", color=c, lw=0.8)
                ax2.plot(depths, inf, ":", color=c, lw=1.2)
            if nets:
                r0 = nets[0]
                ax2.set_title(f"{_NAMES.get(ds, ds)} trained nets: {r0['n_train']:,} train, {r0['steps'][-1]} GD "
                              f"steps", fontsize=9)
                # one entry per arch (colour) and per line style: 12 entries would cover the curves
                keys = [Line2D([], [], color=_color(a, every), lw=2, label=a) for a in narchs]
                keys += [Line2D([], [], color="0.3", marker="s", ms=4, label=f"trained net (width {r0['width']})"),
                         Line2D([], [], color="0.3", lw=0.8, label="NTK, same steps"),
                         Line2D([], [], color="0.3", ls=":", lw=1.2, label="NTK, t = inf")]
                ax2.legend(handles=keys, fontsize=6, loc="lower left", ncol=2)
                ax2.set_xscale("log")
                ax2.set_xticks(sorted({r["depth"] for r in nets}))
                ax2.xaxis.set_minor_locator(mticker.NullLocator())
                ax2.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax2.set_xlabel("depth L")
                ax2.set_ylabel("test accuracy")
                ax2.grid(alpha=0.3)
            else:
                ax2.axis("off")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("depth L")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    return save(fig, path)
