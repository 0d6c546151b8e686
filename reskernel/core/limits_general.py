"""Depth limits of general architectures (any activation, weight, bias, input and readout
variances; hidden layers trained), the theory behind reskernel.limits for archs that are not
the default ReLU nets. Host float64 (NumPy, SciPy). Derivations and measured rates: docs/limits.md.

Notation: s = Sigma_1(x, x) = in_var |x|^2 + b_var (FFNet) or K_0 (ResNet), s12 the pair's;
signal.signal_propagation gives q*, c*, chi_q, chi_1, chi_c. Each FFNet layer is the engine's
(Sigma, T) <- (w_var V(Sigma) + b_var, chi (T + Sigma)), chi = w_var Vdot(Sigma): near a
fixed point (S, chi) the NTK tends to chi S / (1 - chi) where chi < 1.

FFNet (limits of K_L / nngp_factor and Theta_L / ntk_factor):
  ordered  (q* > 0, chi_1 < 1): K -> q*, Theta -> chi_1 q* / (1 - chi_1) for every pair.
  critical (q* > 0, chi_1 = 1): K -> q*;  Theta / L -> q* (diagonal), q* / 3 (off it).
                                1 - c_L = 1 / (A L) - (A^2 - B) / A^3 log L / L^2 + O(1 / L^2),
                                A = C''(1) / 2 = w_var q* E[phi''^2] / 2, B = C'''(1) / 6 = w_var q*^2 E[phi'''^2] / 6;
                                Theta_L / (q* L) - 1/3 = (1 - B / A^2) / 3 log L / L + O(1 / L).
  chaotic  (q* > 0, chi_1 > 1): K -> q* (diagonal), c* q* (off); Theta -> chi_c c* q* / (1 - chi_c) off
                                the diagonal, oo on it (like q* chi_1^(L+1) / (chi_1 - 1)).
                                Odd phi with b_var = 0: K(x, -x) = -K(x, x) and Theta(x, -x) = -Theta(x, x).
  vanishing (q* = 0, chi_1 < 1): K, Theta -> 0 (rates chi_q^L, L chi_q^L). At chi_1 = 1 no limit is derived.
  ReLU family phi = ABRelu(a, b), chi = w_var (a^2 + b^2) / 2, lam = (a - b)^2 / (pi (a^2 + b^2)):
    b_var > 0, chi < 1: as ordered with q* = b_var / (1 - chi), chi_1 = chi; the NTK converges like
                        chi^(L/2) (chi_l - chi ~ sqrt(1 - c_l), the dual's kink).
    b_var > 0, chi = 1: factors (L, L^2): K / L -> b_var; Theta / L^2 -> b_var / 2 (diagonal),
                        2 b_var / 7 off it (1 - c_L ~ 9 / (8 lam^2 L^2), chi_l ~ 1 - 3 / (2 L)); linear: b_var / 2.
    b_var = 0, or chi > 1: factors (chi^L, L chi^L), D = s + b_var / (chi - 1) (D = s when b_var = 0):
                        K -> sqrt(D D'), Theta -> sqrt(D D') on the diagonal (parallel inputs included
                        when b_var = 0), sqrt(D D') / 4 off it; 1 - c_L ~ 9 / (2 lam^2 L^2).
                        Linear (lam = 0): K, Theta -> s12 + b_var / (chi - 1) for every pair.
ResNet (a^2 = L^-2 gamma, T = L a^2; Sigma_0 = w_var K_0 + b_var):
  gamma > 1/2: K -> out_var K_0 + b_var, Theta / T -> out_var (V + Vdot Sigma_0)(Sigma_0), the depth-1
               branch's NTK; errors T out_var V(Sigma_0) and (T / 2) out_var (J F)_Theta at tau = 0.
  gamma = 1/2: the blocks are Euler steps h = 1/L of the ODE y' = F(y), y = (K, Theta) with the
               diagonals: F = (V(Sigma), V + Vdot (Sigma + w_var Theta)); the depth-L kernels are
               y(1) + e(1) / L + O(1/L^2), e' = J e - J F / 2, e(0) = 0 (the Euler error).
  gamma < 1/2: T -> oo: the kernels follow the ODE to tau = T; no limit is derived.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np

from . import engine
from . import signal as _signal
from .activations import Activation
from .arch import FeedForward

__all__ = ["Rate", "Rates", "ffnet_case", "pair_limits", "scaling", "rates", "predicted", "ode", "covariances", "kind_of"]

# |chi - 1| <= TOL is critical (signal_propagation's default).
TOL = 1e-9
NAN = float("nan")
# Relative step of the central differences of the ODE's right-hand side along a direction:
# truncation ~STEP^2, rounding ~1e-13 / STEP (numerical duals are accurate to ~1e-13).
STEP = 1e-4


class Rate(NamedTuple):
    """How a distance from a depth limit decays: err(L) ~ C ratio^L L^power (log L)^log_power.

    ratio < 1: geometric (power = 1 for the resonant L r^L); ratio = 1: a power law; ratio = 0:
    zero at every depth (exact); nan: not derived."""

    ratio: float
    power: float
    log_power: float = 0.0


class Rates(NamedTuple):
    """The decay of the NNGP's and the NTK's distance from their limits (max over pairs)."""

    nngp: Rate
    ntk: Rate


UNKNOWN = Rate(NAN, NAN)


def kind_of(arch) -> str:
    return "ffnet" if isinstance(arch, FeedForward) else "resnet"


# ----------------------------------------------------------------------------- FFNet

class FeedForwardCase(NamedTuple):
    """Which FFNet limit applies (module doc): case, the signal quantities, the ReLU family's
    lam (nan otherwise) and whether phi is odd with b_var = 0 (K(x, -x) = -K(x, x))."""

    case: str
    signal: object
    lam: float
    odd: bool


def ffnet_case(arch, sqs=(1.0,)) -> FeedForwardCase:
    """The FFNet's case for inputs of squared norms sqs (they must share one q*); remembered
    (the signal's fixed points cost up to seconds for numerical duals)."""
    return _ffnet_case(arch.with_depth(1), tuple(np.unique(np.asarray(sqs, np.float64)).tolist()))


@functools.lru_cache(maxsize=64)
def _ffnet_case(arch, sqs) -> FeedForwardCase:
    act, b_var = arch.activation, arch.b_var
    if act.homogeneous:
        sig = _signal.signal_propagation(arch, sq=1.0, tol=TOL)
        vdot = np.asarray(act.duals(1.0, 1.0, np.array([-1.0, 1.0]))[1], np.float64)
        lam = float(1.0 - vdot[0] / vdot[1]) / math.pi
        chi = sig.chi_q
        case = ("homogeneous-bounded" if b_var > 0 and chi < 1 - TOL else
                "homogeneous-critical" if b_var > 0 and chi <= 1 + TOL else "homogeneous")
        return FeedForwardCase(case, sig, lam, False)
    sigs = []
    for sq in sqs:
        try:
            sigs.append(_signal.signal_propagation(arch, sq=float(sq), tol=TOL))
        except ValueError as e:
            raise ValueError(f"no depth limit is derived for this FFNet: {e}") from e
    q = np.array([s.q_star for s in sigs])
    if not np.allclose(q, q[0], rtol=1e-9, atol=0.0):
        raise ValueError(f"the inputs' variances reach different fixed points q* ({q.min():.6g} to {q.max():.6g}) "
                         "of the length map: no depth limit is derived for pairs across basins")
    sig = sigs[0]
    if sig.q_star == 0.0:
        if sig.phase != "ordered":
            raise ValueError(f"{act.label} with w_var = {arch.w_var:g}, b_var = {b_var:g}: the variance vanishes "
                             "(q* = 0) at chi_1 = 1; q_L ~ 1 / (kappa L) but the correlations freeze at values set by "
                             "the whole depth: no limit kernel is derived")
        return FeedForwardCase("vanishing", sig, NAN, False)
    v = np.asarray(act.duals(sig.q_star, sig.q_star, np.array([-sig.q_star, sig.q_star]))[0], np.float64)
    odd = b_var == 0.0 and abs(v[0] + v[1]) <= 1e-12 * abs(v[1])
    return FeedForwardCase(sig.phase, sig, NAN, bool(odd))


def _masks(s1, s2, s12, homogeneous, odd):
    """Pairs on the diagonal (correlation 1 and one variance; any variance for homogeneous phi:
    parallel inputs stay parallel) and odd phi's antipodal pairs."""
    tiny = 4 * np.finfo(np.float64).eps
    root = np.sqrt(s1 * s2)
    same = np.abs(s1 - s2) <= tiny * np.maximum(s1, s2)
    on = (s12 >= (1 - tiny) * root) & (same | homogeneous)
    anti = (s12 <= -(1 - tiny) * root) & same & odd
    return on, anti


def _ffnet_pairs(arch, c, s1, s2, s12):
    sig, b = c.signal, arch.b_var
    on, anti = _masks(s1, s2, s12, arch.activation.homogeneous, c.odd)
    one = np.ones(np.broadcast(s1, s2, s12).shape)
    if c.case in ("ordered", "homogeneous-bounded", "vanishing"):
        q, chi = sig.q_star, sig.chi_1
        return q * one, chi * q / (1 - chi) * one
    if c.case == "critical":
        q = sig.q_star
        return q * one, np.where(on, q, q / 3)
    if c.case == "chaotic":
        q, cs, chi = sig.q_star, sig.c_star, sig.chi_c
        off = chi * cs * q / (1 - chi)
        nngp = np.where(on, q, np.where(anti, -q, cs * q))
        return nngp, np.where(on, math.inf, np.where(anti, -math.inf, off))
    if c.case == "homogeneous-critical":
        return b * one, np.where(on | (c.lam == 0), b / 2, 2 * b / 7)
    shift = b / (sig.chi_q - 1) if b > 0 else 0.0
    root = np.sqrt((s1 + shift) * (s2 + shift)) * one
    if c.lam == 0:
        return (s12 + shift) * one, (s12 + shift) * one
    return root, np.where(on, root, root / 4)


def _ffnet_scaling(arch, c):
    L = float(arch.depth)
    if c.case == "critical":
        return 1.0, L
    if c.case == "homogeneous-critical":
        return L, L * L
    if c.case == "homogeneous":
        log = L * math.log(c.signal.chi_q)
        g = math.exp(log) if log < math.log(np.finfo(np.float64).max) else math.inf
        return g, L * g
    return 1.0, 1.0


def _smooth_moments(arch, q):
    """(A, B) = (C''(1) / 2, C'''(1) / 6) at q: w_var q E[phi''^2] / 2 and w_var q^2 E[phi'''^2] / 6
    (Price: the k-derivatives of Vdot), by Gauss-Hermite quadrature of JAX's derivatives of phi."""
    import jax
    import jax.numpy as jnp

    from ..precision import enable_x64

    z, w = np.polynomial.hermite_e.hermegauss(160)
    w = w / math.sqrt(2 * math.pi)
    phi = arch.activation
    with enable_x64():
        d1 = jax.grad(lambda t: phi(t))
        d2 = jax.grad(d1)
        d3 = jax.grad(d2)
        u = jnp.asarray(math.sqrt(q) * z)
        m2 = float(np.sum(w * np.asarray(jax.vmap(d2)(u)) ** 2))
        m3 = float(np.sum(w * np.asarray(jax.vmap(d3)(u)) ** 2))
    return arch.w_var * q * m2 / 2, arch.w_var * q * q * m3 / 6


def _ffnet_rates(arch, c):
    sig = c.signal
    if c.case in ("ordered", "chaotic"):
        chi = sig.chi_c
        nngp = Rate(max(sig.chi_q, chi), 0.0)
        return Rates(nngp, Rate(chi, 1.0) if chi >= sig.chi_q else Rate(sig.chi_q, 0.0))
    if c.case == "vanishing":
        return Rates(Rate(sig.chi_q, 0.0), Rate(sig.chi_q, 1.0))
    if c.case == "critical":
        return Rates(Rate(1.0, -1.0), Rate(1.0, -1.0, 1.0))
    chi = sig.chi_q
    if c.case == "homogeneous-bounded":
        return Rates(Rate(chi, 0.0), Rate(math.sqrt(chi), 0.0) if c.lam > 0 else Rate(chi, 1.0))
    if c.case == "homogeneous-critical":
        return Rates(Rate(1.0, -1.0), Rate(1.0, -1.0) if c.lam == 0 else UNKNOWN)
    if c.lam > 0:
        return Rates(Rate(1.0, -2.0), Rate(1.0, -1.0, 1.0))
    if arch.b_var > 0:
        return Rates(Rate(1 / chi, 0.0), Rate(1.0, -1.0))
    return Rates(Rate(0.0, 0.0), Rate(0.0, 0.0))


def _ffnet_predicted(arch, c, s1, s2, s12):
    """Leading-order max errors at depth L where derived (module doc), else nan."""
    L = float(arch.depth)
    on, _ = _masks(s1, s2, s12, arch.activation.homogeneous, c.odd)
    if c.case == "critical":
        q = c.signal.q_star
        a, b = _smooth_moments(arch, q)
        nngp = q * (1 / (a * L) - (a * a - b) / a ** 3 * math.log(L) / L ** 2)
        return (nngp if (~on).any() else NAN), (q * abs(1 - b / a ** 2) / 3 * math.log(L) / L if (~on).any() else NAN)
    if c.case == "homogeneous" and c.lam > 0 and (~on).any():
        shift = arch.b_var / (c.signal.chi_q - 1) if arch.b_var > 0 else 0.0
        d = np.sqrt((s1 + shift) * (s2 + shift)) * np.ones_like(s12)
        return float(np.max(d[~on])) * 9 / (2 * c.lam ** 2 * L * L), NAN
    if c.case == "homogeneous-critical":
        return float(np.max(s1 * np.ones_like(s12))) / L, NAN
    return NAN, NAN


# ----------------------------------------------------------------------------- ResNet

class _SeriesDuals(Activation):
    """A numerical activation's host duals on one series plan, kept while the variances stay in
    its range and redone over a wider one when they leave it (a plan costs ~100 duals: the ODE
    solver asks for duals at new variances thousands of times)."""

    exact = False

    def __init__(self, act):
        self.act, self.range, self.plan = act, None, None

    def pair(self, t1, t2, k):
        q1, q2, k = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (t1[0], t2[0], k)))
        lo, hi = float(min(q1.min(), q2.min())), float(max(q1.max(), q2.max()))
        if self.range is None or lo < self.range[0] or hi > self.range[1]:
            if self.range is not None:
                lo, hi = min(lo, self.range[0]), max(hi, self.range[1])
            self.range = (lo / 1.25, hi * 1.25)
            self.plan = self.act._plan(np.linspace(*self.range, 17))
        terms, step = self.plan
        # one series per distinct variance (unit inputs share their diagonals)
        qs, at = np.unique(np.concatenate([q1.ravel(), q2.ravel()]), return_inverse=True)
        a, b, _ = self.act.series(qs, terms, step)

        def rows(q, i):
            return q, a[i].reshape(q.shape + (terms,)), b[i].reshape(q.shape + (terms,))

        return self.act.pair(rows(q1, at[:q1.size]), rows(q2, at[q1.size:]), k)


