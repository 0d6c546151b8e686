"""Shortcut connections and gradient descent: Liu, Chen, Zhou, Du, Zhou and Zhao
(NeurIPS 2019) against Du, Lee, Tian, Poczos and Singh (ICML 2018).

A two-layer non-overlapping convolutional net learns a teacher of the same
architecture from Gaussian patches; with the average-pooling shortcut and
w_0 = 0, gradient descent avoids the spurious minimum far more often. The
model's relation to the two papers (what was checked, what is assumed) is in
the notes of reskernel.shortcut.model.

    from reskernel import shortcut as sc
    net = sc.ConvNet(patch_dim=16, patches=16, shortcut=True)
    teacher, init = sc.sample_problems(net, key, runs=500)
    final, _ = sc.gradient_descent(net, sc.Schedule(lr=0.1, steps=4000), init, teacher)
    sc.outcomes(net, final, teacher).code        # GLOBAL, SPURIOUS or UNCONVERGED per run
"""
from .command import shortcut_command
from .dynamics import (GLOBAL, SPURIOUS, UNCONVERGED, Outcome, Schedule, Trajectory, first_step,
                       gradient_descent, outcomes, sample_problems)
from .model import ConvNet, Params, angle, monte_carlo_loss, output, population_loss, relu_cross
from .plots import plot_dynamics, plot_success
from .study import StudySettings, dynamics_example, load_results, run_success_study, wilson_interval

__all__ = [
    "ConvNet",
    "GLOBAL",
    "Outcome",
    "Params",
    "SPURIOUS",
    "Schedule",
    "StudySettings",
    "Trajectory",
    "UNCONVERGED",
    "angle",
    "dynamics_example",
    "first_step",
    "gradient_descent",
    "load_results",
    "monte_carlo_loss",
    "outcomes",
    "output",
    "plot_dynamics",
    "plot_success",
    "population_loss",
    "relu_cross",
    "run_success_study",
    "sample_problems",
    "shortcut_command",
    "wilson_interval",
]
