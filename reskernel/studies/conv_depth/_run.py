"""The convolutional depth study: kernel-regression test accuracy at every depth 1..L of the
FFNet / ConvNet and the ResNet / ConvResNet (alpha = L^-gamma), with dense, flatten and gap
readouts, NNGP and NTK, on pooled CIFAR images; with the result store (merged under the
folder's lock: reruns resume, concurrent runs keep every row).

The FFNet / ConvNet: one resumable unit per (dataset, arch, readout); rk.kernel(...,
all_depths=True) gives the training kernel (n, n) and the test-training kernel (m, n) at every
depth 1..L in one pass each (float32, NNGP and NTK together). Each depth's posterior mean is one
float64 Cholesky of the training kernel plus noise x its mean diagonal (selection's factorize,
jitter up to 1e-3 where float32 rounding needs it), scored by argmax against the labels. Files:
conv_depth_<dataset>.

The ResNet / ConvResNet of depth l has alpha = l^-gamma, so each depth is a net of its own: one
unit (one pass) per (dataset, arch, readout, l) for l in resnet_depths (default TABLE_DEPTHS up
to L, and L), stored with max_depth = depth = l. resnet_depths="truncated" instead takes every
depth 1..L from one pass of the L-block net, depth l being its first l blocks with alpha =
L^-gamma of the full depth (rk.kernel's all_depths; max_depth = L): only l = L is then the depth-l
net of alpha = l^-gamma, and at small l the branches are L^-gamma-small (the embedding's nearly
linear kernel).
"""
import math
import numbers
import operator
import time
from pathlib import Path

import numpy as np

from ...inference import gp_posterior
from ..depth_study import parse_depths
from .._store import Table
from ..phases._spec import parse_archs
from ..selection._grid import factorize, finite, scores
from ..selection._run import library_info
from ..sweeps._spec import parse_arch
from ._data import load_images
from ._spec import DATASETS, DEFAULTS, READOUTS, TABLE_DEPTHS

__all__ = ["KEYS", "arch_of", "unit_kernels", "score_depths", "study", "parse_readouts", "parse_datasets",
           "parse_resnet_depths"]

KEYS = ("dataset", "n_train", "n_test", "image_size", "filter_size", "noise", "trained", "max_depth", "arch",
        "readout", "kernel", "depth")


def _choice_list(name, value, choices) -> tuple:
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    bad = [v for v in items if v not in choices]
    if bad or not items:
        raise ValueError(f"{name} must be a comma list of {', '.join(choices)}, got {value!r}")
    return tuple(dict.fromkeys(items))


def parse_readouts(readouts) -> tuple:
    """'dense,flatten,gap' or a sequence -> a tuple of distinct readouts, in the given order."""
    return _choice_list("readouts", readouts, READOUTS)


def parse_datasets(datasets) -> tuple:
    """'cifar2,cifar10' or a sequence -> a tuple of distinct datasets, in the given order."""
    return _choice_list("datasets", datasets, DATASETS)


def parse_resnet_depths(spec, depth: int):
    """resnet_depths -> "truncated" or the sorted distinct ResNet depths, each its own net:
    None -> TABLE_DEPTHS up to `depth`, and `depth`; "truncated"; a depth spec of
    depth_study.parse_depths ("1,10,100", "1:100:9") or a sequence of ints, all in 1..depth."""
    if spec is None:
        return tuple(sorted({d for d in TABLE_DEPTHS if d <= depth} | {depth}))
    if isinstance(spec, str) and spec.strip() == "truncated":
        return "truncated"
    try:
        items = parse_depths(spec) if isinstance(spec, str) else [operator.index(v) for v in spec]
    except (TypeError, ValueError):
        items = []
    if not items or any(d < 1 or d > depth for d in items):
        raise ValueError(f"resnet_depths must be 'truncated' or depths in 1..{depth} (depth) such as '1,10,{depth}' "
                         f"or '1:{depth}:9', got {spec!r}")
    return tuple(sorted(set(items)))