def _host(arch):
    """arch with host float64 duals, so that the engine's maps run on NumPy arrays."""
    act = arch.activation
    return dataclasses.replace(arch, activation=_signal._HostDuals(act) if act.exact else _SeriesDuals(act))


def _flow(host, y):
    """F(y) of the gamma = 1/2 ODE from the engine's general block: its update at a^2 = 1 less
    the state. y: (6, n) rows K11, K22, K12, Theta11, Theta22, Theta12."""
    k, th = y[:3], y[3:]
    seen = engine.general_seen("resnet", host, k)
    k1, th1 = engine.general_layer("resnet", host, (k, th), (seen[[0, 1, 0]],), (seen[[0, 1, 1]],), 1.0)
    return np.concatenate([k1 - k, th1 - th])


def _along(host, y, v):
    """J(y) v by a central difference along v; one step for all pairs, so that pairs sharing a
    diagonal still share it (one series per variance for numerical duals)."""
    size = max(float(np.abs(v).max()), 1e-300)
    eps = STEP * max(float(np.abs(y).max()), 1.0) / size
    return (_flow(host, y + eps * v) - _flow(host, y - eps * v)) / (2 * eps)


def _start(arch, s1, s2, s12):
    shape = np.broadcast(s1, s2, s12).shape
    k = np.stack([np.broadcast_to(s, shape).ravel() for s in (s1, s2, s12)]).astype(np.float64)
    return np.concatenate([k, np.zeros_like(k)]), shape


