"""GP (NNGP) posterior, marginal likelihood, kernel ridge regression and the factorizations
(reskernel.inference), against float64 NumPy/SciPy written here."""
import doctest
import re
import warnings

import jax
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import reskernel as rk
from reskernel.inference import (CholeskyFactor, cholesky_factor, eigh_factor, gp_posterior, kernel_ridge,
                                 log_marginal_likelihood, optimal_amplitude)
from reskernel.inference import _factor, gp
from reskernel.inference.regression import kernel_regression
from conftest import assert_close


def _kernels(n=9, m=4, d=5, seed=0, batch=()):
    """Gaussian-kernel blocks (train, test-train, test-test) of n + m points, a different
    bandwidth and scale per batch element; and targets (n, 3)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + m, d)) / np.sqrt(d)
    sq = np.sum((x[:, None] - x[None]) ** 2, -1)
    size = int(np.prod(batch, dtype=int))
    widths = np.linspace(0.5, 1.5, size).reshape(batch + (1, 1)) if batch else 1.0
    scales = np.linspace(1.0, 3.0, size).reshape(batch + (1, 1)) if batch else 1.0
    k = scales * np.exp(-sq / widths)
    return k[..., :n, :n], k[..., n:, :n], k[..., n:, n:], rng.normal(size=(n, 3))


def _reference(k, kxt, kxx, y, noise):
    a = k + noise * np.eye(len(k))
    return kxt @ np.linalg.solve(a, y), kxx - kxt @ np.linalg.solve(a, kxt.T)


def test_posterior_against_numpy_batched_and_per_column():
    k, kxt, kxx, y = _kernels(batch=(2, 3))
    noise = np.array([[1e-3], [0.1]]) * np.ones((2, 3))              # one noise per kernel
    f = cholesky_factor(k, noise=noise)
    assert f.lower.shape == (2, 3, 9, 9) and f.jitter.shape == (2, 3) and (f.jitter == 0).all()
    full = gp_posterior(f, y, kxt, kxx)
    marg = gp_posterior(f, y, kxt, np.diagonal(kxx, axis1=-2, axis2=-1))
    assert full.mean.shape == (2, 3, 4, 3) and full.covariance.shape == (2, 3, 4, 4)
    assert marg.covariance.shape == (2, 3, 4) and full.mean.dtype == np.float64
    for i in np.ndindex(2, 3):
        mean, cov = _reference(k[i], kxt[i], kxx[i], y, noise[i])
        assert_close(full.mean[i], mean, rtol=1e-10)
        assert_close(full.covariance[i], cov, rtol=1e-9, atol=1e-12)
        assert_close(marg.covariance[i], np.diagonal(cov), rtol=1e-9, atol=1e-12)
        # batched equals looped: the same kernel factorized on its own
        alone = gp_posterior(cholesky_factor(k[i], noise=noise[i]), y, kxt[i], kxx[i])
        assert_close(full.mean[i], alone.mean, rtol=1e-12)
        assert_close(full.covariance[i], alone.covariance, rtol=1e-12, atol=1e-15)
    # multi-output = each column alone (1-d targets give (..., m)); mean only = the mean
    for j in range(3):
        col = gp_posterior(f, y[:, j], kxt)
        assert col.covariance is None and col.mean.shape == (2, 3, 4)
        assert_close(col.mean, full.mean[..., j], rtol=1e-12)
    # the factor's condition estimate is the 1-norm condition number within LAPACK's factor
    a = k[1, 2] + noise[1, 2] * np.eye(9)
    assert 0.3 < f.cond[1, 2] / np.linalg.cond(a, 1) <= 1.0 + 1e-9


def test_interpolates_without_noise_and_prior_far_away():
    k, kxt, kxx, y = _kernels()
    f = cholesky_factor(k)
    at_train = gp_posterior(f, y, k, k)
    assert_close(at_train.mean, y, rtol=0, atol=1e-8)
    assert np.abs(at_train.covariance).max() < 1e-8
    far = gp_posterior(f, y, np.zeros((2, 9)), np.ones(2))                 # uncorrelated test points
    assert_close(far.mean, np.zeros((2, 3)), atol=0)
    assert_close(far.covariance, np.ones(2), rtol=0)


def test_float32_kernels_solved_in_float64():
    k, kxt, kxx, y = _kernels()
    k32, kxt32 = k.astype(np.float32), kxt.astype(np.float32)
    post = gp_posterior(cholesky_factor(k32, noise=1e-6), y, kxt32)
    assert post.mean.dtype == np.float64
    want, _ = _reference(k32.astype(np.float64), kxt32.astype(np.float64), kxx, y, 1e-6)
    assert_close(post.mean, want, rtol=1e-9)


def test_log_marginal_likelihood_against_scipy():
    k, _, _, y = _kernels(batch=(3,))
    noise = 0.05
    f = cholesky_factor(k, noise=noise)

    def direct(b, s):
        cov = s * (k[b] + noise * np.eye(9))
        return sum(scipy.stats.multivariate_normal(np.zeros(9), cov).logpdf(y[:, j]) for j in range(3))

    lml = log_marginal_likelihood(f, y)
    assert lml.shape == (3,)
    for b in range(3):
        assert_close(lml[b], direct(b, 1.0), rtol=1e-11)
    scaled = log_marginal_likelihood(f, y, amplitude=np.array([0.5, 2.0, 7.0]))
    for b, s in enumerate([0.5, 2.0, 7.0]):
        assert_close(scaled[b], direct(b, s), rtol=1e-11)
    # the closed-form amplitude is the maximizer found by a numerical search on log s
    best = optimal_amplitude(f, y)
    for b in range(3):
        res = scipy.optimize.minimize_scalar(lambda u: -direct(b, np.exp(u)), bounds=(-8, 8), method="bounded",
                                             options={"xatol": 1e-10})
        assert_close(best[b], np.exp(res.x), rtol=1e-6)
        assert_close(log_marginal_likelihood(f, y, amplitude=best[b])[b], -res.fun, rtol=1e-10)
    # one column: its own likelihood; columns add
    one = log_marginal_likelihood(f, y[:, 0])
    assert_close(one[0], scipy.stats.multivariate_normal(np.zeros(9), k[0] + noise * np.eye(9)).logpdf(y[:, 0]),
                 rtol=1e-11)


def test_kernel_ridge_many_outputs_and_regression_shares_it():
    k, kxt, _, y = _kernels(batch=(2,))
    ridge = 1e-3
    res = kernel_ridge(k, y, kxt, ridge=ridge)
    assert res.predictions.shape == (2, 4, 3) and isinstance(res.factor, CholeskyFactor)
    for b in range(2):
        r = ridge * np.trace(k[b]) / 9
        assert_close(res.factor.noise[b], r, rtol=1e-14)
        assert_close(res.predictions[b], kxt[b] @ np.linalg.solve(k[b] + r * np.eye(9), y), rtol=1e-10)
    for j in range(3):   # the single-label regression of the depth study is one column of it
        assert_close(kernel_regression(k, kxt, y[:, j], ridge=ridge).predictions, res.predictions[..., j],
                     rtol=1e-12)
    # the factor serves another test batch
    more = gp_posterior(res.factor, y, k).mean
    assert_close(more[1], k[1] @ np.linalg.solve(k[1] + res.factor.noise[1] * np.eye(9), y), rtol=1e-10)


def test_functions_trace_under_jit(x64):
    k, kxt, kxx, y = _kernels(batch=(2,))
    f = cholesky_factor(k, noise=1e-2)
    eager = gp_posterior(f, y, kxt, kxx)
    jitted = jax.jit(gp_posterior)(f, y, kxt, kxx)
    assert jitted.mean.dtype == np.float64
    assert_close(jitted.mean, eager.mean, rtol=1e-12)
    assert_close(jitted.covariance, eager.covariance, rtol=1e-12, atol=1e-15)
    marg = jax.jit(gp_posterior)(f, y, kxt, np.diagonal(kxx, axis1=-2, axis2=-1))
    assert_close(marg.covariance, np.diagonal(eager.covariance, axis1=-2, axis2=-1), rtol=1e-12, atol=1e-15)
    assert_close(jax.jit(log_marginal_likelihood)(f, y), log_marginal_likelihood(f, y), rtol=1e-12)
    assert_close(jax.jit(optimal_amplitude)(f, y), optimal_amplitude(f, y), rtol=1e-12)
    # one factor, many test batches under one compiled function
    batches = jax.jit(jax.vmap(lambda kt: gp_posterior(f, y, kt).mean, in_axes=1, out_axes=1))(kxt[:, :, None])
    assert_close(batches[:, :, 0], eager.mean, rtol=1e-12)


def _indefinite(seed=5, n=8, lowest=-1e-9):
    """A kernel with eigenvalue `lowest` x mean diagonal (float32-like rounding)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.concatenate([np.linspace(1.0, 0.1, n - 1), [0.0]])
    lam[-1] = lowest * lam.sum() / n
    k = (q * lam) @ q.T
    return 0.5 * (k + k.T), rng.normal(size=(n, 2))


