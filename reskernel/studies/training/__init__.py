"""Training deep and residual nets (issue 5, parts 1 and 2).

  nets          MLP and ResidualMLP (batch norm, SkipInit, alpha = depth^-gamma), plain JAX
  propagation   forward statistics of the residual stream at init, measured and closed form
  optimizers    SGD / Adam / LARS / Fromage as optax, with per-layer norms and a plain
                route for zero-initialized leaves
  fit           jitted training (lax.scan over steps, vmapped over learning rates)
  trust         deep relative trust: relative change of function and gradients
  studies       stream_study, skipinit_study, fromage_study (resumable result tables)
  plots         PNG plots of the studies
  commands      click commands `skipinit` and `fromage`

    from reskernel import training as tr
    spec = tr.ResidualMLP(depth=100, width=64, skipinit=0.0)
    res = tr.train(spec, x, y, optimizer_name="fromage", learning_rate=[0.1, 0.01], steps=300)
"""
from .fit import FitResult, evaluate, logistic_loss, train
from .nets import MLP, ROLES, ResidualMLP, Trace
from .optimizers import OPTIMIZERS, PLAIN_ROLES, optimizer, per_layer
from .plots import plot_fromage, plot_skipinit, plot_stream
from .propagation import StreamStats, stream_statistics, stream_theory
from .studies import (FROMAGE_GRIDS, RESNET_METHODS, constant_loss, fromage_study, load_two_class, mean_std,
                      resnet_spec,
                      skipinit_study, stream_study, summarize_fromage, summarize_skipinit)
from .trust import (DIRECTIONS, TrustMeasurement, lipschitz_bound, relative_change,
                    relative_perturbation, weight_layers)

__all__ = [
    "DIRECTIONS",
    "FROMAGE_GRIDS",
    "FitResult",
    "MLP",
    "OPTIMIZERS",
    "PLAIN_ROLES",
    "RESNET_METHODS",
    "ROLES",
    "ResidualMLP",
    "StreamStats",
    "Trace",
    "TrustMeasurement",
    "constant_loss",
    "evaluate",
    "fromage_study",
    "lipschitz_bound",
    "load_two_class",
    "logistic_loss",
    "mean_std",
    "optimizer",
    "per_layer",
    "plot_fromage",
    "plot_skipinit",
    "plot_stream",
    "relative_change",
    "relative_perturbation",
    "resnet_spec",
    "skipinit_study",
    "stream_statistics",
    "stream_study",
    "stream_theory",
    "summarize_fromage",
    "summarize_skipinit",
    "train",
    "weight_layers",
]
