"""Finite-width networks in plain JAX, in exactly the parametrization of the kernels
(reskernel.core.arch's module doc: activation phi, w_var, b_var, in_var, out_var).

Parameters are dicts of arrays, weights stored (out, in), all entries i.i.d. N(0, 1):
  FeedForward: {"input": W_1 (m, d), "hidden": W_2..W_L (L-1, m, m), "readout": v (m,)}
  ResNet:      {"embed": A (m, d), "W": (L, m, m), "V": (L, m, m), "readout": v (m,)}
and, only when b_var > 0, the biases (so bias-free nets keep the layout above):
  FeedForward: "input_bias" b_1 (m,), "hidden_bias" b_2..b_L (L-1, m), "readout_bias" b_out ()
  ResNet:      "embed_bias" b_0 (m,), "b" b_1..b_L (L, m), "readout_bias" b_out ()

`Network.forward` returns the input u of every group's linear maps y = s W u (a bias: u = 1)
and accepts additive perturbations of y, so that df/dW = s delta u^T with delta = df/dy:
  FeedForward  "input": x -> z_1, s^2 = in_var;  "hidden": x_{l-1} = sqrt(w_var/m) phi(z_{l-1})
               -> z_l, s^2 = 1;  "input_bias", "hidden_bias": 1 -> z_l, s^2 = b_var
  ResNet       "embed": x -> x_0, s^2 = in_var/m ("embed_bias": b_var/m);  "W": x_{l-1} -> the
               branch pre-activation u_l = sqrt(w_var) W_l x_{l-1} + sqrt(b_var) b_l, s^2 = w_var
               ("b": b_var);  "V": phi(u_l)/sqrt(m) -> x_l, s^2 = a_l^2/m
  both         "readout": the features -> f, s^2 = 1;  "readout_bias": 1 -> f, s^2 = b_var
reskernel.empirical contracts such pairs (the structured NTK).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core.activations import relu
from ..core.arch import FeedForward, check_arch
from ..core.conv_arch import ConvNet, ConvResNet
from ._draws import stacked_normal

__all__ = ["Network", "network", "param_groups"]

# Names of the bias arrays (present only when arch.b_var > 0), beside their weights' names.
_BIASES = {"ffnet": ("input_bias", "hidden_bias", "readout_bias"), "resnet": ("embed_bias", "b", "readout_bias")}


def _kind(arch) -> str:
    return "ffnet" if isinstance(arch, FeedForward) else "resnet"


def param_groups(arch, which: str):
    """Names of the parameter arrays trained in `which` = "nngp" | "hidden" | "all".

    "nngp": the readout (v, and b_out when b_var > 0); "hidden": every hidden weight and bias
    (FFNet W_1..W_L, b_1..b_L; ResNet W_l, V_l, b_l); "all" adds the readout and (ResNet) the
    embedding A, b_0. Bias names appear only when arch.b_var > 0.
    """
    biased = arch.b_var > 0
    if isinstance(arch, FeedForward):
        hidden = ("input", "input_bias", "hidden", "hidden_bias") if biased else ("input", "hidden")
        embed = ()
    else:
        hidden = ("W", "V", "b") if biased else ("W", "V")
        embed = ("embed", "embed_bias") if biased else ("embed",)
    readout = ("readout", "readout_bias") if biased else ("readout",)
    if which == "nngp":
        return readout
    return hidden if which == "hidden" else embed + hidden + readout


class Trace(NamedTuple):
    """Forward pass of a batch (n examples): output, the inputs of each linear map, features.

    inputs: group name -> the input u of its linear maps, (n, fan_in) or (L, n, fan_in); a bias
    is the map of the constant input 1, so its group holds ones (n, 1) or (L, n, 1).
    slopes: None, or (when asked for, for reskernel.empirical) phi' at each layer's
    pre-activation: FFNet (L, n, m) for z_1..z_L; ResNet (L, n, m) for the branches.
    """

    out: jax.Array           # (n,)
    inputs: dict             # group name -> input activations
    features: jax.Array      # the readout's input, (n, m): NNGP = features @ features.T + b_var
    slopes: object = None


@dataclasses.dataclass(frozen=True)
class Network:
    """A finite-width `arch` of hidden width `width`; see `network`."""

    arch: object
    width: int

    def __post_init__(self):
        check_arch(self.arch)
        object.__setattr__(self, "width", _checks.width(self.width))

    def init(self, key, d_in: int, dtype=None) -> dict:
        """Parameters for inputs of dimension d_in; all entries i.i.d. N(0, 1).

        dtype: float32 or float64 (default: JAX's default float).
        vmap over keys for an ensemble: jax.vmap(lambda k: net.init(k, d))(keys).
        The weights are the same draws for a key whatever b_var (the biases come from
        another stream of the key), so bias-free nets are those of earlier releases.
        """
        d_in = _checks.positive_int("d_in", d_in)
        dtype = jnp.result_type(float) if dtype is None else _checks.float_dtype("dtype", dtype)
        m, depth = self.width, self.arch.depth
        k1, k2, k3, k4 = jax.random.split(key, 4)
        normal = functools.partial(jax.random.normal, dtype=dtype)
        stack = functools.partial(stacked_normal, dtype=dtype)    # the same draws, one layer at a time
        if isinstance(self.arch, FeedForward):
            params = {"input": normal(k1, (m, d_in)), "hidden": stack(k2, (depth - 1, m, m)),
                      "readout": normal(k3, (m,))}
        else:
            params = {"embed": normal(k1, (m, d_in)), "W": stack(k2, (depth, m, m)),
                      "V": stack(k3, (depth, m, m)), "readout": normal(k4, (m,))}
        if self.arch.b_var > 0:
            shapes = self.param_shapes(d_in)
            names = _BIASES[_kind(self.arch)]
            keys = jax.random.split(jax.random.fold_in(key, _BIAS_STREAM), len(names))
            params.update({name: normal(k, shapes[name]) for name, k in zip(names, keys)})
        return params

    def apply(self, params, x):
        """Outputs f(x): x (n, d) -> (n,), or (d,) -> scalar, in params' dtype.

        params are checked against the network first (keys, shapes, one float32 or
        float64 dtype, finite values when concrete): ValueError/TypeError otherwise.
        """
        x = _input(x, (1, 2))
        self._check_params(params, x.shape[-1])
        out = _forward(self, params, jnp.atleast_2d(x), None).out
        return out[0] if x.ndim == 1 else out

    def features(self, params, x):
        """The readout's input, (n, m), scaled so that the NNGP of these params is
        features @ features.T + b_var: FFNet sqrt(w_var / m) phi(z_L), ResNet sqrt(out_var) x_L
        (for the default nets, x_L)."""
        x = _input(x, (2,))
        self._check_params(params, x.shape[-1])
        return _forward(self, params, x, None).features

    def forward(self, params, x, perturb=None) -> Trace:
        """Forward pass with the inputs of every linear map (see module doc); x (n, d).

        perturb: None or a dict of additive terms, each shaped like the quantity it moves:
        FFNet "input": z_1 (n, m), "hidden": z_2..z_L (L-1, n, m) (the pre-activations);
        ResNet "embed": x_0 (n, m), "W": the branches' pre-activations
        sqrt(w_var) W_l x_{l-1} + sqrt(b_var) b_l (L, n, m), "V": the block outputs x_l (L, n, m).
        A bias moves its layer's pre-activation, so it shares its weight's perturbation.
        """
        x = _input(x, (2,))
        self._check_params(params, x.shape[-1])
        if perturb is not None and not isinstance(perturb, dict):
            raise TypeError(f"perturb must be None or a dict of arrays, got {type(perturb).__name__}")
        if perturb is not None:
            allowed = ("input", "hidden") if isinstance(self.arch, FeedForward) else ("embed", "W", "V")
            extra = sorted(map(str, set(perturb) - set(allowed)))
            if extra:
                raise ValueError(f"perturb keys must be among {list(allowed)}, got unexpected {extra} "
                                 "(a bias shares the perturbation of its layer's weights)")
        return _forward(self, params, x, perturb)

    def param_shapes(self, d_in: int) -> dict:
        """{name: shape} of the parameters for inputs of dimension d_in (the layout of `init`)."""
        m, depth = self.width, self.arch.depth
        if isinstance(self.arch, FeedForward):
            shapes = {"input": (m, d_in), "hidden": (depth - 1, m, m), "readout": (m,)}
            biases = {"input_bias": (m,), "hidden_bias": (depth - 1, m), "readout_bias": ()}
        else:
            shapes = {"embed": (m, d_in), "W": (depth, m, m), "V": (depth, m, m), "readout": (m,)}
            biases = {"embed_bias": (m,), "b": (depth, m), "readout_bias": ()}
        return {**shapes, **biases} if self.arch.b_var > 0 else shapes

    def _check_params(self, params, d):
        """The common dtype of `params` after checking them against this network and input
        dimension d (check_params)."""
        arch = self.arch
        return check_params(params, self.param_shapes(d),
                            what=f"{type(arch).__name__}(depth={arch.depth}) of width {self.width}",
                            inputs=f"inputs of dimension {d}",
                            keys_hint=lambda missing, extra: _bias_hint(arch, missing, extra),
                            shape_hint=lambda name, got, want: _shape_hint(arch, name, got, want))


def check_params(params, shapes, *, what, inputs, keys_hint, shape_hint):
    """The common dtype of `params` after checking them against `shapes` ({name: shape}, the
    net's `param_shapes`): the keys, their shapes, one floating dtype (float32 or float64), and
    finite values (concrete params only; under jit/grad/vmap only shapes and dtypes). what: the
    net in words; inputs: the inputs in words; keys_hint(missing, extra) and
    shape_hint(name, got, want): net-specific text appended to the key and shape errors."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be the dict made by net.init, with keys {list(shapes)}; "
                        f"got {type(params).__name__}")
    if set(params) != set(shapes):
        missing = [k for k in shapes if k not in params]
        extra = sorted(map(str, set(params) - set(shapes)))
        raise ValueError(f"params of a {what} must have the keys {list(shapes)}; "
                         + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                 f"unexpected {extra}" if extra else "") if p)
                         + keys_hint(missing, extra))
    dtypes = {}
    for name, want in shapes.items():
        leaf = params[name]
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            raise TypeError(f"params[{name!r}] must be an array of shape {want}, got {type(leaf).__name__}")
        dtypes[name] = dt = np.dtype(leaf.dtype)
        if dt not in _checks.FLOAT_DTYPES:
            raise TypeError(f"params[{name!r}] has dtype {dt}; parameters must be float32 or float64, "
                            "as net.init makes them")
        got = tuple(leaf.shape)
        if got != want:
            raise ValueError(f"params[{name!r}] has shape {got}, expected {want} for a {what} "
                             f"and {inputs}" + shape_hint(name, got, want))
    if len(set(dtypes.values())) > 1:
        mix = ", ".join(f"{k} {v}" for k, v in dtypes.items())
        raise TypeError(f"params mix dtypes ({mix}); all must share one dtype, float32 or float64")
    for name in shapes:
        bad = _nonfinite(params[name])
        if bad:
            raise ValueError(f"params[{name!r}] has {bad} non-finite entries (nan or inf) of "
                             f"{params[name].size}; parameters must be finite")
    return dtypes[next(iter(shapes))]


