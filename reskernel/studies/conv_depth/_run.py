"""The convolutional depth study: kernel-regression test accuracy at every depth 1..L of the
FFNet / ConvNet and the ResNet / ConvResNet (alpha = L^-gamma), with dense, flatten and gap
readouts, NNGP and NTK, on pooled CIFAR images; with the result store (merged under the
folder's lock: reruns resume, concurrent runs keep every row).

One resumable unit per (dataset, arch, readout): rk.kernel(..., all_depths=True) gives the
training kernel (n, n) and the test-training kernel (m, n) at every depth 1..L in one pass each
(float32, NNGP and NTK together); each depth's posterior mean is one float64 Cholesky of the
training kernel plus noise x its mean diagonal (selection's factorize, jitter up to 1e-3 where
float32 rounding needs it), scored by argmax against the labels. Files: conv_depth_<dataset>.

Depth l of a ResNet is the L-block net truncated after l blocks, each keeping alpha = L^-gamma of
the full depth L (rk.kernel's all_depths); only l = L is the depth-L net of alpha = L^-gamma.
"""
import math
import numbers
import time
from pathlib import Path

import numpy as np

from ...inference import gp_posterior
from .._store import Table
from ..phases._spec import parse_archs
from ..selection._grid import factorize, finite, scores
from ..selection._run import library_info
from ..sweeps._spec import parse_arch
from ._data import load_images
from ._spec import DATASETS, DEFAULTS, READOUTS

__all__ = ["KEYS", "arch_of", "unit_kernels", "score_depths", "study", "parse_readouts", "parse_datasets"]

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


def unit_kernels(arch, train: np.ndarray, test: np.ndarray):
    """(k_train, k_test): Kernel(nngp, ntk) of (L, n, n) and (L, m, n) float32 arrays at every
    depth 1..L of `arch`. train, test: (n, H, W, C), (m, H, W, C) images (flattened for a dense
    arch). Conv kernels use conv_kernel's default blocks (equal blocks within its memory budget)."""
    from ...core.analytic import kernel
    from ...core.conv_arch import ConvNet, ConvResNet

    a, b = np.asarray(train, np.float32), np.asarray(test, np.float32)
    if not isinstance(arch, (ConvNet, ConvResNet)):
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return kernel(arch, a, all_depths=True), kernel(arch, b, a, all_depths=True)


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
          noise: float = DEFAULTS["noise"], out="results/conv_depth", data_dir=None, progress: bool = True) -> dict:
    """Test accuracy against depth 1..depth for every (dataset, arch, readout) unit (module doc).

    Args:
      datasets: "cifar2,cifar10" (or a sequence); n_train, n_test: images per split (cifar2:
        even, balanced; cifar10: multiples of 10, n / 10 of each class in file order).
      image_size: s dividing 32: images mean-pooled to s x s x 3 (module doc of _data).
      depth: L, the deepest net (every depth 1..L from one pass); archs: "ffnet,resnet:GAMMA,...";
      readouts: "dense,flatten,gap"; filter_size: the convs' k.
      noise: the ridge, relative to the mean training diagonal of each kernel.
      out: the result folder (conv_depth_<dataset>.json / .csv).
    Returns {"rows" (this run's settings), "json" ({dataset: path}), "computed", "resumed"
    (lists of (dataset, arch, readout))}.
    """
    from tqdm.auto import tqdm

    datasets, archs, readouts = parse_datasets(datasets), parse_archs(archs), parse_readouts(readouts)
    image_size, depth = _positive_int("image_size", image_size), _positive_int("depth", depth)
    filter_size, noise = _positive_int("filter_size", filter_size), _check_noise(noise)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        _positive_int(name, n, 2)
    arch_of(archs[0], readouts[0], 1, filter_size)    # bad options fail before any data is read
    library = library_info()
    rows, paths, computed, resumed = [], {}, [], []
    units = [(d, a, r) for d in datasets for a in archs for r in readouts]
    bar = tqdm(units, desc="conv depth", unit="unit", disable=not progress)
    loaded = {}
    for ds, arch, readout in bar:
        if ds not in loaded:
            loaded[ds] = load_images(ds, n_train, n_test, image_size, data_dir)
        train, test, meta = loaded[ds]
        table = Table(Path(out), f"conv_depth_{ds}", KEYS)
        paths[ds] = str(table.json)
        base = {"dataset": ds, "n_train": len(train.labels), "n_test": len(test.labels), "image_size": image_size,
                "filter_size": filter_size, "noise": noise, "trained": "hidden", "max_depth": depth, "arch": arch,
                "readout": readout}
        want = [dict(base, kernel=k, depth=l) for k in ("nngp", "ntk") for l in range(1, depth + 1)]
        have = {table.key(r) for r in table.merge()}
        if all(table.key(w) in have for w in want):
            resumed.append((ds, arch, readout))
            continue
        bar.set_postfix_str(f"{ds} {arch} {readout}")
        start = time.perf_counter()
        k_tr, k_te = unit_kernels(arch_of(arch, readout, depth, filter_size), train.images, test.images)
        kernel_s = time.perf_counter() - start
        new = []
        for name in ("nngp", "ntk"):
            for r in score_depths(getattr(k_tr, name), getattr(k_te, name), train.y, test, noise=noise):
                new.append(dict(base, kernel=name, gamma=parse_arch(arch)[1], **r))
        wall = time.perf_counter() - start
        for r in new:
            r.update(kernel_s=round(kernel_s, 2), unit_wall_s=round(wall, 2))
        doc = {"data": meta, "library": library, "images": f"pooled to {image_size}x{image_size}x3 (_data.pool)",
               "solve": "float32 kernels, float64 Cholesky of K + noise x mean diagonal (jitter up to 1e-3)",
               "resnet_depths": "depth l: the first l blocks of the max_depth-block ResNet, alpha = max_depth^-gamma"}
        table.merge(new, doc)
        computed.append((ds, arch, readout))
    for ds in datasets:
        table = Table(Path(out), f"conv_depth_{ds}", KEYS)
        rows += [r for r in table.read() if r["dataset"] == ds and r["image_size"] == image_size
                 and r["filter_size"] == filter_size and r["noise"] == noise and r["max_depth"] == depth
                 and r["arch"] in archs and r["readout"] in readouts and r["n_train"] == n_train
                 and r["n_test"] == n_test]
    return {"rows": rows, "json": paths, "computed": computed, "resumed": resumed}
