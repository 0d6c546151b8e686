"""Infinite-depth limits of the infinite-width kernels (unit inputs, hidden layers trained).

Each family has a depth normalization (nngp_factor(L), ntk_factor(L)) under which the
normalized kernels of correlation rho0 = <x, x'> (|x| = |x'| = 1) converge as L -> oo:

  FFNet:            K_L -> 1 (every correlation -> 1),  Theta_L / L -> 1/4 for rho0 < 1, 1 at rho0 = 1.
                    1 - rho_L ~ 9 pi^2 / (2 L^2);  Theta_L / L - 1/4 = (3/8) log L / L + B(rho0) / L + o(1/L),
                    with B(rho0) -> +oo as rho0 -> 1 (the nugget: the convergence is not uniform near the diagonal).
  ResNet gamma > 1/2 (a^2 = L^-2gamma, T = L a^2 = L^(1 - 2 gamma) -> 0):
                    K_L -> rho0,  Theta_L / T -> f(rho0) = rho0 k0(rho0) + k1(rho0), the depth-1 ResNet NTK;
                    errors  T k1(rho0)  and  (T/2) [f (1 + k0) + f'(rho0) (k1 - rho0)],  f' = 2 k0 + rho0 k0'.
                    At rho0 = -1, f' is infinite and the NTK error is O(T^(1/2)) instead.
  ResNet gamma = 1/2 (a^2 = 1/L, T = 1): with tau = l / L in [0, 1] the recursion becomes the ODE
                    rho' = k1(rho) - rho,  s' = s (s = e^tau),  Theta' = Theta k0(rho) + s (rho k0(rho) + k1(rho)),
                    rho(0) = rho0, Theta(0) = 0;  K_L -> e rho(1), Theta_L -> Theta(1) (no rescaling), error O(1/L).
  ResNet gamma < 1/2 (T -> oo): degenerate, like the FFNet. The diagonal-normalized NNGP K_L / K_L(x, x)
                    tends to 1 for every pair, 1 - rho_L ~ 9 pi^2 / (2 T^2) once T >> 1; the diagonal-normalized
                    NTK Theta_L / Theta_L(x, x) tends to 1/4 off the diagonal (with q = Theta / s:
                    q' = q (k0 - 1) + rho k0 + k1, k0 - 1 ~ -3 / tau, so q ~ tau / 2 against 2 tau on the
                    diagonal); the unnormalized kernels grow like e^T.

Kernels with trained="all" are not covered: for the FFNet the added readout term vanishes
after dividing by L, but for the ResNet with gamma > 1/2 the embedding and readout terms
(~ 2 rho0) dominate the O(T) hidden-layer NTK.

General archs (other activations, biases, variances; `arch.default` False): the limits of
reskernel.core.limits_general (its module doc; derivations and measured rates in
docs/limits.md): the FFNet's limit in each signal-propagation phase, the gamma > 1/2 ResNet's
depth-1 branch NTK, the gamma = 1/2 ODE with the general branch. Their kernels depend on the
norms: `limit_correlation_kernels` and `depth_error` take unit inputs, `limit_kernel` any.
`rates` gives each limit's predicted decay law (Rate: C ratio^L L^power (log L)^log_power) and
`convergence` measures it over depths. No limit is derived for gamma < 1/2 ResNets of general
archs, nor for FFNets whose variance vanishes at chi_1 = 1 (ValueError).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..precision import enable_x64
from . import engine
from .analytic import Kernel, correlation_kernels, correlations
from .arch import FeedForward, ResNet, check_arch
from . import limits_general as _general
from .limits_general import Rate, Rates

__all__ = ["regime", "depth_scaling", "limit_correlation_kernels", "limit_kernel", "resnet_ode",
           "DepthError", "depth_error", "REGIMES", "Rate", "Rates", "rates", "Convergence", "convergence"]

REGIMES = ("ffnet", "resnet-ntk", "resnet-ode", "resnet-degenerate")


def _family(arch):
    arch = check_arch(arch)
    if isinstance(arch, ResNet) and arch.gamma is None:
        raise ValueError("depth limits are defined for ResNet families with a_l = depth^-gamma; "
                         "this ResNet has a fixed alpha or per-block scales (give gamma instead)")
    return arch


def regime(arch) -> str:
    """Which limit applies: "ffnet", "resnet-ntk" (gamma > 1/2), "resnet-ode" (gamma = 1/2),
    "resnet-degenerate" (gamma < 1/2)."""
    arch = _family(arch)
    if isinstance(arch, FeedForward):
        return "ffnet"
    if arch.gamma > 0.5:
        return "resnet-ntk"
    return "resnet-ode" if arch.gamma == 0.5 else "resnet-degenerate"


def _time(arch) -> float:
    """T = L a^2 = L^(1 - 2 gamma): the total 'time' of the ResNet recursion."""
    return float(arch.depth) ** (1.0 - 2.0 * arch.gamma)


def depth_scaling(arch):
    """(nngp_factor, ntk_factor): the depth-L normalized kernels divided by these converge.

    FFNet (1, L); ResNet gamma > 1/2 (1, L^(1-2gamma)); gamma = 1/2 (1, 1); gamma < 1/2 the
    diagonal values (s_L, Theta_L(1)) = ((1 + a^2)^L, 2 T (1 + a^2)^(L-1)), possibly inf.
    General archs (reskernel.core.limits_general): FFNet (1, 1), critical (1, L), ReLU family
    with a bias at chi = 1 (L, L^2), bias-free or chi > 1 (chi^L, L chi^L); ResNet as above.
    """
    arch = _family(arch)
    kind = regime(arch)
    if not arch.default:
        return _general.scaling(arch)
    if kind == "ffnet":
        return 1.0, float(arch.depth)
    if kind == "resnet-ntk":
        return 1.0, _time(arch)
    if kind == "resnet-ode":
        return 1.0, 1.0
    a2 = float(arch.depth) ** (-2.0 * arch.gamma)
    log_s = arch.depth * math.log1p(a2)
    big = math.log(np.finfo(np.float64).max)
    s = math.exp(log_s) if log_s < big else math.inf
    log_t = math.log(2 * _time(arch)) + (arch.depth - 1) * math.log1p(a2)
    return s, (math.exp(log_t) if log_t < big else math.inf)


def _np_duals(rho):
    """(k0, k1) in NumPy float64: the engine's ReLU duals at NumPy angles."""
    r = np.clip(rho, -1.0, 1.0)
    return engine.relu_duals(r, *engine.numpy_angle(r))


