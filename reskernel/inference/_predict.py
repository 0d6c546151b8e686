"""Predictions of an architecture in one call: its NNGP posterior (the infinitely wide Bayesian
network) and its NTK ensemble (the infinitely wide network trained by gradient flow or descent),
from one kernel computation on the training and test inputs together.

The kernel-level functions (reskernel.inference: cholesky_factor, gp_posterior, eigh_factor,
ntk_ensemble) do the same on kernels the caller holds, and reuse a factorization across test
batches; use them for many test points (this call forms the (n + m)^2 kernels).
"""
from typing import NamedTuple

import numpy as np

from .. import _checks
from ..core import analytic
from . import _factor
from ._factor import CholeskyFactor, EighFactor
from .ensemble import check_lr, check_times, ntk_ensemble
from .gp import Gaussian, gp_posterior

__all__ = ["Prediction", "predict"]


class Prediction(NamedTuple):
    """What `predict` returns: float64 NumPy arrays.

    Attributes:
      nngp: Gaussian, the NNGP posterior at the test inputs: mean (m, k), covariance (m, m) or
        marginal variances (m,).
      ntk: Gaussian, the NTK ensemble: mean (T, m, k), covariance (T, m, m) or variances (T, m)
        (T dropped for scalar times, k for 1-d targets).
      nngp_factor: the CholeskyFactor of the training NNGP + noise (its jitter and cond).
      ntk_factor: the EighFactor of the training NTK (its jitter and cond).
    """

    nngp: Gaussian
    ntk: Gaussian
    nngp_factor: CholeskyFactor
    ntk_factor: EighFactor


def predict(arch, x_train, y_train, x_test, times=np.inf, *, lr=None, noise=0.0, trained: str = "hidden",
            full_covariance: bool = False, max_jitter: float = 1e-6) -> Prediction:
    """NNGP posterior and NTK ensemble of `arch` at x_test, trained on (x_train, y_train).

    Calls reskernel.kernel(arch, [x_train; x_test], trained=trained) once, then factorizes the
    training blocks in float64: the NNGP + noise I (Cholesky), the NTK (eigendecomposition).

    Args:
      arch: FeedForward or ResNet spec.
      x_train: (n, d), y_train: (n, k) or (n,) targets; x_test: (m, d).
      times: scalar or (T,) training times of the NTK ensemble (gradient flow; inf: the end of
        training), or step counts with lr (gradient descent on (1/2) sum |f - y|^2; see
        reskernel.inference.ensemble for the convention and neural-tangents' time).
      lr: None (gradient flow) or the learning rate.
      noise: the NNGP posterior's observation-noise variance (absolute, >= 0); the NTK ensemble
        has none (the network fits the targets as they are).
      trained: "hidden" (default; the readout and ResNet embedding fixed) or "all", the NTK's
        trained set (reskernel.kernel). The NNGP does not depend on it.
      full_covariance: False (default) for the marginal variances (m,), True for (m, m).
      max_jitter: see cholesky_factor / eigh_factor.
    Returns:
      Prediction(nngp, ntk, nngp_factor, ntk_factor).

    Example:
      >>> import numpy as np, reskernel as rk
      >>> x = np.random.default_rng(0).normal(size=(8, 3))
      >>> p = rk.predict(rk.FeedForward(3), x[:6], np.sign(x[:6, :1]), x[6:], times=[0.0, np.inf])
      >>> p.nngp.mean.shape, p.ntk.mean.shape, p.ntk.covariance.shape
      ((2, 1), (2, 2, 1), (2, 2))
    """
    full_covariance = _checks.boolean("full_covariance", full_covariance)
    x_train, x_test = _checks.inputs(x_train, x_test)
    _factor.check_targets(y_train, x_train.shape[0])
    noise = _factor.check_noise(noise, ())
    max_jitter = _factor.check_max_jitter(max_jitter)
    check_times(times, check_lr(lr) is not None)
    n = x_train.shape[0]
    k = analytic.kernel(arch, np.concatenate([np.asarray(x_train), np.asarray(x_test)]), trained=trained)
    nngp, ntk = np.asarray(k.nngp, np.float64), np.asarray(k.ntk, np.float64)
    nngp_test = nngp[n:, n:] if full_covariance else np.diagonal(nngp)[n:].copy()
    nngp_factor, rel = _factor.cholesky(_factor.check_kernel("the NNGP", nngp[:n, :n]), noise, max_jitter,
                                        name="the NNGP")
    _factor.warn_factor(nngp_factor, rel, "the training NNGP")
    ntk_factor, rel = _factor.eigh(_factor.check_kernel("the NTK", ntk[:n, :n]), np.zeros(()), max_jitter,
                                   name="the NTK")
    _factor.warn_factor(ntk_factor, rel, "the training NTK")
    post = gp_posterior(nngp_factor, y_train, nngp[n:, :n], nngp_test)
    ens = ntk_ensemble(ntk_factor, y_train, ntk[n:, :n], times, lr=lr, nngp_train=nngp[:n, :n],
                       nngp_test_train=nngp[n:, :n], nngp_test_test=nngp_test)
    return Prediction(post, ens, nngp_factor, ntk_factor)
