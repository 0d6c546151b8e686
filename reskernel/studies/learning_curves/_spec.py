"""The learning-curve study's defaults: training-set sizes, the selection grid and the ridges
(noises relative to each kernel's mean diagonal) chosen among on the validation split."""
import math

from ..selection._spec import check_grid

__all__ = ["DEFAULT_SIZES", "DEFAULT_GRID", "DEFAULT_NOISES", "SMALL", "parse_sizes", "parse_noises", "check_grid"]

# None: every balanced training image the files hold once the validation split is set aside.
DEFAULT_SIZES = (100, 200, 500, 1000, 2000, None)
DEFAULT_GRID = {"archs": "ffnet,resnet:0.5,resnet:1", "activations": "relu", "w_vars": "1.5,2.5", "b_vars": "0,0.25",
                "depths": "1,3,10,30", "kernels": "nngp,ntk"}
DEFAULT_NOISES = (1e-10, 1e-3, 1e-1)
SMALL = dict(sizes=(50, 100), n_val=50, n_test=200, archs="ffnet,resnet:1", activations="relu", w_vars="2",
             b_vars="0.1", depths="1,3", kernels="nngp,ntk", noises=(1e-10, 1e-1))


def parse_sizes(value) -> tuple:
    """'100,200,all' (or a sequence of ints and None) -> sorted distinct sizes, None ('all') last.
    Each int a multiple of 10 >= 10 (n / 10 images of each class)."""
    items = [v.strip().lower() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if not items:
        raise ValueError("sizes: give at least one training-set size")
    out = set()
    for v in items:
        if v is None or v == "all":
            out.add(None)
            continue
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"sizes must be multiples of 10 or 'all', got {v!r}") from None
        if isinstance(v, bool) or n != v and not isinstance(v, str) or n < 10 or n % 10:
            raise ValueError(f"sizes must be multiples of 10 (n / 10 images of each class) and >= 10, got {v!r}")
        out.add(n)
    return tuple(sorted(n for n in out if n is not None)) + ((None,) if None in out else ())


def parse_noises(value) -> tuple:
    """'1e-10,1e-3' (or a sequence) -> sorted distinct finite noises >= 0 (ridges relative to the
    mean diagonal); ties in the choice go to the smaller one."""
    items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if not items:
        raise ValueError("noises: give at least one ridge")
    out = set()
    for v in items:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"noises must be finite numbers >= 0, got {v!r}") from None
        if isinstance(v, bool) or not math.isfinite(x) or x < 0:
            raise ValueError(f"noises must be finite numbers >= 0, got {v!r}")
        out.add(x)
    return tuple(sorted(out))
