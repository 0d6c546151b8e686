"""Signal propagation: fixed points, slopes and depth scales of the infinite-width layer maps
(Poole et al. 2016; Schoenholz et al. 2017), host float64 (NumPy and SciPy, no JAX tracing).

FFNet. q is an input's pre-activation variance, c the correlation of two inputs of the same
variance; E is over z ~ N(0, 1) and V, Vdot are the activation's duals (reskernel.activations).
The maps are the engine's general FFNet layer (reskernel.core.engine) on the diagonal and on
a pair of equal variance:

    length map        Q(q) = w_var E[phi(sqrt(q) z)^2] + b_var
    correlation map   C(c) = (w_var V(q*, q*, c q*) + b_var) / q*          (C(1) = 1)
    chi_q = Q'(q*)    = w_var E[phi'^2 + phi phi''](sqrt(q*) z)   (the length map's slope)
    chi_1 = C'(1)     = w_var E[phi'(sqrt(q*) z)^2]               (Price: dV/dk = Vdot)
    chi_c = C'(c*)    = w_var Vdot(q*, q*, c* q*)
    xi_q = -1 / log(chi_q),   xi_c = -1 / log(chi_c)             (Schoenholz et al.)

so |q_l - q*| ~ exp(-l / xi_q) and |c_l - c*| ~ exp(-l / xi_c) (at q_l = q*). A depth scale
is inf where its chi >= 1 (no geometric convergence). q* is the fixed point the length map
reaches from the first layer's q_1 = in_var |x|^2 + b_var. C is convex on [0, 1] (Mehler:
V(q, q, c q) = sum_k a_k(q)^2 c^k) with C(0) = ((w_var E phi)^2 + b_var) / q* >= 0, so:
chi_1 < 1: c* = 1 is the only fixed point in [0, 1] ("ordered"); chi_1 > 1: there is exactly
one more, c* in [0, 1), attracting ("chaotic"); |chi_1 - 1| <= tol: "critical" (c* = 1).

Positively homogeneous activations (ReLU, leaky ReLU, abs, identity: phi = ABRelu(a, b)) have
Q(q) = chi_q q + b_var with chi_q = chi_1 = w_var E[phi(z)^2], independent of q: the variance
is "bounded" (chi_q < 1, q* = b_var / (1 - chi_q)), "critical" or "unbounded" (q* = inf).
Where b_var / q_l -> 0 (b_var = 0, or q unbounded) the correlation map tends to the
normalized dual k(c) = V(1, 1, c) / V(1, 1, 1), with k(c) - c = (a - b)^2 (sin t - t cos t) /
(pi (a^2 + b^2)) >= 0 (c = cos t) and k'(1) = 1: c* = 1 reached polynomially (chi_c = 1,
xi_c = inf); for a = b (linear) every c is fixed (c* = nan).

ResNet (docs/signal_propagation.md for the derivations). The block maps on the stream's
variance k and correlation rho, with sigma = w_var k + b_var the branch's pre-activation
variance and a the block's branch scale,

    k   -> k + a^2 E[phi(sqrt(sigma) z)^2]                      (grows: no finite fixed point)
    rho -> (k rho + a^2 V(sigma, sigma, w_var k rho + b_var)) / (k + a^2 E[phi^2])

fix rho = 1 in every block, with slope chi_l = (1 + a^2 w_var E[phi'^2]) / (1 + a^2 E[phi^2] / k)
at the block's own k. The depth-L map's slope at rho = 1 is their product (chain rule): for
nearly equal inputs of the same norm, 1 - rho_L = chi_total (1 - rho_0) to first order. The
phase is that of the whole net: "ordered" (chi_total < 1), "chaotic" (> 1) or "critical".
"""

import dataclasses
import math
import numbers
from typing import NamedTuple

import numpy as np
from scipy import optimize

from . import engine
from .activations import Activation, get as _get_activation
from .arch import FeedForward, ResNet, check_arch

