"""The convolutional specs (reskernel.core.conv_arch): validation, normalized fields, the dense twins."""
import pytest

from reskernel.core.arch import FeedForward, ResNet
from reskernel.core.conv_arch import ConvNet, ConvResNet, image_shape, taps


def test_defaults_and_dense_twins():
    net = ConvNet(3)
    assert (net.filter_size, net.readout, net.padding) == (3, "gap", "same")
    assert net.default and net.dense == FeedForward(3)
    res = ConvResNet(4, gamma=0.5, w_var=1.5, b_var=0.1, activation="erf", out_var=2.0)
    assert res.dense == ResNet(4, gamma=0.5, w_var=1.5, b_var=0.1, activation="erf", out_var=2.0)
    assert res.branch_scales == pytest.approx((0.5,) * 4)
    assert not res.default
    assert ConvResNet(2).gamma == 1.0 and ConvResNet(2, scales=[1, 0.5]).scales == (1.0, 0.5)
    assert hash(ConvResNet(2, scales=[1, 0.5])) == hash(ConvResNet(2, scales=(1.0, 0.5)))
    assert ConvResNet(3, alpha=0.2).with_depth(5).branch_scales == (0.2,) * 5


def test_taps_follow_lax_same():
    assert taps(1) == (0,) and taps(3) == (-1, 0, 1) and taps(4) == (-1, 0, 1, 2) and taps(2) == (0, 1)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(depth=0), ValueError, "depth"),
    (dict(depth=2.0), TypeError, "depth"),
    (dict(depth=2, filter_size=0), ValueError, "filter_size"),
    (dict(depth=2, filter_size=True), TypeError, "filter_size"),
    (dict(depth=2, readout="pool"), ValueError, "readout"),
    (dict(depth=2, padding="valid"), ValueError, "padding"),
    (dict(depth=2, w_var=-1.0), ValueError, "w_var"),
    (dict(depth=2, activation="nope"), ValueError, "activation"),
])
def test_bad_specs(kwargs, error, match):
    for cls in (ConvNet, ConvResNet):
        with pytest.raises(error, match=match):
            cls(**kwargs)


def test_bad_resnet_scales():
    with pytest.raises(ValueError, match="at most one"):
        ConvResNet(2, gamma=1.0, alpha=0.5)
    with pytest.raises(ValueError, match="one entry per block"):
        ConvResNet(2, scales=(1.0,))
    with pytest.raises(ValueError, match="no other depths"):
        ConvResNet(2, scales=(1.0, 1.0)).with_depth(3)


def test_image_shapes():
    net = ConvNet(2, filter_size=3)
    assert image_shape(net, "x1", (5, 4, 6, 2)) == (4, 6, 2)
    with pytest.raises(ValueError, match="rank 4"):
        image_shape(net, "x1", (4, 6, 2))
    with pytest.raises(ValueError, match="larger than.*channels-first"):
        image_shape(net, "x1", (5, 1, 28, 28))
    # circular padding wraps: any filter on any image (a 1 x 1 image is the dense net)
    assert image_shape(ConvNet(2, filter_size=5, padding="circular"), "x1", (2, 1, 1, 3)) == (1, 1, 3)
    with pytest.raises(ValueError, match="another order"):
        image_shape(net, "x2", (5, 8, 8, 3), other=(5, 3, 8, 8))
