"""The depth recursion engine: one definition of each layer map, and the drivers that run it.

State of a pair of inputs after l layers, normalized (docs/conventions.md): the correlation
rho of the pair's activations (the NNGP divided by the diagonal s_l) and q, the NTK divided
by s_l (FFNet: s_l = 1). The Gram-level kernels are K = |x| |x'| s_l rho and
Theta = |x| |x'| s_l q (+ K when the readout is trained).

The FFNet carries u = 1 - rho instead of rho: a deep FFNet drives every correlation towards
1, where rho itself keeps only eps / (1 - rho) relative accuracy of 1 - rho per layer (a
1000-layer FFNet at theta_0 = 1e-5 lost 3e-5 of its largest value in float64), while u keeps
its own relative accuracy. The ResNet carries rho (its correlations stay near rho_0, and its
kernels vary slowly near rho = +-1). Each map takes the state and the angle theta with its
sine, computed by `angle` with the caller's backend (reskernel.core.arccos in JAX, NumPy on
the host), so one definition serves JAX and NumPy arrays, float32 and float64, and scalars or
arrays for the per-layer weight h.

  FFNet layer:     rho <- k1(rho),  q <- (q + rho) k0(rho)          (in u = 1 - rho)
  ResNet block:    (rho, q) <- (rho, q) + h * branch(rho, q),  h = a^2 / (1 + a^2)
  branch:          (k1(rho) - rho,  (q + rho) k0(rho) + k1(rho) - q)
The general maps (any activation phi with duals V, Vdot of reskernel.core.activations, weight
and bias variances; `general_*`) act on the unnormalized pair state, each input's variance
carried beside it (the kernels then depend on the norms, not only on the angle):

  FFNet layer:     (Sigma, T) <- (w_var V(Sigma) + b_var,  w_var Vdot(Sigma) (T + Sigma))
  ResNet block:    Sigma = w_var K + b_var,
                   (K, Theta) <- (K + a^2 V(Sigma),  Theta + a^2 (V + Vdot (Sigma + w_var Theta)))
with Sigma the pre-activation covariance (FFNet), T the NTK of the layers so far, K the
stream's covariance; the ReLU maps above are their special case at w_var = 2, b_var = 0,
normalized by the diagonal (tests/test_general.py checks the two against each other).
The ReLU branch is also the right-hand side of the gamma = 1/2 depth limit (an ODE in
tau = l / L, reskernel.limits). With pi k0 = pi - theta and pi (k1 - rho) = sin theta -
theta rho, a layer costs one angle and sine plus ~10 multiplies and adds, no division;
pi (k1 - rho) vanishes exactly at rho = 1, so identical inputs keep rho = 1 exactly.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["general_seen", "general_layer", "general_initial", "general_read", "general_diagonal", "relu_duals", "ffnet_layer", "resnet_branch", "resnet_layer", "step", "initial", "read", "schedule",
           "numpy_angle", "run_numpy", "run_state", "advance", "angle", "advance_layer"]

PI = math.pi
INV_PI = 1.0 / math.pi


def relu_duals(rho, theta, sine):
    """The ReLU's dual maps (k0, k1) at correlation rho with angle theta and its sine:
    k0 = (pi - theta) / pi, k1 = (sin theta + (pi - theta) rho) / pi (reskernel.core.arccos)."""
    sup = PI - theta
    return sup * INV_PI, (sine + sup * rho) * INV_PI


def ffnet_layer(u, q, theta, sine):
    """One FFNet layer (He scaling) on (u = 1 - rho, q): (1 - k1(rho), (q + rho) k0(rho))."""
    rho = 1.0 - u
    return u - (sine - theta * rho) * INV_PI, (q + rho) * ((PI - theta) * INV_PI)


def resnet_branch(rho, q, theta, sine):
    """d(rho, q)/dh of a residual block: (k1 - rho, (q + rho) k0 + k1 - q)."""
    sup = PI - theta
    return (sine - theta * rho) * INV_PI, (sup * (q + 2.0 * rho) + sine) * INV_PI - q


def resnet_layer(rho, q, theta, sine, h):
    """One residual block of branch scale a, h = a^2 / (1 + a^2) (a scalar or an array):
    rho <- (rho + a^2 k1) / (1 + a^2), q <- (q (1 + a^2 k0) + a^2 (rho k0 + k1)) / (1 + a^2)."""
    d_rho, d_q = resnet_branch(rho, q, theta, sine)
    return rho + h * d_rho, q + h * d_q


def step(kind, first, q, theta, sine, h=None):
    """The layer map of `kind` ("ffnet": first = u = 1 - rho; "resnet": first = rho, h the
    block's weight)."""
    if kind == "ffnet":
        return ffnet_layer(first, q, theta, sine)
    return resnet_layer(first, q, theta, sine, h)


def angle(kind, first, backend="jax"):
    """(theta, sin theta) of the state's first component (u for the FFNet, rho for the ResNet)."""
    if backend == "numpy":
        if kind == "ffnet":
            return 2.0 * np.arcsin(np.sqrt(np.clip(first, 0.0, 2.0) * 0.5)), np.sqrt(np.maximum(first * (2.0 - first), 0.0))
        return numpy_angle(first)
    from .arccos import angle_sine, angle_sine_complement

    return (angle_sine_complement if kind == "ffnet" else angle_sine)(first)


def advance_layer(kind, first, q, h=None, backend="jax"):
    """One layer of `kind` with the angle computed by `backend` ("jax" or "numpy")."""
    return step(kind, first, q, *angle(kind, first, backend), h)


def initial(kind, rho0, trained):
    """The state before the first layer: (u0 = 1 - rho0, 0) for the FFNet, (rho0, q0) for the
    ResNet. trained="all" for a ResNet: the embedding's NTK term rho0 prod_l (1 + a_l^2 k0) / s_L
    obeys q's own homogeneous update, so it rides in q from q_0 = rho0."""
    if kind == "ffnet":
        return 1.0 - rho0, 0.0 * rho0
    return rho0, (rho0 if trained == "all" else 0.0 * rho0)


def read(kind, first, q, s, trained):
    """(nngp, ntk) normalized by |x| |x'| from the state after a layer with diagonal growth s."""
    nngp = 1.0 - first if kind == "ffnet" else s * first
    ntk = q if kind == "ffnet" else s * q
    return nngp, (ntk + nngp if trained == "all" else ntk)


def schedule(arch) -> np.ndarray:
    """(depth, 2) float64 rows (h_l, s_l): the block weight h_l = a_l^2 / (1 + a_l^2) and the
    diagonal growth s_l = prod_{i <= l} (1 + a_i^2) after layer l (FFNet: h = 0, s = 1)."""
    from .arch import FeedForward

    if isinstance(arch, FeedForward):
        return np.stack([np.zeros(arch.depth), np.ones(arch.depth)], axis=1)
    a2 = np.asarray(arch.branch_scales, np.float64) ** 2
    return np.stack([a2 / (1.0 + a2), np.cumprod(1.0 + a2)], axis=1)


def numpy_angle(rho):
    """(theta, sin theta) of correlations in NumPy (the host backend of the maps)."""
    return np.arccos(rho), np.sqrt(np.maximum((1.0 - rho) * (1.0 + rho), 0.0))


def advance(kind, state, h, count):
    """JAX: the state (rho, q) after `count` more layers (may be traced) of constant weight h
    (a scalar, or an array of rho's shape: XLA:CPU runs a loop body reading a loop-varying
    scalar 3-5x slower than one reading arrays), one fori_loop."""
    import jax

    def body(_, st):
        return advance_layer(kind, *st, h)

    return jax.lax.fori_loop(0, count, body, state)


def run_state(kind, rho0, h, count, trained="hidden"):
    """JAX: the state after `count` layers of constant weight h from rho0; for the depth
    families (each depth its own branch scale) and the infinite-depth limits."""
    first, q = initial(kind, rho0, trained)
    return advance(kind, (first, q + 0.0 * first), h, count)


def run_numpy(kind, rho0, sched, trained, reads=None):
    """The recursion in NumPy float64 on correlations rho0 (any shape S), no compilation.

    sched: schedule(arch) rows (L, 2). reads: None for (nngp, ntk) after the last layer,
    each of shape S; or a sorted sequence of depths in 1..L for arrays (len(reads),) + S.
    """
    first, q = initial(kind, np.array(rho0, np.float64), trained)
    q = np.asarray(q, np.float64) + np.zeros_like(first)
    lo, hi = (0.0, 2.0) if kind == "ffnet" else (-1.0, 1.0)
    wanted = None if reads is None else set(int(r) for r in reads)
    seen = []
    for depth, (h, s) in enumerate(sched, start=1):
        first, q = advance_layer(kind, first, q, h, backend="numpy")
        first = np.clip(first, lo, hi)
        if wanted is not None and depth in wanted:
            seen.append(read(kind, first, q, s, trained))
    if reads is None:
        return read(kind, first, q, sched[-1, 1], trained)
    return tuple(np.stack(v) for v in zip(*seen))


def general_seen(kind, arch, first):
    """The variance (or covariance) the activation sees, from the state's first component:
    Sigma itself (FFNet), w_var K + b_var (ResNet)."""
    return first if kind == "ffnet" else arch.w_var * first + arch.b_var


def _on_diagonal(sigma, q1, q2):
    """sigma set to +-sqrt(q1 q2) where it is within 8 ulp of it: an entry between identical (or
    antipodal) inputs, computed apart from their diagonal q1 = q2, would otherwise leave it by
    rounding, and the distance grow with depth (geometrically in a chaotic net; through the ReLU
    family's square-root singularity at rho = 1, 1e-16 in rho is 1e-8 in the NTK)."""
    from .activations import _xp

    xp = _xp(sigma)
    bound = xp.sqrt(q1) * xp.sqrt(q2)   # as the ReLU family's duals form it
    near = xp.abs(sigma) >= (1.0 - 8.0 * xp.finfo(xp.result_type(sigma)).eps) * bound
    return xp.where(near, xp.sign(sigma) * bound, sigma)


def general_layer(kind, arch, state, t1, t2, a2=None):
    """One layer of a general `arch` on the pair state (Sigma, T) (FFNet) or (K, Theta)
    (ResNet); t1, t2: the activation's row terms (activations.Activation.row_terms) of the
    two inputs at the variances the activation sees; a2: the block's a_l^2."""
    first, second = state
    act, w_var, b_var = arch.activation, arch.w_var, arch.b_var
    sigma = _on_diagonal(general_seen(kind, arch, first), t1[0], t2[0])
    v, vdot = act.pair(t1, t2, sigma)
    if kind == "ffnet":
        return w_var * v + b_var, w_var * vdot * (second + first)
    return first + a2 * v, second + a2 * (v + vdot * (sigma + w_var * second))


def general_initial(kind, arch, gram, trained):
    """The pair state before the first layer from the inputs' Gram entries x . x':
    (Sigma_1, 0) (FFNet); (K_0, Theta_0) (ResNet: Theta_0 = K_0 when the embedding is trained)."""
    k0 = arch.in_var * gram + arch.b_var
    return k0, (k0 if kind == "resnet" and trained == "all" else 0.0 * k0)


def general_read(kind, arch, state, trained):
    """(nngp, ntk) of the net's output from the pair state after a layer."""
    first, second = state
    if kind == "ffnet":
        nngp, ntk = first, second
    else:
        nngp, ntk = arch.out_var * first + arch.b_var, arch.out_var * second
    return nngp, (ntk + nngp if trained == "all" else ntk)


def general_diagonal(kind, arch, sq, trained="hidden"):
    """Each input's diagonal through the depth, host float64, from squared norms sq (n,):
    (seen, nngp, ntk), each (L, n): the variance the activation sees in layer l, and the
    output's NNGP and NTK diagonals after layer l (the depth-l net)."""
    from .arch import ResNet

    act = arch.activation
    a2 = np.asarray(arch.branch_scales, np.float64) ** 2 if isinstance(arch, ResNet) else None
    first, second = general_initial(kind, arch, np.asarray(sq, np.float64), trained)
    seen, nngp, ntk = [], [], []
    for layer in range(arch.depth):
        var = general_seen(kind, arch, first)
        v, vdot = act.diagonal(var)
        seen.append(var)
        if kind == "ffnet":
            first, second = arch.w_var * v + arch.b_var, arch.w_var * vdot * (second + first)
        else:
            first, second = first + a2[layer] * v, second + a2[layer] * (v + vdot * (var + arch.w_var * second))
        n, t = general_read(kind, arch, (first, second), trained)
        nngp.append(n)
        ntk.append(t)
    return np.stack(seen), np.stack(nngp), np.stack(ntk)
