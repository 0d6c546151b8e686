"""Convolutional architecture specs: one frozen, hashable description read by the analytic
convolutional kernels (reskernel.core.conv) and by the finite convolutional nets alike.

Images x are channels-last, (H, W, C0) each ((n, H, W, C0) in a batch); channels C -> infinity;
every weight and bias entry i.i.d. N(0, 1); phi the activation; sigma_w^2 = w_var,
sigma_b^2 = b_var. A k x k convolution with taps t in T_k = {-(k-1)//2, ..., k//2}^2 (the
offsets of lax/neural-tangents 'SAME': even k reach one further down and right) reads

    conv(W, y)(p) = sum_{t in T_k} sum_c W[t, c, :] y_c(p + t),

with y(p + t) = 0 outside the image (padding="same", zero padding) or taken modulo (H, W)
(padding="circular", the image wrapped around a torus). Every output keeps the image's H x W.
A hidden convolution's variance is normalized by its fan-in k^2 C, the input layer's by k^2
only (in_var acts on the raw input channels, as the dense first layer's in_var acts on raw
inputs):

ConvNet(depth):
    z_1(p) = sqrt(in_var / k^2) conv(W_1, x)(p) + sqrt(b_var) b_1,
    z_l(p) = sqrt(w_var / (k^2 C)) conv(W_l, phi(z_{l-1}))(p) + sqrt(b_var) b_l,   l = 2..depth,
    flatten: f = sqrt(w_var / (H W C)) sum_{p, c} v_{p, c} phi(z_depth)_c(p) + sqrt(b_var) b_out,
    gap:     f = sqrt(w_var / C) sum_c v_c mean_p phi(z_depth)_c(p) + sqrt(b_var) b_out.
ConvResNet(depth, ...):
    h_0(p) = sqrt(in_var / k^2) conv(A, x)(p) + sqrt(b_var) b_0,
    h_l = h_{l-1} + a_l sqrt(1 / (k^2 C)) conv(V_l, phi(sqrt(w_var / (k^2 C)) conv(W_l, h_{l-1}) + sqrt(b_var) b_l)),
    flatten: f = sqrt(out_var / (H W C)) sum_{p, c} v_{p, c} h_depth,c(p) + sqrt(b_var) b_out,
    gap:     f = sqrt(out_var / C) sum_c v_c mean_p h_depth,c(p) + sqrt(b_var) b_out.
The branch is conv(k) -> phi -> conv(k) (the dense branch W -> phi -> V), its bias in the
pre-activation, its output conv V_l without bias, the whole branch scaled by a_l = depth^-gamma
(default gamma = 1), a fixed alpha, or per-block scales. The stream kernel is
K_l(p, p') = lim (1 / C) h_l(p) . h'_l(p').

Reductions (tests/test_conv_arch.py, tests/test_conv_kernel.py): with filter_size=1 (any
padding), or a 1 x 1 image with circular padding (any filter size: every tap reads the one
pixel), a ConvNet is the dense FeedForward and a ConvResNet the dense ResNet of
reskernel.core.arch with the same variances (`.dense`), with either readout.

neural-tangents stax (parametrization='ntk', which normalizes a Conv's W_std^2 by k^2 C_in and
a Dense's by its fan-in) writes the same nets as
    ConvNet:    Conv(C, (k, k), W_std=sqrt(in_var C0), b_std=sqrt(b_var), padding=P), phi,
                [Conv(C, (k, k), W_std=sqrt(w_var), b_std=sqrt(b_var), padding=P), phi] * (depth - 1),
                Flatten() | GlobalAvgPool(), Dense(1, W_std=sqrt(w_var), b_std=sqrt(b_var))
    ConvResNet: Conv(C, (k, k), W_std=sqrt(in_var C0), b_std=sqrt(b_var), padding=P),
                [FanOut(2), parallel(Identity(), serial(Conv(C, (k, k), sqrt(w_var), sqrt(b_var), P), phi,
                 Conv(C, (k, k), W_std=a_l, b_std=None, padding=P))), FanInSum()] * depth,
                Flatten() | GlobalAvgPool(), Dense(1, W_std=sqrt(out_var), b_std=sqrt(b_var))
with P = 'SAME' or 'CIRCULAR'. The output Conv's W_std = a_l is the scalar branch multiplier (as
the dense ResNet's Dense(m, W_std=a_l): under the ntk parametrization W_std multiplies a bias-free
layer's output and its gradients alike); equivalently W_std=1 followed by ABRelu(a_l, a_l),
phi(x) = a_l x (stax has no Scale layer). The only rescaling is the input layer's
W_std^2 = in_var C0 (stax normalizes it by k^2 C0, reskernel by k^2).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Optional, Tuple, Union

from .arch import FeedForward, ResNet, _check_depth, _check_layers, _is_default

__all__ = ["ConvNet", "ConvResNet", "ConvArch", "READOUTS", "PADDINGS", "taps", "check_conv_arch", "image_shape"]

# "flatten": a dense readout on all H W C features (only same-position covariances enter);
# "gap": global average pooling over positions, then a dense readout (all position pairs enter).
READOUTS = ("flatten", "gap")
# "same": zero padding, output H x W (lax/neural-tangents 'SAME'); "circular": periodic.
PADDINGS = ("same", "circular")


def _check_filter(filter_size) -> int:
    if isinstance(filter_size, bool) or not isinstance(filter_size, numbers.Integral):
        raise TypeError(f"filter_size must be an int >= 1, got {filter_size!r} ({type(filter_size).__name__})")
    if filter_size < 1:
        raise ValueError(f"filter_size must be >= 1, got {filter_size}")
    return int(filter_size)


def _check_choice(name, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_conv(spec):
    object.__setattr__(spec, "filter_size", _check_filter(spec.filter_size))
    _check_choice("readout", spec.readout, READOUTS)
    _check_choice("padding", spec.padding, PADDINGS)


def taps(filter_size: int) -> Tuple[int, ...]:
    """The tap offsets along one image axis, -(k-1)//2 .. k//2 (lax 'SAME'), a tuple of k ints."""
    lo = (filter_size - 1) // 2
    return tuple(range(-lo, filter_size - lo))