def _np_k0(rho):
    return _np_duals(rho)[0]


def _np_k1(rho):
    return _np_duals(rho)[1]


def resnet_ode(rho0, t_end: float = 1.0, *, arch=None, rtol: float = 1e-12, atol: float = 1e-14) -> Kernel:
    """The gamma = 1/2 ResNet limit: solve rho' = k1 - rho, Theta' = Theta k0 + e^tau (rho k0 + k1).

    Args:
      rho0: correlations in [-1, 1], any shape S (NumPy/JAX array or float).
      t_end: the time tau to integrate to (1.0 is the depth limit of alpha = L^-1/2).
      arch: None (the default ReLU ResNet) or a ResNet whose activation and variances give the
        general branch: (K, Theta)' = (V(Sigma), V + Vdot (Sigma + w_var Theta)), Sigma =
        w_var K + b_var, each input's K and Theta carried too, from K_0 = in_var rho0 + b_var
        (unit inputs), Theta_0 = 0 (its depth and gamma are not used).
    Returns:
      Kernel(nngp = e^t_end rho(t_end), ntk = Theta(t_end)), float64 NumPy arrays of shape S;
      general arch: (out_var K(t_end) + b_var, out_var Theta(t_end)).
    Solved by scipy.integrate.solve_ivp (DOP853) on the host, in float64.
    """
    from scipy.integrate import solve_ivp

    rho0 = np.asarray(rho0, dtype=np.float64)
    if not np.all(np.isfinite(rho0)) or np.any(np.abs(rho0) > 1):
        raise ValueError("rho0 must hold finite correlations in [-1, 1]")
    t_end = float(t_end)
    if not (math.isfinite(t_end) and t_end >= 0):
        raise ValueError(f"t_end must be a finite time >= 0, got {t_end}")
    if arch is not None and not isinstance(arch, ResNet):
        raise TypeError(f"arch must be None or a reskernel.ResNet, got {type(arch).__name__}")
    if arch is not None and not arch.default:
        y, shape = _general.ode(arch, *_general.covariances(arch, 1.0, 1.0, rho0), t_end, rtol=rtol, atol=atol)
        nngp, ntk = engine.general_read("resnet", arch, (y[2], y[5]), "hidden")
        return Kernel(nngp.reshape(shape), ntk.reshape(shape))
    flat = rho0.ravel()
    n = flat.size

    def rhs(tau, y):  # the residual branch of the engine, in continuous depth (q = Theta / e^tau)
        rho = np.clip(y[:n], -1.0, 1.0)
        d_rho, d_q = engine.resnet_branch(rho, y[n:], *engine.numpy_angle(rho))
        return np.concatenate([d_rho, d_q])

    y0 = np.concatenate([flat, np.zeros(n)])
    if t_end == 0 or n == 0:
        y = y0
    else:
        sol = solve_ivp(rhs, (0.0, t_end), y0, method="DOP853", rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"the gamma = 1/2 ODE failed: {sol.message}")
        y = sol.y[:, -1]
    rho, q = np.clip(y[:n], -1.0, 1.0), y[n:]
    s = math.exp(t_end)
    return Kernel(s * rho.reshape(rho0.shape), s * q.reshape(rho0.shape))


