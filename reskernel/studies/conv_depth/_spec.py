"""The convolutional depth study's defaults: data sizes, image size, depth, archs, readouts."""
__all__ = ["DATASETS", "READOUTS", "DEFAULTS", "SMALL", "TABLE_DEPTHS"]

# cifar2: airplane vs automobile (data.two_class); cifar10: the ten-class subset (data.ten_class).
DATASETS = ("cifar2", "cifar10")
# "dense": the FFNet / ResNet on the flattened images; "flatten", "gap": the ConvNet / ConvResNet
# with that readout (reskernel.core.conv_arch).
READOUTS = ("dense", "flatten", "gap")
DEFAULTS = dict(datasets="cifar2,cifar10", n_train=200, n_test=200, image_size=8, depth=100,
                archs="ffnet,resnet:0.5,resnet:1", readouts="dense,flatten,gap", filter_size=3, noise=1e-6)
SMALL = dict(n_train=20, n_test=20, image_size=4, depth=3)
# The depths of the printed tables (every depth 1..L is stored and plotted).
TABLE_DEPTHS = (1, 2, 3, 5, 10, 20, 30, 50, 100)
