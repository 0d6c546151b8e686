"""One plot style for every command and notebook: labelled axes, PNG output, no display needed.

    fig, ax = figure()                    # style applied, Agg backend, one panel
    ax.plot(...); ax.set_xlabel("width m (neurons)"); ax.set_ylabel("relative error")
    save(fig, "out/error.png")            # PNG, atomic, figure closed

Modules that build figures themselves call `style()` first (it returns pyplot) and `save`.
"""
from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path

__all__ = ["STYLE", "DPI", "style", "figure", "save", "unlabelled_axes"]

#: rcParams of the package style (matplotlib names).
STYLE = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.framealpha": 0.8,
    "lines.markersize": 4,
    "figure.dpi": 100,
}
#: Resolution of saved PNGs (dots per inch).
DPI = 120


def style():
    """Select the non-interactive Agg backend, apply `STYLE` and return matplotlib.pyplot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def figure(ncols: int = 1, *, nrows: int = 1, width: float = 6.0, height: float = 4.2, squeeze: bool = True,
           **subplots_kw):
    """A styled figure of nrows x ncols panels, each width x height inches.

    Returns (fig, axes) as matplotlib's plt.subplots: a single Axes for 1 x 1 (with squeeze),
    else an array of Axes. Extra keywords (sharex, sharey, ...) go to plt.subplots.
    """
    for name, v in (("ncols", ncols), ("nrows", nrows)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    for name, v in (("width", width), ("height", height)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"{name} must be a positive size in inches, got {v!r}")
    plt = style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=squeeze, **subplots_kw)


def unlabelled_axes(fig) -> list:
    """Titles (or indices) of the panels of `fig` that show data but lack an x or y label (a colour
    bar: a label)."""
    out = []
    for i, ax in enumerate(fig.get_axes()):
        if not ax.get_visible() or not (ax.lines or ax.collections or ax.images or ax.patches or ax.containers):
            continue
        if getattr(ax, "_colorbar", None) is not None:   # a colour bar: its label is on its long axis only
            if not (ax.get_xlabel().strip() or ax.get_ylabel().strip()):
                out.append(f"colour bar {i}")
            continue
        if not ax.get_xlabel().strip() or not ax.get_ylabel().strip():
            out.append(ax.get_title() or f"axes {i}")
    return out


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty file of a fresh name in `folder` with the permissions the umask allows
    (as any new file gets; tempfile.mkstemp would give 0600, and the rename would keep them)."""
    while True:
        tmp = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def save(fig, path) -> Path:
    """Save as PNG atomically (temp file in the same folder, then rename) and close the figure.
    The PNG gets the permissions the user's umask allows (0644 under the usual 022).

    Warns (UserWarning) when a panel showing data has no x or y label. Returns the path.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(path)!r}")
    missing = unlabelled_axes(fig)
    if missing:
        warnings.warn(f"{path.name}: panels without axis labels: {missing}", UserWarning, stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, f".{path.stem}.", ".png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
