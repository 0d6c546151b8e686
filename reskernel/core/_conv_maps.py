"""The convolutional layer maps, on NumPy or JAX arrays (one definition for the host diagonal pass
and the device blocks): the k x k windowed mean over positions, the readouts, and the layer and
block maps of reskernel.core.conv_arch's nets on the general engine's duals.

Two layouts of a pair state between images i and j:
  "flatten" (..., H, W): same-position covariances Sigma(p, p) only (a flatten readout and the
      conv layers below it never read other pairs);
  "gap"     (..., H, W, H, W): every position pair Sigma(p, p').
The windowed mean S[A](p, p') = k^-2 sum_{t in T_k} A(p + t, p' + t) shifts both positions by the
same tap t (zero outside the image for padding "same", modulo (H, W) for "circular"); it is
separable, an axis mean over h (with h') and then over w (with w'), k slices each.

ConvNet layer (Sigma, T: the pre-activation covariance and the NTK of the layers below it):
    A = w_var V(Sigma), B = w_var Vdot(Sigma) (T + Sigma);  next (S[A] + b_var, S[B]);
    readout (R[A] + b_var, R[B]), R the mean over positions (flatten) or position pairs (gap).
ConvResNet block (K, Theta: the stream's covariance and NTK):
    Sigma = w_var S[K] + b_var;  K <- K + a^2 S[V(Sigma)],
    Theta <- Theta + a^2 S[V(Sigma) + Vdot(Sigma) (Sigma + w_var S[Theta])];
    readout (out_var R[K] + b_var, out_var R[Theta]).
With S the identity (filter_size 1, or a 1 x 1 circular image) these are, term by term, the dense
maps of reskernel.core.engine (general_layer, general_read).
"""

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from . import engine
from .conv_arch import ConvNet, taps

# Axis groups shifted together by the window: flatten (h), (w); gap (h, h'), (w, w').
GROUPS = {"flatten": ((-2,), (-1,)), "gap": ((-4, -2), (-3, -1))}
SPATIAL = {"flatten": 2, "gap": 4}


def xp_of(a):
    if isinstance(a, (np.ndarray, np.generic, float, int)):
        return np
    import jax.numpy as jnp

    return jnp


class Padded(NamedTuple):
    """A pair state written straight into its zero border (padding "same", k <= 3: `border`
    wide on every position axis of its layout), so that `window` reads its taps without padding
    a copy first; `readout` takes its mean over the interior."""
    array: Any


def border(arch):
    """(lo, hi): the window's reach below and above a position."""
    offsets = taps(arch.filter_size)
    return -offsets[0], offsets[-1]


def window(a, arch, layout):
    """S[a]: the k x k windowed mean over the position axes of `layout` (module doc): every tap in
    one pass over a padded copy for k <= 3 (fewer passes over memory: 0.21 s against 0.35 s for
    the separable form on a (4, 4, 32, 32, 32, 32) float32 gap block, load ~8.5 on 2 cores), one
    pass per axis group (2k slices instead of k^2) for larger filters; `a` may be Padded."""
    k = arch.filter_size
    offsets = taps(k)
    lo, hi = border(arch)
    groups = GROUPS[layout]
    if isinstance(a, Padded):
        padded = a.array
        axes = [tuple(padded.ndim + g for g in group) for group in groups]
        shape = tuple(n - (lo + hi) if any(i in g for g in axes) else n for i, n in enumerate(padded.shape))
        return _taps(padded, axes, offsets, lo, shape) * (1.0 / (k * k))
    if k == 1:
        return a
    xp = xp_of(a)
    mode = "wrap" if arch.padding == "circular" else "constant"
    for passes in ((groups,) if k <= 3 else tuple((g,) for g in groups)):
        axes = [tuple(a.ndim + g for g in group) for group in passes]
        widths = [(0, 0)] * a.ndim
        for ax in sum(axes, ()):
            widths[ax] = (lo, hi)
        a = _taps(xp.pad(a, widths, mode=mode), axes, offsets, lo, a.shape)
    return a * (1.0 / (k * k))


def _taps(padded, axes, offsets, lo, shape):
    """The sum over taps of `padded` shifted together along each group of `axes`, cut to `shape`."""
    total = None
    for shift in itertools.product(offsets, repeat=len(axes)):
        index = [slice(None)] * padded.ndim
        for group, t in zip(axes, shift):
            for ax in group:
                index[ax] = slice(lo + t, lo + t + shape[ax])
        part = padded[tuple(index)]
        total = part if total is None else total + part
    return total


def readout(a, layout, arch=None):
    """R[a]: the mean over the position axes of `layout` (flatten: positions; gap: pairs); for a
    Padded state (arch given) the sum over its array (zero border) over the interior's count."""
    axes = tuple(range(-SPATIAL[layout], 0))
    if isinstance(a, Padded):
        lo, hi = border(arch)
        count = math.prod(a.array.shape[ax] - (lo + hi) for ax in axes)
        return xp_of(a.array).sum(a.array, axis=axes) * (1.0 / count)
    return xp_of(a).mean(a, axis=axes)