# fold_in constant of the biases' key stream ("bias" in ASCII): the weights keep split(key, 4).
_BIAS_STREAM = 0x62696173


def _bias_hint(arch, missing, extra) -> str:
    biases = _BIASES[_kind(arch)]
    if arch.b_var > 0 and any(k in biases for k in missing):
        return (f" (an arch with b_var = {arch.b_var:g} has bias parameters {list(biases)}; "
                "net.init makes them)")
    if arch.b_var == 0 and any(k in biases for k in extra):
        return " (this arch has b_var = 0, so no bias parameters: give b_var > 0 to use biases)"
    return ""


def _shape_hint(arch, name, got, want) -> str:
    if name in ("input", "embed") and len(got) == 2 and got[0] == want[0]:
        return f": these params expect inputs of dimension {got[1]}, got inputs of dimension {want[1]}"
    stacked = {"hidden": 3, "W": 3, "V": 3, "hidden_bias": 2, "b": 2}
    if name in stacked and len(got) == stacked[name] and got[1:] == want[1:]:
        depth = got[0] + 1 if name.startswith("hidden") else got[0]
        return f": {got[0]} stacked matrices are the parameters of a depth-{depth} net, this one has depth {arch.depth}"
    return ""


def _nonfinite(leaf) -> int:
    """Number of non-finite entries of a concrete array; 0 for a tracer (unknown under jit)."""
    if _checks.traced(leaf):
        return 0
    if isinstance(leaf, jax.Array) and any(d.platform != "cpu" for d in leaf.devices()):
        with jax.ensure_compile_time_eval():  # also for a concrete array closed over in the caller's jit
            return int(_count_nonfinite(leaf))
    a = np.asarray(leaf)  # host memory: no copy, and no compilation per shape
    return int(a.size - np.count_nonzero(np.isfinite(a)))