__all__ = ["FeedForwardSignal", "ResNetSignal", "signal_propagation", "critical_line", "PHASES"]

PHASES = ("ordered", "critical", "chaotic", "bounded", "unbounded")

# The bracket searches: q doubles up to Q_MAX times the start (beyond it the variance is
# taken to grow without bound) and shrinks tenfold down to Q_MIN times the start (below it
# the variance is taken to vanish: q* = 0).
Q_MAX, Q_MIN = 1e12, 1e-40
# Relative accuracy of the duals' moments (Numerical: tol = 1e-12 by default).
NOISE = 1e-12
# Closest approach of the chaotic correlation bracket to c = 1 (1 - c >= 2^-U_HALVINGS).
U_HALVINGS = 40


class FeedForwardSignal(NamedTuple):
    """Fixed points, slopes, depth scales and phase of an FFNet's length and correlation maps
    (module doc). Depth scales are inf where their chi >= 1."""

    q_star: float    # attracting fixed point of the length map (inf: unbounded)
    c_star: float    # attracting fixed point of the correlation map at q* (nan: none)
    chi_q: float     # slope of the length map at q*
    chi_1: float     # slope of the correlation map at c = 1: w_var E[phi'(sqrt(q*) z)^2]
    chi_c: float     # slope of the correlation map at c*
    xi_q: float      # -1 / log(chi_q)
    xi_c: float      # -1 / log(chi_c)
    phase: str       # "ordered" | "critical" | "chaotic"; ReLU family: "bounded" | "critical" | "unbounded"


class ResNetSignal(NamedTuple):
    """Per-block slopes of a ResNet's stream correlation map at rho = 1 (module doc)."""

    lengths: np.ndarray  # (depth + 1,) stream variances k_0..k_L of an input of squared norm sq
    chi: np.ndarray      # (depth,) block l's slope at rho = 1, at its k_{l-1}
    chi_total: float     # prod(chi): the depth-L map's slope at rho = 1
    phase: str           # "ordered" | "critical" | "chaotic", from chi_total


@dataclasses.dataclass(frozen=True)
class _HostDuals(Activation):
    """An activation whose `pair` is its float64 host duals, so that engine.general_layer runs
    on NumPy scalars (reskernel.core.quadrature.Numerical's own `pair` is JAX)."""

    act: Activation

    def pair(self, t1, t2, k):
        return self.act.duals(t1[0], t2[0], k)


