"""The infinite-width network trained on MSE by gradient flow or gradient descent: mean and
covariance of its outputs over random initializations at any times (Lee et al. 2019).

Loss (the convention of reskernel.regression): L = (1/2) sum_i |f(x_i) - y_i|^2, summed over the
n training points and k outputs, parameters theta updated by
  gradient flow       d theta / dt = -dL/d theta        (continuous time t), or
  gradient descent    theta <- theta - lr dL/d theta    (t counts steps).
In the infinite-width limit f stays linear in theta and f_0 is a GP with the NNGP K; with the
NTK Theta between training points, Theta_*x, K_*x between test and training points, K_** test-test:
  A_t = Theta_*x Theta^-1 (I - exp(-t Theta))        [descent: (I - lr Theta)^t for exp(-t Theta)]
  mean(t)       = A_t Y
  covariance(t) = K_** + A_t K A_t^T - A_t K_x* - K_*x A_t^T
t = 0 gives the prior (mean 0, covariance K_**: the networks at initialization), t = inf the NTK
interpolant Theta_*x Theta^-1 Y with its covariance. Which parameters are trained ("hidden" or
"all") is which NTK is passed: reskernel.kernel(..., trained=...). K is the output covariance at
initialization whatever is trained. Descent converges for lr < 2 / lambda_max(Theta).

neural-tangents' `nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train,
learning_rate)` minimizes the mean loss (1/2) |f - y|^2 / (n k) in continuous time: its time t is
t x learning_rate / (n k) here (and one of its descent steps at learning rate eta is lr = eta / (n k)).

References:
  Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent"
  (NeurIPS 2019), Section 2.3-2.4; Jacot et al., "Neural Tangent Kernel" (NeurIPS 2018).
"""
import functools
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from . import _factor
from ._factor import EighFactor
from .gp import Gaussian

__all__ = ["ntk_ensemble"]


def _gains(values, times, lr, discrete):
    """g_t(lambda) = (1 - exp(-t lambda)) / lambda [descent: (1 - (1 - lr lambda)^t) / lambda], so that
    A_t = Theta_*x U diag(g_t) U^T. (..., n), (T,) -> (..., T, n)."""
    lam = values[..., None, :]
    t = times[:, None]
    pos = lam > 0
    safe = jnp.where(pos, lam, 1.0)
    if not discrete:
        return jnp.where(pos, -jnp.expm1(-t * safe) / safe, t)        # t = inf: 1 / lambda
    x = lr * safe
    below = x < 1
    # 1 - (1 - x)^t: by expm1/log1p while 1 - x > 0 (small lr lambda would cancel), else by
    # parity (integer steps) and magnitude.
    decayed = -jnp.expm1(t * jnp.log1p(-jnp.where(below, x, 0.0)))
    mag = jnp.exp(t * jnp.log(jnp.abs(1.0 - x)))
    flipped = 1.0 - jnp.where(jnp.mod(t, 2.0) == 1.0, -mag, mag)
    finite = jnp.where(t == 0, 0.0, jnp.where(below, decayed, flipped)) / safe
    limit = jnp.where(x < 2, 1.0 / safe, jnp.nan)                       # no limit where descent diverges
    return jnp.where(pos, jnp.where(jnp.isinf(t), limit, finite), t * lr)


@functools.partial(jax.jit, static_argnames=("discrete",))
def _ensemble(values, vectors, y, ntk_test_train, times, lr, nngp_train, nngp_test_train, nngp_test_test, *,
              discrete):
    g = _gains(values, times, lr, discrete)                              # (..., T, n)
    ut = jnp.swapaxes(vectors, -1, -2)
    b = ntk_test_train @ vectors                                         # Theta_*x U, (..., m, n)
    proj = ut @ jnp.broadcast_to(y, vectors.shape[:-2] + y.shape)        # U^T Y, (..., n, k)
    mean = jnp.einsum("...mi,...ti,...ik->...tmk", b, g, proj)
    if nngp_test_test is None:
        return mean, None
    bg = b[..., None, :, :] * g[..., :, None, :]                         # A_t U, (..., T, m, n)
    bgk = bg @ (ut @ nngp_train @ vectors)[..., None, :, :]              # A_t K U
    c = (nngp_test_train @ vectors)[..., None, :, :]                     # K_*x U
    if nngp_test_test.ndim == ntk_test_train.ndim:
        cross = bg @ jnp.swapaxes(c, -1, -2)                             # A_t K_x*
        return mean, (nngp_test_test[..., None, :, :] + bgk @ jnp.swapaxes(bg, -1, -2)
                      - cross - jnp.swapaxes(cross, -1, -2))
    return mean, nngp_test_test[..., None, :] + jnp.sum(bgk * bg, axis=-1) - 2 * jnp.sum(bg * c, axis=-1)


def check_lr(lr):
    """None (gradient flow) or a real > 0 (gradient descent); traced values pass unchecked."""
    if lr is None or _checks.traced(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr) or not lr > 0:
        raise ValueError(f"lr must be a finite real > 0 (gradient descent) or None (gradient flow), got {lr!r}")
    return float(lr)


