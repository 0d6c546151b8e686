"""Model selection on ten-class MNIST / CIFAR-10, and Lee et al. 2018's Table 1 reproduced.

A grid of infinite-width models (FFNet or ResNet with alpha = L^-gamma; activation; weight and
bias variances; depth; NNGP or NTK) is scored on a validation split taken from the training
files: the posterior mean K_*x (K + noise I)^-1 Y at the validation images (argmax against the
label: accuracy; MSE against the 0.9/-0.1 targets), and for the NNGP the log marginal likelihood
of the training targets with its closed-form amplitude. The study chooses by validation
accuracy (and the NNGP also by marginal likelihood), overall and per (arch, kernel), and only
then computes test predictions, for the chosen models alone: selection cannot see test labels.

    reskernel select --dataset mnist --n-train 1000 --n-val 1000 --out results/select
    reskernel select --dataset cifar10 --lee2018 --out results/select     # the paper's model

    from reskernel.studies import selection
    res = selection.study("mnist", n_train=1000, n_val=1000, depths="1,3,7,20", out="results/select")
    print(selection.chosen_table(res["chosen"]))
    row = selection.lee2018("mnist")["row"]     # test_accuracy beside published = 0.9279

Conventions (Lee et al. 2018): images standardized per image (zero mean, unit variance over the
pixels, |x|^2 = d); K^0 = w_var x.x'/d + b_var, i.e. in_var = w_var / d, so the FFNet's NNGP is
their K^L; targets one-hot 0.9 / -0.1; noise a tiny jitter (1e-10 x mean diagonal, raised by the
factorization only where rounding needs it). One float64 Cholesky per kernel serves the ten
outputs, the validation and every test batch, and the marginal likelihood.

Modules: _spec (grid, nets, Lee et al.'s models), _grid (kernels and validation scores),
_choose (the choice, from validation scores only), _evaluate (test scores of chosen models),
_run (the study and the reproduction, with the result store), _summary (tables), _plots,
_command (`reskernel select`).
"""
from ._choose import CRITERIA
from ._choose import candidates
from ._choose import choose
from ._command import select_command
from ._evaluate import evaluate
from ._grid import Split
from ._grid import unit_rows
from ._plots import plot_selection
from ._run import CHOSEN_KEYS
from ._run import GRID_KEYS
from ._run import LEE_KEYS
from ._run import TEST_KEYS
from ._run import lee2018
from ._run import library_info
from ._run import study
from ._spec import DEFAULT_GRID
from ._spec import LEE2018
from ._spec import SMALL_GRID
from ._spec import Lee2018
from ._spec import Model
from ._spec import family
from ._summary import chosen_table
from ._summary import depth_table
from ._summary import lee_table

__all__ = [
    "CHOSEN_KEYS",
    "CRITERIA",
    "DEFAULT_GRID",
    "GRID_KEYS",
    "LEE2018",
    "LEE_KEYS",
    "Lee2018",
    "Model",
    "SMALL_GRID",
    "Split",
    "TEST_KEYS",
    "candidates",
    "choose",
    "chosen_table",
    "depth_table",
    "evaluate",
    "family",
    "lee2018",
    "lee_table",
    "library_info",
    "plot_selection",
    "select_command",
    "study",
    "unit_rows",
]