def ode(arch, s1, s2, s12, t_end=1.0, *, error=False, rtol=1e-12, atol=1e-14):
    """The ODE y' = F(y) from K_0 (s1, s2, s12: broadcastable, Theta_0 = 0) to tau = t_end;
    returns y(t_end) (6, n) and the pair shape; error=True also the Euler coefficient e(t_end)
    (e' = J e - J F / 2), at rtol 1e-8 (J by central differences: ~1e-8 relative)."""
    from scipy.integrate import solve_ivp

    host = _host(arch)
    y0, shape = _start(arch, s1, s2, s12)
    n = y0.shape[1]
    if error:
        def rhs(tau, z):
            y, e = z[:6 * n].reshape(6, n), z[6 * n:].reshape(6, n)
            f = _flow(host, y)
            de = _along(host, y, e) if np.any(e) else 0.0 * e
            return np.concatenate([f, de - 0.5 * _along(host, y, f)]).ravel()

        z0, tol = np.concatenate([y0, np.zeros_like(y0)]).ravel(), (max(rtol, 1e-8), max(atol, 1e-11))
    else:
        def rhs(tau, z):
            return _flow(host, z.reshape(6, n)).ravel()

        z0, tol = y0.ravel(), (rtol, atol)
    if t_end == 0 or n == 0:
        z = z0
    else:
        sol = solve_ivp(rhs, (0.0, t_end), z0, method="DOP853", rtol=tol[0], atol=tol[1])
        if not sol.success:
            raise RuntimeError(f"the gamma = 1/2 ODE failed: {sol.message}")
        z = sol.y[:, -1]
    y = z[:6 * n].reshape(6, n)
    return (y, shape, z[6 * n:].reshape(6, n)) if error else (y, shape)


