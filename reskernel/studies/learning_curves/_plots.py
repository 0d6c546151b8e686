"""The learning curves' figure: test accuracy of the validation-chosen model against the number of
training images (log x), one panel per data set, one line per (arch, kernel) scope and a black
dashed line for the model chosen over all of them."""
from pathlib import Path

__all__ = ["plot_curves", "scope_style"]

_COLORS = {"ffnet": "C0", "resnet:0.5": "C1", "resnet:0.75": "C2", "resnet:1": "C3"}
_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def scope_style(scope: str) -> dict:
    """Line style of a scope: colour by arch, solid NNGP, dashed NTK; 'all' black dotted."""
    if scope == "all":
        return {"color": "k", "ls": ":", "marker": "s", "label": "chosen over all"}
    arch, kernel = scope.split(" ")
    return {"color": _COLORS.get(arch, "C7"), "ls": "-" if kernel == "nngp" else "--",
            "marker": "o" if kernel == "nngp" else "^", "label": f"{arch} {kernel.upper()}"}


def plot_curves(curves: dict, path) -> Path:
    """curves: {dataset: curve rows (n_train, scope, test_accuracy)}; writes a PNG to `path`."""
    import matplotlib.ticker as mticker

    from ...plotting import figure, save

    fig, axes = figure(len(curves), width=5.0, height=4.0, squeeze=False)
    for ax, (dataset, rows) in zip(axes[0], curves.items()):
        scopes = sorted({r["scope"] for r in rows}, key=lambda s: (s == "all", s.split(" ")[0] != "ffnet", s))
        sizes = sorted({r["n_train"] for r in rows})
        for scope in scopes:
            sel = sorted((r for r in rows if r["scope"] == scope and r.get("test_accuracy") is not None),
                         key=lambda r: r["n_train"])
            st = scope_style(scope)
            ax.plot([r["n_train"] for r in sel], [r["test_accuracy"] for r in sel], ms=4, **st)
        n_test = rows[0]["n_test"]
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes], fontsize=7)
        ax.xaxis.set_minor_locator(mticker.NullLocator())
        ax.set_xlabel("training images (balanced)")
        ax.set_ylabel(f"test accuracy ({n_test:,} test images)")
        ax.set_title(f"{_NAMES.get(dataset, dataset)}: model chosen on {rows[0]['n_val']:,} validation images",
                     fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="lower right")
    return save(fig, path)
