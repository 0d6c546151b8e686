"""CIFAR-10 from the official "python version" batches (Krizhevsky 2009).

Each batch is a protocol-2 pickle of a dict with b'data' (uint8, n x 3072,
channel-major: 1024 red, 1024 green, 1024 blue values, rows top to bottom) and
b'labels' (n ints in 0..9). The unpickler only admits the few numpy globals an
array needs, so a batch cannot run arbitrary code.
"""
from __future__ import annotations

import importlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Tuple

import numpy as np

from .. import _checks
from . import _fetch, _verify

__all__ = ["load_cifar10", "read_cifar_batch", "CIFAR10_CLASSES", "CIFAR10_FILES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
FOLDER = "cifar-10-batches-py"
_MEMBERS = frozenset(CIFAR10_FILES["train"] + CIFAR10_FILES["test"] + ("batches.meta", "readme.html"))


def _multiarray():
    try:  # numpy >= 2 moved numpy.core to numpy._core
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _multiarray()._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3 at protocol 2
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def read_cifar_batch(path) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 32, 32, 3), labels int64 (n,)) from one python batch file.

    Raises ValueError naming the file if it cannot be unpickled (truncated,
    corrupt) or does not hold an (n, 3072) uint8 array with n labels in 0..9.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _Unpickler(f, encoding="bytes").load()
    except OSError:
        raise
    except Exception as e:  # EOFError, UnpicklingError, ValueError from a short array, ...
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                         "the file is truncated, corrupt or not an official batch; replace it with the official file") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: expected a dict with keys b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (n, 3072), got "
                         f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{path}: b'labels' is not a list of integers ({e})") from None
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _extract(tar_path: Path, target: Path, names) -> None:
    """Extract the batch files `names` that `target` lacks from the official tarball, each atomically."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if (len(parts) != 2 or parts[0] != FOLDER or parts[1] not in _MEMBERS or not member.isfile()
                        or (target / parts[1]).exists()):
                    continue
                src = tar.extractfile(member)
                fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{parts[1]}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.replace(tmp, target / parts[1])
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise ValueError(f"{tar_path}: cannot read the CIFAR-10 tarball ({type(e).__name__}: {e}); "
                         "the file is truncated or corrupt, delete it or replace it with the official file") from None
    absent = [n for n in names if not (target / n).is_file()]
    if absent:
        raise ValueError(f"{tar_path}: the tarball has no {FOLDER}/{absent[0]}; it is not the official CIFAR-10 file")


def load_cifar10(split: str, data_dir=None, *, download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images and labels of one split, batches concatenated in order.

    Reads <data_dir>/cifar-10-batches-py/{data_batch_1..5 | test_batch}. If a
    batch is missing, it is extracted from <data_dir>/cifar-10-python.tar.gz,
    which is first downloaded from www.cs.toronto.edu (MD5-verified) when absent
    and `download` is true; the tarball is kept as the cache. Every file used is
    checked against its official MD5 (or the one listed in <data_dir>/MD5SUMS)
    the first time; a mismatch is a ValueError naming the file.

    Args:
      split: "train" or "test".
      data_dir: default $RESKERNEL_DATA, then pooch.os_cache("reskernel").
      download: allow downloading the official tarball.
    Returns:
      images: uint8 (n, 32, 32, 3) (height, width, RGB); labels: int64 (n,) in 0..9,
      class names in CIFAR10_CLASSES. n = 50,000 / 10,000 for the official files.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be one of {tuple(CIFAR10_FILES)}, got {split!r}")
    download = _checks.boolean("download", download)
    where, source = _fetch.locate(data_dir)
    folder = where / FOLDER
    names = CIFAR10_FILES[split]
    absent = [n for n in names if not (folder / n).is_file()]
    if absent:
        remote = _fetch.CIFAR10_REMOTE
        what = f"CIFAR-10 batch {FOLDER}/{absent[0]} (and the tarball {remote.fname} it can be extracted from)"
        tar_path = _fetch.fetch(remote, where, what=what, where=where, source=source, download=download)
        _extract(tar_path, folder, names)
    parts = [read_cifar_batch(_verify.check(folder / n, where)) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