def _check_positive(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _phase(chi, tol, names=("ordered", "critical", "chaotic")):
    return names[0] if chi < 1.0 - tol else names[2] if chi > 1.0 + tol else names[1]


def _depth_scale(chi) -> float:
    """-1 / log(chi) for 0 < chi < 1; 0 at chi = 0; inf where chi >= 1."""
    if chi <= 0.0:
        return 0.0
    return -1.0 / math.log(chi) if chi < 1.0 else math.inf


def _moments(act, q):
    """(E[phi(sqrt(q) z)^2], E[phi'(sqrt(q) z)^2]) as floats."""
    v, vdot = act.diagonal(np.asarray(q, np.float64))
    return float(v), float(vdot)


def _length_map(arch, q) -> float:
    """Q(q): engine.general_diagonal's FFNet layer on one input's variance q."""
    return arch.w_var * _moments(arch.activation, q)[0] + arch.b_var


def _length_slope(arch, q) -> float:
    """Q'(q) by the five-point central difference of step q / 1000 (q > 0); relative error
    ~1e-12 (truncation) + 1e-9 (the duals' 1e-12 accuracy over the step)."""
    h = 1e-3 * q
    f = [_length_map(arch, q + j * h) for j in (-2, -1, 1, 2)]
    return (f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * h)


def _correlation_map(arch, q, c):
    """C(c) at variance q: engine.general_layer's FFNet map on a pair of variance q, over q."""
    host = dataclasses.replace(arch, activation=_HostDuals(arch.activation))
    sigma = np.asarray(c, np.float64) * q
    return float(engine.general_layer("ffnet", host, (sigma, 0.0 * sigma), (q,), (q,))[0]) / q


def _correlation_slope(arch, q, c) -> float:
    """C'(c) = w_var Vdot(q, q, c q) (Price's theorem)."""
    return arch.w_var * float(arch.activation.duals(q, q, c * q)[1])


def _length_fixed_point(arch, q1) -> float:
    """The fixed point of Q that q_l reaches from q_1 (0.0 if q_l -> 0), by bracketing and
    brentq: g(q) = Q(q) - q >= 0 at q = 0, so the iterates of a monotone map move towards the
    nearest root on the side where g points."""
    def g(q):
        return _length_map(arch, q) - q

    g1 = g(q1)
    if g1 == 0.0:
        return q1
    lo, hi = q1, q1
    if g1 > 0.0:
        def unbounded(why):
            return ValueError(
                f"the length map q -> w_var E[phi(sqrt(q) z)^2] + b_var of {arch.activation.label} with "
                f"w_var = {arch.w_var:g}, b_var = {arch.b_var:g} has no finite fixed point: from q_1 = "
                f"{q1:.6g} it grows past {lo:.3g}{why} (an unbounded activation with w_var too large?)")

        while True:
            lo, hi = hi, 2.0 * hi
            if hi > Q_MAX * q1:
                raise unbounded("")
            try:
                if g(hi) <= 0.0:
                    break
            except ValueError as e:  # the activation's Gaussian integral fails at large q
                raise unbounded(f", where the activation's integral fails ({e})") from e
    else:
        # With Q(0) = 0 and Q'(0) <= 1 the variance may vanish; g(q) / q then shrinks with q
        # (tanh at w_var = 1: -2 q) into the duals' rounding, where its sign means nothing.
        vanishing = _length_map(arch, 0.0) == 0.0 and arch.w_var * _moments(arch.activation, 0.0)[1] <= 1.0
        while True:
            lo, hi = lo / 10.0, lo
            gl = g(lo)
            if lo < Q_MIN * q1 or vanishing and abs(gl) <= NOISE * lo:
                return 0.0
            if gl >= 0.0:
                break
    return optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)


def _chaotic_fixed_point(arch, q) -> float:
    """The root c* in [0, 1) of h(c) = C(c) - c when C'(1) > 1 (unique: h is convex on [0, 1]
    with h(0) >= 0, h(1) = 0, h'(1) > 0)."""
    def h(c):
        return _correlation_map(arch, q, c) - c

    u = 0.5
    for _ in range(U_HALVINGS):
        if h(1.0 - u) < 0.0:
            return optimize.brentq(h, 0.0, 1.0 - u, xtol=1e-15, rtol=4 * np.finfo(float).eps)
        u *= 0.5
    raise ValueError(f"the correlation fixed point c* of {arch.activation.label} (w_var = {arch.w_var:g}, "
                     f"b_var = {arch.b_var:g}) is within {2 * u:.1g} of 1, closer than the duals resolve: the net "
                     "is too close to the critical line (raise tol to call it critical)")


def _correlation(arch, q, tol):
    """(c*, chi_1, chi_c) of the correlation map at a finite q* > 0."""
    chi_1 = arch.w_var * _moments(arch.activation, q)[1]
    if chi_1 <= 1.0 + tol:
        return 1.0, chi_1, chi_1
    c = _chaotic_fixed_point(arch, q)
    return c, chi_1, _correlation_slope(arch, q, c)


