"""Real data: MNIST and CIFAR-10 in their official file formats, and two-class
subsets preprocessed for kernel regression.

    from reskernel import data
    images, labels = data.load_mnist("test")              # uint8 (10000, 28, 28), int64
    ds = data.two_class("cifar2", n_train=500, seed=0)    # ds.x_train (500, 3072), ds.y_train +-1

Files are read from the data directory (the data_dir argument, else
$RESKERNEL_DATA, else pooch.os_cache("reskernel")); missing ones are downloaded
from the official locations. Every file is MD5-verified the first time it is
used (the official hash, or the one listed in <data_dir>/MD5SUMS for partial
files), and a corrupt one is an error naming it.
"""
from ._cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from ._fetch import ENV_VAR, resolve_data_dir
from ._mnist import load_mnist, read_idx
from ._two_class import DATASETS, DEFAULT_CLASSES, TwoClassData, preprocess, two_class

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DEFAULT_CLASSES",
    "ENV_VAR",
    "TwoClassData",
    "load_cifar10",
    "load_mnist",
    "preprocess",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
    "two_class",
]
