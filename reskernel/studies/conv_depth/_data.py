"""The study's images: CIFAR-10 pairs and ten-class subsets from reskernel.data, average-pooled to
image_size x image_size, as (n, H, W, 3) images for the conv kernels and (n, H W 3) rows for the
dense ones."""
import numbers
from typing import NamedTuple

import numpy as np

__all__ = ["Images", "pool", "load_images"]


class Images(NamedTuple):
    """One split: images (n, s, s, 3), targets y (n, c), labels (n,) in 0..c-1.

    cifar2: y = (+1, -1) for airplane (label 0) and (-1, +1) for automobile (label 1), i.e.
    the two-class loader's +-1 target and its negative, so argmax is its sign; cifar10: the
    ten-class loader's 0.9 / -0.1 targets."""

    images: np.ndarray
    y: np.ndarray
    labels: np.ndarray

    @property
    def x(self) -> np.ndarray:
        """The flattened images (n, s s 3), in the loaders' (H, W, C) order."""
        return self.images.reshape(len(self.images), -1)


def pool(x, image_size: int) -> np.ndarray:
    """Rows x (n, 32 32 3) of CIFAR images in (H, W, C) order -> (n, s, s, 3) with s = image_size:
    the mean over each (32/s) x (32/s) patch, then every image rescaled to the norm it had
    (the loaders' per-image norm: 1 for the unit sphere, sqrt(d) for standardized, now with d = s s 3).
    Pooling commutes with the loaders' centring, so the pooled images stay centred."""
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1 \
            or 32 % image_size:
        raise ValueError(f"image_size must be an int dividing 32 (1, 2, 4, 8, 16, 32), got {image_size!r}")
    x = np.asarray(x, np.float64)
    s, p = int(image_size), 32 // int(image_size)
    img = x.reshape(-1, s, p, s, p, 3).mean(axis=(2, 4))
    norm = np.linalg.norm(x, axis=1)
    unit = np.allclose(norm, 1.0)
    target = np.ones(len(x)) if unit else np.full(len(x), np.sqrt(s * s * 3.0))
    flat = img.reshape(len(x), -1)
    return (img * (target / np.linalg.norm(flat, axis=1))[:, None, None, None])


def load_images(dataset: str, n_train: int, n_test: int, image_size: int, data_dir=None):
    """(train, test, meta): Images of `dataset` pooled to image_size (float64), and the loader's
    description. cifar2: balanced n_train / n_test draws (seed 0) of airplane vs automobile on the
    unit sphere (data.two_class); cifar10: the first n / 10 images of each class in file order,
    standardized (data.ten_class)."""
    from ... import data

    if dataset == "cifar2":
        ds = data.two_class("cifar2", n_train=n_train, n_test=n_test, balanced=True, seed=0, data_dir=data_dir)

        def split(x, y):
            return Images(pool(x, image_size), np.stack([y, -y], axis=1), (y < 0).astype(np.int64))
        return split(ds.x_train, ds.y_train), split(ds.x_test, ds.y_test), ds.metadata
    if dataset == "cifar10":
        ds = data.ten_class("cifar10", n_train, 0, n_test, data_dir=data_dir)
        return (Images(pool(ds.x_train, image_size), np.asarray(ds.y_train), np.asarray(ds.labels_train)),
                Images(pool(ds.x_test, image_size), np.asarray(ds.y_test), np.asarray(ds.labels_test)),
                {k: v for k, v in ds.meta.items() if k in ("dataset", "files", "selection", "preprocess", "targets")})
    raise ValueError(f"dataset must be one of ('cifar2', 'cifar10'), got {dataset!r}")
