"""Ten-class MNIST and CIFAR-10: balanced subsets, a validation split, one-hot targets.

The subsets are a function of the arguments alone, and `TenClassData.meta`
records everything needed to rebuild them (files and their MD5, indices, rules,
preprocessing, targets, seed, dtype), for the studies to write beside their results.
"""
import dataclasses
import hashlib
import numbers
from pathlib import Path
from typing import Optional

import numpy as np

from .. import _checks
from . import _fetch, _verify
from ._cifar import CIFAR10_CLASSES, CIFAR10_FILES, FOLDER, load_cifar10
from ._mnist import MNIST_FILES, load_mnist
from ._preprocess import _frozen, _Sizes, preprocess, standardize

__all__ = ["TEN_CLASS_DATASETS", "PREPROCESSINGS", "TARGET_ENCODINGS", "TenClassData", "ten_class", "one_hot"]

TEN_CLASS_DATASETS = ("mnist", "cifar10")
PREPROCESSINGS = ("standardize", "sphere", "raw")
# (value off the class, value at the class)
TARGET_ENCODINGS = {"zero_mean": (-0.1, 0.9), "one_hot": (0.0, 1.0)}

_CLASS_NAMES = {"mnist": tuple(str(i) for i in range(10)), "cifar10": CIFAR10_CLASSES}
_OFFICIAL_SIZE = {"mnist": {"train": 60_000, "test": 10_000}, "cifar10": {"train": 50_000, "test": 10_000}}
_LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}
_RULES = {
    "standardize": "pixels / 255, flattened; each image minus its mean, divided by its standard deviation over "
                   "its d pixels: zero mean, unit (population) variance per image (Lee et al. 2018)",
    "sphere": "pixels / 255, flattened; each image minus its mean, divided by its norm: centred, on the unit "
              "sphere (Huang et al. 2020; what two_class does)",
    "raw": "pixels / 255, flattened, in [0, 1]",
}


