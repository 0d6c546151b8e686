"""Kernel regression, NTK gradient-descent predictions and per-depth kernels."""
import re
import warnings

import numpy as np
import pytest

import reskernel as rk
from reskernel.inference.regression import depth_kernels, gd_predictions, kernel_regression, scores
from conftest import assert_close


def _problem(n=12, m=5, d=6, seed=0, batch=()):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + m, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    k = np.exp(-np.sum((x[:, None] - x[None]) ** 2, -1) / 0.7)       # Gaussian kernel, well conditioned
    scales = np.arange(1, 1 + int(np.prod(batch, dtype=int))).reshape(batch + (1, 1)) if batch else 1.0
    k = k * scales
    y = np.sign(rng.normal(size=n))
    yt = np.sign(rng.normal(size=m))
    return k[..., :n, :n], k[..., n:, :n], y, yt


def test_krr_matches_numpy_solve_batched():
    k_tr, k_te, y, yt = _problem(batch=(3,))
    ridge = 1e-3
    res = kernel_regression(k_tr, k_te, y, yt, ridge=ridge)
    assert res.predictions.shape == (3, 5) and res.accuracy.shape == (3,)
    for b in range(3):
        r = ridge * np.trace(k_tr[b]) / 12
        want = k_te[b] @ np.linalg.solve(k_tr[b] + r * np.eye(12), y)
        assert_close(res.predictions[b], want, rtol=1e-10)
        assert res.accuracy[b] == np.mean(np.sign(want) == yt)
        assert_close(res.mse[b], np.mean((want - yt) ** 2), rtol=1e-10)
    # float32 kernels are solved in float64 too
    r32 = kernel_regression(k_tr.astype(np.float32), k_te.astype(np.float32), y, ridge=ridge)
    assert r32.predictions.dtype == np.float64 and r32.accuracy is None


def test_ridge_zero_singular_kernel_no_nan():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(10, 3))
    k = f @ f.T                                   # rank 3: singular
    with pytest.warns(RuntimeWarning, match="jitter"):
        res = kernel_regression(k, k[:4], np.sign(f[:, 0]), ridge=0.0)
    assert np.isfinite(res.predictions).all()
    # regular kernel: no warning, exact interpolation at the training points
    k_tr, _, y, _ = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = kernel_regression(k_tr, k_tr, y, ridge=0.0)
    assert_close(res.predictions, y, rtol=0, atol=1e-8)


def test_indefinite_kernel_gets_jitter_and_reports_ridge():
    # An eigenvalue -1e-9 x mean diagonal (float32-like rounding) defeats ridge 1e-10: the
    # solve is redone with a larger ridge, reported in the warning; check it against numpy.
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    lam = np.concatenate([np.linspace(1.0, 0.1, 7), [0.0]])
    mean_diag = lam.sum() / 8
    lam[-1] = -1e-9 * mean_diag
    k = (q * lam) @ q.T
    k = 0.5 * (k + k.T)
    y = np.sign(rng.normal(size=8))
    good = np.stack([k + 1e-3 * np.eye(8), k])             # batch: only the second needs jitter
    with pytest.warns(RuntimeWarning, match="1 case") as rec:
        res = kernel_regression(good, good[:, :3], y, ridge=1e-10)
    used = float(re.search(r"at most ([0-9.e+-]+)", str(rec[0].message)).group(1))
    assert 1e-9 < used < 1e-7
    want = k[:3] @ np.linalg.solve(k + used * mean_diag * np.eye(8), y)
    assert_close(res.predictions[1], want, rtol=1e-4)       # the warning prints 6 digits of the ridge
    want0 = good[0, :3] @ np.linalg.solve(good[0] + 1e-10 * np.trace(good[0]) / 8 * np.eye(8), y)
    assert_close(res.predictions[0], want0, rtol=1e-10)