def _solved(arch, s1, s2, s12, error):
    """`ode` to tau = 1, remembered (the same for every depth of the family)."""
    s = np.stack(np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (s1, s2, s12))))
    return _solve(arch.with_depth(1), s.tobytes(), s.shape[1:], error)


@functools.lru_cache(maxsize=32)
def _solve(arch, data, shape, error):
    s1, s2, s12 = np.frombuffer(data, np.float64).reshape((3,) + shape)
    return ode(arch, s1, s2, s12, error=error)


def _resnet_regime(arch):
    return "resnet-ntk" if arch.gamma > 0.5 else "resnet-ode" if arch.gamma == 0.5 else "resnet-degenerate"


def _degenerate(arch):
    return ValueError(f"no depth limit is derived for this ResNet (gamma = {arch.gamma:g} < 1/2, {arch.activation.label}, "
                      f"w_var = {arch.w_var:g}, b_var = {arch.b_var:g}): the total time T = L^(1 - 2 gamma) grows without "
                      "bound and the kernels follow the gamma = 1/2 ODE to tau = T (docs/limits.md)")


def _resnet_pairs(arch, s1, s2, s12):
    kind = _resnet_regime(arch)
    if kind == "resnet-degenerate":
        raise _degenerate(arch)
    y0, shape = _start(arch, s1, s2, s12)
    if kind == "resnet-ntk":
        f = _flow(_host(arch), y0)
        nngp, ntk = engine.general_read("resnet", arch, (y0[2], f[5]), "hidden")
    else:
        y = _solved(arch, s1, s2, s12, False)[0]
        nngp, ntk = engine.general_read("resnet", arch, (y[2], y[5]), "hidden")
    return nngp.reshape(shape), ntk.reshape(shape)


