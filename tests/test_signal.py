"""Signal propagation (reskernel.core.signal): each predicted fixed point, slope and depth scale
against something independent of the module's root finding: the layer recursions run for many
layers (engine.general_diagonal, the activation's duals), closed forms, an independent
Gauss-Hermite quadrature of tanh, and wide random tanh nets."""
import doctest
import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize

from reskernel.core import activations, engine, signal
from reskernel.core.arch import FeedForward, ResNet
from reskernel.core.quadrature import Numerical
from reskernel.core.signal import critical_line, signal_propagation

# (activation, w_var, b_var, expected phase): ordered and chaotic for the bounded activations,
# the bounded phase (the only one with a finite q* > 0) for the ReLU family.
CASES = {
    "tanh-ordered": ("tanh", 1.2, 0.05, "ordered"),
    "tanh-chaotic": ("tanh", 4.0, 0.05, "chaotic"),
    "tanh-chaotic-bias-free": ("tanh", 2.0, 0.0, "chaotic"),   # c* = 0 exactly (odd phi)
    "erf-ordered": ("erf", 1.0, 0.05, "ordered"),
    "erf-chaotic": ("erf", 3.0, 0.05, "chaotic"),
    "relu-bounded": ("relu", 1.5, 0.1, "bounded"),
    "leaky-relu-bounded": (activations.leaky_relu(0.3), 1.2, 0.2, "bounded"),
    "gelu-ordered": ("gelu", 1.5, 0.1, "ordered"),
}


def _arch(name, depth=1, in_var=1.0):
    act, w_var, b_var, _ = CASES[name]
    return FeedForward(depth, w_var=w_var, b_var=b_var, activation=act, in_var=in_var)


def _measured_depth_scale(distance, lo=1e-10, hi=1e-5):
    """-1 / slope of log|distance_l| against l, fitted where lo < |distance| < hi (the linear
    regime, above the duals' rounding)."""
    d = np.abs(np.asarray(distance))
    layers = np.flatnonzero((d > lo) & (d < hi))
    assert layers.size >= 4, d
    return -1.0 / np.polyfit(layers, np.log(d[layers]), 1)[0]


def _correlations(arch, q, c0, layers):
    """c_0..c_layers of the pair recursion at variance q held at q = q*: c <- (w_var V(q, q, c q)
    + b_var) / q with the duals (tanh: its Mehler series at q, V = sum_k a_k(q)^2 c^k, summed
    here from the coefficients computed once, not once per layer)."""
    act = arch.activation
    if isinstance(act, Numerical):
        coef = act.row_terms(np.float64(q))[1] ** 2
        dual = lambda c: np.polynomial.polynomial.polyval(c, coef)
    else:
        dual = lambda c: act.duals(np.float64(q), np.float64(q), np.float64(c * q))[0]
    c = [c0]
    for _ in range(layers):
        c.append(float((arch.w_var * dual(c[-1]) + arch.b_var) / q))
    return np.array(c)


