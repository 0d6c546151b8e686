"""float32 kernels end to end: the documented bound against an independent float64 reference,
at the ill-conditioned angles (nearly parallel and antipodal inputs), for every method "auto"
chooses (tables with float64 rows, the float64 recursion where no table exists)."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from reference import ffnet_pair, ffnet_pair_mp, gram, resnet_pair
from reskernel.core import precise, tabulated
from reskernel.core.tiles import correlations
from reskernel.precision import enable_x64

ANGLES = (1e-5, 1e-4, 9e-4, 3e-3, 1e-2, 0.05, 0.3)


def _pairs(d=64, extra=100, seed=0):
    """Rows: for each angle a pair at that angle and a pair at pi minus it, then random rows;
    float32 (the reference uses the same float32 values)."""
    rng = np.random.default_rng(seed)
    rows = []
    for theta in ANGLES:
        for sign in (1.0, -1.0):
            u, v = rng.normal(size=(2, d))
            u /= np.linalg.norm(u)
            v -= (v @ u) * u
            v /= np.linalg.norm(v)
            rows += [u * rng.uniform(0.5, 2.0), sign * (math.cos(theta) * u + math.sin(theta) * v) * rng.uniform(0.5, 2)]
    rows += list(rng.normal(size=(extra, d)))
    return np.asarray(rows).astype(np.float32)


def _reference(arch, x1, x2, trained="hidden"):
    a, b = x1.astype(np.float64), x2.astype(np.float64)
    if isinstance(arch, rk.FeedForward):
        return gram(ffnet_pair, a, b, arch.depth, trained)
    return gram(resnet_pair, a, b, list(arch.branch_scales), trained)


def _rounding(x1, x2):
    """The largest float32 rounding of the input correlations (delta of reskernel.core.precise)."""
    r32 = np.asarray(correlations(x1, x2)[0], np.float64)
    with enable_x64():
        r64 = np.asarray(correlations(jnp.asarray(x1, jnp.float64), jnp.asarray(x2, jnp.float64))[0])
    return float(np.abs(r32 - r64).max())


@pytest.mark.parametrize("arch", [rk.FeedForward(10), rk.FeedForward(100), rk.ResNet(100, gamma=1.0),
                                  rk.ResNet(40, gamma=0.5)])
def test_float32_within_the_end_to_end_bound(arch):
    # the old float32 path snapped correlations within 4 ulp of +-1 and was off by up to 1.3e-2
    # of the largest value (FFNet depth 100 at 9e-4 rad); the bound: TOL/4 of the table, the
    # amplified rounding of the input correlation, the output's rounding
    x = _pairs()
    y = x[:60]
    k = rk.kernel(arch, x, y)
    bound = tabulated.TOL / 4 + precise.AMPLIFICATION * _rounding(x, y) + 2 * np.finfo(np.float32).eps
    for got, ref in zip(k, _reference(arch, x, y)):
        err = np.abs(np.asarray(got, np.float64) - ref).max() / np.abs(ref).max()
        assert err <= bound, (err, bound)


@pytest.mark.parametrize("depth, n", [(1000, 144), (10_000, 28)])
def test_deep_ffnet_float32(depth, n):
    # The old float32 path ran the float32 recursion for a 1000-layer FFNet: 445.3 for the NTK of a
    # pair 6e-3 rad apart, against 552.5 in float64. Now: a table at n = 144 (the float64 recursion
    # in u = 1 - rho is accurate enough near theta = 0 to build one), and the recursion in float64
    # for 10,000 layers (no table of <= MAX_NODES nodes; here also a tiny kernel). Reference: the
    # ill-conditioned pairs in mpmath (a float64 recursion in rho loses 3e-5 of the largest value
    # at 1e-5 rad and depth 1000), the rest in float64.
    arch = rk.FeedForward(depth)
    x = _pairs(d=16, extra=0)
    x = np.concatenate([x, np.random.default_rng(1).normal(size=(n - len(x), 16)).astype(np.float32)])
    rows = 2 * len(ANGLES) * 2          # the pairs' rows against every row (the reference is slow)
    k = [np.asarray(v, np.float64)[:rows] for v in rk.kernel(arch, x)]
    assert rk.kernel(arch, x[:4]).ntk.dtype == jnp.float32
    ref = [np.array(v) for v in _reference(arch, x[:rows], x)]
    for i in range(0, 2 * len(ANGLES) * 2, 2):
        exact = ffnet_pair_mp(x[i], x[i + 1], depth)
        for r, e in zip(ref, exact):
            r[i, i + 1] = r[i + 1, i] = e
    bound = tabulated.TOL / 4 + precise.AMPLIFICATION * _rounding(x, x) + 2e-7
    for got, want in zip(k, ref):   # relative to the largest value of these rows (the diagonal's)
        assert np.abs(got - want).max() <= bound * np.abs(want).max()


def test_deep_resnet_antipodal_pair_keeps_its_sign():
    # 10,000 blocks, gamma = 1/2: the old float32 recursion gave NNGP correlation -1.0001 and NTK 0
    # for antipodal inputs
    arch = rk.ResNet(10_000, gamma=0.5)
    x = np.random.default_rng(2).normal(size=(130, 8)).astype(np.float32)
    x[1] = -x[0]
    k = rk.kernel(arch, x)
    nngp, ntk = (np.asarray(v, np.float64) for v in k)
    rho = nngp / np.sqrt(np.outer(np.diag(nngp), np.diag(nngp)))
    assert rho.min() >= -1.0
    ref = _reference(arch, x[:2], x[:2])
    np.testing.assert_allclose(nngp[:2, :2], ref[0], rtol=0, atol=1e-6 * np.abs(ref[0]).max())
    np.testing.assert_allclose(ntk[:2, :2], ref[1], rtol=0, atol=1e-6 * np.abs(ref[1]).max())


@pytest.mark.parametrize("arch", [rk.FeedForward(100), rk.ResNet(100, gamma=1.0)])
def test_float32_kernels_positive_semidefinite(arch):
    # the float32 recursion's PSD defect reached -4.9e-6 of the largest eigenvalue
    x = _pairs(d=32, extra=150, seed=3)
    for k in rk.kernel(arch, x):
        eig = np.linalg.eigvalsh(np.asarray(k, np.float64))
        assert eig.min() >= -1e-6 * eig.max()


def test_band_covers_the_ill_conditioned_angles():
    # the band's thresholds bracket theta = 0 and pi; inside them |dK/drho| can exceed
    # AMPLIFICATION max|K|, outside it does not (checked against finite differences in float64)
    arch = rk.FeedForward(100)
    cubics = tabulated.angle_table("ffnet", tuple(map(tuple, rk.core.engine.schedule(arch))), "hidden")
    hi, lo = precise.band(cubics)
    assert -1 < lo < 0 < hi < 1
    with enable_x64():
        rho = np.cos(np.linspace(1e-3, math.pi - 1e-3, 4001))
        k = np.asarray(rk.correlation_kernels(arch, jnp.asarray(rho)).ntk)
    slope = np.abs(np.gradient(k, rho)) / np.abs(k).max()
    outside = (rho < hi) & (rho > lo)
    assert slope[outside].max() <= precise.AMPLIFICATION
    assert slope[~outside].max() > precise.AMPLIFICATION


def test_rows_in_the_band_are_refined(monkeypatch):
    # a row holding a nearly parallel pair is recomputed in float64; no row of random inputs is
    x = np.random.default_rng(4).normal(size=(300, 64)).astype(np.float32)   # n = 300: a table
    seen = []
    original = precise._rows64

    def spy(a, *args):
        seen.append(a.shape[0])
        return original(a, *args)

    monkeypatch.setattr(precise, "_rows64", spy)
    rk.kernel(rk.FeedForward(100), x)
    assert seen == []
    x[7] = x[3] + 1e-4 * np.random.default_rng(5).normal(size=64).astype(np.float32)
    rk.kernel(rk.FeedForward(100), x)
    assert seen == [2]   # rows 3 and 7


@pytest.mark.parametrize("s1, s2", [(1e-15, 1e-15), (1e15, 1e15), (2.0 ** -100, 2.0 ** 60), (2.0 ** 80, 2.0 ** -70)])
def test_homogeneous_in_the_inputs_norms(s1, s2):
    # inputs far from norm 1 are scaled by powers of two before the Gram product and the kernels
    # scaled back: whenever the kernel itself is representable, nothing underflows or overflows
    x = _pairs(d=16, extra=120, seed=6)
    y = x[::-1].copy()
    for arch in (rk.ResNet(10, gamma=1.0), rk.FeedForward(20)):
        k = rk.kernel(arch, x, y)
        ks = rk.kernel(arch, x * np.float32(s1), y * np.float32(s2))
        for a, b in zip(ks, k):
            assert np.isfinite(np.asarray(a)).all()
            np.testing.assert_allclose(np.asarray(a, np.float64) / (s1 * s2), np.asarray(b), rtol=1e-5,
                                       atol=1e-6 * np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("scale, match", [(1e-30, "smallest normal"), (1e25, "norms reach")])
def test_out_of_range_inputs_say_why(scale, match):
    x = np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32) * np.float32(scale)
    with pytest.raises(ValueError, match=match):
        rk.kernel(rk.FeedForward(3), x)