def _resnet_predicted(arch, s1, s2, s12):
    kind = _resnet_regime(arch)
    host, out = _host(arch), arch.out_var
    y0, _ = _start(arch, s1, s2, s12)
    if kind == "resnet-ntk":
        T = float(arch.depth) ** (1.0 - 2.0 * arch.gamma)
        f = _flow(host, y0)
        jf = _along(host, y0, f)
        return T * out * float(np.max(np.abs(f[2]))), T / 2 * out * float(np.max(np.abs(jf[5])))
    if kind == "resnet-ode":
        e = _solved(arch, s1, s2, s12, True)[2]
        L = float(arch.depth)
        return out * float(np.max(np.abs(e[2]))) / L, out * float(np.max(np.abs(e[5]))) / L
    raise _degenerate(arch)


# ----------------------------------------------------------------------------- dispatch

def covariances(arch, sq1, sq2, gram):
    """(s1, s2, s12): the first layer's (FFNet) or the embedding's (ResNet) covariances."""
    kind = kind_of(arch)
    return tuple(engine.general_initial(kind, arch, np.asarray(v, np.float64), "hidden")[0] for v in (sq1, sq2, gram))


def pair_limits(arch, sq1, sq2, gram):
    """(nngp, ntk) limits of pairs of squared norms sq1, sq2 and inner product gram (broadcastable)."""
    s1, s2, s12 = covariances(arch, sq1, sq2, gram)
    if kind_of(arch) == "ffnet":
        sqs = np.unique(np.concatenate([np.ravel(sq1), np.ravel(sq2)]))
        return _ffnet_pairs(arch, ffnet_case(arch, sqs), s1, s2, s12)
    return _resnet_pairs(arch, s1, s2, s12)


