"""Inference with the kernels: exact GP (NNGP) posteriors and marginal likelihoods, the NTK ensemble
of networks trained by gradient flow or descent, kernel ridge regression, and (in `regression`)
the single-label regression of the depth study.

    f = cholesky_factor(nngp_train, noise=1e-4)                  # float64, batched over leading axes
    post = gp_posterior(f, y_train, nngp_test_train, nngp_test_diag)   # mean (m, k), variances (m,)
    lml = log_marginal_likelihood(f, y_train)                    # for model selection
    g = eigh_factor(ntk_train)
    ens = ntk_ensemble(g, y_train, ntk_test_train, [0, 10, np.inf], nngp_train=..., nngp_test_train=...,
                       nngp_test_test=...)                       # mean (3, m, k), covariance
    p = predict(arch, x_train, y_train, x_test, times=np.inf)   # both, from the arch
    r = cg_solve(KernelBlocks(arch, x_train), y_train, noise=1e-6)   # kernels too big for one Cholesky
"""
from . import cg
from . import ensemble
from . import gp
from . import regression
from ._factor import ILL_CONDITIONED
from ._factor import CholeskyFactor
from ._factor import EighFactor
from ._factor import cholesky_factor
from ._factor import eigh_factor
from .ensemble import ntk_ensemble
from .gp import Gaussian
from .gp import RidgeRegression
from .gp import gp_posterior
from .gp import kernel_ridge
from .gp import log_marginal_likelihood
from .gp import optimal_amplitude
from ._predict import Prediction
from ._predict import predict
from .cg import CGResult
from .cg import KernelBlocks
from .cg import cg_solve

__all__ = ["CGResult", "KernelBlocks", "cg_solve", "CholeskyFactor", "EighFactor", "Gaussian", "ILL_CONDITIONED", "Prediction", "RidgeRegression",
           "cholesky_factor", "eigh_factor", "gp_posterior", "kernel_ridge", "log_marginal_likelihood",
           "ntk_ensemble", "optimal_amplitude", "predict",
           "cg", "ensemble", "gp", "regression"]   # the modules, for their docs
