"""Kernel ridge regression and NTK gradient-descent predictions, batched over depth.

Given a kernel K between training points (n, n), between test and training
points (m, n) and labels y (n,) (+-1 for classification):

  kernel regression:  f(x) = K_x,train (K + r I)^-1 y,   r = ridge * trace(K) / n
  gradient flow on (1/2) |f - y|^2 from f_0 (NTK regime, continuous time t):
      f_t(x) = f_0(x) + K_x,train K^-1 (I - exp(-t K)) (y - f_0(train))
  gradient descent with learning rate lr after t steps: exp(-t K) -> (I - lr K)^t.
At t = infinity the flow is kernel regression with ridge 0 (the interpolant).

Every function accepts a leading batch axis (e.g. depths): kernels (L, n, n)
and (L, m, n) are solved together (batched Cholesky / eigendecomposition).
Solves run in float64 (switched on locally) whatever the kernel's dtype, since
ridge 1e-6 x mean diagonal is far below float32 resolution.
"""
from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..core.families import check_depths, depth_correlation_kernels, depth_kernels
from ..precision import enable_x64

__all__ = ["Regression", "kernel_regression", "gd_predictions", "scores", "depth_kernels",
           "depth_correlation_kernels", "check_depths"]


# Functional form: real (not string) annotations, so the API docs can resolve them.
Regression = NamedTuple("Regression", [("predictions", np.ndarray), ("accuracy", Optional[np.ndarray]),
                                       ("mse", Optional[np.ndarray])])
Regression.__doc__ = """Predictions (..., m) in float64; accuracy and mse (...) when test labels were given, else None."""