@jax.jit
def _count_nonfinite(a):
    return jnp.sum(~jnp.isfinite(a))


def _input(x, ranks):
    """x for the forward pass: an array of real numbers of one of `ranks`, finite when concrete."""
    x = _checks.real_array("x", x)
    if x.ndim not in ranks:
        want = " or ".join({1: "(d,)", 2: "(n, d)"}[r] for r in sorted(ranks, reverse=True))
        raise ValueError(f"x must have shape {want}, got {x.shape}")
    if x.shape[-1] < 1:
        raise ValueError(f"x must have at least one feature, got shape {x.shape}")
    if _nonfinite(x):
        raise ValueError("x has non-finite entries (nan or inf)")
    return x


def network(arch, width: Optional[int] = None, *, channels: Optional[int] = None):
    """The finite-width network of `arch` with hidden width `width` (plain JAX).

    For a convolutional arch (reskernel ConvNet / ConvResNet) the width is the channel count
    (give `width` or its alias `channels`), and the result a reskernel.nets.conv.ConvNetwork.
    """
    conv = isinstance(arch, (ConvNet, ConvResNet))
    if channels is not None and not conv:
        raise TypeError(f"channels= is the width of a convolutional arch; give width= for a {type(arch).__name__}")
    if (width is None) == (channels is None):
        raise TypeError("give exactly one of width and channels" if conv else "width is required")
    if conv:
        from .conv import ConvNetwork

        return ConvNetwork(arch, width if channels is None else channels)
    return Network(arch, width)