def _homogeneous(arch, q1, tol) -> FeedForwardSignal:
    act, w_var, b_var = arch.activation, arch.w_var, arch.b_var
    m2, d2 = _moments(act, 1.0)
    chi_q, chi_1 = w_var * m2, w_var * d2
    phase = _phase(chi_q, tol, ("bounded", "critical", "unbounded"))
    if phase == "bounded":
        q = b_var / (1.0 - chi_q)
    elif phase == "critical" and b_var == 0.0:
        q = q1  # Q(q) = q: every variance is fixed
    else:
        q = math.inf
    if 0.0 < q < math.inf and b_var > 0.0:
        c, chi_1, chi_c = _correlation(arch, q, tol)
    else:
        # the normalized dual k(c): k(0) = (E phi)^2 / E[phi^2] = 0 only for a = b (linear)
        linear = float(act.duals(1.0, 1.0, 0.0)[0]) == 0.0
        c, chi_c = (math.nan if linear else 1.0), 1.0
    return FeedForwardSignal(q, c, chi_q, chi_1, chi_c, _depth_scale(chi_q), _depth_scale(chi_c), phase)


def _feedforward(arch, sq, tol) -> FeedForwardSignal:
    q1 = float(engine.general_initial("ffnet", arch, np.float64(sq), "hidden")[0])
    if arch.activation.homogeneous:
        return _homogeneous(arch, q1, tol)
    q = _length_fixed_point(arch, q1)
    if q == 0.0:
        # phi(sqrt(q) z) = phi'(0) sqrt(q) z + O(q): Q'(0) = chi_1, and C -> identity as q -> 0
        chi_1 = arch.w_var * _moments(arch.activation, 0.0)[1]
        return FeedForwardSignal(0.0, math.nan, chi_1, chi_1, 1.0, _depth_scale(chi_1), math.inf,
                                 _phase(chi_1, tol))
    chi_q = _length_slope(arch, q)
    c, chi_1, chi_c = _correlation(arch, q, tol)
    return FeedForwardSignal(q, c, chi_q, chi_1, chi_c, _depth_scale(chi_q), _depth_scale(chi_c),
                             _phase(chi_1, tol))


def _resnet(arch, sq, tol) -> ResNetSignal:
    sigma = engine.general_diagonal("resnet", arch, np.array([sq], np.float64))[0][:, 0]
    v, vdot = arch.activation.diagonal(sigma)
    a2 = np.asarray(arch.branch_scales, np.float64) ** 2
    k = (sigma - arch.b_var) / arch.w_var  # sigma_l = w_var k_{l-1} + b_var
    chi = (1.0 + a2 * arch.w_var * vdot) / (1.0 + a2 * v / k)
    lengths = np.append(k, k[-1] + a2[-1] * v[-1])
    total = float(np.prod(chi))
    return ResNetSignal(lengths, chi, total, _phase(total, tol))


def signal_propagation(arch, *, sq: float = 1.0, tol: float = 1e-9):
    """Signal propagation of `arch` at infinite width (module doc for the definitions).

    Args:
      arch: a FeedForward (its depth is not used: the fixed points describe deep layers) or a
        ResNet (its depth and branch scales are).
      sq: the inputs' squared norm |x|^2: it sets q_1 = in_var sq + b_var, the start of the
        FFNet's length map (its basin, when there are several fixed points) and the ResNet's
        stream variance k_0.
      tol: |chi - 1| <= tol is "critical" (FFNet: chi_1, or chi_q for the ReLU family;
        ResNet: chi_total).

    Returns:
      FeedForwardSignal(q_star, c_star, chi_q, chi_1, chi_c, xi_q, xi_c, phase) for an FFNet;
      ResNetSignal(lengths, chi, chi_total, phase) for a ResNet.

    Raises:
      ValueError: the length map has no finite fixed point (an unbounded activation outside the
        ReLU family with w_var too large), or c* is too close to 1 to resolve.

    Examples:
      >>> s = signal_propagation(FeedForward(10, w_var=3.0, b_var=0.05, activation="erf"))
      >>> s.phase, round(s.q_star, 6), round(s.c_star, 6), round(s.xi_c, 3)
      ('chaotic', 1.75274, 0.191402, 6.498)
      >>> signal_propagation(FeedForward(10, w_var=3.0, b_var=0.1)).phase   # ReLU
      'unbounded'

    References:
      Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli, "Exponential expressivity in deep neural
      networks through transient chaos", NeurIPS 2016. Schoenholz, Gilmer, Ganguli &
      Sohl-Dickstein, "Deep information propagation", ICLR 2017. Yang & Schoenholz, "Mean field
      residual networks: on the edge of chaos", NeurIPS 2017.
    """
    arch = check_arch(arch)
    sq = _check_positive("sq", sq)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0.0 <= tol < 1.0:
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    if isinstance(arch, ResNet):
        return _resnet(arch, sq, float(tol))
    return _feedforward(arch, sq, float(tol))


