"""Per-image preprocessing of uint8 images into (n, d) float features, shared by the subsets."""
from __future__ import annotations

import numpy as np

from .. import _checks

__all__ = ["preprocess", "standardize"]


def preprocess(images, *, center: bool = True, sphere: bool = True, dtype=np.float64) -> np.ndarray:
    """uint8 images (n, ...) -> (n, d) features: x = pixels / 255, flattened;
    center: x - mean(x) per image; sphere: x / |x| per image (Huang et al. 2020).

    Raises ValueError for an image that cannot be normalized (constant when
    centered, all zero otherwise).
    """
    center, sphere = _checks.boolean("center", center), _checks.boolean("sphere", sphere)
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"images must have shape (n, ...) with at least 2 dimensions, got {images.shape}")
    dtype = _float_dtype(dtype)
    flat = images.reshape(images.shape[0], -1)
    x = flat.astype(np.float64) / 255.0
    if center:
        x -= x.mean(axis=1, keepdims=True)
    if sphere and x.shape[0]:
        # Decide degeneracy on the raw pixels: a centered constant image is
        # zero up to rounding, and dividing rounding noise by its norm is garbage.
        bad = (flat.max(axis=1) == flat.min(axis=1)) if center else ~flat.any(axis=1)
        if bad.any():
            kind = "constant" if center else "all zero"
            raise ValueError(f"image {int(np.argmax(bad))} is {kind}, so it cannot be projected on the unit sphere")
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def standardize(images, *, dtype=np.float64) -> np.ndarray:
    """uint8 images (n, ...) -> (n, d) features, each image with zero mean and unit
    variance over its d pixels (Lee et al. 2018's per-image standardization).

    The centred image on the unit sphere (`preprocess`) times sqrt(d): the
    population variance of a centred row is |x|^2 / d. Computed in float64, then
    cast to `dtype`. Raises ValueError for a constant image.
    """
    x = preprocess(images, center=True, sphere=True, dtype=np.float64)
    x *= np.sqrt(x.shape[1])
    return x.astype(_float_dtype(dtype))


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a floating dtype such as np.float32 or np.float64, got {dtype!r}") from e
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"dtype must be a floating dtype such as np.float32 or np.float64, got {dt}")
    return dt


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class _Sizes:
    """n_train, n_test and dim of a split holding x_train (n_train, d) and x_test (n_test, d)."""

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]