def _relu(x):
    return jnp.maximum(x, 0)


def _activation(arch):
    """phi as a JAX function: jnp.maximum for ReLU (the default nets' arithmetic), else the arch's."""
    return _relu if arch.activation == relu() else arch.activation


def _phi_slope(phi, z, slopes: bool):
    """(phi(z), phi'(z)), the slope None unless asked for (ReLU: the mask z > 0, else by jvp)."""
    if not slopes:
        return phi(z), None
    if phi is _relu:
        return _relu(z), z > 0
    return jax.jvp(phi, (z,), (jnp.ones_like(z),))


def _branch_scales(arch, m):
    """(weight scale, bias scale, perturbation scale, output scale) of the ResNet branch
    phi(sqrt(w_var) W x + sqrt(b_var) b) / sqrt(m). For a positively homogeneous phi the 1/sqrt(m)
    goes in front of phi instead (phi(u / sqrt m) = phi(u) / sqrt m): the default net's
    arithmetic, relu(sqrt(2/m) W x). phi' is the same at u and u / sqrt(m) then."""
    if arch.activation.homogeneous:
        return math.sqrt(arch.w_var / m), math.sqrt(arch.b_var / m), 1.0 / math.sqrt(m), None
    return math.sqrt(arch.w_var), math.sqrt(arch.b_var), None, 1.0 / math.sqrt(m)


def _mm_t(a, w):
    """a @ w.T for weights w stored (out, in), as one dot_general contracting both last axes:
    written `a @ w.T`, XLA on CPU materializes transposes in the backward pass, and gradient
    steps of width-1,024 nets ran 2.3x slower."""
    return jax.lax.dot_general(a, w, (((a.ndim - 1,), (1,)), ((), ())))


def _times(s, a):
    """s * a, with s None for 1 (the default nets' arithmetic has no such product)."""
    return a if s is None else s * a


def resnet_stem(arch, m: int, params, x):
    """x_0 (n, m) of the ResNet of width m for inputs x (n, d): its embedding, from params
    "embed" (and "embed_bias")."""
    x0 = _times(None if arch.in_var == 1 else math.sqrt(arch.in_var), _mm_t(x, params["embed"]))
    if arch.b_var > 0:
        x0 = x0 + math.sqrt(arch.b_var) * params["embed_bias"]
    return x0 / math.sqrt(m)


