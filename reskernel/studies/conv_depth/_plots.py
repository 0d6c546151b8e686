"""The study's figure: test accuracy against depth 1..L (log x), one column per data set and one
row per kernel; colour by arch, line style by readout (dense solid, flatten dashed, gap dotted)."""
from pathlib import Path

__all__ = ["plot_conv_depths"]

_COLORS = {"ffnet": "C0", "resnet:0.5": "C1", "resnet:1": "C3"}
_STYLES = {"dense": "-", "flatten": "--", "gap": ":"}
_NAMES = {"cifar2": "CIFAR2 (airplane vs automobile)", "cifar10": "CIFAR-10 (ten classes)"}


def plot_conv_depths(rows, path) -> Path:
    """rows: the study's rows (any data sets); writes a PNG at `path` and returns its path."""
    import matplotlib.ticker as mticker
    from matplotlib.lines import Line2D

    from ...plotting import figure, save

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    kernels = [k for k in ("nngp", "ntk") if any(r["kernel"] == k for r in rows)]
    truncated = any(r["arch"] != "ffnet" and r["depth"] < r["max_depth"] for r in rows)
    xlabel = "depth L (ResNets: first L blocks of the deepest net)" if truncated else \
        "depth L (ResNets: alpha = L^-gamma)"
    fig, axes = figure(max(len(datasets), 1), nrows=max(len(kernels), 1), width=5.4, height=3.8, squeeze=False)
    for j, ds in enumerate(datasets):
        for i, kern in enumerate(kernels):
            ax = axes[i, j]
            sel = [r for r in rows if r["dataset"] == ds and r["kernel"] == kern and r["test_accuracy"] is not None]
            archs = sorted({r["arch"] for r in sel}, key=lambda a: (a != "ffnet", a))
            for k, arch in enumerate(archs):
                for readout, ls in _STYLES.items():
                    line = sorted((r for r in sel if r["arch"] == arch and r["readout"] == readout),
                                  key=lambda r: r["depth"])
                    if line:
                        ax.plot([r["depth"] for r in line], [r["test_accuracy"] for r in line], ls, lw=1.3,
                                marker="." if len(line) < 20 else None, color=_COLORS.get(arch, f"C{4 + k}"))
            if sel:
                r0 = sel[0]
                ax.set_title(f"{_NAMES.get(ds, ds)} {kern.upper()}: {r0['n_train']} train, {r0['n_test']} test, "
                             f"{r0['image_size']}x{r0['image_size']} images", fontsize=8)
                # one entry per arch (colour) and per readout (line style), not one per curve
                keys = [Line2D([], [], color=_COLORS.get(a, f"C{4 + k}"), lw=1.3, label=a) for k, a in enumerate(archs)]
                keys += [Line2D([], [], color="0.3", ls=ls, lw=1.3, label=ro) for ro, ls in _STYLES.items()
                         if any(r["readout"] == ro for r in sel)]
                ax.legend(handles=keys, fontsize=6, loc="best", ncol=2)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy")
            ax.grid(alpha=0.3)
    return save(fig, path)
