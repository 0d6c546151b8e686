"""Real data: MNIST and CIFAR-10 in their official file formats, two-class
subsets preprocessed for kernel regression, and ten-class balanced subsets.

    from reskernel import data
    images, labels = data.load_mnist("test")              # uint8 (10000, 28, 28), int64
    ds = data.two_class("cifar2", n_train=500, seed=0)    # ds.x_train (500, 3072), ds.y_train +-1
    tc = data.ten_class("mnist", 1000, n_val=500)         # first 100 (+ next 50) of each digit, all 10,000 test
    tc.x_train, tc.y_train, tc.labels_train               # (1000, 784) standardized, (1000, 10) 0.9/-0.1, (1000,)
    json.dump(tc.meta, f)                                 # files + MD5, indices, preprocessing, targets, seed

Files are read from the data directory (the data_dir argument, else
$RESKERNEL_DATA, else pooch.os_cache("reskernel")); missing ones are downloaded
from the official locations. Every file is MD5-verified the first time it is
used (the official hash, or the one listed in <data_dir>/MD5SUMS for partial
files), and a corrupt one is an error naming it.

Preprocessing (per image, pixels / 255 flattened): `standardize` (zero mean,
unit variance: Lee et al. 2018), `preprocess` (centring, then the unit sphere:
Huang et al. 2020; or raw [0, 1]). Ten-class targets: `one_hot`.
"""
from ._cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from ._fetch import ENV_VAR, resolve_data_dir
from ._mnist import load_mnist, read_idx
from ._preprocess import preprocess, standardize
from ._ten_class import PREPROCESSINGS, TARGET_ENCODINGS, TEN_CLASS_DATASETS, TenClassData, one_hot, ten_class
from ._two_class import DATASETS, DEFAULT_CLASSES, TwoClassData, two_class

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DEFAULT_CLASSES",
    "ENV_VAR",
    "PREPROCESSINGS",
    "TARGET_ENCODINGS",
    "TEN_CLASS_DATASETS",
    "TenClassData",
    "TwoClassData",
    "load_cifar10",
    "load_mnist",
    "one_hot",
    "preprocess",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
    "standardize",
    "ten_class",
    "two_class",
]
