"""float64 factorizations of training kernels, made once and reused across outputs, times and
test batches, with the checks every inference function shares.

A factorization is of A = K + (noise + jitter) I, batched over K's leading axes (depths,
hyperparameters):
  CholeskyFactor  A = L L^T, for GP posteriors, marginal likelihoods and kernel ridge regression;
  EighFactor      A = U diag(values) U^T, for the NTK ensemble at any time.
noise is the caller's (an observation-noise variance or ridge, absolute). jitter is what
rounding needed on top: 0 when A already factorizes, else the first of 10 eps, 100 eps, ... (x
the mean diagonal of K, up to max_jitter x it) that makes A numerically positive definite:
  CholeskyFactor  LAPACK's Cholesky succeeds;
  EighFactor      every eigenvalue exceeds n eps x the largest (below that an eigenvalue is
                  rounding: the interpolant's 1/lambda would amplify it).
A jitter is reported in the factor and in a RuntimeWarning; so is a condition number above
ILL_CONDITIONED (float64 solves then keep about 16 - log10(cond) digits).
"""
import math
import numbers
import warnings
from typing import NamedTuple

import jax
import numpy as np

from .. import _checks
from ..precision import enable_x64

__all__ = ["CholeskyFactor", "EighFactor", "cholesky_factor", "eigh_factor", "ILL_CONDITIONED"]

EPS = float(np.finfo(np.float64).eps)
# Condition number above which the factorizations warn: solves may lose 12 of float64's 16 digits.
ILL_CONDITIONED = 1e12


class CholeskyFactor(NamedTuple):
    """Lower Cholesky factor of A = K + (noise + jitter) I, float64, batched over K's leading axes.

    Attributes:
      lower: (..., n, n) L with L L^T = A (zero above the diagonal).
      noise: (...,) the noise variance asked for (absolute).
      jitter: (...,) the extra diagonal rounding needed (absolute; 0 where none was).
      cond: (...,) LAPACK's estimate of A's 1-norm condition number (within a small factor).
    """

    lower: np.ndarray
    noise: np.ndarray
    jitter: np.ndarray
    cond: np.ndarray


class EighFactor(NamedTuple):
    """Eigendecomposition of A = K + (noise + jitter) I, float64, batched over K's leading axes.

    Attributes:
      values: (..., n) eigenvalues of A, ascending, every one > n eps x the largest.
      vectors: (..., n, n) orthonormal eigenvectors U (columns), A = U diag(values) U^T.
      noise: (...,) the noise (diagonal regularizer) asked for (absolute).
      jitter: (...,) the extra diagonal rounding needed (absolute; 0 where none was).
      cond: (...,) A's 2-norm condition number, values[-1] / values[0].
    """

    values: np.ndarray
    vectors: np.ndarray
    noise: np.ndarray
    jitter: np.ndarray
    cond: np.ndarray


# ---------------------------------------------------------------- checks at the boundary

def _concrete64(name, x):
    """x as a float64 NumPy array with finite entries, or the tracer itself under a trace."""
    x = _checks.real_array(name, x)
    if _checks.traced(x):
        return x
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite entries (nan or inf); kernels and targets must be finite")
    return a


def check_kernel(name, k):
    """A training kernel (..., n, n): float64 NumPy, finite, symmetric to rounding (symmetrized)."""
    k = _concrete64(name, k)
    if _checks.traced(k):
        raise TypeError(f"{name} is traced: factorizations run on the host (their jitter fallback "
                        "decides on values); factorize outside jit and pass the factor in")
    if k.ndim < 2 or k.shape[-1] != k.shape[-2] or k.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., n, n), n >= 1, got {k.shape}")
    asym = np.abs(k - np.swapaxes(k, -1, -2)).max()
    if asym > 1e-4 * np.abs(k).max():
        raise ValueError(f"{name} is not symmetric (largest |K - K^T| = {asym:.3g} against largest |K| = "
                         f"{np.abs(k).max():.3g}); pass the training kernel k(x_train, x_train)")
    return 0.5 * (k + np.swapaxes(k, -1, -2))


def check_cross(name, k, batch, n):
    """A test-train kernel (..., m, n) with the factor's batch shape (array or tracer)."""
    k = _concrete64(name, k)
    if k.ndim < 2 or k.shape[-1] != n or tuple(k.shape[:-2]) != tuple(batch):
        raise ValueError(f"{name} must have shape {tuple(batch) + ('m', n)} to match the training kernel "
                         f"(batch axes {tuple(batch)}, {n} training points), got {tuple(k.shape)}")
    return k


def check_test_test(name, k, batch, m):
    """A test-test kernel: (..., m, m) for the covariance, or (..., m) its diagonal (variances only).
    Returns (array, full?)."""
    k = _concrete64(name, k)
    shape = tuple(k.shape)
    if shape == tuple(batch) + (m, m):
        return k, True
    if shape == tuple(batch) + (m,):
        return k, False
    raise ValueError(f"{name} must have shape {tuple(batch) + (m, m)} (covariance) or {tuple(batch) + (m,)} "
                     f"(its diagonal: marginal variances), got {shape}")