def test_indefinite_kernel_reports_jitter():
    k, y = _indefinite()
    good = np.stack([k + 1e-3 * np.eye(8), k])                    # only the second needs jitter
    with pytest.warns(RuntimeWarning, match=r"1 of 2 case\(s\): added jitter up to ([0-9.e+-]+)") as rec:
        f = cholesky_factor(good)
    rel = float(re.search(r"jitter up to ([0-9.e+-]+)", str(rec[0].message)).group(1))
    scale = np.trace(k) / 8
    assert f.jitter[0] == 0 and 1e-9 < f.jitter[1] / scale < 1e-7
    assert_close(f.jitter[1] / scale, rel, rtol=1e-2)
    post = gp_posterior(f, y, good[:, :3])
    assert_close(post.mean[1], k[:3] @ np.linalg.solve(k + f.jitter[1] * np.eye(8), y), rtol=1e-6)
    assert np.isfinite(post.mean).all()
    # the eigendecomposition reports its own (its eigenvalues are then above n eps x the largest)
    with pytest.warns(RuntimeWarning, match="jitter"):
        e = eigh_factor(good)
    assert e.jitter[0] == 0 and e.jitter[1] > 0
    assert (e.values[:, 0] > 8 * np.finfo(float).eps * e.values[:, -1]).all()
    assert_close(e.values[1], np.linalg.eigvalsh(k) + e.jitter[1], rtol=1e-9, atol=1e-15)
    # beyond max_jitter: an error, not NaN
    with pytest.raises(np.linalg.LinAlgError, match="max_jitter"):
        cholesky_factor(_indefinite(lowest=-1e-3)[0])
    # regular kernel: no warning at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cholesky_factor(good[0]), eigh_factor(good[0])


