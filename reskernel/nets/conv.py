"""Finite-width convolutional nets in plain JAX (lax.conv_general_dilated, NHWC images, HWIO
filters), in exactly the parametrization of reskernel.core.conv_arch's module doc.

Parameters are dicts of arrays, all entries i.i.d. N(0, 1); C the channels, C0 the input's,
k the filter size, filters stored (k, k, C_in, C_out):
  ConvNet:    {"input": W_1 (k, k, C0, C), "hidden": W_2..W_L (L-1, k, k, C, C), "readout": v}
  ConvResNet: {"embed": A (k, k, C0, C), "W": (L, k, k, C, C), "V": (L, k, k, C, C), "readout": v}
with v (H, W, C) for the flatten readout, (C,) for gap; and, only when b_var > 0, the biases
  ConvNet:    "input_bias" (C,), "hidden_bias" (L-1, C), "readout_bias" ()
  ConvResNet: "embed_bias" (C,), "b" (L, C), "readout_bias" ()
(the names, and so reskernel.networks.param_groups of `arch.dense`, are the dense nets').

`ConvNetwork.forward` returns the input u of every group's convolutions y = s conv(W, u) and
accepts additive perturbations of y, so that df/dW[t] = s sum_p u(p + t) delta(p)^T with
delta = df/dy (reskernel.nets.conv_empirical contracts these):
  ConvNet     "input": x -> z_1, s^2 = in_var / k^2;  "hidden": phi(z_{l-1}) -> z_l,
              s^2 = w_var / (k^2 C);  a bias b_l -> z_l, s^2 = b_var
  ConvResNet  "embed": x -> h_0, s^2 = in_var / k^2;  "W": h_{l-1} -> the branch's
              pre-activation u_l, s^2 = w_var / (k^2 C);  "V": phi(u_l) -> h_l, s^2 = a_l^2 / (k^2 C);
              "embed_bias" -> h_0, "b" -> u_l, s^2 = b_var
  both        "readout": the features -> f;  "readout_bias": 1 -> f, s^2 = b_var
"""
import dataclasses
import functools
import math
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.conv_arch import ConvNet, check_conv_arch, image_shape
from .networks import _BIAS_STREAM, _activation, _nonfinite, check_params

__all__ = ["ConvNetwork", "Trace"]

# Full float32 products on GPUs/TPUs too (their default may round float32 convs to TF32).
_HI = jax.lax.Precision.HIGHEST
_DIMS = ("NHWC", "HWIO", "NHWC")


def conv(u, w, padding: str):
    """conv(W, u) of the module doc: u (n, H, W, C_in), w (k, k, C_in, C_out) -> (n, H, W, C_out).

    Taps -(k-1)//2 .. k//2 along each axis; "same" pads with zeros (lax 'SAME'), "circular"
    wraps the image (jnp.pad mode="wrap", then a VALID convolution).
    """
    k = w.shape[0]
    lo, hi = (k - 1) // 2, k - 1 - (k - 1) // 2
    if padding == "circular":
        u = jnp.pad(u, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="wrap")
        pad = "VALID"
    else:
        pad = ((lo, hi), (lo, hi))
    return jax.lax.conv_general_dilated(u, w, (1, 1), pad, dimension_numbers=_DIMS, precision=_HI)


class Trace(NamedTuple):
    """Forward pass of a batch of n images: output, the inputs of each group's convolutions, features.

    inputs: group name -> the input u of its convolutions, (n, H, W, C_in) or stacked over
    layers (L, n, H, W, C); the readout's is the features.
    """

    out: jax.Array           # (n,)
    inputs: dict             # group name -> input activations
    features: jax.Array      # the readout's input, (n, H W C) flatten or (n, C) gap: NNGP = features @ features.T + b_var