def _positive_int(name, value, minimum=1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def arch_of(arch: str, readout: str, depth: int, filter_size: int = 3):
    """The reskernel arch of a study unit: "ffnet" / "resnet:GAMMA" with readout "dense"
    (FeedForward / ResNet on flattened images) or "flatten" / "gap" (ConvNet / ConvResNet with
    k x k filters, same padding); ReLU, w_var 2, b_var 0 (the defaults) throughout."""
    from ...core.arch import FeedForward, ResNet
    from ...core.conv_arch import ConvNet, ConvResNet

    kind, gamma = parse_arch(arch)
    parse_readouts([readout])
    if readout == "dense":
        return FeedForward(depth) if kind == "ffnet" else ResNet(depth, gamma=gamma)
    conv = dict(filter_size=filter_size, readout=readout)
    return ConvNet(depth, **conv) if kind == "ffnet" else ConvResNet(depth, gamma=gamma, **conv)


def unit_kernels(arch, train: np.ndarray, test: np.ndarray, all_depths: bool = True):
    """(k_train, k_test): Kernel(nngp, ntk) of (L, n, n) and (L, m, n) float32 arrays at every
    depth 1..L of `arch` (all_depths; else of depth L alone: (1, n, n), (1, m, n)). train, test:
    (n, H, W, C), (m, H, W, C) images (flattened for a dense arch). Conv kernels use conv_kernel's
    default blocks (equal blocks within its memory budget)."""
    from ...core.analytic import Kernel, kernel
    from ...core.conv_arch import ConvNet, ConvResNet

    a, b = np.asarray(train, np.float32), np.asarray(test, np.float32)
    if not isinstance(arch, (ConvNet, ConvResNet)):
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    k_tr, k_te = kernel(arch, a, all_depths=all_depths), kernel(arch, b, a, all_depths=all_depths)
    if all_depths:
        return k_tr, k_te
    return tuple(Kernel(*(np.asarray(v)[None] for v in k)) for k in (k_tr, k_te))


def score_depths(k_train, k_test, y_train, test, *, noise: float) -> list:
    """One dict per depth l = 1..L: test_accuracy, test_mse, jitter (relative), cond.
    k_train (L, n, n), k_test (L, m, n): one kernel at every depth (any float dtype: solved in
    float64 with noise x the mean training diagonal); y_train (n, c); test: Images (y, labels)."""
    out = []
    for l in range(k_train.shape[0]):
        k = np.asarray(k_train[l], np.float64)
        row = {"depth": l + 1, "test_accuracy": None, "test_mse": None, "jitter": None, "cond": None, "status": "ok"}
        if not np.isfinite(k).all() or not np.isfinite(k_test[l]).all():
            row["status"] = "kernel not finite"
            out.append(row)
            continue
        try:
            f, scale = factorize(k, noise, "float32")
        except (ValueError, np.linalg.LinAlgError) as e:
            row["status"] = f"solve failed: {e}"
            out.append(row)
            continue
        acc, mse = scores(gp_posterior(f, y_train, np.asarray(k_test[l], np.float64)).mean, test)
        row.update(test_accuracy=acc, test_mse=mse, jitter=float(f.jitter) / scale, cond=finite(f.cond))
        out.append(row)
    return out


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite real >= 0 (relative to the mean training diagonal), got {noise!r}")
    return float(noise)


def study(datasets=DEFAULTS["datasets"], *, n_train: int = DEFAULTS["n_train"], n_test: int = DEFAULTS["n_test"],
          image_size: int = DEFAULTS["image_size"], depth: int = DEFAULTS["depth"], archs=DEFAULTS["archs"],
          readouts=DEFAULTS["readouts"], filter_size: int = DEFAULTS["filter_size"],
          noise: float = DEFAULTS["noise"], resnet_depths=None, out="results/conv_depth", data_dir=None,
          progress: bool = True) -> dict:
    """Test accuracy against depth 1..depth for every (dataset, arch, readout) (module doc).

    Args:
      datasets: "cifar2,cifar10" (or a sequence); n_train, n_test: images per split (cifar2:
        even, balanced; cifar10: multiples of 10, n / 10 of each class in file order).
      image_size: s dividing 32: images mean-pooled to s x s x 3 (module doc of _data).
      depth: L, the deepest net (every FFNet depth 1..L from one pass); archs:
        "ffnet,resnet:GAMMA,..."; readouts: "dense,flatten,gap"; filter_size: the convs' k.
      noise: the ridge, relative to the mean training diagonal of each kernel.
      resnet_depths: the ResNets' depths, each its own net of alpha = depth^-gamma ("1,10,100"
        or ints in 1..depth; default TABLE_DEPTHS up to depth, and depth), or "truncated" (module
        doc).
      out: the result folder (conv_depth_<dataset>.json / .csv).
    Returns {"rows" (this run's settings), "json" ({dataset: path}), "computed", "resumed"
    (lists of (dataset, arch, readout, max_depth))}.
    """
    from tqdm.auto import tqdm

    datasets, archs, readouts = parse_datasets(datasets), parse_archs(archs), parse_readouts(readouts)
    image_size, depth = _positive_int("image_size", image_size), _positive_int("depth", depth)
    filter_size, noise = _positive_int("filter_size", filter_size), _check_noise(noise)
    own = parse_resnet_depths(resnet_depths, depth)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        _positive_int(name, n, 2)
    arch_of(archs[0], readouts[0], 1, filter_size)    # bad options fail before any data is read
    library = library_info()
    rows, paths, computed, resumed = [], {}, [], []

    def passes(arch):
        """(max_depth, all_depths) of each pass of arch: one to `depth`, or one per ResNet depth."""
        return ((depth, True),) if arch == "ffnet" or own == "truncated" else tuple((l, False) for l in own)

    units = [(d, a, r, top, every) for d in datasets for a in archs for r in readouts for top, every in passes(a)]
    bar = tqdm(units, desc="conv depth", unit="unit", disable=not progress)
    loaded = {}
    for ds, arch, readout, top, every in bar:
        if ds not in loaded:
            loaded[ds] = load_images(ds, n_train, n_test, image_size, data_dir)
        train, test, meta = loaded[ds]
        table = Table(Path(out), f"conv_depth_{ds}", KEYS)
        paths[ds] = str(table.json)
        base = {"dataset": ds, "n_train": len(train.labels), "n_test": len(test.labels), "image_size": image_size,
                "filter_size": filter_size, "noise": noise, "trained": "hidden", "max_depth": top, "arch": arch,
                "readout": readout}
        ls = range(1, top + 1) if every else (top,)
        want = [dict(base, kernel=k, depth=l) for k in ("nngp", "ntk") for l in ls]
        have = {table.key(r) for r in table.merge()}
        if all(table.key(w) in have for w in want):
            resumed.append((ds, arch, readout, top))
            continue
        bar.set_postfix_str(f"{ds} {arch} {readout}" + ("" if every else f" L={top}"))
        start = time.perf_counter()
        k_tr, k_te = unit_kernels(arch_of(arch, readout, top, filter_size), train.images, test.images, every)
        kernel_s = time.perf_counter() - start
        new = []
        for name in ("nngp", "ntk"):
            for l, r in zip(ls, score_depths(getattr(k_tr, name), getattr(k_te, name), train.y, test, noise=noise)):
                new.append(dict(base, kernel=name, gamma=parse_arch(arch)[1], **dict(r, depth=l)))
        wall = time.perf_counter() - start
        for r in new:
            r.update(kernel_s=round(kernel_s, 2), unit_wall_s=round(wall, 2))
        doc = {"data": meta, "library": library, "images": f"pooled to {image_size}x{image_size}x3 (_data.pool)",
               "solve": "float32 kernels, float64 Cholesky of K + noise x mean diagonal (jitter up to 1e-3)",
               "resnet_depths": "a ResNet row of depth l < max_depth: the first l blocks of the max_depth-block net, "
                                "alpha = max_depth^-gamma; depth = max_depth: the net of alpha = depth^-gamma"}
        table.merge(new, doc)
        computed.append((ds, arch, readout, top))
    for ds in datasets:
        table = Table(Path(out), f"conv_depth_{ds}", KEYS)
        rows += [r for r in table.read() if r["dataset"] == ds and r["image_size"] == image_size
                 and r["filter_size"] == filter_size and r["noise"] == noise and r["arch"] in archs
                 and r["readout"] in readouts and r["n_train"] == n_train and r["n_test"] == n_test
                 and any(r["max_depth"] == top and (every or r["depth"] == top) for top, every in passes(r["arch"]))]
    return {"rows": rows, "json": paths, "computed": computed, "resumed": resumed}