def limit_correlation_kernels(arch, rho0) -> Kernel:
    """Limit as depth -> oo of the normalized kernels of the family of `arch` (its depth is ignored).

    Args:
      arch: FeedForward, or ResNet given by gamma (a_l = L^-gamma).
      rho0: correlations in [-1, 1], any shape S.
    Returns:
      Kernel(nngp, ntk) of shape S: the limits of K_L / nngp_factor and Theta_L / ntk_factor
      (see `depth_scaling`), for unit inputs and the default trained="hidden" NTK:
      FFNet (1, 1/4 off the diagonal and 1 on it); ResNet gamma > 1/2 (rho0, rho0 k0 + k1);
      gamma = 1/2 the ODE solution at tau = 1; gamma < 1/2 (1, 1/4 off the diagonal and 1 on it).
      General archs: the limits of reskernel.core.limits_general for unit inputs (inf where
      the kernel grows faster than its factor: the chaotic FFNet's NTK diagonal).
    Raises:
      ValueError where no limit is derived (general ResNets with gamma < 1/2; FFNets whose
      variance vanishes at chi_1 = 1 or grows without bound outside the ReLU family).
    """
    kind = regime(arch)
    r = np.asarray(rho0, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(np.abs(r) > 1):
        raise ValueError("rho0 must hold finite correlations in [-1, 1]")
    if not arch.default:
        return Kernel(*_general.pair_limits(arch, 1.0, 1.0, r))
    if kind == "ffnet":
        return Kernel(np.ones_like(r), np.where(r == 1.0, 1.0, 0.25))
    if kind == "resnet-ntk":
        return Kernel(r.copy(), r * _np_k0(r) + _np_k1(r))
    if kind == "resnet-ode":
        return resnet_ode(r)
    return Kernel(np.ones_like(r), np.where(r == 1.0, 1.0, 0.25))


def limit_kernel(arch, x1, x2=None) -> Kernel:
    """Gram-level depth limit: `limit_correlation_kernels` at rho0 = <x, x'> / (|x| |x'|), times |x| |x'|.

    Args:
      arch: FeedForward or ResNet(gamma=...) (its depth is ignored).
      x1: (n1, d) nonzero inputs; x2: (n2, d) or None for x1.
    Returns:
      Kernel(nngp, ntk), float64 NumPy arrays (n1, n2); the limits of K_L / nngp_factor and
      Theta_L / ntk_factor of `depth_scaling` (the kernels are homogeneous of degree 1 in each input).
      General archs: from the inputs' squared norms and inner products in float64 (their
      kernels are not homogeneous); identical rows are the diagonal.
    """
    x1, x2 = _checks.inputs(x1, x2)
    if not _family(arch).default:
        a = np.asarray(x1, np.float64)
        b = a if x2 is None else np.asarray(x2, np.float64)
        gram = a @ b.T
        sq1 = np.diagonal(gram).copy() if x2 is None else np.einsum("ij,ij->i", a, a)
        sq2 = sq1 if x2 is None else np.einsum("ij,ij->i", b, b)
        return Kernel(*_general.pair_limits(arch, sq1[:, None], sq2[None, :], gram))
    rho, n1, n2 = correlations(x1, x2)
    lim = limit_correlation_kernels(arch, np.asarray(rho, np.float64))
    norms = np.asarray(n1, np.float64)[:, None] * np.asarray(n2, np.float64)[None, :]
    return Kernel(lim.nngp * norms, lim.ntk * norms)


class DepthError(NamedTuple):
    """How far the depth-L kernels are from the depth limit, over a set of correlations.

    nngp, ntk: max |kernel / factor - limit| over the correlations (for the FFNet NNGP this is
    1 - min rho_L; for gamma < 1/2 the kernels are normalized by their diagonal).
    nngp_predicted, ntk_predicted: the leading-order theory for the same maxima (nan where none).
    """

    regime: str
    depth: int
    nngp: float
    ntk: float
    nngp_predicted: float
    ntk_predicted: float


@jax.jit
def _normalized_resnet(rho0, a2, depth):
    """rho_L and Theta_L / s_L for constant a^2 (no e^T overflow: the engine's state is
    normalized by s_l); depth is traced."""
    return engine.run_state("resnet", rho0, a2 / (1 + a2), depth)


def _default_rho0():
    return np.linspace(-1.0, 1.0, 201)


def depth_error(arch, rho0=None) -> DepthError:
    """Distance of `arch`'s depth-L normalized kernels from the family's depth limit.

    Args:
      arch: FeedForward(L) or ResNet(L, gamma=...).
      rho0: correlations in [-1, 1] to evaluate on (default 201 points on [-1, 1]). The
        FFNet NTK converges non-uniformly near rho0 = 1 and the gamma > 1/2 ResNet NTK at
        rate T^(1/2) at rho0 = -1, so the maximum depends on this set.
    Returns:
      DepthError. The depth-L kernels come from `correlation_kernels` in the dtype of rho0
      (use float64 for large depths: enable x64 and pass float64 correlations). General archs:
      unit inputs, float64 always; the maxima skip pairs whose limit is infinite; predicted
      maxima where reskernel.core.limits_general derives a leading term (nan elsewhere; the
      decay laws are in `rates`).
    """
    kind = regime(arch)
    r = np.asarray(_default_rho0() if rho0 is None else rho0)
    if r.size == 0:
        raise ValueError("rho0 must hold at least one correlation")
    if not np.issubdtype(r.dtype, np.floating):
        r = r.astype(np.float64)
    if not np.all(np.isfinite(r)) or np.any(np.abs(r) > 1):
        raise ValueError("rho0 must hold finite correlations in [-1, 1]")
    r64 = r.astype(np.float64)
    L = arch.depth
    lim = limit_correlation_kernels(arch, r64)
    nan = float("nan")
    if not arch.default:
        k = _unit_kernels(arch, r64)
        fn, ft = depth_scaling(arch)
        return DepthError(kind, L, _max_error(np.asarray(k.nngp) / fn, lim.nngp),
                          _max_error(np.asarray(k.ntk) / ft, lim.ntk), *_general.predicted(arch, r64))
    if kind == "resnet-degenerate":
        a2 = float(L) ** (-2.0 * arch.gamma)
        rho_l, q = _normalized_resnet(jnp.asarray(r), jnp.asarray(a2, r.dtype), L)
        _, q1 = _normalized_resnet(jnp.ones((), r.dtype), jnp.asarray(a2, r.dtype), L)
        nngp = float(1 - np.min(np.asarray(rho_l, np.float64)))
        ntk = float(np.max(np.abs(np.asarray(q, np.float64) / float(q1) - lim.ntk)))
        T = _time(arch)
        return DepthError(kind, L, nngp, ntk, 9 * math.pi ** 2 / (2 * T * T), nan)
    k = correlation_kernels(arch, jnp.asarray(r))
    fn, ft = depth_scaling(arch)
    nngp = np.asarray(k.nngp, np.float64) / fn
    ntk = np.asarray(k.ntk, np.float64) / ft
    e_nngp = float(np.max(np.abs(nngp - lim.nngp)))
    e_ntk = float(np.max(np.abs(ntk - lim.ntk)))
    if kind == "ffnet":
        off = r64 < 1
        p_ntk = 0.375 * math.log(L) / L if off.any() else 0.0
        return DepthError(kind, L, e_nngp, e_ntk, 9 * math.pi ** 2 / (2 * L * L), p_ntk)
    if kind == "resnet-ntk":
        T = _time(arch)
        c0, c1 = _np_k0(r64), _np_k1(r64)
        f = r64 * c0 + c1
        s = np.sqrt(np.maximum((1 - r64) * (1 + r64), 0.0))
        # rho k0'(rho) (k1 - rho) -> 0 at rho = 1; infinite at rho = -1 (the O(T^1/2) point).
        with np.errstate(divide="ignore", invalid="ignore"):
            k0p_term = np.where(r64 == 1.0, 0.0, r64 * (c1 - r64) / (np.pi * s))
        coef = 0.5 * (f * (1 + c0) + 2 * c0 * (c1 - r64) + k0p_term)
        return DepthError(kind, L, e_nngp, e_ntk, float(T * np.max(np.abs(c1))), float(T * np.max(np.abs(coef))))
    return DepthError(kind, L, e_nngp, e_ntk, nan, nan)


def _unit_kernels(arch, rho0, all_depths=False) -> Kernel:
    """A general arch's kernels of unit inputs at correlations rho0 (n,), float64, ([L,] n):
    the Gram-level kernel between x = (1, 0) and x' = (rho0, sqrt(1 - rho0^2)), which carries
    each input's diagonal through the same map (the correlation recursion's rho0 = 1 entries
    leave the diagonal at rate chi_1 in a chaotic FFNet: 5e-3 after 100 layers of erf at w_var = 3)."""
    from .analytic import kernel

    r = np.asarray(rho0, np.float64).ravel()
    x2 = np.stack([r, np.sqrt(np.maximum((1 - r) * (1 + r), 0.0))], axis=1)
    with enable_x64():
        k = kernel(arch, np.array([[1.0, 0.0]]), x2, all_depths=all_depths, method="recursion")
        return Kernel(*(np.asarray(v, np.float64)[..., 0, :] for v in k))


def _max_error(values, limit) -> float:
    """max |values - limit| over the entries whose limit is finite (nan if none is)."""
    finite = np.isfinite(limit)
    return float(np.max(np.abs(values[finite] - limit[finite]))) if finite.any() else float("nan")


def rates(arch) -> Rates:
    """The predicted decay with depth of `depth_error`'s maxima (pairs off the diagonal included).

    Args:
      arch: FeedForward or ResNet(gamma=...) (its depth is not used).
    Returns:
      Rates(nngp, ntk), each a Rate(ratio, power, log_power): err(L) ~ C ratio^L L^power
      (log L)^log_power. Default nets: FFNet (1, -2) and (1, -1, 1); ResNet gamma > 1/2
      (1, 1 - 2 gamma); gamma = 1/2 (1, -1); gamma < 1/2 NNGP (1, -2 (1 - 2 gamma)), NTK not
      derived (nan). General archs: reskernel.core.limits_general (e.g. an ordered FFNet
      (max(chi_q, chi_1), 0) and (chi_1, 1), the resonant L chi_1^L).
    """
    kind = regime(arch)
    if not arch.default:
        return _general.rates(arch)
    if kind == "ffnet":
        return Rates(Rate(1.0, -2.0), Rate(1.0, -1.0, 1.0))
    if kind == "resnet-degenerate":
        return Rates(Rate(1.0, -2.0 * (1.0 - 2.0 * arch.gamma)), _general.UNKNOWN)
    p = 1.0 - 2.0 * arch.gamma if kind == "resnet-ntk" else -1.0
    return Rates(Rate(1.0, p), Rate(1.0, p))


class Convergence(NamedTuple):
    """Measured decay of `depth_error` over depths, with the theory's law beside it.

    depths: (n,) ints; nngp, ntk: (n,) max errors at each depth (unit inputs, float64).
    predicted: `rates(arch)`. measured: the same laws with their free parameter fitted to the
    errors by least squares in logs: the ratio where the predicted one is < 1 (log err -
    power log L - log_power log log L linear in L), else the power (log err - log_power log log L
    linear in log L); nan where no law is derived for the ratio, or fewer than two errors are > 0.
    """

    regime: str
    depths: np.ndarray
    nngp: np.ndarray
    ntk: np.ndarray
    predicted: Rates
    measured: Rates


def _fit(depths, errors, law: Rate) -> Rate:
    keep = errors > 0
    L, e = depths[keep].astype(np.float64), errors[keep]
    if keep.sum() < 2 or law.ratio == 0 or not math.isfinite(law.ratio):
        return Rate(float("nan"), law.power, law.log_power)
    y = np.log(e) - (law.log_power * np.log(np.log(L)) if law.log_power else 0.0)
    if law.ratio < 1:
        slope = np.polyfit(L, y - law.power * np.log(L), 1)[0]
        return Rate(float(np.exp(slope)), law.power, law.log_power)
    return Rate(1.0, float(np.polyfit(np.log(L), y, 1)[0]), law.log_power)


def convergence(arch, depths, rho0=None) -> Convergence:
    """The depth-L kernels' distance from the limit at several depths, and its fitted rate.

    Args:
      arch: FeedForward or ResNet(gamma=...) (its depth is replaced by each of `depths`).
      depths: increasing ints >= 2, in the regime where the leading law holds (the fit uses all).
      rho0: correlations for `depth_error` (default 201 points on [-1, 1]).
    Returns:
      Convergence. FFNet: one recursion to max(depths) (every shallower net is its prefix);
      ResNet: one `depth_error` per depth (each depth its own branch scale). float64 throughout.
    """
    kind = regime(arch)
    depths = np.array([_checks.positive_int("depths", d) for d in np.ravel(depths)])
    if depths.size < 2 or np.any(np.diff(depths) <= 0) or depths[0] < 2:
        raise ValueError(f"depths must be at least two increasing ints >= 2, got {depths.tolist()}")
    r = np.asarray(_default_rho0() if rho0 is None else rho0, np.float64)
    if isinstance(arch, FeedForward):
        deep = arch.with_depth(int(depths[-1]))
        lim = limit_correlation_kernels(deep, r)
        if deep.default:
            with enable_x64():
                k = correlation_kernels(deep, jnp.asarray(r), all_depths=True)
        else:
            k = _unit_kernels(deep, r, all_depths=True)
        nngp, ntk = np.asarray(k.nngp, np.float64), np.asarray(k.ntk, np.float64)
        errors = []
        for d in depths:
            fn, ft = depth_scaling(arch.with_depth(int(d)))
            errors.append((_max_error(nngp[d - 1] / fn, lim.nngp), _max_error(ntk[d - 1] / ft, lim.ntk)))
    else:
        with enable_x64():
            errors = [depth_error(arch.with_depth(int(d)), r)[2:4] for d in depths]
    e_nngp, e_ntk = (np.array(v, np.float64) for v in zip(*errors))
    law = rates(arch)
    return Convergence(kind, depths, e_nngp, e_ntk, law,
                       Rates(_fit(depths, e_nngp, law.nngp), _fit(depths, e_ntk, law.ntk)))
