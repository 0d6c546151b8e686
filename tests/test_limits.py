"""Depth limits: rates derived in reskernel/limits.py checked against the depth recursion
(rk.correlation_kernels, float64), and the gamma = 1/2 ODE against the recursion at large depth."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from reskernel import limits

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