@dataclasses.dataclass(frozen=True)
class ConvNetwork:
    """A finite convolutional `arch` (reskernel ConvNet or ConvResNet) with `channels` channels
    in every hidden layer; see reskernel.network."""

    arch: object
    channels: int

    def __post_init__(self):
        check_conv_arch(self.arch)
        object.__setattr__(self, "channels", _checks.positive_int("channels", self.channels))

    @property
    def width(self) -> int:
        """The channel count (the dense nets' width)."""
        return self.channels

    def param_shapes(self, in_channels: int, image_size: Optional[Tuple[int, int]] = None) -> dict:
        """{name: shape} of the parameters (the layout of `init`) for images with `in_channels`
        channels; image_size (H, W) is needed by the flatten readout only."""
        in_channels = _checks.positive_int("in_channels", in_channels)
        arch, c, k, depth = self.arch, self.channels, self.arch.filter_size, self.arch.depth
        if arch.readout == "flatten":
            if image_size is None:
                raise ValueError("image_size (H, W) is required for the flatten readout, whose weights "
                                 "are one per position and channel")
            readout = (*_image_size(image_size), c)
        else:
            readout = (c,)
        if isinstance(arch, ConvNet):
            shapes = {"input": (k, k, in_channels, c), "hidden": (depth - 1, k, k, c, c), "readout": readout}
            biases = {"input_bias": (c,), "hidden_bias": (depth - 1, c), "readout_bias": ()}
        else:
            shapes = {"embed": (k, k, in_channels, c), "W": (depth, k, k, c, c), "V": (depth, k, k, c, c),
                      "readout": readout}
            biases = {"embed_bias": (c,), "b": (depth, c), "readout_bias": ()}
        return {**shapes, **biases} if arch.b_var > 0 else shapes

    def init(self, key, in_channels: int, dtype=None, *, image_size: Optional[Tuple[int, int]] = None) -> dict:
        """Parameters for images with `in_channels` channels; all entries i.i.d. N(0, 1).

        dtype: float32 or float64 (default: JAX's default float). image_size: (H, W), required
        for the flatten readout (ignored by gap). vmap over keys for an ensemble. The weights
        are the same draws for a key whatever b_var (the biases come from another stream).
        """
        dtype = np.dtype(jnp.result_type(float) if dtype is None else _checks.float_dtype("dtype", dtype))
        return _init(key, tuple(self.param_shapes(in_channels, image_size).items()), dtype)

    def apply(self, params, x):
        """Outputs f(x): images x (n, H, W, C0) -> (n,), or one image (H, W, C0) -> a scalar,
        in params' dtype. params are checked against the net and x first (ValueError/TypeError)."""
        x = _checks.real_array("x", x)
        one = x.ndim == 3
        x = self._checked(params, x[None] if one else x)
        out = _forward(self, params, x, None).out
        return out[0] if one else out

    def features(self, params, x):
        """The readout's input for images x (n, H, W, C0), scaled so that the NNGP of these params
        is features @ features.T + b_var: (n, H W C) for flatten, (n, C) for gap."""
        x = self._checked(params, x)
        return _forward(self, params, x, None).features

    def forward(self, params, x, perturb=None) -> Trace:
        """Forward pass with the inputs of every group's convolutions (module doc); x (n, H, W, C0).

        perturb: None or a dict of additive terms, (n, H, W, C) or stacked (L or L-1, n, H, W, C):
        ConvNet "input": z_1, "hidden": z_2..z_L; ConvResNet "embed": h_0, "W": the branches'
        pre-activations u_1..u_L, "V": the block outputs h_1..h_L. A bias moves its layer's y,
        so it shares its weight's perturbation.
        """
        x = self._checked(params, x)
        if perturb is not None and not isinstance(perturb, dict):
            raise TypeError(f"perturb must be None or a dict of arrays, got {type(perturb).__name__}")
        if perturb:
            allowed = ("input", "hidden") if isinstance(self.arch, ConvNet) else ("embed", "W", "V")
            extra = sorted(map(str, set(perturb) - set(allowed)))
            if extra:
                raise ValueError(f"perturb keys must be among {list(allowed)}, got unexpected {extra}")
        return _forward(self, params, x, perturb)

    def _checked(self, params, x, name="x"):
        """x (n, H, W, C0) checked against the arch and `params`, cast to params' dtype."""
        x = _checks.real_array(name, x)
        h, w, c0 = image_shape(self.arch, name, x.shape)
        dtype = self._check_params(params, c0, (h, w), name)
        if _nonfinite(x):
            raise ValueError(f"{name} has non-finite entries (nan or inf)")
        return x.astype(dtype) if x.dtype != dtype else x

    def _check_params(self, params, in_channels, image_size, name="x"):
        """The common dtype of `params` after checking them against this net and images of
        `in_channels` channels and `image_size` (H, W) (nets.networks.check_params)."""
        arch = self.arch
        return check_params(params, self.param_shapes(in_channels, image_size),
                            what=f"{type(arch).__name__}(depth={arch.depth}) of {self.channels} channels",
                            inputs=f"images {name} of shape (n, {image_size[0]}, {image_size[1]}, {in_channels})",
                            keys_hint=lambda missing, extra: f" (this arch has b_var = {arch.b_var:g})",
                            shape_hint=lambda key, got, want: _shape_hint(key, got, want, name))