def resnet_block(arch, m: int, slopes: bool = False):
    """The ResNet's block as a scan body, the one definition of its arithmetic:
    block(x_{l-1}, (W_l, V_l, alpha_l, b_l, eps_W, eps_V)) -> (x_l, (x_{l-1}, z_l, phi'_l)),
    x (n, m), W_l, V_l (m, m), b_l (m,) (ignored when b_var = 0), eps_* additive perturbations
    of the branch pre-activation and of x_l (Network.forward), phi'_l None unless slopes."""
    phi = _activation(arch)
    ws, bs, es, post = _branch_scales(arch, m)
    biased = arch.b_var > 0

    def block(xl, inp):
        w, v, al, b, ew, ev = inp
        p = ws * _mm_t(xl, w)
        if biased:
            p = p + bs * b
        y, s = _phi_slope(phi, p + _times(es, ew), slopes)
        z = _times(post, y)
        return xl + al / math.sqrt(m) * _mm_t(z, v) + ev, (xl, z, s)

    return block


def resnet_stacks(arch, params, dtype):
    """The per-block inputs of resnet_block besides W and V: (alpha (L,), b (L, m), or (L, 1)
    zeros when b_var = 0, ignored then)."""
    a = jnp.asarray(np.asarray(arch.branch_scales), dtype)
    return a, params["b"] if arch.b_var > 0 else jnp.zeros((a.shape[0], 1), dtype)


def resnet_features(arch, xL):
    """The readout's input sqrt(out_var) x_L (n, m) from the last block's output x_L."""
    return _times(None if arch.out_var == 1 else math.sqrt(arch.out_var), xL)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _forward(net: Network, params, x, perturb, slopes: bool = False) -> Trace:
    """The module doc's net on a batch x (n, d); perturb as in Network.forward; slopes: also
    return phi' at every pre-activation (Trace.slopes), for reskernel.empirical's backward."""
    arch, m = net.arch, net.width
    dtype = params["readout"].dtype
    x = x.astype(dtype)
    pert = perturb or {}
    phi = _activation(arch)
    biased = arch.b_var > 0
    sb = math.sqrt(arch.b_var)
    n = x.shape[0]
    ones = jnp.ones((n, 1), dtype)
    if isinstance(arch, FeedForward):
        c = math.sqrt(arch.w_var / m)
        hidden = params["hidden"]
        depth1 = hidden.shape[0]
        h = _times(None if arch.in_var == 1 else math.sqrt(arch.in_var), _mm_t(x, params["input"]))
        if biased:
            h = h + sb * params["input_bias"]
        y1, s1 = _phi_slope(phi, h + pert.get("input", 0.0), slopes)
        bias = params["hidden_bias"] if biased else jnp.zeros((depth1, 1), dtype)
        eps = pert.get("hidden", jnp.zeros((depth1, 1, 1), dtype))

        def layer(xl, w_b_e):
            w, b, e = w_b_e
            h = _mm_t(xl, w)
            if biased:
                h = h + sb * b
            y, s = _phi_slope(phi, h + e, slopes)
            return c * y, (xl, s)

        xL, (xs, ss) = jax.lax.scan(layer, c * y1, (hidden, bias, eps))
        out = xL @ params["readout"]
        inputs = {"input": x, "hidden": xs, "readout": xL}
        if biased:
            out = out + sb * params["readout_bias"]
            inputs.update(input_bias=ones, hidden_bias=jnp.ones((depth1, n, 1), dtype), readout_bias=ones)
        return Trace(out, inputs, xL, jnp.concatenate([s1[None], ss]) if slopes else None)

    depth = arch.depth
    x0 = resnet_stem(arch, m, params, x) + pert.get("embed", 0.0)
    a, bias = resnet_stacks(arch, params, dtype)
    eps_w = pert.get("W", jnp.zeros((depth, 1, 1), dtype))
    eps_v = pert.get("V", jnp.zeros((depth, 1, 1), dtype))
    block = resnet_block(arch, m, slopes)
    xL, (us, zs, ss) = jax.lax.scan(block, x0, (params["W"], params["V"], a, bias, eps_w, eps_v))
    feats = resnet_features(arch, xL)
    out = feats @ params["readout"]
    inputs = {"embed": x, "W": us, "V": zs, "readout": feats}
    if biased:
        out = out + sb * params["readout_bias"]
        inputs.update(embed_bias=ones, b=jnp.ones((depth, n, 1), dtype), readout_bias=ones)
    return Trace(out, inputs, feats, ss)
