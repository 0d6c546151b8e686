"""Phase-diagram study: kernel-regression accuracy on the (w_var, b_var) plane.

For each activation (tanh, erf, ReLU, ...) the plane of weight and bias variances is split by
the order-to-chaos line (Poole et al. 2016; Schoenholz et al. 2017): `reskernel.critical_line`
gives it, `reskernel.signal_propagation` each point's phase, chi_1 and correlation depth scale
xi_c. At every point of a grid (and on the line itself) the study computes the infinite-width
NNGP and NTK of the FFNet and of ResNets with branch scale alpha = L^-gamma at several depths L,
on real two-class data (MNIST2, CIFAR2; images centred and projected on the unit sphere), and
the test accuracy of kernel ridge regression with them (Lee et al. 2018 draw the same diagram
for the NNGP). Kernels are float64; float32 rows, computed beside float64, record how far the
float32 kernel is from it (kernel_err) and what that does to the accuracy.

    reskernel phases --dataset mnist2 --activations tanh,erf,relu --w-vars 0.5,1,2,3 \\
        --b-vars 0,0.05,0.5 --depths 1,10,100,1000 --archs ffnet,resnet:0.5,resnet:1 --out results/phases

Results: out/phases_<dataset>.json/.csv (reskernel's result store: a row per activation, arch,
point, precision, kernel and depth, merged under a lock as each unit ends, so reruns resume and
runs at the same time keep every row), the figures phases_<dataset>_<activation>_<kernel>.png
(phases, critical line, accuracy at each depth) and depth_<dataset>_<kernel>.png (accuracy vs
depth on and off the line), and the summaries of `_summary`.

Modules: _spec (grids, points, signal propagation), _run (the study and its store), _summary
(the tables that answer the study's questions), _plots, _command (`reskernel phases`).
"""
from ._command import phases_command
from ._plots import plot_depth_curves
from ._plots import plot_phase_diagrams
from ._run import KEY_FIELDS
from ._run import study
from ._spec import ACTIVATIONS
from ._spec import Point
from ._spec import critical_w
from ._spec import grid_points
from ._spec import parse_activations
from ._spec import parse_archs
from ._spec import parse_values
from ._spec import point_signal
from ._summary import curves
from ._summary import depth_table
from ._summary import float32_table
from ._summary import point_table
from ._summary import resnet_table

__all__ = [
    "ACTIVATIONS",
    "KEY_FIELDS",
    "Point",
    "critical_w",
    "curves",
    "depth_table",
    "float32_table",
    "grid_points",
    "parse_activations",
    "parse_archs",
    "parse_values",
    "phases_command",
    "plot_depth_curves",
    "plot_phase_diagrams",
    "point_signal",
    "point_table",
    "resnet_table",
    "study",
]