def check_times(times, discrete):
    """(times as a 1-d array, was it a scalar?): reals >= 0, inf allowed; integer steps for descent."""
    scalar = np.ndim(times) == 0
    t = _checks.concrete(times)
    if t is None:
        return jnp.atleast_1d(times), scalar
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or np.isnan(t).any() or (t < 0).any():
        raise ValueError(f"times must be a scalar or a non-empty 1-d array of values >= 0 (inf allowed), got {times!r}")
    if discrete and not (np.isinf(t) | (t == np.round(t))).all():
        raise ValueError(f"with lr, times count gradient-descent steps: integers >= 0 (or inf), got {times!r}")
    return t, scalar


def _nngp_blocks(batch, n, m, nngp_train, nngp_test_train, nngp_test_test):
    given = [k is not None for k in (nngp_train, nngp_test_train, nngp_test_test)]
    if not any(given):
        return None, None, None
    if not all(given):
        raise ValueError("the covariance needs all three NNGP blocks: nngp_train (..., n, n), nngp_test_train "
                         "(..., m, n) and nngp_test_test (..., m, m) or its diagonal (..., m); got "
                         + ", ".join(name for name, g in zip(("nngp_train", "nngp_test_train", "nngp_test_test"),
                                                             given) if g) + " only")
    k = _factor.check_cross("nngp_train", nngp_train, batch, n)
    if k.shape[-2] != n:
        raise ValueError(f"nngp_train must have shape {tuple(batch) + (n, n)}, got {tuple(k.shape)}")
    kxt = _factor.check_cross("nngp_test_train", nngp_test_train, batch, n)
    if kxt.shape[-2] != m:
        raise ValueError(f"nngp_test_train must have {m} rows like ntk_test_train, got shape {tuple(kxt.shape)}")
    kxx, _ = _factor.check_test_test("nngp_test_test", nngp_test_test, batch, m)
    return k, kxt, kxx


def ntk_ensemble(factor: EighFactor, y_train, ntk_test_train, times, *, lr=None, nngp_train=None,
                 nngp_test_train=None, nngp_test_test=None) -> Gaussian:
    """Mean and covariance over initializations of the infinite-width network's test outputs after
    training on (1/2) sum |f - y|^2 by gradient flow for time t, or gradient descent for t steps.

    mean(t) = A_t Y, covariance(t) = K_** + A_t K A_t^T - A_t K_x* - K_*x A_t^T, with
    A_t = Theta_*x Theta^-1 (I - exp(-t Theta)) (descent: (I - lr Theta)^t); see the module doc.

    Args:
      factor: eigh_factor(ntk_train) of the NTK between training points (batch axes (...));
        one factor serves every time, output and test batch.
      y_train: (n, k) targets, or (n,).
      ntk_test_train: (..., m, n) NTK between test and training points (same trained set).
      times: scalar or (T,): continuous times >= 0 (lr None) or step counts (integers, lr given);
        inf for the end of training (the interpolant).
      lr: None for gradient flow, or the learning rate of gradient descent.
      nngp_train, nngp_test_train, nngp_test_test: for the covariance, the NNGP blocks (..., n, n),
        (..., m, n) and (..., m, m), or the test diagonal (..., m) for marginal variances only.
    Returns:
      Gaussian(mean (..., T, m, k), covariance (..., T, m, m) or (..., T, m), or None without the
      NNGP), float64; the T axis is dropped for scalar times, k for 1-d targets. Traceable
      under jax.jit. A RuntimeWarning when lr x lambda_max(Theta) >= 2 (descent diverges); a
      FloatingPointError rather than non-finite results.

    Example:
      >>> import numpy as np
      >>> from reskernel.inference import eigh_factor, ntk_ensemble
      >>> ntk = np.array([[2.0, 1.0], [1.0, 2.0]])
      >>> out = ntk_ensemble(eigh_factor(ntk), np.array([1.0, -1.0]), ntk, [0.0, np.inf])
      >>> (np.round(out.mean, 12) + 0.0).tolist()           # t = 0: the prior mean; t = inf: fits y
      [[0.0, 0.0], [1.0, -1.0]]
    """
    batch, n = _factor.check_factor(factor, EighFactor, "eigh_factor")
    y, vector = _factor.check_targets(y_train, n)
    kxt = _factor.check_cross("ntk_test_train", ntk_test_train, batch, n)
    lr = check_lr(lr)
    t, scalar = check_times(times, lr is not None)
    nngp = _nngp_blocks(batch, n, kxt.shape[-2], nngp_train, nngp_test_train, nngp_test_test)
    why = ""
    if lr is not None and not _checks.traced(lr, factor.values):
        top = float(np.max(lr * np.asarray(factor.values)[..., -1]))
        if top >= 2:
            why = f"gradient descent with lr = {lr:g} diverges: lr x the largest NTK eigenvalue is {top:.4g} >= 2"
            warnings.warn(why, RuntimeWarning, stacklevel=2)
    mean, cov = _factor.run64(_ensemble, factor.values, factor.vectors, y, kxt, t, 1.0 if lr is None else lr, *nngp,
                              discrete=lr is not None)
    _factor.check_finite_result("the NTK ensemble", mean, cov, why=why)
    if vector:
        mean = mean[..., 0]
    if scalar:
        at0 = (slice(None),) * len(batch) + (0,)
        mean, cov = mean[at0], None if cov is None else cov[at0]
    return Gaussian(mean, cov)