def test_gd_limits_and_discrete_steps():
    k_tr, k_te, y, _ = _problem()
    krr = kernel_regression(k_tr, k_te, y, ridge=0.0).predictions
    p = gd_predictions(k_tr, k_te, y, [0.0, 1e9, np.inf])
    assert_close(p[0], np.zeros(5), atol=0)
    assert_close(p[1], krr, rtol=1e-7, atol=1e-9)
    assert_close(p[2], krr, rtol=1e-7, atol=1e-9)
    f0_tr, f0_te = np.linspace(-1, 1, 12), np.linspace(0, 1, 5)
    p0 = gd_predictions(k_tr, k_te, y, 0.0, f0_train=f0_tr, f0_test=f0_te)
    assert_close(p0, f0_te, rtol=1e-12)
    # discrete gradient descent: iterate the linear model's updates independently
    lr, steps = 0.5 / np.linalg.eigvalsh(k_tr)[-1], 37
    coef = np.zeros(12)                              # f = K coef (kernel regime)
    for _ in range(steps):
        coef -= lr * (k_tr @ coef - y)
    want = k_te @ coef
    assert_close(gd_predictions(k_tr, k_te, y, steps, lr=lr), want, rtol=1e-9)
    # small steps approach the gradient flow at t = lr * steps
    flow = gd_predictions(k_tr, k_te, y, 2.0)
    disc = gd_predictions(k_tr, k_te, y, 20000, lr=1e-4)
    assert_close(disc, flow, rtol=1e-3)


def test_scores_and_errors():
    acc, mse = scores(np.array([0.5, -2.0, 0.0]), np.array([1.0, 1.0, -1.0]))
    assert acc == pytest.approx(1 / 3) and mse == pytest.approx((0.25 + 9 + 1) / 3)
    k_tr, k_te, y, _ = _problem()
    with pytest.raises(ValueError, match="ridge"):
        kernel_regression(k_tr, k_te, y, ridge=-1.0)
    with pytest.raises(ValueError, match="k_test_train"):
        kernel_regression(k_tr, k_te[:, :3], y)
    with pytest.raises(ValueError, match="y_train"):
        kernel_regression(k_tr, k_te, y[:3])
    with pytest.raises(ValueError, match="times"):
        gd_predictions(k_tr, k_te, y, -1.0)
    with pytest.raises(ValueError, match="non-finite"):
        kernel_regression(np.full_like(k_tr, np.nan), k_te, y)


@pytest.mark.parametrize("family, trained", [(rk.FeedForward(1), "hidden"), (rk.FeedForward(1), "all"),
                                             (rk.ResNet(1, gamma=0.5), "all"), (rk.ResNet(1, gamma=1.0), "hidden"),
                                             (rk.ResNet(1, alpha=0.3), "hidden")],
                         ids=["ffnet", "ffnet-all", "resnet0.5-all", "resnet1", "alpha"])
def test_depth_kernels_match_kernel_per_depth(x64, family, trained):
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(6, 4)), 2.0 * rng.normal(size=(3, 4))
    depths = [7, 1, 7]                            # any order, duplicates kept
    k = depth_kernels(family, x1, x2, depths, trained=trained)
    assert k.ntk.shape == (3, 6, 3)
    for i, l in enumerate(depths):
        ref = rk.kernel(family.with_depth(l), x1, x2, trained=trained)
        assert_close(k.ntk[i], ref.ntk, rtol=1e-12)
        assert_close(k.nngp[i], ref.nngp, rtol=1e-12)
    sym = depth_kernels(family, x1, None, [7], trained=trained)
    assert_close(sym.ntk[0], rk.kernel(family.with_depth(7), x1, trained=trained).ntk, rtol=1e-12)


def test_resnet_depth_kernels_differ_from_truncated():
    # own alpha = l^-gamma per depth is not the truncated net of all_depths=True
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    own = depth_kernels(rk.ResNet(1, gamma=1.0), x, None, [5]).ntk[0]
    trunc = rk.kernel(rk.ResNet(10, gamma=1.0), x, all_depths=True).ntk[4]
    assert np.abs(np.asarray(own) - np.asarray(trunc)).max() > 1e-3 * np.abs(np.asarray(own)).max()


def test_depth_kernels_errors():
    x = np.ones((2, 3))
    for bad in ([], [0, 3], [1.5], "1,2"):
        with pytest.raises((ValueError, TypeError)):
            depth_kernels(rk.FeedForward(1), x, None, bad)
    with pytest.raises(ValueError, match="scales"):
        depth_kernels(rk.ResNet(2, scales=(0.1, 0.2)), x, None, [1])
