"""Convergence sweeps: empirical NNGP/NTK of finite networks against the analytic kernels.

For a grid of architectures (FFNet, ResNets of several gamma), depths, widths and seeds,
draws networks with the memory-lean simulator (reskernel._lean: weights generated layer by
layer from per-layer keys, seeds vmapped in chunks), and reports per seed
  frob:  |E - K|_F / |K|_F                      (per matrix)
  entry: mean_ij |E_ij - K_ij| / sqrt(K_ii K_jj)   (per entry, relative to the kernel's scale)
with their 5/50/95 percentiles over seeds, the slope of log error vs log width (theory -1/2:
the empirical kernels are averages over m neurons, fluctuations O(m^-1/2)), and the joint
limit: the width needed for a target error as a function of depth. Theory for the latter:
FFNet relative NTK variance ~ 5 L / m (Hanin & Nica 2019: exp(5 L / m) - 1), so the width for
a relative error eps grows like m ~ L / eps^2 (exponent 1 in depth); ResNet with a = L^-gamma,
gamma >= 1/2: the per-block contributions carry a^2 and the sum over blocks stays O(1), so the
relative fluctuation is O(m^-1/2) uniformly in depth (exponent 0).

Results: out/sweep.json (merged under a lock after every chunk, so concurrent runs over other
grids keep theirs; per-seed results are kept, so a rerun skips every (arch, depth, width, seed)
already computed), out/sweep.png (error vs width, 5-95% bands, one curve per depth, one panel
per arch and kernel) and out/sweep_joint.png (width for the target error vs depth).

Modules: _spec (families, grids, memory and range checks), _theory (the exact diagonal
variance), _stats (errors, slopes, summaries), _run (the sweep and its store), _plots, _command.
"""
from ...nets._lean import hash_normal, lean_kernels, lean_params
from ._command import sweep_command
from ._plots import plot_joint, plot_sweep
from ._run import sweep
from ._spec import (KERNELS, METRICS, arch_name, check_fits, check_scale, max_width, memory_budget, parse_arch,
                    seed_chunk)
from ._stats import fit_slope, joint_limit, summarize, width_for_error
from ._theory import diagonal_relative_variance, theory_width

__all__ = [
    "KERNELS",
    "METRICS",
    "arch_name",
    "check_fits",
    "check_scale",
    "diagonal_relative_variance",
    "fit_slope",
    "hash_normal",
    "joint_limit",
    "lean_kernels",
    "lean_params",
    "max_width",
    "memory_budget",
    "parse_arch",
    "plot_joint",
    "plot_sweep",
    "seed_chunk",
    "summarize",
    "sweep",
    "sweep_command",
    "theory_width",
    "width_for_error",
]