@pytest.mark.parametrize("name", list(CASES))
def test_length_depth_scale_matches_recursion(name):
    s = signal_propagation(_arch(name))
    assert s.phase == CASES[name][3]
    # q_1 = in_var |x|^2 + b_var = 1 + b_var, away from q*; the engine's diagonal recursion.
    q = engine.general_diagonal("ffnet", _arch(name, depth=150), np.array([1.0]))[0][:, 0]
    assert q[-1] == pytest.approx(s.q_star, rel=1e-12)
    assert _measured_depth_scale(q - s.q_star) == pytest.approx(s.xi_q, rel=0.01)
    assert s.chi_q == pytest.approx(math.exp(-1.0 / s.xi_q), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_correlation_depth_scale_matches_recursion(name):
    arch = _arch(name)
    s = signal_propagation(arch)
    ordered = s.phase in ("ordered", "bounded")
    c = _correlations(arch, s.q_star, 0.5 if ordered else 0.99, int(30 * s.xi_c) + 30)
    if ordered:
        assert s.c_star == 1.0 and s.chi_c == s.chi_1 < 1.0
    else:
        assert 0.0 <= s.c_star < 1.0 and s.chi_1 > 1.0 > s.chi_c
    assert c[-1] == pytest.approx(s.c_star, abs=1e-9)
    assert _measured_depth_scale(c - s.c_star) == pytest.approx(s.xi_c, rel=0.01)


def test_relu_family_closed_forms():
    # Q(q) = w_var E[phi^2] q + b_var with E[phi^2] = E[phi'^2] = (a^2 + b^2) / 2.
    for w_var, b_var, phase in [(1.5, 0.1, "bounded"), (2.0, 0.1, "critical"), (3.0, 0.1, "unbounded")]:
        s = signal_propagation(FeedForward(5, w_var=w_var, b_var=b_var))
        assert s.phase == phase and s.chi_q == s.chi_1 == w_var / 2
        assert s.q_star == (b_var / (1 - w_var / 2) if phase == "bounded" else math.inf)
    # Bias-free: C(c) = k1(c) at any q, marginal at c = 1 (1 - c_l ~ 9 pi^2 / (2 l^2)).
    s = signal_propagation(FeedForward(5, w_var=2.0, b_var=0.0), sq=3.0)
    assert (s.q_star, s.c_star, s.chi_c, s.xi_c, s.phase) == (3.0, 1.0, 1.0, math.inf, "critical")
    # Linear nets: C(c) = w_var c + 1 - w_var at b_var > 0; every c fixed at b_var = 0.
    s = signal_propagation(FeedForward(5, w_var=0.5, b_var=0.1, activation="identity"))
    assert (s.q_star, s.c_star, s.chi_c, s.phase) == (pytest.approx(0.2, rel=1e-15), 1.0, 0.5, "bounded")
    assert math.isnan(signal_propagation(FeedForward(5, w_var=0.5, activation="identity")).c_star)
    np.testing.assert_array_equal(critical_line("relu", [0.0, 0.1, 1.0]), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(critical_line(activations.leaky_relu(0.2), [0.0, 0.5]), 2 / 1.04, rtol=1e-15)
    assert critical_line("identity", 0.3) == 1.0 and critical_line("abs", 0.3) == 1.0


def test_erf_critical_line_closed_form():
    # E[erf(sqrt(q) z)^2] = (2/pi) arcsin(2q / (1 + 2q)), E[erf'^2] = (4/pi) / sqrt(1 + 4q):
    # chi_1 = 1 at q* = q on w_var = (pi/4) sqrt(1 + 4q), b_var = q - w_var (2/pi) arcsin(2q / (1 + 2q)).
    q = np.array([0.05, 0.3, 1.0, 4.0])
    w = 0.25 * math.pi * np.sqrt(1 + 4 * q)
    b = q - w * (2 / math.pi) * np.arcsin(2 * q / (1 + 2 * q))
    np.testing.assert_allclose(critical_line("erf", b), w, rtol=1e-10)
    assert critical_line("erf", 0.0) == pytest.approx(math.pi / 4, rel=1e-14)
    for wi, bi, qi in zip(w, b, q):
        s = signal_propagation(FeedForward(3, w_var=wi, b_var=bi, activation="erf"), tol=1e-8)
        assert s.q_star == pytest.approx(qi, rel=1e-10) and s.phase == "critical"


def _gauss_hermite_tanh(w_var, b_var, correlation=True, nodes=300):
    """Reference q*, chi_1 (and c*, chi_c) for tanh by Gauss-Hermite quadrature (1-D, and a
    2-D product rule), independent of the package's trapezoidal rule and Hermite series; 300
    nodes agree with scipy.integrate.quad to 1e-12 at q ~ 2 (160 nodes: only to 3e-8)."""
    z, wz = hermegauss(nodes)
    wz = wz / wz.sum()
    sech2 = lambda x: 1.0 / np.cosh(x) ** 2
    q = optimize.brentq(lambda q: w_var * wz @ np.tanh(np.sqrt(q) * z) ** 2 + b_var - q, 1e-9, w_var + b_var + 1)
    chi_1 = w_var * wz @ sech2(np.sqrt(q) * z) ** 2
    if not correlation:
        return q, chi_1
    z1, z2 = z[:, None], z[None, :]
    w2 = wz[:, None] * wz[None, :]

    def pair(c, f):
        u = np.sqrt(q) * z1
        v = np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
        return np.sum(w2 * f(u) * f(v))

    c = optimize.brentq(lambda c: (w_var * pair(c, np.tanh) + b_var) / q - c, 0.0, 0.999) if chi_1 > 1 else 1.0
    return q, chi_1, c, w_var * pair(c, sech2)


@pytest.mark.parametrize("w_var, b_var", [(1.2, 0.05), (4.0, 0.05), (2.0, 0.3)])
def test_tanh_against_gauss_hermite(w_var, b_var):
    s = signal_propagation(FeedForward(3, w_var=w_var, b_var=b_var, activation="tanh"))
    q, chi_1, c, chi_c = _gauss_hermite_tanh(w_var, b_var)
    np.testing.assert_allclose([s.q_star, s.chi_1, s.c_star, s.chi_c], [q, chi_1, c, chi_c], rtol=1e-9)


def test_tanh_critical_line():
    assert critical_line("tanh", 0.0) == pytest.approx(1.0, rel=1e-12)
    b = np.array([0.01, 0.05, 0.2])
    w = critical_line("tanh", b)
    assert np.all(np.diff(w) > 0) and np.all(w > 1)
    for wi, bi in zip(w, b):
        assert _gauss_hermite_tanh(wi, bi, correlation=False)[1] == pytest.approx(1.0, rel=1e-9)
        assert signal_propagation(FeedForward(3, w_var=wi, b_var=bi, activation="tanh"), tol=1e-8).phase == "critical"
    # Bias-free tanh below the line: q* = 0 (the signal vanishes), the correlation map at
    # q = 0 is the identity (no attracting c*), chi_q = chi_1 = w_var phi'(0)^2.
    s = signal_propagation(FeedForward(3, w_var=0.8, activation="tanh"))
    assert (s.q_star, s.chi_q, s.chi_1, s.chi_c, s.xi_c, s.phase) == (0.0, 0.8, 0.8, 1.0, math.inf, "ordered")
    assert math.isnan(s.c_star)


def test_wide_tanh_nets_track_the_correlation_map():
    """Width-2000 random tanh nets with biases, 6 seeds: pairs started at c* stay there and a
    pair started at c = 0.95 follows the correlation recursion, within 5 standard errors."""
    arch = _arch("tanh-chaotic")  # w_var = 4, b_var = 0.05: q* = 2.195, c* = 0.165
    s = signal_propagation(arch)
    width, depth, seeds, dim = 2000, 10, 6, 3
    in_var = s.q_star - arch.b_var  # unit inputs: q_1 = in_var + b_var = q*
    # inputs x0, x1, x2 of unit norm whose layer-1 correlations are c* (x0, x1) and 0.95 (x0, x2)
    gram = np.eye(dim)
    for j, c in ((1, s.c_star), (2, 0.95)):
        gram[0, j] = gram[j, 0] = (c * s.q_star - arch.b_var) / in_var
    gram[1, 2] = gram[2, 1] = gram[0, 1] * gram[0, 2]
    x = np.linalg.cholesky(gram).T  # columns: the inputs
    c_run = _correlations(arch, s.q_star, 0.95, depth - 1)
    emp = np.empty((seeds, depth, 3))
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        z = math.sqrt(in_var) * rng.standard_normal((width, dim)) @ x + math.sqrt(arch.b_var) * rng.standard_normal((width, 1))
        for layer in range(depth):
            if layer:
                w = rng.standard_normal((width, width), dtype=np.float32)
                z = math.sqrt(arch.w_var / width) * (w @ np.tanh(z).astype(np.float32)) \
                    + math.sqrt(arch.b_var) * rng.standard_normal((width, 1))
            g = z.T @ z / width
            emp[seed, layer] = g[0, 0], g[0, 1] / math.sqrt(g[0, 0] * g[1, 1]), g[0, 2] / math.sqrt(g[0, 0] * g[2, 2])
    mean, se = emp.mean(0), emp.std(0, ddof=1) / math.sqrt(seeds)
    for k, want in enumerate((np.full(depth, s.q_star), np.full(depth, s.c_star), c_run)):
        t = (mean[:, k] - want) / se[:, k]
        assert np.abs(t).max() < 5.0, (k, t)
    assert c_run[0] - c_run[-1] > 10 * se[:, 2].max()  # the tracked pair moves, by far more than the noise


# ---- ResNets -------------------------------------------------------------------------

def _stream_correlations(arch, sq, eps):
    """1 - rho_l, l = 0..L, of two inputs of squared norm sq and correlation 1 - eps: the ResNet
    block map on the pair's K (the diagonal K(x, x) = K(x', x') by symmetry), from the duals."""
    act, w_var, b_var = arch.activation, arch.w_var, arch.b_var
    k = arch.in_var * sq + b_var
    kx = arch.in_var * sq * (1 - eps) + b_var
    gap = [1.0 - kx / k]
    for a in arch.branch_scales:
        sigma, sigma_x = w_var * k + b_var, w_var * kx + b_var
        v = float(act.diagonal(sigma)[0])
        vx = float(act.duals(np.float64(sigma), np.float64(sigma), np.float64(sigma_x))[0])
        k, kx = k + a * a * v, kx + a * a * vx
        gap.append((k - kx) / k)
    return np.array(gap)


RESNETS = {
    "relu-bias": (ResNet(12, alpha=0.5, w_var=2.0, b_var=0.3), "ordered"),
    "erf": (ResNet(12, alpha=0.7, w_var=1.0, b_var=0.1, activation="erf"), "chaotic"),
    "erf-large-bias": (ResNet(12, alpha=0.7, w_var=0.3, b_var=1.0, activation="erf"), "ordered"),
    "tanh": (ResNet(8, alpha=0.5, w_var=1.0, b_var=0.0, activation="tanh"), "chaotic"),
    "gelu-gamma": (ResNet(20, gamma=0.5, w_var=1.5, b_var=0.1, activation="gelu"), "chaotic"),
}


@pytest.mark.parametrize("name", list(RESNETS))
def test_resnet_slope_matches_pair_recursion(name):
    arch, phase = RESNETS[name]
    s = signal_propagation(arch, sq=2.0)
    assert s.phase == phase and s.chi.shape == (arch.depth,) and s.lengths.shape == (arch.depth + 1,)
    gap = _stream_correlations(arch, 2.0, 1e-7)
    np.testing.assert_allclose(gap[1:] / gap[:-1], s.chi, rtol=1e-3)
    assert gap[-1] / gap[0] == pytest.approx(s.chi_total, rel=0.01)
    # the stream variances: the engine's diagonal (its NNGP read is out_var k_l + b_var)
    nngp = engine.general_diagonal("resnet", arch, np.array([2.0]))[1][:, 0]
    np.testing.assert_allclose(s.lengths[1:], (nngp - arch.b_var) / arch.out_var, rtol=1e-13)


def test_resnet_relu_closed_forms():
    # Bias-free ReLU: E[phi^2](sigma) / k = w_var / 2 = E[phi'^2] w_var: chi = 1 in every block.
    arch = ResNet(30, gamma=0.5)
    s = signal_propagation(arch)
    np.testing.assert_allclose(s.chi, 1.0, rtol=1e-14)
    assert s.phase == "critical"
    np.testing.assert_allclose(s.lengths[1:], engine.schedule(arch)[:, 1], rtol=1e-13)  # s_l
    # With a bias: chi = (1 + a^2 w_var / 2) / (1 + a^2 (w_var k + b_var) / (2 k)) < 1.
    arch = ResNet(10, alpha=0.5, w_var=2.0, b_var=0.3)
    s = signal_propagation(arch)
    k = s.lengths[:-1]
    np.testing.assert_allclose(s.chi, (1 + 0.25) / (1 + 0.25 * (2 * k + 0.3) / (2 * k)), rtol=1e-14)
    # chi_l = (1 + a^2 w_var / 2) k_{l-1} / k_l, and k_l + b_var / w_var grows by (1 + a^2 w_var / 2):
    # chi_total = P k_0 / (P (k_0 + b_var / w_var) - b_var / w_var), P = prod (1 + a^2 w_var / 2).
    for depth, gamma in [(10, 1.0), (50, 0.5), (400, 0.25)]:
        arch = ResNet(depth, gamma=gamma, w_var=2.0, b_var=0.3, in_var=0.7)
        p, k0, shift = np.prod(1 + np.square(arch.branch_scales)), 0.7 * 1.5 + 0.3, 0.15
        s = signal_propagation(arch, sq=1.5)
        assert s.chi_total == pytest.approx(p * k0 / (p * (k0 + shift) - shift), rel=1e-12)
        assert s.phase == "ordered"


def test_resnet_gamma_families():
    # a^2 = L^(-2 gamma), T = L a^2. To first order in a^2, log chi_l = a^2 (w_var E[phi'^2](sigma)
    # - E[phi^2](sigma) / k): for gamma > 1/2 (T -> 0) L^(2 gamma - 1) log chi_total tends to that
    # bracket at the input, here erf with its closed-form moments at sigma_0 = w_var k_0 + b_var.
    def log_total(depth, gamma):
        arch = ResNet(depth, gamma=gamma, w_var=1.0, b_var=0.1, activation="erf")
        return math.log(signal_propagation(arch).chi_total)

    k0 = 1.1
    sigma = 1.0 * k0 + 0.1
    bracket = (4 / math.pi) / math.sqrt(1 + 4 * sigma) - (2 / math.pi) * math.asin(2 * sigma / (1 + 2 * sigma)) / k0
    assert 1600 * log_total(1600, 1.0) == pytest.approx(bracket, rel=2e-3)
    # gamma = 1/2 (T = 1): the depth-L map converges, its slope with O(1/L) steps
    half = [log_total(depth, 0.5) for depth in (100, 200, 400)]
    assert abs(half[2] - half[1]) < 0.55 * abs(half[1] - half[0]) and abs(half[2]) > 0.05


# ---- errors and the docstring examples -----------------------------------------------

def test_bad_inputs():
    with pytest.raises(ValueError, match="w_var must be > 0"):
        FeedForward(3, w_var=-1.0)  # rejected by the arch itself
    with pytest.raises(TypeError, match="arch must be"):
        signal_propagation("tanh")
    for sq in (0.0, -1.0, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="sq must be"):
            signal_propagation(FeedForward(3), sq=sq)
    with pytest.raises(ValueError, match="tol must be"):
        signal_propagation(FeedForward(3), tol=1.5)
    # GELU grows like ReLU: above w_var = 2 its variance has no finite fixed point.
    with pytest.raises(ValueError, match="no finite fixed point"):
        signal_propagation(FeedForward(3, w_var=3.0, b_var=0.1, activation="gelu"))
    for b in (-0.1, math.nan, [0.1, math.inf]):
        with pytest.raises(ValueError, match="b_vars must be"):
            critical_line("tanh", b)
    # GELU's chi_1 = 1 only where the length map's fixed point repels (its attracting q* runs off
    # to infinity as w_var -> 2, like ReLU's)
    for b in (0.0, 0.01):
        with pytest.raises(ValueError, match="no critical point with a finite attracting q"):
            critical_line("gelu", b)


def test_docstring_examples():
    result = doctest.testmod(signal, extraglobs={"FeedForward": FeedForward}, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


