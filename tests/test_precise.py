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


def _k0k1(rho):
    """reference._k0, reference._k1 on arrays."""
    r = np.clip(rho, -1.0, 1.0)
    k0 = (math.pi - np.arccos(r)) / math.pi
    return k0, np.sqrt(np.maximum(0.0, 1 - r * r)) / math.pi + k0 * r


def _gram64(arch, a, b, trained):
    """tests/reference.py's float64 recursions (ffnet_pair, resnet_pair), the same operations on
    every pair at once (numpy arrays over the pairs instead of a Python loop over them: ~100x
    faster, the loop over pairs was most of this file's time)."""
    # the inputs' products as reference.gram takes them (one dot per pair): between identical rows
    # kxy = kxx exactly, whose rho = 1 a Gram matrix product could round to 1 - ulp (1e-6 of the NTK
    # at depth 1000)
    kxy = np.array([[float(u @ v) for v in b] for u in a]).reshape(len(a), len(b))
    kxx = np.array([float(u @ u) for u in a])[:, None] + 0 * kxy
    kyy = np.array([float(v @ v) for v in b])[None, :] + 0 * kxy
    if isinstance(arch, rk.FeedForward):
        theta, s = np.zeros_like(kxy), np.sqrt(kxx * kyy)
        for _ in range(arch.depth):
            k0, k1 = _k0k1(kxy / s)
            theta = (theta + kxy) * k0
            kxy = s * k1
        return kxy, theta + (kxy if trained == "all" else 0.0)
    k_in, theta, back = kxy, np.zeros_like(kxy), np.ones_like(kxy)
    dx, dy = kxx, kyy
    for alpha in arch.branch_scales:
        a2, s = alpha * alpha, np.sqrt(dx * dy)
        rho = kxy / s
        c0, c1 = _k0k1(rho)
        theta = theta * (1 + a2 * c0) + a2 * s * (rho * c0 + c1)
        back = back * (1 + a2 * c0)
        kxy = kxy + a2 * s * c1
        dx, dy = dx * (1 + a2), dy * (1 + a2)
    return kxy, theta + (kxy + back * k_in if trained == "all" else 0.0)


def _reference(arch, x1, x2, trained="hidden"):
    a, b = x1.astype(np.float64), x2.astype(np.float64)
    got = _gram64(arch, a, b, trained)
    # the vectorized recursion is tests/reference.py's, to rounding: checked on the first rows
    # against each other (identical pairs and unrelated ones), not at _pairs' pairs 1e-5 rad from
    # parallel (0, 1) and antipodal (2, 3), where either float64 recursion amplifies the ulp that
    # numpy's arccos and math.acos differ by (1e-9 at depth 1000; both are off by up to 3e-5 there,
    # which is why test_deep_ffnet_float32 takes those entries from mpmath). Elsewhere that ulp per
    # layer adds up to 8e-12 of the largest value at depth 1000, 1.1e-10 at depth 10,000 (where
    # every correlation nears 1): within 1e-8 of the largest value (the bounds checked with this
    # reference are >= 1e-7; a transcription error would be O(1)).
    m = min(4, len(a), len(b))
    if isinstance(arch, rk.FeedForward):
        want = gram(ffnet_pair, a[:m], b[:m], arch.depth, trained)
    else:
        want = gram(resnet_pair, a[:m], b[:m], list(arch.branch_scales), trained)
    conditioned = np.ones((4, 4), bool)
    if m == 4:   # _pairs() rows (test_deep_resnet_antipodal's two rows are exactly antipodal: kept)
        conditioned[[0, 1, 2, 3], [1, 0, 3, 2]] = False
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[:m, :m][conditioned[:m, :m]], w[conditioned[:m, :m]], rtol=0,
                                   atol=1e-8 * np.abs(w).max())
    return got


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
    k = rk.kernel(arch, x)
    assert k.ntk.dtype == jnp.float32   # the table's path at n = 144, the float64 recursion's at 28
    k = [np.asarray(v, np.float64)[:rows] for v in k]
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
