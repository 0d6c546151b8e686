"""The ten-class depth study: where deeper kernels, and deeper trained networks, degrade.

Test accuracy against depth on ten-class MNIST / CIFAR-10 for the FFNet (to depth 10,000: one
recursion gives every depth) and ResNets with alpha = L^-gamma (each depth its own pass), NNGP
and NTK kernel regression with float64 kernels and solves (the selection study's `evaluate`),
and finite networks of width >= 1024 trained by full-batch gradient descent on MSE at the same
depths (the uncertainty study's trainer), each beside its infinite-width counterpart (the NTK
ensemble's mean at the same steps and at t = infinity).

    reskernel depths --dataset mnist --n-test 1000 --out results/depth_ten

    from reskernel.studies import depth_ten
    k = depth_ten.kernel_study("cifar10", n_train=1000, out="results/depth_ten")
    print(depth_ten.kernel_table(k["rows"]))

Modules: _spec (defaults), _run (kernel_study, net_study, net_unit and the store), _summary
(tables, degradation depth), _plots, _command (`reskernel depths`).
"""
from ._command import depths_command
from ._plots import plot_depths
from ._run import KERNEL_KEYS
from ._run import NET_KEYS
from ._run import kernel_study
from ._run import net_study
from ._run import net_unit
from ._run import parse_depth_list
from ._run import parse_steps
from ._spec import DEFAULTS
from ._spec import FFNET_EXTRA_DEPTHS
from ._spec import KERNEL_DEPTHS
from ._summary import degradation_depth
from ._summary import kernel_table
from ._summary import net_table

__all__ = ["DEFAULTS", "FFNET_EXTRA_DEPTHS", "KERNEL_DEPTHS", "KERNEL_KEYS", "NET_KEYS", "degradation_depth",
           "depths_command", "kernel_study", "kernel_table", "net_study", "net_table", "net_unit",
           "parse_depth_list", "parse_steps", "plot_depths"]