def test_ill_conditioned_kernel_warns():
    k, _ = _indefinite(lowest=1e-13)
    with pytest.warns(RuntimeWarning, match="ill-conditioned"):
        f = cholesky_factor(k)
    assert f.cond > 1e12 and (f.jitter == 0)
    with warnings.catch_warnings():   # noise cures it
        warnings.simplefilter("error")
        assert cholesky_factor(k, noise=1e-6).cond < 1e8


def test_bad_inputs_raise_clear_errors():
    k, kxt, kxx, y = _kernels()
    f = cholesky_factor(k)
    bad_k = k.copy()
    bad_k[0, 1] = np.nan
    for call, err, match in [
        (lambda: cholesky_factor(bad_k), ValueError, "k_train has non-finite"),
        (lambda: cholesky_factor(k[:, :5]), ValueError, r"k_train must have shape \(\.\.\., n, n\)"),
        (lambda: cholesky_factor(k + np.triu(np.ones_like(k), 1)), ValueError, "not symmetric"),
        (lambda: cholesky_factor(k, noise=-1e-3), ValueError, "noise"),
        (lambda: cholesky_factor(k, noise=np.nan), ValueError, "noise"),
        (lambda: cholesky_factor(k, noise=[0.1, 0.2]), ValueError, "broadcast"),
        (lambda: cholesky_factor(k, max_jitter=-1), ValueError, "max_jitter"),
        (lambda: cholesky_factor(-k), ValueError, "diagonal must be positive"),
        (lambda: cholesky_factor("k"), TypeError, "k_train"),
        (lambda: gp_posterior(k, y, kxt), TypeError, "CholeskyFactor"),
        (lambda: gp_posterior(eigh_factor(k), y, kxt), TypeError, "CholeskyFactor"),
        (lambda: gp_posterior(f, y[:5], kxt), ValueError, "y_train must have shape"),
        (lambda: gp_posterior(f, y[None], kxt), ValueError, "y_train must have shape"),
        (lambda: gp_posterior(f, y * np.nan, kxt), ValueError, "y_train has non-finite"),
        (lambda: gp_posterior(f, y, kxt[:, :4]), ValueError, "k_test_train must have shape"),
        (lambda: gp_posterior(f, y, kxt[None]), ValueError, "k_test_train must have shape"),
        (lambda: gp_posterior(f, y, kxt, kxx[:3]), ValueError, "k_test_test must have shape"),
        (lambda: log_marginal_likelihood(f, y, amplitude=0.0), ValueError, "amplitude"),
        (lambda: optimal_amplitude(f, np.zeros((9, 2))), ValueError, "all zero"),
        (lambda: kernel_ridge(k, y, kxt, ridge=-1.0), ValueError, "ridge"),
    ]:
        with pytest.raises(err, match=match):
            call()
    with pytest.raises(TypeError, match="traced"):
        jax.jit(cholesky_factor)(k)


def test_docstring_examples():
    for module in (_factor, gp):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
    assert {"cholesky_factor", "gp_posterior", "log_marginal_likelihood", "predict"} <= set(rk.__all__)
    assert rk.gp_posterior is gp_posterior
