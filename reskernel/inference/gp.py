"""Exact Gaussian-process inference with a kernel (the NNGP: the posterior of an infinitely wide
Bayesian network) for many outputs, its marginal likelihood, and kernel ridge regression.

Model: the k columns y_j of the targets Y (n, k) are independent, y_j ~ N(0, s (K + noise I)),
s the amplitude (kernel scale, 1 unless fitted). With A = K + (noise + jitter) I factorized once
(cholesky_factor), test kernels K_*x (m, n) and K_** (m, m):
  mean        K_*x A^-1 Y                      (..., m, k)
  covariance  K_** - K_*x A^-1 K_x*            (..., m, m), shared by the k outputs: the latent
              f(x_*) (add noise I for a new noisy observation); s times it for amplitude s.
  log p(Y)    sum_j -y_j^T (sA)^-1 y_j / 2 - log|sA| / 2 - n log(2 pi) / 2
Kernel ridge regression is the mean with noise = ridge x mean diagonal of K.
neural-tangents: `nt.predict.gp_inference(k_train_train, y_train, diag_reg)` with
diag_reg_absolute_scale=True has noise = diag_reg; its default relative diag_reg is `ridge` here.
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from . import _factor
from ._factor import CholeskyFactor

__all__ = ["Gaussian", "RidgeRegression", "gp_posterior", "log_marginal_likelihood", "optimal_amplitude",
           "kernel_ridge"]


class Gaussian(NamedTuple):
    """Mean and covariance of outputs at test points; float64 NumPy arrays (called outside jit).

    Attributes:
      mean: (..., m, k), or (..., m) for 1-d targets (n,); an NTK ensemble adds a times axis
        before m: (..., T, m[, k]).
      covariance: (..., m, m), or the marginal variances (..., m) when only the test diagonal
        was given (None when no test-test kernel was): the same for every output column.
    """

    mean: np.ndarray
    covariance: Optional[np.ndarray]


class RidgeRegression(NamedTuple):
    """Kernel ridge regression: predictions (..., m, k) or (..., m), and the factor it solved
    with (its noise = ridge x mean diagonal, the jitter rounding needed, the condition number),
    reusable for more test points: gp_posterior(factor, y_train, k_new_test_train).mean."""

    predictions: np.ndarray
    factor: CholeskyFactor


def _tri(lower, b, trans=0):
    return jax.scipy.linalg.solve_triangular(lower, b, lower=True, trans=trans)


def _batched(y, lower):
    return jnp.broadcast_to(y, lower.shape[:-2] + y.shape)


@jax.jit
def _mean(lower, y, k_test_train):
    alpha = _tri(lower, _tri(lower, _batched(y, lower)), trans=1)           # A^-1 Y
    return k_test_train @ alpha


@jax.jit
def _posterior(lower, y, k_test_train, k_test_test):
    v = _tri(lower, jnp.swapaxes(k_test_train, -1, -2))                     # L^-1 K_x*, (..., n, m)
    mean = jnp.swapaxes(v, -1, -2) @ _tri(lower, _batched(y, lower))
    if k_test_test.ndim == k_test_train.ndim:
        return mean, k_test_test - jnp.swapaxes(v, -1, -2) @ v
    return mean, k_test_test - jnp.sum(v * v, axis=-2)


@jax.jit
def _log_likelihood(lower, y, amplitude):
    z = _tri(lower, _batched(y, lower))
    quad = jnp.sum(z * z, axis=(-2, -1))
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1)), axis=-1)
    n, k = y.shape
    return -0.5 * (quad / amplitude + k * (logdet + n * jnp.log(amplitude)) + n * k * jnp.log(2 * jnp.pi))


@jax.jit
def _amplitude(lower, y):
    z = _tri(lower, _batched(y, lower))
    return jnp.sum(z * z, axis=(-2, -1)) / y.size


def _squeeze(mean, vector):
    return mean[..., 0] if vector else mean


def gp_posterior(factor: CholeskyFactor, y_train, k_test_train, k_test_test=None) -> Gaussian:
    """Posterior mean and covariance at test points of the GP whose training kernel `factor` holds.

    mean = K_*x A^-1 Y, covariance = K_** - K_*x A^-1 K_x*, A = K + (noise + jitter) I.

    Args:
      factor: cholesky_factor(k_train, noise=...) (batch axes (...)); reused across calls.
      y_train: (n, k) targets (k outputs), or (n,).
      k_test_train: (..., m, n) kernel between test and training points.
      k_test_test: None (mean only, the cheapest), (..., m, m) for the covariance, or (..., m),
        the test points' kernel diagonal, for the marginal variances alone.
    Returns:
      Gaussian(mean (..., m, k) or (..., m), covariance (..., m, m), (..., m) or None), float64.
      Traceable under jax.jit (then in the caller's dtype: enable float64 for float64 solves).
      Rounding may leave variances a few ulp of K_** below 0 where the posterior is certain.

    Example:
      >>> import numpy as np
      >>> from reskernel.inference import cholesky_factor, gp_posterior
      >>> k = np.array([[1.0, 0.5], [0.5, 1.0]])          # two training points, tested at themselves
      >>> post = gp_posterior(cholesky_factor(k), np.array([1.0, -1.0]), k, np.diagonal(k))
      >>> np.round(post.mean, 12).tolist(), bool(np.abs(post.covariance).max() < 1e-12)
      ([1.0, -1.0], True)

    References:
      Rasmussen & Williams, "Gaussian Processes for Machine Learning" (2006), Algorithm 2.1;
      Lee et al., "Deep Neural Networks as Gaussian Processes" (ICLR 2018).
    """
    batch, n = _factor.check_factor(factor, CholeskyFactor, "cholesky_factor")
    y, vector = _factor.check_targets(y_train, n)
    kxt = _factor.check_cross("k_test_train", k_test_train, batch, n)
    if k_test_test is None:
        mean = _factor.run64(_mean, factor.lower, y, kxt)
        _factor.check_finite_result("the posterior mean", mean)
        return Gaussian(_squeeze(mean, vector), None)
    kxx, _ = _factor.check_test_test("k_test_test", k_test_test, batch, kxt.shape[-2])
    mean, cov = _factor.run64(_posterior, factor.lower, y, kxt, kxx)
    _factor.check_finite_result("the posterior", mean, cov)
    return Gaussian(_squeeze(mean, vector), cov)


def _check_amplitude(amplitude, batch):
    a = _checks.real_array("amplitude", amplitude)
    if _checks.traced(a):
        return a
    a = np.asarray(a, dtype=np.float64)
    if not (np.isfinite(a) & (a > 0)).all():
        raise ValueError(f"amplitude must be finite and > 0 (a kernel scale), got {amplitude!r}")
    try:
        return np.broadcast_to(a, batch)
    except ValueError:
        raise ValueError(f"amplitude of shape {a.shape} does not broadcast to the factor's batch shape {batch}") from None


def log_marginal_likelihood(factor: CholeskyFactor, y_train, *, amplitude=1.0):
    """log p(Y) of targets Y (n, k) under the GP: columns independent, each N(0, s A),
    A = K + (noise + jitter) I, summed over the k columns (natural log).

    Args:
      factor: cholesky_factor(k_train, noise=...).
      y_train: (n, k) or (n,) targets.
      amplitude: s > 0, scalar or per kernel (broadcast to the leading axes); the noise scales
        with it (the model is s (K + noise I)). optimal_amplitude gives the maximizing s.
    Returns:
      (...) float64 log-likelihoods, one per kernel: for choosing depth, variances and noise.
      Traceable under jax.jit.
    """
    batch, n = _factor.check_factor(factor, CholeskyFactor, "cholesky_factor")
    y, _ = _factor.check_targets(y_train, n)
    out = _factor.run64(_log_likelihood, factor.lower, y, _check_amplitude(amplitude, batch))
    _factor.check_finite_result("the log marginal likelihood", out)
    return out


def optimal_amplitude(factor: CholeskyFactor, y_train):
    """The amplitude s maximizing log_marginal_likelihood in closed form: s = tr(Y^T A^-1 Y) / (n k).

    NNGP kernels change scale with depth and variances; fitting s makes their likelihoods
    comparable (the posterior mean does not depend on s; the covariance is s times gp_posterior's).
    Returns (...) float64, one per kernel; at s, log p(Y) = -n k (1 + log(2 pi s)) / 2 - k log|A| / 2.
    """
    _, n = _factor.check_factor(factor, CholeskyFactor, "cholesky_factor")
    y, _ = _factor.check_targets(y_train, n)
    out = _factor.run64(_amplitude, factor.lower, y)
    _factor.check_finite_result("the optimal amplitude", out)
    if not _checks.traced(out) and (out <= 0).any():
        raise ValueError("the optimal amplitude is 0: the targets are all zero")
    return out


def kernel_ridge(k_train, y_train, k_test_train, *, ridge: float = 1e-6, max_jitter: float = 1e-6) -> RidgeRegression:
    """Kernel ridge regression with many outputs: K_*x (K + r I)^-1 Y, r = ridge x trace(K) / n.

    Args:
      k_train: (..., n, n) training kernel(s) (any dtype; solved in float64, batched).
      y_train: (n, k) targets, or (n,).
      k_test_train: (..., m, n).
      ridge: >= 0, relative to each kernel's mean diagonal (neural-tangents' diag_reg); a real,
        or an array broadcastable to the leading axes.
      max_jitter: see cholesky_factor (a RuntimeWarning names the jitter rounding needed).
    Returns:
      RidgeRegression(predictions (..., m, k) or (..., m), factor).
    """
    k = _factor.check_kernel("k_train", k_train)
    r = _factor.check_noise(ridge, k.shape[:-2], name="ridge")
    factor, rel = _factor.cholesky(k, r * _factor.mean_diagonal(k), _factor.check_max_jitter(max_jitter))
    _factor.warn_factor(factor, rel, "k_train")
    return RidgeRegression(gp_posterior(factor, y_train, k_test_train).mean, factor)
