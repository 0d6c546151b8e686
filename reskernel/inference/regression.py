"""Kernel ridge regression and NTK gradient-descent predictions, batched over depth.

Given a kernel K between training points (n, n), between test and training
points (m, n) and labels y (n,) (+-1 for classification):

  kernel regression:  f(x) = K_x,train (K + r I)^-1 y,   r = ridge * trace(K) / n
  gradient flow on (1/2) |f - y|^2 from f_0 (NTK regime, continuous time t):
      f_t(x) = f_0(x) + K_x,train K^-1 (I - exp(-t K)) (y - f_0(train))
  gradient descent with learning rate lr after t steps: exp(-t K) -> (I - lr K)^t.
At t = infinity the flow is kernel regression with ridge 0 (the interpolant).

Every function accepts leading batch axes (e.g. depths): kernels (L, n, n)
and (L, m, n) are solved together. Solves run in float64 (switched on locally)
whatever the kernel's dtype, since ridge 1e-6 x mean diagonal is far below float32
resolution. Both are the one-label special cases of reskernel.inference (the same
factorizations and solves: kernel_ridge / gp_posterior, and ntk_ensemble's mean).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import NamedTuple, Optional

import numpy as np

from ..core.families import check_depths, depth_correlation_kernels, depth_kernels
from . import _factor
from .ensemble import ntk_ensemble
from .gp import gp_posterior

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


def _solve(k_train, k_test_train, y_train, ridge, max_jitter):
    """Checked float64 kernels -> (predictions (..., m), relative ridge used (...)): the Cholesky
    of K + ridge x mean diagonal, redone with jitter where it fails (see kernel_regression)."""
    k_train = 0.5 * (k_train + np.swapaxes(k_train, -1, -2))
    noise = ridge * _factor.mean_diagonal(k_train)
    factor, rel = _factor.cholesky(k_train, noise, max_jitter)
    return gp_posterior(factor, y_train, k_test_train).mean, ridge + rel


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


def gd_predictions(k_train, k_test_train, y_train, times, *, lr: Optional[float] = None,
                   f0_train=None, f0_test=None) -> np.ndarray:
    """Test predictions of a network trained by gradient descent in the kernel (NTK) regime.

    Continuous time (lr None): f_t(x) = f_0(x) + K_x,train K^-1 (I - exp(-t K)) (y - f_0(train)),
    the gradient flow on (1/2) sum_i (f(x_i) - y_i)^2 (scale t by the learning rate).
    Discrete (lr given): t counts steps of gradient descent with that learning rate,
    exp(-t K) -> (I - lr K)^t. t = inf gives ridge-free kernel regression (the
    interpolant, K^-1 by eigendecomposition). A kernel whose smallest eigenvalue is not above
    n eps x the largest (singular, or indefinite to rounding) gets a jitter (10 eps x mean
    diagonal, tenfold up to 1e-2) and a RuntimeWarning; a diverging lr (lr lambda_max >= 2) a
    RuntimeWarning, and FloatingPointError where the outputs overflow.

    Args:
      k_train: (..., n, n), k_test_train: (..., m, n), y_train: (n,).
      times: scalar or (T,) times >= 0 (np.inf allowed); with lr, integer step counts.
      f0_train, f0_test: the network's outputs at initialization, (n,) and (..., m); default 0
        (a centred network, f - f_init, starts at 0).
    Returns:
      (..., T, m) predictions, float64 (T axis dropped when times is a scalar).
    """
    k_train, k_test_train, y_train = _as_kernels(k_train, k_test_train, y_train)
    f0_train = np.zeros_like(y_train) if f0_train is None else np.asarray(f0_train, np.float64)
    if f0_train.shape != y_train.shape:
        raise ValueError(f"f0_train must have shape {y_train.shape}, got {f0_train.shape}")
    factor, rel = _factor.eigh(0.5 * (k_train + np.swapaxes(k_train, -1, -2)), np.zeros(k_train.shape[:-2]), 1e-2)
    if (rel > 0).any():
        warnings.warn(f"training kernel not positive definite to rounding in {int((rel > 0).sum())} case(s); "
                      f"added jitter up to {rel.max():.6g} x mean diagonal", RuntimeWarning, stacklevel=2)
    out = ntk_ensemble(factor, y_train - f0_train, k_test_train, times, lr=lr).mean
    if f0_test is not None:
        f0_test = np.asarray(f0_test, np.float64)
        out = out + (f0_test if np.ndim(times) == 0 else np.expand_dims(f0_test, -2))
    return out
