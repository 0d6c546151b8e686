"""reskernel: infinite-width NNGP/NTK kernels of deep feedforward nets and
alpha = L^-gamma ResNets, with finite-width networks and empirical kernels to
check them against.

    import reskernel as rk
    k = rk.kernel(rk.ResNet(depth=100, gamma=1.0), x1, x2)      # k.nngp, k.ntk
    net = rk.network(rk.FeedForward(depth=10), width=1024)
    e = rk.empirical_kernel(net, net.init(key, d), x1, x2)
"""
from . import data, precision, studies
from .core import analytic, arccos, arch, blocked, limits, tabulated
from .core.analytic import Kernel, correlation_kernels, correlations, kernel
from .core.arch import TRAINED, FeedForward, ResNet
from .core.blocked import blocked_kernel, row_mesh, sharded_kernel
from .inference import regression
from .nets import empirical, networks
from .nets.empirical import empirical_kernel
from .nets.networks import Network, network
from .studies import depth_study, lengths, shortcut, sweeps, training

__version__ = "0.1.0"

__all__ = [
    "FeedForward",
    "Kernel",
    "Network",
    "ResNet",
    "TRAINED",
    "correlation_kernels",
    "blocked",
    "blocked_kernel",
    "data",
    "depth_study",
    "limits",
    "regression",
    "row_mesh",
    "sharded_kernel",
    "sweeps",
    "training",
    "lengths",
    "precision",
    "shortcut",
    "correlations",
    "empirical_kernel",
    "kernel",
    "network",
]