def check_targets(y, n):
    """Targets (n,) or (n, k) -> (float64 (n, k) array or tracer, was it 1-d?)."""
    y = _concrete64("y_train", y)
    if y.ndim not in (1, 2) or y.shape[0] != n or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(f"y_train must have shape ({n},) or ({n}, k), one row per training point, got {tuple(y.shape)}")
    return (y[:, None], True) if y.ndim == 1 else (y, False)


def check_noise(noise, batch, name="noise"):
    """noise: a real >= 0, or an array of them broadcastable to the batch shape -> (...,) float64."""
    if isinstance(noise, bool) or (isinstance(noise, numbers.Real) and not math.isfinite(noise)):
        raise ValueError(f"{name} must be a finite real >= 0 (or an array of them, one per kernel), got {noise!r}")
    try:
        a = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite real >= 0 (or an array of them, one per kernel), got {noise!r}") from None
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 (a variance), got {noise!r}")
    try:
        return np.broadcast_to(a, batch).copy()
    except ValueError:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to the kernels' batch shape {batch}") from None


def check_max_jitter(max_jitter) -> float:
    if (isinstance(max_jitter, bool) or not isinstance(max_jitter, numbers.Real) or not math.isfinite(max_jitter)
            or max_jitter < 0):
        raise ValueError(f"max_jitter must be a finite real >= 0 (relative to the mean diagonal), got {max_jitter!r}")
    return float(max_jitter)


def mean_diagonal(k):
    """(...,) the mean diagonal of float64 kernels (..., n, n); ValueError if any is <= 0."""
    scale = np.trace(k, axis1=-2, axis2=-1) / k.shape[-1]
    if (scale <= 0).any():
        raise ValueError("the training kernel's diagonal must be positive (its mean is "
                         f"{float(scale.min()):.3g}); a kernel's diagonal holds variances")
    return scale


def _ladder(max_jitter):
    """Relative jitters 10 eps, 100 eps, ... up to max_jitter."""
    j = 10 * EPS
    while j <= 1.0001 * max_jitter:
        yield j
        j *= 10


def _not_pd(name, max_jitter):
    return np.linalg.LinAlgError(
        f"{name} + noise I is not positive definite even with jitter {max_jitter:g} x mean diagonal "
        "(max_jitter); is it a symmetric positive semi-definite kernel?")


# ---------------------------------------------------------------- factorizations

