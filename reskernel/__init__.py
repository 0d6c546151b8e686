"""reskernel: infinite-width NNGP/NTK kernels of deep feedforward nets and
alpha = L^-gamma ResNets, with finite-width networks and empirical kernels to
check them against.

    import reskernel as rk
    k = rk.kernel(rk.ResNet(depth=100, gamma=1.0), x1, x2)      # k.nngp, k.ntk
    ff = rk.FeedForward(depth=20, w_var=1.45, b_var=0.28, activation="tanh")
    p = rk.signal_propagation(ff)                                # q*, c*, chi_1, xi_q, xi_c, phase
    net = rk.network(rk.FeedForward(depth=10), width=1024)
    kc = rk.kernel(rk.ConvResNet(depth=20, gamma=0.5, readout="gap"), images)  # images (n, H, W, C)
    e = rk.empirical_kernel(net, net.init(key, d), x1, x2)
    p = rk.predict(rk.FeedForward(depth=20), x_train, y_train, x_test, times=np.inf)  # NNGP posterior, NTK ensemble
"""
import importlib

__version__ = "0.1.0"

# Names are imported on first use (PEP 562), so `import reskernel` and `reskernel --help`
# do not load JAX until a kernel is asked for.
_MODULES = {
    "core": "reskernel.core", "nets": "reskernel.nets", "inference": "reskernel.inference",
    "studies": "reskernel.studies", "data": "reskernel.data", "precision": "reskernel.precision",
    "plotting": "reskernel.plotting",
    "activations": "reskernel.core.activations", "signal": "reskernel.core.signal", "quadrature": "reskernel.core.quadrature",
    "analytic": "reskernel.core.analytic", "arccos": "reskernel.core.arccos", "arch": "reskernel.core.arch",
    "blocked": "reskernel.core.blocked", "limits": "reskernel.core.limits", "tabulated": "reskernel.core.tabulated",
    "regression": "reskernel.inference.regression", "empirical": "reskernel.nets.empirical",
    "networks": "reskernel.nets.networks", "depth_study": "reskernel.studies.depth_study",
    "lengths": "reskernel.studies.lengths", "shortcut": "reskernel.studies.shortcut",
    "sweeps": "reskernel.studies.sweeps", "training": "reskernel.studies.training",
    "conv": "reskernel.core.conv", "conv_arch": "reskernel.core.conv_arch", "distributed": "reskernel.core.distributed",
}
_NAMES = {
    "Kernel": "reskernel.core.analytic", "correlation_kernels": "reskernel.core.analytic",
    "correlations": "reskernel.core.analytic", "kernel": "reskernel.core.analytic",
    "TRAINED": "reskernel.core.arch", "FeedForward": "reskernel.core.arch", "ResNet": "reskernel.core.arch",
    "blocked_kernel": "reskernel.core.blocked", "row_mesh": "reskernel.core.blocked",
    "sharded_kernel": "reskernel.core.blocked", "row_block": "reskernel.core.blocked",
    "ConvNet": "reskernel.core.conv_arch", "ConvResNet": "reskernel.core.conv_arch", "conv_kernel": "reskernel.core.conv",
    "write_kernel": "reskernel.core.distributed", "read_kernel": "reskernel.core.distributed",
    "ShardedRows": "reskernel.core.distributed", "empirical_kernel": "reskernel.nets.empirical",
    "Network": "reskernel.nets.networks", "ConvNetwork": "reskernel.nets.conv", "network": "reskernel.nets.networks",
    "Numerical": "reskernel.core.quadrature",
    "signal_propagation": "reskernel.core.signal", "critical_line": "reskernel.core.signal",
    "CholeskyFactor": "reskernel.inference", "EighFactor": "reskernel.inference",
    "cholesky_factor": "reskernel.inference", "eigh_factor": "reskernel.inference",
    "Gaussian": "reskernel.inference", "RidgeRegression": "reskernel.inference",
    "gp_posterior": "reskernel.inference", "log_marginal_likelihood": "reskernel.inference",
    "optimal_amplitude": "reskernel.inference", "kernel_ridge": "reskernel.inference",
    "ntk_ensemble": "reskernel.inference", "Prediction": "reskernel.inference", "predict": "reskernel.inference",
}

__all__ = sorted(set(_NAMES) | {"conv", "conv_arch", "distributed", "signal", "activations", "quadrature", "analytic", "blocked", "data", "depth_study", "inference", "lengths", "limits",
                                "nets", "precision", "regression", "shortcut", "studies", "sweeps", "training",
                                "core"})


def __getattr__(name):
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'reskernel' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_MODULES) | set(_NAMES))