def _as_kernels(k_train, k_test_train, y_train):
    k_train = np.asarray(k_train, dtype=np.float64)
    k_test_train = np.asarray(k_test_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    if k_train.ndim < 2 or k_train.shape[-1] != k_train.shape[-2]:
        raise ValueError(f"k_train must have shape (..., n, n), got {k_train.shape}")
    n = k_train.shape[-1]
    if k_test_train.ndim < 2 or k_test_train.shape[-1] != n:
        raise ValueError(f"k_test_train must have shape (..., m, {n}) to match k_train, got {k_test_train.shape}")
    if k_test_train.shape[:-2] != k_train.shape[:-2]:
        raise ValueError(f"k_train and k_test_train must share their leading (batch) axes; got "
                         f"{k_train.shape[:-2]} and {k_test_train.shape[:-2]}")
    if y_train.shape != (n,):
        raise ValueError(f"y_train must have shape ({n},), got {y_train.shape}")
    for name, a in (("k_train", k_train), ("k_test_train", k_test_train), ("y_train", y_train)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has non-finite entries")
    return k_train, k_test_train, y_train


def _check_ridge(ridge) -> float:
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite real >= 0 (relative to the mean diagonal), got {ridge!r}")
    return float(ridge)


@jax.jit
def _cholesky_solve(k_train, k_test_train, y_train, reg):
    """(..., m) predictions; reg (...,) absolute ridge. NaN where K + reg I is not positive definite."""
    n = k_train.shape[-1]
    a = k_train + reg[..., None, None] * jnp.eye(n, dtype=k_train.dtype)
    chol = jnp.linalg.cholesky(a)
    yb = jnp.broadcast_to(y_train[:, None], k_train.shape[:-2] + (n, 1))
    z = jax.scipy.linalg.solve_triangular(chol, yb, lower=True)
    coef = jax.scipy.linalg.solve_triangular(chol, z, lower=True, trans=1)
    return (k_test_train @ coef)[..., 0]


def _jitter_solve(k_train, k_test_train, y_train, scale, ridge, max_jitter):
    """One (n, n) solve whose Cholesky failed: jitter 10 eps x mean diagonal, tenfold until it
    succeeds (at most max_jitter). Only the failed kernels are redone, one LAPACK call each."""
    import scipy.linalg

    jitter = 10 * np.finfo(np.float64).eps
    eye = np.eye(k_train.shape[-1])
    while jitter <= 1.0001 * max_jitter:
        try:
            factor = scipy.linalg.cho_factor(k_train + (ridge + jitter) * scale * eye, lower=True)
        except np.linalg.LinAlgError:
            jitter *= 10
            continue
        return k_test_train @ scipy.linalg.cho_solve(factor, y_train), ridge + jitter
    raise np.linalg.LinAlgError(f"kernel not positive definite even with ridge {ridge + jitter / 10:g} x mean "
                                "diagonal; is it symmetric positive semi-definite?")


def _solve(k_train, k_test_train, y_train, ridge, max_jitter):
    """Checked float64 kernels -> (predictions (..., m), relative ridge used (...)): one batched
    Cholesky; kernels where it fails are redone with jitter (see kernel_regression)."""
    scale = np.trace(k_train, axis1=-2, axis2=-1) / k_train.shape[-1]
    with enable_x64():
        pred = np.array(_cholesky_solve(k_train, k_test_train, y_train, jnp.asarray(scale * ridge)))
    used = np.full(scale.shape, ridge)
    for i in map(tuple, np.argwhere(~np.isfinite(pred).all(axis=-1))):
        pred[i], used[i] = _jitter_solve(k_train[i], k_test_train[i], y_train, scale[i], ridge, max_jitter)
    return pred, used


def scores(predictions, y_test):
    """(accuracy, mse) of predictions (..., m) against labels y_test (m,) in {-1, +1}.

    Accuracy counts sign(prediction) == y; a prediction of exactly 0 counts as wrong.
    """
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(y_test, dtype=np.float64)
    if p.shape[-1:] != y.shape or y.ndim != 1:
        raise ValueError(f"y_test must have shape ({p.shape[-1]},) to match the predictions, got {y.shape}")
    return np.mean(np.sign(p) == y, axis=-1), np.mean((p - y) ** 2, axis=-1)


def kernel_regression(k_train, k_test_train, y_train, y_test=None, *, ridge: float = 1e-6) -> Regression:
    """Kernel ridge regression f = K_test,train (K + r I)^-1 y, r = ridge * trace(K) / n.

    Args:
      k_train: (..., n, n) symmetric positive semi-definite training kernel (any leading axes,
        e.g. one per depth; all are solved in one batched Cholesky).
      k_test_train: (..., m, n) kernel between test and training points.
      y_train: (n,) targets. y_test: optional (m,) labels in {-1, +1} for accuracy and MSE.
      ridge: >= 0, relative to the mean diagonal of each kernel. A kernel whose Cholesky fails
        with this ridge (singular or, e.g. a float32 kernel, indefinite to rounding) gets a jitter
        (10 eps x mean diagonal, raised tenfold until the Cholesky succeeds, at most 1e-6) and a
        RuntimeWarning naming the largest ridge used, instead of NaN.
    Returns:
      Regression(predictions (..., m), accuracy (...), mse (...)), float64 NumPy arrays.
    """
    ridge = _check_ridge(ridge)
    k_train, k_test_train, y_train = _as_kernels(k_train, k_test_train, y_train)
    pred, used = _solve(k_train, k_test_train, y_train, ridge, 1e-6)
    if (used > ridge).any():
        warnings.warn(f"training kernel not positive definite to rounding with ridge {ridge:g} x mean diagonal "
                      f"in {int((used > ridge).sum())} case(s); added jitter, ridge raised to at most "
                      f"{used.max():.6g}", RuntimeWarning, stacklevel=2)
    if y_test is None:
        return Regression(pred, None, None)
    acc, mse = scores(pred, y_test)
    return Regression(pred, acc, mse)


@functools.partial(jax.jit, static_argnames=("discrete",))
def _gd(k_train, k_test_train, resid, times, lr, discrete):
    lam, u = jnp.linalg.eigh(k_train)                        # (..., n), (..., n, n)
    lam = jnp.maximum(lam, 0.0)                              # PSD up to rounding
    proj = jnp.einsum("...ni,n->...i", u, resid)             # U^T (y - f0)
    t = times[:, None]
    lam_b = lam[..., None, :]                                # (..., 1, n) against times (T, 1)
    safe = jnp.where(lam_b > 0, lam_b, 1.0)
    if discrete:
        # (1 - (1 - lr lam)^t) / lam; exact limit t * lr as lam -> 0.
        decay = jnp.power(1.0 - lr * lam_b, t)
        inf = jnp.isinf(t)
        gain = jnp.where(lam_b > 0, (1.0 - jnp.where(inf, 0.0, decay)) / safe, jnp.where(inf, jnp.inf, t * lr))
    else:
        gain = jnp.where(lam_b > 0, -jnp.expm1(-t * lam_b) / safe, t)   # (..., T, n)
        gain = jnp.where(jnp.isinf(t) & (lam_b > 0), 1.0 / safe, gain)
    coef = jnp.einsum("...ni,...ti,...i->...tn", u, gain, proj)          # (..., T, n)
    return jnp.einsum("...mn,...tn->...tm", k_test_train, coef)


def gd_predictions(k_train, k_test_train, y_train, times, *, lr: Optional[float] = None,
                   f0_train=None, f0_test=None) -> np.ndarray:
    """Test predictions of a network trained by gradient descent in the kernel (NTK) regime.

    Continuous time (lr None): f_t(x) = f_0(x) + K_x,train K^-1 (I - exp(-t K)) (y - f_0(train)),
    the gradient flow on (1/2) sum_i (f(x_i) - y_i)^2 (scale t by the learning rate).
    Discrete (lr given): t counts steps of gradient descent with that learning rate,
    exp(-t K) -> (I - lr K)^t. t = inf gives ridge-free kernel regression (the
    interpolant, K^-1 by eigendecomposition; ill-conditioned kernels amplify rounding).

    Args:
      k_train: (..., n, n), k_test_train: (..., m, n), y_train: (n,).
      times: scalar or (T,) times >= 0 (np.inf allowed).
      f0_train, f0_test: the network's outputs at initialization, (n,) and (..., m); default 0
        (a centred network, f - f_init, starts at 0).
    Returns:
      (..., T, m) predictions, float64 (T axis dropped when times is a scalar).
    """
    k_train, k_test_train, y_train = _as_kernels(k_train, k_test_train, y_train)
    scalar = np.ndim(times) == 0
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if times.ndim != 1 or np.isnan(times).any() or (times < 0).any():
        raise ValueError(f"times must be a scalar or 1-d array of values >= 0 (inf allowed), got {times}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0):
        raise ValueError(f"lr must be a real > 0 or None (continuous time), got {lr!r}")
    f0_train = np.zeros_like(y_train) if f0_train is None else np.asarray(f0_train, np.float64)
    if f0_train.shape != y_train.shape:
        raise ValueError(f"f0_train must have shape {y_train.shape}, got {f0_train.shape}")
    with enable_x64():
        out = np.asarray(_gd(k_train, k_test_train, y_train - f0_train, jnp.asarray(times),
                             jnp.asarray(1.0 if lr is None else float(lr)), lr is not None))
    if f0_test is not None:
        out = out + np.expand_dims(np.asarray(f0_test, np.float64), -2)
    return out[..., 0, :] if scalar else out
