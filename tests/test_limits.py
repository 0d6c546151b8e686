"""Depth limits: rates derived in reskernel/limits.py checked against the depth recursion
(rk.correlation_kernels, float64), and the gamma = 1/2 ODE against the recursion at large depth."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from reskernel import limits
from reskernel.core import engine

R = np.linspace(-0.9, 1.0, 39)  # away from rho0 = -1, where the ResNet NTK error is O(T^1/2)


@pytest.mark.parametrize("gamma", [0.75, 1.0])
def test_resnet_error_decays_like_L_to_1_minus_2gamma(x64, gamma):
    depths = np.array([100, 1000, 10_000, 100_000])
    errs = [limits.depth_error(rk.ResNet(int(L), gamma=gamma), R) for L in depths]
    for name in ("nngp", "ntk"):
        e = np.array([getattr(x, name) for x in errs])
        slope = np.polyfit(np.log(depths), np.log(e), 1)[0]
        assert abs(slope - (1 - 2 * gamma)) < 0.05, (name, slope)
    # The derived leading coefficient: error ~ T * coefficient, T = L^(1 - 2 gamma).
    for x in errs[1:]:
        assert x.nngp == pytest.approx(x.nngp_predicted, rel=0.05)
        assert x.ntk == pytest.approx(x.ntk_predicted, rel=0.05)
    # Antipodal inputs: f'(rho0) is infinite at rho0 = -1 and the NTK error is O(T^1/2) there.
    anti = [limits.depth_error(rk.ResNet(int(L), gamma=gamma), np.array([-1.0])).ntk for L in depths[1:]]
    slope = np.polyfit(np.log(depths[1:]), np.log(anti), 1)[0]
    assert abs(slope - (1 - 2 * gamma) / 2) < 0.05, slope


def test_resnet_limit_is_depth_one_ntk(x64):
    lim = limits.limit_correlation_kernels(rk.ResNet(1, gamma=1.0), R)
    # depth-1 ResNet with a = 1: Theta_1 = a^2 (rho0 k0 + k1), NNGP = rho0 + k1 (not the limit).
    one = rk.correlation_kernels(rk.ResNet(1, alpha=1.0), jnp.asarray(R))
    np.testing.assert_allclose(lim.ntk, np.asarray(one.ntk), rtol=1e-12)
    np.testing.assert_allclose(lim.nngp, R, rtol=0)


def test_ffnet_nngp_and_ntk_rates(x64):
    r = np.array([-1.0, -0.5, 0.0, 0.3, 0.9, 1.0])
    k = rk.correlation_kernels(rk.FeedForward(10_000), jnp.asarray(r), all_depths=True)
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    depths = np.arange(1, 10_001)
    # Diagonal: Theta_L = L exactly, rho = 1.
    np.testing.assert_allclose(ntk[:, -1], depths, rtol=1e-12)
    # 1 - rho_L ~ 9 pi^2 / (2 L^2).
    np.testing.assert_allclose(depths[-1] ** 2 * (1 - nngp[-1, :-1]), 4.5 * math.pi ** 2, rtol=0.01)
    # Theta_L / L - 1/4 = (3/8) log L / L + B(rho0) / L: L * error is linear in log L with slope 3/8.
    # Off the diagonal Theta_L / L -> 1/4: within (3/8) log L / L + O(1/L) of it, and getting closer.
    off = ntk[:, :-1] / depths[:, None]
    assert np.all(np.abs(off[-1] - 0.25) < 0.01)
    assert np.all(np.abs(off[-1] - 0.25) < 0.2 * np.abs(off[99] - 0.25))
    sel = np.array([1000, 3000, 10_000])
    scaled = sel[:, None] * (ntk[sel - 1, :-1] / sel[:, None] - 0.25)
    slopes = np.polyfit(np.log(sel), scaled, 1)[0]
    np.testing.assert_allclose(slopes, 0.375, atol=0.03)
    e = limits.depth_error(rk.FeedForward(10_000), jnp.asarray(r))
    assert e.nngp == pytest.approx(1 - nngp[-1].min(), rel=1e-12)
    assert e.ntk == pytest.approx(np.abs(ntk[-1, :-1] / 10_000 - 0.25).max(), rel=1e-12)


def test_gamma_half_recursion_matches_ode(x64):
    r = np.array([-1.0, -0.6, 0.0, 0.4, 0.95, 1.0])
    ode = limits.resnet_ode(r)
    # Diagonal closed form: rho = 1, Theta' = Theta + 2 e^tau  =>  Theta(1) = 2e, NNGP = e.
    assert ode.ntk[-1] == pytest.approx(2 * math.e, rel=1e-10)
    assert ode.nngp[-1] == pytest.approx(math.e, rel=1e-12)
    gaps = []
    for L in (10_000, 20_000):
        k = rk.correlation_kernels(rk.ResNet(L, gamma=0.5), jnp.asarray(r))
        gap = max(np.abs(np.asarray(k.ntk) - ode.ntk).max(), np.abs(np.asarray(k.nngp) - ode.nngp).max())
        gaps.append(gap)
    assert gaps[0] < 1e-3 and gaps[1] < 1e-3
    # First-order convergence in 1/L: doubling L halves the gap.
    assert gaps[0] / gaps[1] == pytest.approx(2.0, rel=0.05)
    e = limits.depth_error(rk.ResNet(20_000, gamma=0.5), r)
    assert e.ntk == pytest.approx(gaps[1], rel=1e-6) or e.nngp == pytest.approx(gaps[1], rel=1e-6)


def test_gamma_below_half_degenerates(x64):
    errs = [limits.depth_error(rk.ResNet(L, gamma=0.25), R) for L in (10_000, 1_000_000)]
    for e in errs:  # 1 - rho_L ~ 9 pi^2 / (2 T^2), T = L^(1/2)
        assert e.nngp == pytest.approx(e.nngp_predicted, rel=0.1)
    assert errs[1].ntk < 0.01 < errs[0].ntk < 0.1  # NTK / diagonal -> 1/4 off the diagonal


def test_limit_kernel_gram_level(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    norms = np.linalg.norm(x, axis=1)
    for arch in (rk.FeedForward(3), rk.ResNet(3, gamma=0.8), rk.ResNet(3, gamma=0.5), rk.ResNet(3, gamma=0.3)):
        k = limits.limit_kernel(arch, x)
        rho = (x @ x.T) / np.outer(norms, norms)
        np.fill_diagonal(rho, 1.0)
        c = limits.limit_correlation_kernels(arch, np.clip(rho, -1, 1))
        np.testing.assert_allclose(k.ntk, c.ntk * np.outer(norms, norms), rtol=1e-9)
        np.testing.assert_allclose(k.nngp, c.nngp * np.outer(norms, norms), rtol=1e-9)
        np.testing.assert_allclose(k.ntk, k.ntk.T, rtol=1e-12)
    assert limits.regime(rk.ResNet(4, gamma=0.5)) == "resnet-ode"
    assert limits.depth_scaling(rk.ResNet(100, gamma=1.0)) == (1.0, pytest.approx(0.01))


def test_limit_errors():
    with pytest.raises(ValueError, match="gamma"):
        limits.limit_correlation_kernels(rk.ResNet(4, alpha=0.3), 0.5)
    with pytest.raises(TypeError, match="arch"):
        limits.depth_error("ffnet")
    with pytest.raises(ValueError, match="rho0"):
        limits.limit_correlation_kernels(rk.FeedForward(2), np.array([1.5]))
    with pytest.raises(ValueError, match="rho0"):
        limits.depth_error(rk.FeedForward(2), np.array([]))
    with pytest.raises(ValueError, match="t_end"):
        limits.resnet_ode(0.5, t_end=-1.0)


# ---------------------------------------------------------------- general archs (limits_general)
# Each measured rate is fitted to the float64 recursion (rk.correlation_kernels) by
# limits.convergence; the laws come from the signal quantities (q*, c*, chi's), which
# tests/test_signal.py checks against their own recursions.
RG = np.array([-0.9, -0.3, 0.2, 0.6, 0.9, 1.0])


def _signal(arch):
    return rk.signal_propagation(arch)


@pytest.mark.parametrize("w_var, b_var, depths, tol", [
    (1.2, 0.3, [40, 60, 80, 100], 2e-3),     # ordered: chi_1 = 0.742 > chi_q
    (3.0, 0.05, [50, 60, 70, 80], 1e-2),     # chaotic: c* = 0.19, chi_c = 0.857
    (0.6, 0.0, [20, 30, 40, 50], 2e-3),      # vanishing: q* = 0, chi_q = w_var phi'(0)^2 = 0.764
])
def test_ffnet_geometric_phases(x64, w_var, b_var, depths, tol):
    arch = rk.FeedForward(1, w_var=w_var, b_var=b_var, activation="erf")
    s = _signal(arch)
    c = limits.convergence(arch, depths, RG)
    # the laws: ordered/chaotic (max(chi_q, chi_c), 0) and the resonant (chi_c, 1); vanishing chi_q
    chi = s.chi_c if s.q_star > 0 else s.chi_q
    assert c.predicted.nngp == (max(s.chi_q, chi), 0.0, 0.0) and c.predicted.ntk == (chi, 1.0, 0.0)
    for name in ("nngp", "ntk"):
        assert getattr(c.measured, name).ratio == pytest.approx(getattr(c.predicted, name).ratio, rel=tol), name
    lim = limits.limit_correlation_kernels(arch, RG)
    if s.phase == "ordered":
        np.testing.assert_allclose(lim.nngp, s.q_star, rtol=1e-15)
        np.testing.assert_allclose(lim.ntk, s.chi_1 * s.q_star / (1 - s.chi_1), rtol=1e-15)
    else:
        off = RG < 1
        np.testing.assert_allclose(lim.nngp[off], s.c_star * s.q_star, rtol=1e-15)
        assert lim.nngp[-1] == s.q_star and (lim.ntk[-1] == math.inf or s.q_star == 0)
    assert c.nngp[-1] < 1e-3 * max(s.q_star, 1e-3) and c.ntk[-1] < 1e-2 * max(lim.ntk[0], 1e-2)


def test_ffnet_chaotic_diagonal_and_antipodes(x64):
    # inputs placed at q* (in_var = q* - b_var): the diagonal NTK is exactly geometric,
    # T_L = q* chi_1 (chi_1^L - 1) / (chi_1 - 1), and the off-diagonal correlation converges at chi_c alone
    base = rk.FeedForward(1, w_var=3.0, b_var=0.05, activation="erf")
    q = _signal(base).q_star
    arch = rk.FeedForward(60, w_var=3.0, b_var=0.05, activation="erf", in_var=q - 0.05)
    s = _signal(arch)
    # the Gram-level kernel: it carries the diagonal through the same map (the correlation
    # recursion's rho0 = 1 entry leaves it at rate chi_1 from rounding)
    x = np.array([[1.0, 0.0], [0.5, math.sqrt(0.75)]])
    k = rk.kernel(arch, x, all_depths=True)
    L = np.arange(1, 61)
    np.testing.assert_allclose(np.asarray(k.ntk)[:, 0, 0], q * s.chi_1 * (s.chi_1 ** L - 1) / (s.chi_1 - 1), rtol=1e-12)
    gap = np.abs(np.asarray(k.nngp)[:, 0, 1] - s.c_star * q)
    assert gap[40] / gap[39] == pytest.approx(s.chi_c, rel=1e-4)
    # odd phi, b_var = 0: c* = 0 and K(x, -x) = -K(x, x), at every depth and in the limit
    odd = rk.FeedForward(40, w_var=3.0, b_var=0.0, activation="erf")
    so = _signal(odd)
    assert so.c_star == pytest.approx(0.0, abs=1e-12)
    lim = limits.limit_correlation_kernels(odd, np.array([-1.0, 0.3, 1.0]))
    assert lim.nngp.tolist() == [-so.q_star, 0.0, so.q_star] and lim.ntk[0] == -math.inf
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.3, math.sqrt(0.91)]])
    k = rk.kernel(odd, x[:1], x)
    nngp, ntk = np.asarray(k.nngp)[0], np.asarray(k.ntk)[0]
    # rho = -1 repels like rho = 1 (slope chi_1 = 1.37): its rounding grows ~eps chi_1^L (1e-10 at L = 40)
    assert nngp[1] == pytest.approx(-nngp[0], rel=1e-9) and ntk[1] == pytest.approx(-ntk[0], rel=1e-9)
    assert nngp[0] == pytest.approx(so.q_star, rel=1e-9)
    assert abs(nngp[2]) < 2 * 0.3 * so.q_star * so.chi_c ** 40  # c_L -> 0 like chi_c^L (0.0028)


def _erf_derivatives(w_var, q):
    """(A, B) = (C''(1) / 2, C'''(1) / 6) of erf's correlation map at q, from the closed-form
    Vdot = (4 / pi) / sqrt((1 + 2q)^2 - 4 k^2) differentiated in k at k = q (P = 1 + 4q)."""
    p = 1 + 4 * q
    d1 = 16 * q / (math.pi * p ** 1.5)
    d2 = (4 / math.pi) * (4 * p ** -1.5 + 48 * q * q * p ** -2.5)
    return w_var * q * d1 / 2, w_var * q * q * d2 / 6


def test_ffnet_critical_power_laws(x64):
    w = float(rk.critical_line("erf", 0.1))
    arch = rk.FeedForward(10_000, w_var=w, b_var=0.1, activation="erf")
    s = _signal(arch)
    assert s.phase == "critical"
    q = s.q_star
    a, b = _erf_derivatives(w, q)
    r = np.array([-0.5, 0.3, 0.9, 1.0])
    k = rk.correlation_kernels(arch, r, all_depths=True)
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    L = np.arange(1, 10_001)
    # 1 - c_L = 1 / (A L) - (A^2 - B) / A^3 log L / L^2 + O(1 / L^2): 1 / (1 - c_L) = A L +
    # (A^2 - B) / A log L + 1 / (1 - c_1) + O(1), a remainder ~1 / ((1 - c_1) A L) relative
    # (0.4% for c_1 ~ 0.9 at L = 10^4)
    h = 1 - nngp[:, :-1] / nngp[:, -1:]
    pred = 1 / (a * L) - (a * a - b) / a ** 3 * np.log(L) / L ** 2
    np.testing.assert_allclose(h[-1] / pred[-1], 1.0, atol=2 / ((1 - nngp[0, 2] / nngp[0, -1]) * a * L[-1]))
    # Theta / L -> q* on the diagonal, q* / 3 off it; L (Theta / (q* L) - 1/3) is linear in
    # log L with slope (1 - B / A^2) / 3 (-0.7446 here)
    assert ntk[-1, -1] / (q * L[-1]) == pytest.approx(1.0, rel=1e-3)
    sel = np.array([1000, 3000, 10_000])
    scaled = sel[:, None] * (ntk[sel - 1, :-1] / (q * sel[:, None]) - 1 / 3)
    slopes = np.polyfit(np.log(sel), scaled, 1)[0]
    # (measured -0.7451, -0.7437, -0.7283: the pair nearest the diagonal carries the largest
    # O(log L / ((1 - c_1) A L)) correction)
    np.testing.assert_allclose(slopes, (1 - b / a ** 2) / 3, rtol=0.03)
    lim = limits.limit_correlation_kernels(arch, r)
    np.testing.assert_allclose(lim.ntk, [q / 3] * 3 + [q], rtol=1e-15)
    # the module's own moments (Gauss-Hermite on JAX's derivatives) against the closed form
    e = limits.depth_error(arch.with_depth(4000), r)
    assert e.nngp_predicted == pytest.approx(q * (1 / (a * 4000) - (a * a - b) / a ** 3 * math.log(4000) / 4000 ** 2), rel=1e-9)
    assert e.nngp == pytest.approx(e.nngp_predicted, rel=0.01)
    c = limits.convergence(arch, [1000, 2000, 4000, 8000], r)
    assert c.predicted.nngp == (1.0, -1.0, 0.0) and c.measured.nngp.power == pytest.approx(-1.0, abs=0.01)


def test_relu_family_bounded_and_linear(x64):
    # bounded ReLU with a bias: q* = b / (1 - chi), chi = w_var / 2 = 0.8; the NTK converges at
    # sqrt(chi) (chi_l - chi ~ sqrt(1 - c_l), the dual's kink), the NNGP at chi
    relu = rk.FeedForward(1, w_var=1.6, b_var=0.2)
    c = limits.convergence(relu, [40, 60, 80, 100], RG)
    assert c.predicted == ((0.8, 0.0, 0.0), (math.sqrt(0.8), 0.0, 0.0))
    assert c.measured.nngp.ratio == pytest.approx(0.8, rel=1e-5)
    assert c.measured.ntk.ratio == pytest.approx(math.sqrt(0.8), rel=2e-3)
    lim = limits.limit_correlation_kernels(relu, RG)
    np.testing.assert_allclose(lim.nngp, 1.0, rtol=1e-15)   # q* = 0.2 / 0.2
    np.testing.assert_allclose(lim.ntk, 4.0, rtol=1e-15)    # chi q* / (1 - chi)
    # linear (identity) nets: no kink, the NTK's resonant L chi^L
    lin = limits.convergence(rk.FeedForward(1, w_var=0.8, b_var=0.2, activation="identity"), [40, 60, 80, 100], RG)
    assert lin.predicted.ntk == (0.8, 1.0, 0.0) and lin.measured.ntk.ratio == pytest.approx(0.8, rel=2e-3)


def test_relu_family_critical_with_bias(x64):
    # chi = 1, b_var > 0: K / L -> b_var for every pair, Theta / L^2 -> b_var / 2 on the diagonal and
    # 2 b_var / 7 off it (1 - c_L ~ 9 pi^2 / (8 L^2), chi_l ~ 1 - 3 / (2 L))
    arch = rk.FeedForward(10_000, w_var=2.0, b_var=0.2)
    lim = limits.limit_correlation_kernels(arch, RG)
    np.testing.assert_allclose(lim.nngp, 0.2, rtol=1e-15)
    np.testing.assert_allclose(lim.ntk, [0.4 / 7] * 5 + [0.1], rtol=1e-15)
    assert limits.depth_scaling(arch) == (1e4, 1e8)
    # Gram level (at rho0 = 1 the correlation recursion's rounding enters through the dual's
    # sqrt(1 - c) kink: 8e-5 after 10^4 layers)
    k = rk.kernel(arch, np.array([[1.0, 0.0]]), np.array([[0.2, math.sqrt(0.96)], [1.0, 0.0]]), all_depths=True)
    nngp, ntk = np.asarray(k.nngp)[:, 0], np.asarray(k.ntk)[:, 0]
    L = np.arange(1, 10_001)
    h = 1 - nngp[:, 0] / nngp[:, 1]
    assert L[-1] ** 2 * h[-1] == pytest.approx(9 * math.pi ** 2 / 8, rel=5e-3)
    assert ntk[-1, 0] / 1e8 == pytest.approx(0.4 / 7, rel=1e-3)
    # the diagonal exactly (the engine's host diagonal): K_L = q_1 + L b_var, Theta_L = L q_1 + b_var L (L - 1) / 2
    _, diag_nngp, diag_ntk = engine.general_diagonal("ffnet", arch, np.ones(1))
    np.testing.assert_allclose(diag_nngp[:, 0], 1.2 + 0.2 * L, rtol=1e-12)
    np.testing.assert_allclose(diag_ntk[:, 0], 1.2 * L + 0.1 * L * (L - 1), rtol=1e-12)
    e = limits.depth_error(arch.with_depth(1000), RG)
    assert e.nngp == pytest.approx(e.nngp_predicted, rel=1e-9) and e.nngp_predicted == pytest.approx(1.2e-3)


def test_relu_family_growing(x64):
    # chi > 1 with a bias: factors (chi^L, L chi^L), K / chi^L -> D = s + b / (chi - 1) = 5.2;
    # correlations -> 1 like 9 pi^2 / (2 L^2), Theta / (L chi^L) -> D on the diagonal, D / 4 off it
    arch = rk.FeedForward(1, w_var=2.1, b_var=0.2)
    c = limits.convergence(arch, [1000, 2000, 4000], RG)
    assert c.predicted == ((1.0, -2.0, 0.0), (1.0, -1.0, 1.0))
    assert c.measured.nngp.power == pytest.approx(-2.0, abs=0.05)    # -1.965: the bias's O(1/L) share
    assert c.measured.ntk.power == pytest.approx(-1.0, abs=0.15)     # -1.11: log L / L against B / L
    lim = limits.limit_correlation_kernels(arch, RG)
    np.testing.assert_allclose(lim.nngp, 5.2, rtol=1e-14)
    np.testing.assert_allclose(lim.ntk, [1.3] * 5 + [5.2], rtol=1e-14)
    e = limits.depth_error(arch.with_depth(4000), RG)
    assert e.nngp == pytest.approx(e.nngp_predicted, rel=0.05)
    # bias-free leaky ReLU (slope 0.2) below chi = 1: K / chi^L = the chi = 1 net's kernel,
    # 1 - c_L ~ 9 / (2 lam^2 L^2), lam = (a - b)^2 / (pi (a^2 + b^2))
    leaky = rk.FeedForward(800, w_var=1.5, activation=rk.activations.leaky_relu(0.2), in_var=2.0)
    lam = 0.64 / (math.pi * 1.04)
    chi = 1.5 * 0.52
    assert limits.depth_scaling(leaky)[0] == pytest.approx(chi ** 800, rel=1e-12)
    e = limits.depth_error(leaky, RG)
    assert e.nngp_predicted == pytest.approx(2.0 * 9 / (2 * lam ** 2 * 800 ** 2), rel=1e-12)
    assert e.nngp == pytest.approx(e.nngp_predicted, rel=0.1)
    np.testing.assert_allclose(limits.limit_correlation_kernels(leaky, RG).ntk, [0.5] * 5 + [2.0], rtol=1e-14)


def _erf_resnet(depth, gamma):
    return rk.ResNet(depth, gamma=gamma, w_var=1.5, b_var=0.1, activation="erf", in_var=1.3, out_var=0.7)


@pytest.mark.parametrize("gamma", [0.75, 1.0])
def test_general_resnet_depth_one_limit(x64, gamma):
    # K_L -> out_var K_0 + b_var, Theta_L / T -> out_var (V + Vdot Sigma_0), errors ~ T times the
    # first-order terms (relative corrections O(T): 3% at L = 1000 for gamma = 3/4)
    c = limits.convergence(_erf_resnet(1, gamma), [100, 1000, 10_000], RG)
    assert c.predicted.nngp == (1.0, 1 - 2 * gamma, 0.0)
    for name in ("nngp", "ntk"):
        assert getattr(c.measured, name).power == pytest.approx(1 - 2 * gamma, abs=0.01), name
    e = limits.depth_error(_erf_resnet(10_000, gamma), RG)
    T = 10_000 ** (1 - 2 * gamma)
    assert e.nngp == pytest.approx(e.nngp_predicted, rel=2 * T) and e.ntk == pytest.approx(e.ntk_predicted, rel=2 * T)
    # the limit is the depth-1 branch's NTK: a ResNet of one block with a = 1 has Theta = out_var (V + Vdot Sigma_0)
    lim = limits.limit_correlation_kernels(_erf_resnet(1, gamma), RG)
    one = rk.correlation_kernels(rk.ResNet(1, alpha=1.0, w_var=1.5, b_var=0.1, activation="erf", in_var=1.3, out_var=0.7), RG)
    np.testing.assert_allclose(lim.ntk, np.asarray(one.ntk), rtol=1e-13)
    np.testing.assert_allclose(lim.nngp, 0.7 * (1.3 * RG + 0.1) + 0.1, rtol=1e-14)


def test_general_resnet_ode(x64):
    # gamma = 1/2: each block is an Euler step of 1/L of the ODE; L (kernel_L - limit) -> e(1), the
    # Euler error coefficient (e' = J e - J F / 2), up to O(1/L) (0.4% at L = 100, 0.05% at 800)
    c = limits.convergence(_erf_resnet(1, 0.5), [100, 200, 400], RG)
    assert c.measured.nngp.power == pytest.approx(-1.0, abs=0.005) and c.measured.ntk.power == pytest.approx(-1.0, abs=0.005)
    for L, tol in ((100, 0.01), (400, 0.002)):
        e = limits.depth_error(_erf_resnet(L, 0.5), RG)
        assert e.nngp == pytest.approx(e.nngp_predicted, rel=tol) and e.ntk == pytest.approx(e.ntk_predicted, rel=tol)
    # the general right-hand side against the default's (engine.resnet_branch): bias-free ReLU is
    # homogeneous, so in_var = 2, out_var = 3 scales both kernels by 6
    scaled = rk.ResNet(1, gamma=0.5, in_var=2.0, out_var=3.0)
    r = np.array([-0.8, 0.0, 0.5, 0.9, 1.0])
    got, ref = limits.resnet_ode(r, arch=scaled), limits.resnet_ode(r)
    np.testing.assert_allclose(got.nngp, 6 * ref.nngp, rtol=1e-9)
    np.testing.assert_allclose(got.ntk, 6 * ref.ntk, rtol=1e-9)
    np.testing.assert_allclose(limits.limit_correlation_kernels(scaled, r).ntk, got.ntk, rtol=1e-12)


def test_general_limit_kernel_gram_level(x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)) * np.array([[0.5], [1.0], [1.5], [2.0]])
    # unbounded ReLU with a bias: the limit depends on the norms, sqrt(D D') with D = in |x|^2 + b + b / (chi - 1)
    arch = rk.FeedForward(3000, w_var=2.1, b_var=0.2)
    lim = limits.limit_kernel(arch, x)
    d = np.einsum("ij,ij->i", x, x) + 0.2 + 0.2 / 0.05
    np.testing.assert_allclose(lim.nngp, np.sqrt(np.outer(d, d)), rtol=1e-14)
    np.testing.assert_allclose(np.diagonal(lim.ntk), d, rtol=1e-14)
    k = rk.kernel(arch, x)
    fn, ft = limits.depth_scaling(arch)
    np.testing.assert_allclose(np.asarray(k.nngp) / fn, lim.nngp, rtol=2e-4)   # 1 - c ~ 9 pi^2 / (2 L^2) = 5e-6
    np.testing.assert_allclose(np.asarray(k.ntk) / ft, lim.ntk, rtol=0.05)     # (log L) / L
    # x2 given: the same entries; ResNets: the pair's own K_0
    np.testing.assert_allclose(limits.limit_kernel(arch, x, x[:2]).nngp, lim.nngp[:, :2], rtol=1e-14)
    res = _erf_resnet(10_000, 1.0)
    lim = limits.limit_kernel(res, x)
    k = rk.kernel(res, x)
    np.testing.assert_allclose(np.asarray(k.nngp), lim.nngp, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(k.ntk) * 10_000, lim.ntk, rtol=1e-3)
    ode = limits.limit_kernel(_erf_resnet(1, 0.5), x)
    np.testing.assert_allclose(ode.ntk, ode.ntk.T, rtol=1e-10)


def test_rates_and_convergence_of_default_nets(x64):
    assert limits.rates(rk.FeedForward(5)) == ((1.0, -2.0, 0.0), (1.0, -1.0, 1.0))
    assert limits.rates(rk.ResNet(5, gamma=0.75)) == ((1.0, -0.5, 0.0), (1.0, -0.5, 0.0))
    assert limits.rates(rk.ResNet(5, gamma=0.5)) == ((1.0, -1.0, 0.0), (1.0, -1.0, 0.0))
    assert limits.rates(rk.ResNet(5, gamma=0.25)).nngp == (1.0, -1.0, 0.0)
    c = limits.convergence(rk.FeedForward(1), [1000, 2000, 4000], RG)
    assert c.measured.nngp.power == pytest.approx(-2.0, abs=0.03)
    e = limits.depth_error(rk.FeedForward(4000), RG)
    assert c.nngp[-1] == pytest.approx(e.nngp, rel=1e-12) and c.ntk[-1] == pytest.approx(e.ntk, rel=1e-12)


def test_general_limit_errors():
    with pytest.raises(ValueError, match="no depth limit"):
        limits.limit_correlation_kernels(rk.ResNet(4, gamma=0.25, b_var=0.1), 0.5)
    with pytest.raises(ValueError, match="no depth limit"):
        limits.rates(rk.ResNet(4, gamma=0.25, activation="erf"))
    with pytest.raises(ValueError, match="no limit kernel is derived"):   # erf at w_var = pi / 4: q* = 0, chi_1 = 1
        limits.limit_correlation_kernels(rk.FeedForward(4, w_var=math.pi / 4, activation="erf"), 0.5)
    with pytest.raises(ValueError, match="no depth limit.*no finite fixed point"):
        limits.limit_correlation_kernels(rk.FeedForward(4, w_var=3.0, activation="gelu"), 0.5)
    with pytest.raises(TypeError, match="ResNet"):
        limits.resnet_ode(0.5, arch=rk.FeedForward(2))
    with pytest.raises(ValueError, match="depths"):
        limits.convergence(rk.FeedForward(2), [10, 5])
