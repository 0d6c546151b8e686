"""The convolutional depth study: does the depth result carry over to convolutions?

Kernel-regression test accuracy against depth 1..L (the FFNet's every depth from one all-depths
pass, the ResNet's chosen depths each its own net) on CIFAR2 (airplane vs automobile) and a
ten-class CIFAR-10 subset, average-pooled to small images, for the FFNet and the ResNet
(alpha = L^-gamma) as convolutional nets (flatten and global-average-pool readouts) and as dense
nets on the flattened images, NNGP and NTK.

    reskernel convdepths --n-train 200 --n-test 200 --image-size 8 --depth 100 --out results/conv_depth

    from reskernel.studies import conv_depth
    got = conv_depth.study("cifar2", n_train=20, n_test=20, image_size=4, depth=3, out="/tmp/cd")
    print(conv_depth.table(got["rows"]))

Modules: _spec (defaults), _data (pooled images), _run (study, its units and scoring), _summary
(tables), _plots, _command (`reskernel convdepths`).
"""
from ._command import convdepths_command
from ._data import Images, load_images, pool
from ._plots import plot_conv_depths
from ._run import (KEYS, arch_of, parse_datasets, parse_readouts, parse_resnet_depths, score_depths, study,
                   unit_kernels)
from ._spec import DATASETS, DEFAULTS, READOUTS, SMALL, TABLE_DEPTHS
from ._summary import drop, table

__all__ = ["DATASETS", "DEFAULTS", "Images", "KEYS", "READOUTS", "SMALL", "TABLE_DEPTHS", "arch_of",
           "convdepths_command", "drop", "load_images", "parse_datasets", "parse_readouts", "parse_resnet_depths",
           "plot_conv_depths", "pool", "score_depths", "study", "table", "unit_kernels"]