@dataclasses.dataclass(frozen=True)
class ConvNet:
    """Convolutional net of `depth` k x k conv layers and a readout (module doc).

    filter_size: k; readout: "gap" (global average pool, then dense) or "flatten" (dense on all
    H W C features); padding: "same" (zero) or "circular". w_var, b_var: the hidden convs' and the
    readout's weight and bias variances; in_var: the input conv's weight variance on the raw input
    channels (normalized by k^2 only); activation as for reskernel.FeedForward.
    """

    depth: int
    filter_size: int = 3
    readout: str = "gap"
    padding: str = "same"
    w_var: float = 2.0
    b_var: float = 0.0
    in_var: float = 1.0
    activation: object = "relu"

    def __post_init__(self):
        object.__setattr__(self, "depth", _check_depth(self.depth))
        _check_conv(self)
        _check_layers(self, ("w_var", "b_var", "in_var"))

    @property
    def default(self) -> bool:
        """True for the bias-free He-scaled ReLU net."""
        return _is_default(self)

    @property
    def dense(self) -> FeedForward:
        """The dense FeedForward this net equals on 1 x 1 images (circular) or for filter_size=1."""
        return FeedForward(self.depth, w_var=self.w_var, b_var=self.b_var, activation=self.activation,
                           in_var=self.in_var)

    def with_depth(self, depth: int) -> "ConvNet":
        return dataclasses.replace(self, depth=depth)