_BIAS_NAMES = ("input_bias", "hidden_bias", "embed_bias", "b", "readout_bias")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(key, shapes, dtype) -> dict:
    """N(0, 1) arrays of the (name, shape) pairs `shapes`: the weights cut from one draw of
    `key`, the biases from one draw of another stream of the key (two random-number kernels to
    compile, ~1-2 s each on a CPU, rather than one per array)."""
    params = {}
    for part, k in ((False, key), (True, jax.random.fold_in(key, _BIAS_STREAM))):
        items = [(n, s) for n, s in shapes if (n in _BIAS_NAMES) == part]
        sizes = [math.prod(s) for _, s in items]
        if not items:
            continue
        flat = jax.random.normal(k, (sum(sizes),), dtype)
        for (n, s), start, size in zip(items, np.cumsum([0] + sizes), sizes):
            params[n] = flat[start:start + size].reshape(s)
    return params


def _image_size(image_size) -> Tuple[int, int]:
    if isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__") or len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W), two ints >= 1; got {image_size!r}")
    return tuple(_checks.positive_int("image_size", s) for s in image_size)


def _shape_hint(key, got, want, name) -> str:
    if key in ("input", "embed") and len(got) == 4 and got[:2] == want[:2] and got[3] == want[3]:
        return f": these params were made for images of {got[2]} channels, {name} has {want[2]}"
    if key == "readout" and len(got) == 3 and len(want) == 3 and got[2] == want[2]:
        return f": these params were made for {got[0]} x {got[1]} images (flatten readout), {name} has {want[0]} x {want[1]}"
    return ""


@functools.partial(jax.jit, static_argnums=(0,))
def _forward(net: ConvNetwork, params, x, perturb) -> Trace:
    """The module doc's net on images x (n, H, W, C0) in params' dtype; perturb as in
    ConvNetwork.forward (None: none)."""
    arch, c, k = net.arch, net.channels, net.arch.filter_size
    dtype = params["readout"].dtype
    pert = perturb or {}
    phi = _activation(arch)
    pad = arch.padding
    biased = arch.b_var > 0
    sb = math.sqrt(arch.b_var)
    s_in, s_hid = math.sqrt(arch.in_var) / k, math.sqrt(arch.w_var / (k * k * c))

    def bias(b):
        return sb * b if biased else 0.0

    def stacked(name, depth):
        return pert.get(name, jnp.zeros((depth, 1, 1, 1, 1), dtype))

    if isinstance(arch, ConvNet):
        hidden = params["hidden"]
        depth1 = hidden.shape[0]
        z1 = s_in * conv(x, params["input"], pad) + bias(params.get("input_bias")) + pert.get("input", 0.0)
        b_hid = params["hidden_bias"] if biased else jnp.zeros((depth1, 1), dtype)

        def layer(z, inp):
            w, b, e = inp
            y = phi(z)
            return s_hid * conv(y, w, pad) + bias(b) + e, y

        zL, ys = jax.lax.scan(layer, z1, (hidden, b_hid, stacked("hidden", depth1)))
        top, top_var = phi(zL), arch.w_var
        inputs = {"input": x, "hidden": ys}
    else:
        depth = arch.depth
        a = jnp.asarray(np.asarray(arch.branch_scales) / math.sqrt(k * k * c), dtype)
        h0 = s_in * conv(x, params["embed"], pad) + bias(params.get("embed_bias")) + pert.get("embed", 0.0)
        b_br = params["b"] if biased else jnp.zeros((depth, 1), dtype)

        def block(h, inp):
            w, v, al, b, ew, ev = inp
            y = phi(s_hid * conv(h, w, pad) + bias(b) + ew)
            return h + al * conv(y, v, pad) + ev, (h, y)

        zL, (hs, ys) = jax.lax.scan(block, h0, (params["W"], params["V"], a, b_br, stacked("W", depth),
                                                stacked("V", depth)))
        top, top_var = zL, arch.out_var
        inputs = {"embed": x, "W": hs, "V": ys}
    n = x.shape[0]
    if arch.readout == "flatten":
        feats = math.sqrt(top_var / (top.shape[1] * top.shape[2] * c)) * top.reshape(n, -1)
    else:
        feats = math.sqrt(top_var / c) * jnp.mean(top, axis=(1, 2))
    out = feats @ params["readout"].reshape(-1)
    if biased:
        out = out + sb * params["readout_bias"]
    inputs["readout"] = feats
    return Trace(out, inputs, feats)
