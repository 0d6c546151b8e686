"""Learning curves on ten-class MNIST / CIFAR-10: test accuracy against the number of training
images for FFNet and ResNet (alpha = L^-gamma) NNGP and NTK, with the model (depth, weight and bias
variance) and the ridge chosen on one fixed validation split at each size.

    reskernel curves --dataset mnist --out results/curves
    reskernel curves --dataset cifar10 --sizes 100,1000,all --out results/curves

    from reskernel.studies import learning_curves
    res = learning_curves.study("mnist", sizes="100,1000,all", out="results/curves")
    print(learning_curves.curve_table(res["curve"]))

The training sets are nested (the first n / 10 images of each class in file order), the
validation split is the n_val / 10 images of each class that follow the largest one, and the
test set is every test image of the files unless n_test says otherwise. The grid phase is the
selection study's (`selection.unit_rows`: one kernel pass per grid point serves every depth and
ridge; one float64 Cholesky per (kernel, depth, ridge)); the choice is `selection.choose` on
validation scores alone, and test predictions (`selection.evaluate`) are computed for the chosen
models only. Conventions (Lee et al. 2018): standardized images, K^0 = w_var x.x'/d + b_var,
targets 0.9 / -0.1.

Modules: _spec (sizes, grid, ridges), _run (the study and its store), _summary (table), _plots,
_command (`reskernel curves`).
"""
from ._command import curves_command
from ._plots import plot_curves
from ._run import CURVE_KEYS
from ._run import nested_split
from ._run import resolve_sizes
from ._run import study
from ._spec import DEFAULT_GRID
from ._spec import DEFAULT_NOISES
from ._spec import DEFAULT_SIZES
from ._spec import parse_noises
from ._spec import parse_sizes
from ._summary import curve_table

__all__ = ["CURVE_KEYS", "DEFAULT_GRID", "DEFAULT_NOISES", "DEFAULT_SIZES", "curve_table", "curves_command",
           "nested_split", "parse_noises", "parse_sizes", "plot_curves", "resolve_sizes", "study"]