def cholesky(k, noise, max_jitter, name="k_train"):
    """CholeskyFactor of checked float64 kernels (..., n, n), noise (...,) absolute; no warning.
    Also returns the relative jitter (jitter / mean diagonal) for reports."""
    import scipy.linalg
    from scipy.linalg.lapack import dpocon

    batch, n = k.shape[:-2], k.shape[-1]
    scale = mean_diagonal(k)
    eye = np.eye(n)
    lower = np.empty_like(k)
    rel, cond = np.zeros(batch), np.empty(batch)
    for i in np.ndindex(batch):
        a = k[i] + noise[i] * eye
        for j in (0.0, *_ladder(max_jitter)):
            try:
                lower[i] = scipy.linalg.cholesky(a + j * scale[i] * eye, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                continue
            rel[i] = j
            break
        else:
            raise _not_pd(name, max_jitter)
        anorm = np.abs(a).sum(axis=0).max() + rel[i] * scale[i]
        rcond, _ = dpocon(lower[i], anorm, uplo="L")
        cond[i] = 1.0 / rcond if rcond > 0 else np.inf
    return CholeskyFactor(lower, noise, rel * scale, cond), rel


def eigh(k, noise, max_jitter, name="k_train"):
    """EighFactor of checked float64 kernels (..., n, n), noise (...,) absolute; no warning.
    Also returns the relative jitter."""
    batch, n = k.shape[:-2], k.shape[-1]
    scale = mean_diagonal(k)
    values, vectors = np.linalg.eigh(k + noise[..., None, None] * np.eye(n))
    rel = np.zeros(batch)
    for i in np.ndindex(batch):
        lo, hi = values[i][0], values[i][-1]
        for j in (0.0, *_ladder(max_jitter)):
            if lo + j * scale[i] > n * EPS * (hi + j * scale[i]):
                rel[i] = j
                break
        else:
            raise _not_pd(name, max_jitter)
    values = values + (rel * scale)[..., None]
    return EighFactor(values, vectors, noise, rel * scale, values[..., -1] / values[..., 0]), rel


def warn_factor(factor, rel, what, stacklevel=3):
    """RuntimeWarnings for a factor that needed jitter (rel: relative jitters) or is ill-conditioned."""
    if (rel > 0).any():
        warnings.warn(f"{what} not positive definite to rounding in {int((rel > 0).sum())} of {rel.size} case(s): "
                      f"added jitter up to {rel.max():.3g} x mean diagonal (factor.jitter holds each one)",
                      RuntimeWarning, stacklevel=stacklevel)
    cond = np.asarray(factor.cond)
    if (cond > ILL_CONDITIONED).any():
        warnings.warn(f"{what} + noise I is ill-conditioned (condition number up to {cond.max():.3g} in "
                      f"{int((cond > ILL_CONDITIONED).sum())} of {cond.size} case(s)): float64 solves keep about "
                      f"{max(0, 16 - math.log10(cond.max())):.0f} digits; add noise or ridge",
                      RuntimeWarning, stacklevel=stacklevel)


def cholesky_factor(k_train, *, noise=0.0, max_jitter: float = 1e-6) -> CholeskyFactor:
    """float64 Cholesky factor of k_train + (noise + jitter) I, for GP posteriors, marginal
    likelihoods and kernel ridge regression (reskernel.inference.gp).

    Args:
      k_train: (..., n, n) symmetric positive semi-definite training kernel, any dtype (solved in
        float64); leading axes (depths, hyperparameters) are factorized together.
      noise: observation-noise variance (absolute, in the kernel's units), a real >= 0 or an
        array broadcastable to the leading axes (one per kernel).
      max_jitter: the largest jitter, relative to each kernel's mean diagonal, tried when the
        Cholesky of k_train + noise I fails (singular, or indefinite to rounding as float32
        kernels are): 10 eps, 100 eps, ... up to it; LinAlgError beyond.
    Returns:
      CholeskyFactor(lower, noise, jitter, cond). A RuntimeWarning names the largest jitter used
      and condition numbers above ILL_CONDITIONED.

    Example:
      >>> import numpy as np
      >>> f = cholesky_factor(np.array([[2.0, 1.0], [1.0, 2.0]]), noise=0.5)
      >>> bool(np.allclose(f.lower @ f.lower.T, [[2.5, 1.0], [1.0, 2.5]])), float(f.jitter)
      (True, 0.0)
    """
    k = check_kernel("k_train", k_train)
    factor, rel = cholesky(k, check_noise(noise, k.shape[:-2]), check_max_jitter(max_jitter))
    warn_factor(factor, rel, "k_train")
    return factor


def eigh_factor(k_train, *, noise=0.0, max_jitter: float = 1e-6) -> EighFactor:
    """float64 eigendecomposition of k_train + (noise + jitter) I, for the NTK ensemble at any
    times (reskernel.inference.ensemble): one factor serves every time, output and test batch.

    Args:
      k_train: (..., n, n) symmetric positive semi-definite training kernel (the NTK), any dtype.
      noise: diagonal regularizer (absolute), a real >= 0 or an array broadcastable to the
        leading axes; 0 (default) for plain gradient descent.
      max_jitter: the largest jitter (relative to the mean diagonal) that may lift the smallest
        eigenvalue above n eps x the largest; LinAlgError beyond.
    Returns:
      EighFactor(values, vectors, noise, jitter, cond), with RuntimeWarnings as cholesky_factor.
    """
    k = check_kernel("k_train", k_train)
    factor, rel = eigh(k, check_noise(noise, k.shape[:-2]), check_max_jitter(max_jitter))
    warn_factor(factor, rel, "k_train")
    return factor


# ---------------------------------------------------------------- running the solves

def run64(fn, *args, **static):
    """fn (jitted) on args in float64: NumPy float64 results. Under the caller's trace (jit, vmap)
    fn runs on the tracers as they are, in the caller's dtype."""
    if _checks.traced(*jax.tree.leaves(args)):
        return fn(*args, **static)
    with enable_x64():
        args = jax.tree.map(lambda a: np.asarray(a, dtype=np.float64), args)
        return jax.tree.map(np.asarray, fn(*args, **static))


def check_finite_result(what, *arrays, why=""):
    """FloatingPointError if a concrete result has non-finite entries (never a silent NaN)."""
    for a in arrays:
        if a is None or _checks.traced(a):
            continue
        if not np.isfinite(a).all():
            raise FloatingPointError(f"{what} has non-finite entries ({int((~np.isfinite(a)).sum())} of {a.size})"
                                     + (f": {why}" if why else ""))


def check_factor(factor, kind, maker):
    """factor as `kind` (CholeskyFactor or EighFactor), with its batch shape and n."""
    if not isinstance(factor, kind):
        raise TypeError(f"factor must be a {kind.__name__} (from reskernel.inference.{maker}), got "
                        f"{type(factor).__name__}" + ("; factorize the training kernel first"
                                                       if isinstance(factor, (np.ndarray, jax.Array)) else ""))
    first = factor[0]
    lead = 1 if kind is EighFactor else 2
    return tuple(first.shape[:-lead]), first.shape[-1]