@dataclasses.dataclass(frozen=True, eq=False)
class TenClassData(_Sizes):
    """Ten-class train / validation / test data; arrays are read-only.

    x_*: (n, d) features of float dtype; y_*: (n, 10) targets of the same dtype
    (one-hot, 0.9 / -0.1 or 1 / 0); labels_*: (n,) int64 classes 0..9. Rows
    are in file order. The validation rows come from the training files and
    are disjoint from the training rows. `meta`: a JSON-serializable dict
    describing how the data was built (see `ten_class`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    labels_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    meta: dict

    @property
    def n_val(self) -> int:
        return self.x_val.shape[0]


def one_hot(labels, *, targets: str = "zero_mean", dtype=np.float64) -> np.ndarray:
    """Targets (n, 10) for integer labels (n,) in 0..9.

    targets: "zero_mean" gives 0.9 at the class and -0.1 elsewhere (Lee et al.
    2018: one-hot minus its mean 0.1); "one_hot" gives 1 and 0.
    """
    off, on = TARGET_ENCODINGS[_choice("targets", targets, tuple(TARGET_ENCODINGS))]
    dt = _checks.float_dtype("dtype", dtype)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-d array of integers, got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must lie in 0..9, got values from {labels.min()} to {labels.max()}")
    y = np.full((labels.shape[0], 10), off, dtype=dt)
    y[np.arange(labels.shape[0]), labels] = on
    return y


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _tens(name, value, *, none: bool, zero: bool) -> Optional[int]:
    """value as an int that is a multiple of 10 (ten balanced classes)."""
    if value is None and none:
        return None
    low = 0 if zero else 10
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {low}, a multiple of 10{' or None' if none else ''}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}{' or None' if none else ''}, got {value}")
    if value % 10:
        lo = value // 10 * 10
        raise ValueError(f"{name} must be a multiple of 10 (the subsets are balanced: {name} / 10 images of each "
                         f"class), got {value}; use {lo or 10} or {lo + 10}")
    return int(value)


def _orders(labels, rng):
    """For each class, its rows in the order they are taken: file order, or a random permutation."""
    rows = [np.flatnonzero(labels == c) for c in range(10)]
    return rows if rng is None else [rng.permutation(r) for r in rows]


def _partial(dataset, split, total) -> str:
    official = _OFFICIAL_SIZE[dataset][split]
    if total >= official:
        return ""
    return (f"; these files are partial ({total:,} of the official {official:,} {split} images: the folder "
            "../shared/data holds only a part of each data set), the official files hold more")


def _too_few(dataset, split, counts, need, what, where, most):
    c = int(np.argmin(counts))
    name = _CLASS_NAMES[dataset][c]
    label = f"class {c}" + (f" ({name})" if name != str(c) else "")
    return ValueError(f"{what} needs {need} images of each class from the {dataset} {split} files, but {label} has "
                      f"only {counts[c]} in {where} ({most}){_partial(dataset, split, int(sum(counts)))}")


def _sha256(idx) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype="<i8").tobytes()).hexdigest()


def _split_meta(idx, labels, source, rule, listed=True) -> dict:
    out = {"source": source, "n": int(len(idx)), "per_class": np.bincount(labels[idx], minlength=10).tolist(),
           "rule": rule, "indices_sha256": _sha256(idx)}
    if listed:
        out["indices"] = idx.tolist()
    return out


def _files(dataset, split, where: Path) -> dict:
    """{path relative to the data directory: MD5} of the files the loader read."""
    rels = ([f"mnist/{n}" for n in MNIST_FILES[split]] if dataset == "mnist"
            else [f"{FOLDER}/{n}" for n in CIFAR10_FILES[split]])
    return {rel: _md5(where / rel) for rel in rels}


def _md5(path: Path) -> str:
    # The loader has just verified the file: its digest is in the record of verified
    # files unless the user cache cannot be written; then hash it again.
    key, stamp = _verify._key(path)
    seen = _verify._load_record().get(key)
    if isinstance(seen, dict) and isinstance(seen.get("md5"), str) and all(seen.get(k) == v for k, v in stamp.items()):
        return seen["md5"]
    return _verify._md5(path)


def _features(images, idx, how, dt, where_from):
    d = int(np.prod(images.shape[1:]))
    if not len(idx):
        return np.zeros((0, d), dt)
    flat = images[idx].reshape(len(idx), d)
    if how != "raw":
        bad = flat.max(axis=1) == flat.min(axis=1)
        if bad.any():
            raise ValueError(f"image {int(idx[np.argmax(bad)])} of the {where_from} files is constant, so it cannot "
                             f"be normalized by preprocess={how!r}; use preprocess='raw'")
    if how == "standardize":
        return standardize(flat, dtype=dt)
    return preprocess(flat, center=how == "sphere", sphere=how == "sphere", dtype=dt)


def ten_class(dataset: str, n_train: Optional[int], n_val: int = 0, n_test: Optional[int] = None, *,
              preprocess: str = "standardize", targets: str = "zero_mean", seed: Optional[int] = None,
              dtype=np.float64, data_dir=None, download: bool = True) -> TenClassData:
    """All ten classes of MNIST or CIFAR-10: balanced training, validation and test sets.

    Selection: per class, the training files' rows of that class are taken in
    file order (seed None) or in a random permutation (a seed); the training set
    takes the first n_train / 10 of each class, the validation set the next
    n_val / 10, so the two are disjoint and a larger n_train (same seed) only
    adds rows. The test set is every image of the test files (n_test None; not
    balanced), or the first n_test / 10 of each class in file order or in a
    random permutation of the test files. The permutations come from
    `np.random.default_rng` on the two streams `np.random.SeedSequence(seed).spawn(2)`
    (training files, test files), so the test draw does not depend on n_train.

    Args:
      dataset: "mnist" (d = 784) or "cifar10" (d = 3072).
      n_train: a multiple of 10 (n_train / 10 images per class), or None for
        the largest balanced set the files allow after the validation rows.
      n_val: a multiple of 10 (>= 0), taken from the training files.
      n_test: None (all test images) or a multiple of 10.
      preprocess: "standardize" (each image zero mean and unit variance over its
        pixels, Lee et al. 2018), "sphere" (each image centred, then divided by
        its norm; as `two_class`), or "raw" (pixels / 255 in [0, 1]).
      targets: "zero_mean" (0.9 at the class, -0.1 elsewhere, Lee et al. 2018)
        or "one_hot" (1 and 0); see `one_hot`. The labels are always returned.
      seed: None for the deterministic first-in-file-order subsets, or an int >= 0
        for random per-class draws.
      dtype: float32 or float64 for x and y (preprocessing runs in float64).
      data_dir, download: as in `load_mnist` / `load_cifar10`.
    Returns:
      TenClassData. Its `meta` holds: dataset, class_names, dim, data_dir, files
      ({path relative to data_dir: MD5} of every file read), available (images
      per class in the training and test files), seed, selection ("first" or
      "seeded"), splits (train / val / test: source files, n, per_class, the
      rule in words, indices_sha256 = SHA-256 of the sorted row indices as
      little-endian int64, and the indices themselves unless the split is every
      test image), preprocess and its rule, targets and target_values, dtype.
    Raises:
      ValueError: an unknown dataset, preprocess or targets; a size that is not
        a multiple of 10; more images of a class than the files hold (naming
        the class, the count available and the data directory); a constant
        image with preprocess "standardize" or "sphere".
      TypeError: a size or seed that is not an int, a dtype other than float32
        or float64.
    """
    if dataset in ("mnist2", "cifar2"):
        raise ValueError(f"dataset must be one of {TEN_CLASS_DATASETS}, got {dataset!r}; two-class subsets: two_class")
    dataset = _choice("dataset", dataset, TEN_CLASS_DATASETS)
    how = _choice("preprocess", preprocess, PREPROCESSINGS)
    targets = _choice("targets", targets, tuple(TARGET_ENCODINGS))
    n_train = _tens("n_train", n_train, none=True, zero=False)
    n_val = _tens("n_val", n_val, none=False, zero=True)
    n_test = _tens("n_test", n_test, none=True, zero=False)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        error = ValueError if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) else TypeError
        raise error(f"seed must be None (first images in file order) or an int >= 0, got {seed!r}")
    dt = _checks.float_dtype("dtype", dtype)
    download = _checks.boolean("download", download)
    where, _ = _fetch.locate(data_dir)
    load = _LOADERS[dataset]
    rngs = (None, None) if seed is None else [np.random.default_rng(s) for s in
                                              np.random.SeedSequence(int(seed)).spawn(2)]
    in_order = "in file order" if seed is None else f"in a random order drawn from seed {seed}"

    images, labels = load("train", data_dir, download=download)
    counts = np.bincount(labels, minlength=10)
    per_val = n_val // 10
    per_train = int(counts.min()) - per_val if n_train is None else n_train // 10
    if per_train < 1 or counts.min() < per_train + per_val:
        what = (f"n_train={n_train} with n_val={n_val}" if n_train is not None
                else f"n_val={n_val} with at least one training image per class")
        most = (f"at most n_train={10 * (int(counts.min()) - per_val)} with n_val={n_val}"
                if counts.min() > per_val else f"at most n_val={10 * (int(counts.min()) - 1)}")
        raise _too_few(dataset, "train", counts.tolist(), max(per_train, 1) + per_val, what, where, most)
    orders = _orders(labels, rngs[0])
    idx_train = np.sort(np.concatenate([o[:per_train] for o in orders]))
    idx_val = np.sort(np.concatenate([o[per_train:per_train + per_val] for o in orders]))

    images_te, labels_te = load("test", data_dir, download=download)
    counts_te = np.bincount(labels_te, minlength=10)
    if n_test is None:
        idx_test = np.arange(len(labels_te), dtype=np.int64)
        rule_test = "every image of the test files"
    else:
        if counts_te.min() < n_test // 10:
            raise _too_few(dataset, "test", counts_te.tolist(), n_test // 10, f"n_test={n_test}", where,
                           f"at most n_test={10 * int(counts_te.min())}")
        idx_test = np.sort(np.concatenate([o[:n_test // 10] for o in _orders(labels_te, rngs[1])]))
        rule_test = f"the first {n_test // 10} images of each class {in_order}"

    files = {**_files(dataset, "train", where), **_files(dataset, "test", where)}
    meta = {
        "dataset": dataset, "class_names": list(_CLASS_NAMES[dataset]), "dim": int(np.prod(images.shape[1:])),
        "data_dir": str(where), "files": files,
        "available": {"train": counts.tolist(), "test": counts_te.tolist()},
        "seed": None if seed is None else int(seed), "selection": "first" if seed is None else "seeded",
        "splits": {
            "train": _split_meta(idx_train, labels, "train files",
                                 f"the first {per_train} images of each class {in_order}"),
            "val": _split_meta(idx_val, labels, "train files",
                               f"the next {per_val} images of each class {in_order}, after the training ones"),
            "test": _split_meta(idx_test, labels_te, "test files", rule_test, listed=n_test is not None),
        },
        "preprocess": how, "preprocess_rule": _RULES[how],
        "targets": targets, "target_values": {"off": TARGET_ENCODINGS[targets][0], "on": TARGET_ENCODINGS[targets][1]},
        "dtype": str(dt),
    }
    out = {}
    for split, imgs, labs, idx in (("train", images, labels, idx_train), ("val", images, labels, idx_val),
                                   ("test", images_te, labels_te, idx_test)):
        source = f"{dataset} {'test' if split == 'test' else 'train'}"
        lab = labs[idx].astype(np.int64)
        out[f"x_{split}"] = _frozen(_features(imgs, idx, how, dt, source))
        out[f"y_{split}"] = _frozen(one_hot(lab, targets=targets, dtype=dt))
        out[f"labels_{split}"] = _frozen(lab)
    return TenClassData(**out, meta=meta)