def gram(x1, x2, layout, precision=None):
    """The input Gram x_i(p) . x_j(p') over channels, (n1, n2) + positions of `layout`."""
    xp = xp_of(x1)
    spec = "ihwc,jhwc->ijhw" if layout == "flatten" else "ihwc,jklc->ijhwkl"
    return xp.einsum(spec, x1, x2) if xp is np else xp.einsum(spec, x1, x2, precision=precision)


def self_gram(x):
    """Each image's same-position Gram |x_i(p)|^2, (n, H, W)."""
    xp = xp_of(x)
    return xp.sum(x * x, axis=-1)


def initial(arch, g, layout, trained):
    """The state before the first layer from the Gram g: (Sigma_1, 0) (ConvNet); (K_0, Theta_0)
    (ConvResNet: Theta_0 = K_0 when the embedding is trained)."""
    first = arch.in_var * window(g, arch, layout) + arch.b_var
    resnet = not isinstance(arch, ConvNet)
    return first, (first if resnet and trained == "all" else 0.0 * first)


def convnet_terms(arch, state, v, vdot):
    """(A, B) of a ConvNet layer from its state and the duals at Sigma (module doc)."""
    sigma, t = state
    return arch.w_var * v, arch.w_var * vdot * (t + sigma)


def convnet_next(arch, ab, layout):
    a, b = ab
    return window(a, arch, layout) + arch.b_var, window(b, arch, layout)


def convnet_read(arch, ab, layout, trained):
    a, b = ab
    nngp = readout(a, layout, arch) + arch.b_var
    ntk = readout(b, layout, arch)
    return nngp, (ntk + nngp if trained == "all" else ntk)


def resnet_sigma(arch, state, layout):
    """(Sigma, S[Theta]) of a block: the branch's pre-activation covariance w_var S[K] + b_var."""
    k, theta = state
    return arch.w_var * window(k, arch, layout) + arch.b_var, window(theta, arch, layout)


def resnet_theta_term(arch, sigma, s_theta, v, vdot):
    """The NTK's branch term under the window, V + Vdot (Sigma + w_var S[Theta]) (elementwise)."""
    return v + vdot * (sigma + arch.w_var * s_theta)


def resnet_update(arch, state, terms, a2, layout):
    """The stream's (K, Theta) after a block of weight a2 = a_l^2 from the branch's terms
    (V, resnet_theta_term)."""
    k, theta = state
    v, u = terms
    return k + a2 * window(v, arch, layout), theta + a2 * window(u, arch, layout)


def resnet_block(arch, state, sigma, s_theta, v, vdot, a2, layout):
    """The stream's (K, Theta) after a block of weight a2 = a_l^2 (module doc)."""
    return resnet_update(arch, state, (v, resnet_theta_term(arch, sigma, s_theta, v, vdot)), a2, layout)


def resnet_read(arch, state, layout, trained):
    k, theta = state
    nngp = arch.out_var * readout(k, layout) + arch.b_var
    ntk = arch.out_var * readout(theta, layout)
    return nngp, (ntk + nngp if trained == "all" else ntk)


def diagonal(arch, sq, trained):
    """Each image's same-position pass, host float64, from its same-position Gram sq (n, H, W):
    (seen, top): the variances the activation sees in every layer, (L, n, H, W), and the largest
    |entry| any depth's output NNGP or NTK can reach (Cauchy-Schwarz: the pre-readout kernels
    are positive semi-definite over (image, position), so every position pair is bounded by the
    same-position values)."""
    act = arch.activation
    state = initial(arch, np.asarray(sq, np.float64), "flatten", trained)
    seen_all, top = [], 0.0

    def bound(nngp, ntk):
        # a readout (a mean over positions or pairs) is at most the largest same-position value
        nb, tb = float(np.abs(nngp).max()), float(np.abs(ntk).max())
        return max(nb, tb + (nb if trained == "all" else 0.0))

    if isinstance(arch, ConvNet):
        for layer in range(arch.depth):
            sigma = state[0]
            v, vdot = act.diagonal(sigma)
            seen_all.append(sigma)
            ab = convnet_terms(arch, state, v, vdot)
            top = max(top, bound(np.abs(ab[0]) + arch.b_var, ab[1]))
            state = convnet_next(arch, ab, "flatten")
        return np.stack(seen_all), top
    a2 = np.asarray(arch.branch_scales, np.float64) ** 2
    for layer in range(arch.depth):
        sigma, s_theta = resnet_sigma(arch, state, "flatten")
        v, vdot = act.diagonal(sigma)
        seen_all.append(sigma)
        state = resnet_block(arch, state, sigma, s_theta, v, vdot, a2[layer], "flatten")
        top = max(top, bound(arch.out_var * np.abs(state[0]) + arch.b_var, arch.out_var * state[1]))
    return np.stack(seen_all), top


def on_diagonal(sigma, q1, q2):
    """engine's snap of entries within 8 ulp of +-sqrt(q1 q2) onto it (identical images, or
    identical patches, stay exactly on their diagonal through the depth)."""
    return engine._on_diagonal(sigma, q1, q2)
