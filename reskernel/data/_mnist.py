"""MNIST from the official gzipped IDX files (LeCun et al. 1998).

IDX layout: a big-endian header (magic 0x00000800 + number of dimensions for
unsigned bytes, then one uint32 per dimension) followed by the raw bytes. The
number of payload bytes must equal the product of the header dimensions, so a
truncated file or a header whose count was not rewritten is an error, never a
silently shorter array.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Tuple

import numpy as np

from .. import _checks
from . import _fetch

__all__ = ["load_mnist", "read_idx", "MNIST_FILES"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_UBYTE = 0x08


def read_idx(path, ndim: int) -> np.ndarray:
    """The uint8 array of shape (header dims) stored in a gzipped IDX file with `ndim` dimensions.

    Raises ValueError naming the file if it is not gzip, is truncated, has the
    wrong magic number, or holds a payload whose size differs from the header's.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: cannot decompress ({type(e).__name__}: {e}); the file is truncated or corrupt, "
                         "replace it with the official file") from None
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than an IDX header of {header} bytes")
    magic = int.from_bytes(raw[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise ValueError(f"{path}: magic number 0x{magic:08x}, expected 0x{expected:08x} "
                         f"(unsigned-byte IDX with {ndim} dimension{'s' if ndim > 1 else ''})")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = math.prod(dims)
    if len(raw) - header != size:
        raise ValueError(f"{path}: header gives shape {dims} ({size} data bytes) but the file holds "
                         f"{len(raw) - header} data bytes; the file is truncated or its header is wrong")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def load_mnist(split: str, data_dir=None, *, download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels of one split.

    Args:
      split: "train" or "test".
      data_dir: folder holding mnist/<official .gz names>; default $RESKERNEL_DATA,
        then pooch.os_cache("reskernel").
      download: fetch missing files from the official mirrors (MD5-verified).
        Files present are checked against their official MD5 (or the one listed
        in <data_dir>/MD5SUMS) the first time; a mismatch is a ValueError.
    Returns:
      images: uint8 (n, 28, 28); labels: int64 (n,) in 0..9. n is whatever the
      file headers say (60,000 / 10,000 for the official files).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {tuple(MNIST_FILES)}, got {split!r}")
    download = _checks.boolean("download", download)
    where, source = _fetch.locate(data_dir)
    paths = [
        _fetch.fetch(_fetch.MNIST_REMOTES[name], where / "mnist", what=f"MNIST file mnist/{name}",
                     where=where, source=source, download=download)
        for name in MNIST_FILES[split]
    ]
    images = read_idx(paths[0], 3)
    labels = read_idx(paths[1], 1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{paths[0]}: images of shape {images.shape[1:]}, expected (28, 28)")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{paths[1]} holds {labels.shape[0]} labels but {paths[0]} holds {images.shape[0]} images")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: label {int(labels.max())} outside 0..9")
    return images, labels.astype(np.int64)