def _critical_w(act, b_var) -> float:
    """The w_var with chi_1 = 1 at q*: at q = q* both w_var E[phi'^2](q) = 1 and Q(q) = q hold,
    so q solves beta(q) = q - E[phi^2](q) / E[phi'^2](q) = b_var (brentq; beta(q) <= q, so the
    root is >= b_var) and w_var = 1 / E[phi'^2](q)."""
    def beta(q):
        v, vdot = _moments(act, q)
        if vdot <= 0.0:
            raise ValueError(f"E[phi'(sqrt(q) z)^2] = 0 at q = {q:.6g} for {act.label}: chi_1 = 0 for every w_var")
        return q - v / vdot - b_var

    lo = b_var
    if beta(lo) == 0.0:
        q = lo
    else:
        hi = max(2.0 * lo, 1.0)
        while beta(hi) < 0.0:
            lo, hi = hi, 2.0 * hi
            if hi > Q_MAX:
                raise ValueError(f"{act.label} has no critical point at b_var = {b_var:g}: chi_1 = 1 needs "
                                 f"q* > {Q_MAX:g}")
        q = optimize.brentq(beta, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    w_var = 1.0 / _moments(act, q)[1]
    spec = FeedForward(1, w_var=w_var, b_var=b_var, activation=act)
    # the root must be an attracting fixed point of the length map (GELU's is not: like ReLU,
    # its attracting q* runs off to infinity as chi_1 -> 1); at q = 0, Q'(0) = chi_1 = 1 and
    # the sign of Q(q) - q just above 0 decides
    unstable = _length_slope(spec, q) > 1.0 + 1e-6 if q > 0.0 else _length_map(spec, 1e-4) > 1e-4
    if unstable:
        raise ValueError(f"{act.label} has no critical point with a finite attracting q* at b_var = {b_var:g}: "
                         f"chi_1 = 1 at w_var = {w_var:.6g}, q = {q:.6g}, a fixed point of the length map "
                         "that q_l leaves")
    return w_var


def critical_line(activation, b_vars) -> np.ndarray:
    """The order-to-chaos line: for each b_var, the w_var at which chi_1 = 1 at q*.

    Args:
      activation: a name in reskernel.activations.NAMES, an Activation or an elementwise callable.
      b_vars: bias variances (a number or an array, each finite and >= 0).

    Returns:
      float64 array of b_vars' shape. For the ReLU family chi_1 = w_var E[phi(z)^2] does not
      depend on q: 1 / E[phi'(z)^2] (2 for ReLU) at every b_var. Otherwise the root q of
      q - E[phi^2](q) / E[phi'^2](q) = b_var (brentq) gives w_var = 1 / E[phi'^2](q); e.g. tanh
      and erf at b_var = 0: 1 / phi'(0)^2 (1 and pi / 4).

    Examples:
      >>> critical_line("relu", [0.0, 0.5]).tolist()
      [2.0, 2.0]
      >>> round(float(critical_line("tanh", 0.0)), 12)
      1.0
    """
    act = _get_activation(activation)
    b = np.asarray(b_vars, np.float64)
    if not (np.isfinite(b).all() and (b >= 0).all()):
        raise ValueError(f"b_vars must be finite numbers >= 0, got {b_vars!r}")
    if act.homogeneous:
        return np.full(b.shape, 1.0 / _moments(act, 1.0)[1])
    return np.array([_critical_w(act, float(x)) for x in b.ravel()]).reshape(b.shape)