@dataclasses.dataclass(frozen=True)
class ConvResNet:
    """Convolutional ResNet of `depth` blocks conv(k) -> phi -> conv(k) scaled by a_l (module doc).

    Give at most one of gamma (a_l = depth^-gamma, default gamma = 1.0), alpha (a_l = alpha) or
    scales (`depth` per-block scales), as for reskernel.ResNet. filter_size, readout, padding as
    for ConvNet; w_var, b_var: the branch's first conv's weight and bias variances (b_var also the
    embedding's and the readout's bias); in_var, out_var: the embedding conv's weight variance on
    the raw input channels and the readout's weight variance.
    """

    depth: int
    gamma: Optional[float] = None
    alpha: Optional[float] = None
    scales: Optional[Tuple[float, ...]] = None
    filter_size: int = 3
    readout: str = "gap"
    padding: str = "same"
    w_var: float = 2.0
    b_var: float = 0.0
    in_var: float = 1.0
    out_var: float = 1.0
    activation: object = "relu"

    def __post_init__(self):
        _check_conv(self)
        # arch.ResNet's checks of depth, branch scales, variances and activation, and its
        # normalized values (gamma = 1 when none is given, scales a tuple of floats).
        ref = ResNet(self.depth, gamma=self.gamma, alpha=self.alpha, scales=self.scales, w_var=self.w_var,
                     b_var=self.b_var, activation=self.activation, in_var=self.in_var, out_var=self.out_var)
        for name in ("depth", "gamma", "alpha", "scales", "w_var", "b_var", "in_var", "out_var", "activation"):
            object.__setattr__(self, name, getattr(ref, name))

    @property
    def dense(self) -> ResNet:
        """The dense ResNet this net equals on 1 x 1 images (circular) or for filter_size=1."""
        return ResNet(self.depth, gamma=self.gamma, alpha=self.alpha, scales=self.scales, w_var=self.w_var,
                      b_var=self.b_var, activation=self.activation, in_var=self.in_var, out_var=self.out_var)

    @property
    def branch_scales(self) -> Tuple[float, ...]:
        """The per-block scales a_1..a_L (a tuple of `depth` floats)."""
        return self.dense.branch_scales

    @property
    def default(self) -> bool:
        """True for the bias-free He-scaled ReLU ResNet."""
        return _is_default(self)

    def with_depth(self, depth: int) -> "ConvResNet":
        """The same family at another depth (gamma kept, so a_l changes; a fixed alpha kept;
        per-block scales cannot be re-depthed)."""
        if self.scales is not None:
            raise ValueError("a ConvResNet with explicit per-block scales has no other depths")
        return dataclasses.replace(self, depth=depth)


ConvArch = Union[ConvNet, ConvResNet]


def check_conv_arch(arch) -> ConvArch:
    if not isinstance(arch, (ConvNet, ConvResNet)):
        raise TypeError(f"arch must be a reskernel ConvNet or ConvResNet, got {type(arch).__name__}")
    return arch


def _channels_first_hint(shape) -> str:
    """A hint when a (n, H, W, C) shape looks like channels-first (n, C, H, W)."""
    if len(shape) == 4 and shape[1] <= 4 < shape[3] and shape[2] == shape[3]:
        return (f"; shape {tuple(shape)} looks channels-first (n, C, H, W): images must be channels-last "
                "(n, H, W, C), e.g. x.transpose(0, 2, 3, 1)")
    return ""


def image_shape(arch, name: str, shape, other=None) -> Tuple[int, int, int]:
    """(H, W, C0) of a batch of images of `shape` (n, H, W, C0) for `arch`, checked: rank 4,
    nonempty, and (padding "same") a filter no larger than the image; `other` the shape of the
    second batch, whose (H, W, C0) must agree. ValueError naming `name` otherwise."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must have rank 4, channels-last images (n, H, W, C); got shape {shape}"
                         + (" (one image? add a leading batch axis, x[None])" if len(shape) == 3 else ""))
    if min(shape) < 1:
        raise ValueError(f"{name} must hold at least one image of at least one pixel and channel; got shape {shape}")
    k = arch.filter_size
    if arch.padding == "same" and k > min(shape[1], shape[2]):
        raise ValueError(f"filter_size {k} is larger than the {shape[1]} x {shape[2]} images of {name} "
                         f"(shape {shape}, padding 'same')" + _channels_first_hint(shape))
    if other is not None:
        other = tuple(int(s) for s in other)
        if other[1:] != shape[1:]:
            hint = ""
            if sorted(other[1:]) == sorted(shape[1:]):
                hint = ": the same sizes in another order (one channels-first? images must be channels-last (n, H, W, C))"
            raise ValueError(f"x1 and x2 must hold images of one shape (H, W, C); got {other[1:]} and {shape[1:]}{hint}")
    return shape[1], shape[2], shape[3]
