"""Uncertainty that means something (issue 15, item 4): are the kernels' variances the errors
and spreads one actually meets?

1. NNGP calibration (Lee et al. 2018, Figure 2). The NNGP posterior of an arch trained on
   ten-class MNIST or CIFAR-10 (targets 0.9/-0.1, amplitude s from the marginal likelihood's
   closed form) predicts for each test point a variance s (sigma^2(x) + noise) of every output;
   in quantile bins of it, the realized squared error of the posterior mean (averaged over the
   10 outputs) is compared with the mean predicted variance (`binned_calibration`,
   `calibration_summary`: ratio, slopes, correlations, fraction of bins within their standard
   error).
2. NTK ensemble vs trained networks (Lee et al. 2019). The infinite-width ensemble's mean and
   variance of the test outputs after t steps of gradient descent (`reskernel.inference.
   ntk_ensemble`) beside the mean and variance over seeds of finite networks of the same arch
   and parametrization, trained by full-batch gradient descent with the same lr and targets
   (`train_networks`), compared by `compare_spread` (z of the means, variance ratios with their
   chi-square sampling intervals).

    reskernel uncertainty --small --out results/uncertainty_small
    reskernel uncertainty --out results/uncertainty              # the full study (docs/results/uncertainty.md)

Results: out/calibration.json/.csv, out/spread.json/.csv (reskernel's result store: reruns
resume), out/nets/*.npz (the trained networks' outputs, one file per batch of seeds), and the
figures calibration.png, spread.png, spread_points.png.

Modules: _calibration (binning and its statistics), _spread (ensemble vs samples statistics),
_trainer (k-output networks trained by gradient descent), _study (the two studies and their
store), _plots, _command (`uncertainty_command`, a click command for reskernel's CLI).
"""
from ._calibration import Calibration
from ._calibration import binned_calibration
from ._calibration import calibration_summary
from ._calibration import quantile_bins
from ._command import calibration_table
from ._command import spread_table
from ._command import uncertainty_command
from ._plots import plot_calibration
from ._plots import plot_spread
from ._plots import plot_spread_points
from ._spread import compare_spread
from ._spread import variance_interval
from ._study import ArchSpec
from ._study import calibration_study
from ._study import calibration_unit
from ._study import ensemble_unit
from ._study import parse_arch
from ._study import spread_study
from ._trainer import MultiOutput
from ._trainer import Trained
from ._trainer import gradient_descent
from ._trainer import train_networks

__all__ = [
    "ArchSpec",
    "Calibration",
    "MultiOutput",
    "Trained",
    "binned_calibration",
    "calibration_study",
    "calibration_summary",
    "calibration_table",
    "calibration_unit",
    "compare_spread",
    "ensemble_unit",
    "gradient_descent",
    "parse_arch",
    "plot_calibration",
    "plot_spread",
    "plot_spread_points",
    "quantile_bins",
    "spread_study",
    "spread_table",
    "train_networks",
    "uncertainty_command",
    "variance_interval",
]