def scaling(arch):
    """(nngp_factor, ntk_factor) at arch.depth for unit inputs."""
    if kind_of(arch) == "ffnet":
        return _ffnet_scaling(arch, ffnet_case(arch))
    kind = _resnet_regime(arch)
    if kind == "resnet-degenerate":
        raise _degenerate(arch)
    return (1.0, float(arch.depth) ** (1.0 - 2.0 * arch.gamma)) if kind == "resnet-ntk" else (1.0, 1.0)


def rates(arch) -> Rates:
    """The predicted Rates of the max errors over unit-input pairs (off-diagonal ones included)."""
    if kind_of(arch) == "ffnet":
        return _ffnet_rates(arch, ffnet_case(arch))
    kind = _resnet_regime(arch)
    if kind == "resnet-degenerate":
        raise _degenerate(arch)
    p = 1.0 - 2.0 * arch.gamma if kind == "resnet-ntk" else -1.0
    return Rates(Rate(1.0, p), Rate(1.0, p))


def predicted(arch, rho0):
    """(nngp, ntk): leading-order max errors at arch.depth over unit inputs at correlations rho0."""
    s1, s2, s12 = covariances(arch, 1.0, 1.0, rho0)
    if kind_of(arch) == "ffnet":
        return _ffnet_predicted(arch, ffnet_case(arch), s1, s2, s12)
    return _resnet_predicted(arch, s1, s2, s12)
