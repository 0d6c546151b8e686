"""`reskernel shortcut`: the success-rate study of Liu et al. (2019) vs Du et al. (2018)."""
from __future__ import annotations

from pathlib import Path

import click

from ...cli import finite

__all__ = ["shortcut_command"]

_SMALL = dict(patch_dims=(4, 16), patches=(4, 16), runs=100, steps=2000, warmup_steps=500)
_FULL = dict(patch_dims=(4, 8, 16, 32), patches=(4, 8, 16, 32), runs=200, steps=4000, warmup_steps=1000)


@click.command("shortcut", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--p", "patch_dims", type=click.IntRange(min=1), multiple=True,
              help="Patch dimensions p, each >= 1 (repeatable). [default: 4 8 16 32; --small: 4 16]")
@click.option("--k", "patches", type=click.IntRange(min=1), multiple=True,
              help="Numbers of patches k, each >= 1 (repeatable). [default: 4 8 16 32; --small: 4 16]")
@click.option("--runs", type=click.IntRange(min=1), default=None,
              help="Random teachers/initializations per configuration, >= 1. [default: 200; --small: 100]")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Gradient-descent steps, >= 1. [default: 4000; --small: 2000]")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=0.1, show_default=True,
              callback=finite, help="Step size of both layers, > 0.")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=None,
              help="Steps of the first-layer warm-up, from 0 to --steps. [default: 1000; --small: 500]")
@click.option("--warmup-factor", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=0.1,
              show_default=True, callback=finite,
              help="First-layer step size during the warm-up, as a fraction of --lr, in (0, 1].")
@click.option("--teacher-norm", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              callback=finite, help="|a*| of the teachers, > 0.")
@click.option("--a-init-scale", type=click.FloatRange(min=0.0), default=1.0, show_default=True, callback=finite,
              help="a_0 uniform in the ball of radius this times |1.a*|/sqrt(k) (Du et al. at 1), >= 0.")
@click.option("--seed", type=click.IntRange(min=0, max=2**31 - 1), default=0, show_default=True,
              help="Seed of the teachers and initializations (the same ones for every variant at a (p, k)), >= 0.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="results/shortcut", show_default=True,
              help="Output directory (shortcut_success.json/.csv, PNG plots); reruns resume there, and runs "
                   "with other settings (also at the same time) add their rows.")
@click.option("--small", is_flag=True, help="A quick run: p, k in {4, 16}, 100 runs, 2000 steps.")
def shortcut_command(patch_dims, patches, runs, steps, lr, warmup_steps, warmup_factor, teacher_norm,
                     a_init_scale, seed, out, small):
    """Fraction of gradient-descent runs that reach the global minimum, with and
    without the shortcut, from w0 = 0 or a random filter, with and without warm-up
    (rates with 95% Wilson intervals over the runs)."""
    from .plots import plot_dynamics, plot_success
    from .study import StudySettings, dynamics_example, run_success_study

    base = _SMALL if small else _FULL
    pick = lambda given, name: given if given not in (None, ()) else base[name]
    steps, warmup_steps = pick(steps, "steps"), pick(warmup_steps, "warmup_steps")
    if warmup_steps > steps:
        raise click.BadParameter(f"must be <= --steps ({steps}), got {warmup_steps}", param_hint="'--warmup-steps'")
    try:
        settings = StudySettings(runs=pick(runs, "runs"), steps=steps, lr=lr,
                                 warmup_steps=warmup_steps, warmup_factor=warmup_factor,
                                 teacher_norm=teacher_norm, a_init_scale=a_init_scale, seed=seed)
        ps, ks = pick(patch_dims, "patch_dims"), pick(patches, "patches")
        entries = run_success_study(out, patch_dims=ps, patches=ks, settings=settings)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(str(e)) from None
    out = Path(out)
    plot_success(entries, out / "shortcut_success.png")
    plot_dynamics(dynamics_example(max(ps), max(ks), settings=settings), out / "shortcut_dynamics.png")
    for e in sorted(entries, key=lambda e: (e["p"], e["k"], not e["shortcut"], e["w_init_norm"], e["warmup"])):
        click.echo(f"p={e['p']:3d} k={e['k']:3d} {'ResNet' if e['shortcut'] else 'CNN   '} "
                   f"w0={'0     ' if e['w_init_norm'] == 0 else 'random'} warmup={e['warmup']:5d}  "
                   f"success {e['success_rate']:.3f} [{e['success_lo']:.3f}, {e['success_hi']:.3f}]  "
                   f"(spurious {e['spurious']}, unconverged {e['unconverged']} of {e['runs']}"
                   + ("" if e["first_step_away"] is None else f"; first step away from w*: {e['first_step_away']}")
                   + ")")
    click.echo(f"results and plots in {out}")
