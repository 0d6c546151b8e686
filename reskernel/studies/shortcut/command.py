"""`reskernel shortcut`: the success-rate study of Liu et al. (2019) vs Du et al. (2018)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["shortcut_command"]

_SMALL = dict(patch_dims=(4, 16), patches=(4, 16), runs=100, steps=2000, warmup_steps=500)


@click.command("shortcut")
@click.option("--p", "patch_dims", type=int, multiple=True, help="Patch dimensions p (repeatable). [default: 4 8 16 32]")
@click.option("--k", "patches", type=int, multiple=True, help="Numbers of patches k (repeatable). [default: 4 8 16 32]")
@click.option("--runs", type=int, default=None, help="Random teachers/initializations per configuration. [default: 200]")
@click.option("--steps", type=int, default=None, help="Gradient-descent steps. [default: 4000]")
@click.option("--lr", type=float, default=0.1, show_default=True, help="Step size of both layers.")
@click.option("--warmup-steps", type=int, default=None, help="Steps of the first-layer warm-up. [default: 1000]")
@click.option("--warmup-factor", type=float, default=0.1, show_default=True,
              help="First-layer step size during the warm-up, as a fraction of --lr.")
@click.option("--teacher-norm", type=float, default=1.0, show_default=True, help="|a*| of the teachers.")
@click.option("--a-init-scale", type=float, default=1.0, show_default=True,
              help="a_0 uniform in the ball of radius this times |1.a*|/sqrt(k) (Du et al. at 1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), default="results/shortcut", show_default=True,
              help="Output directory (JSON/CSV results, PNG plots); reruns resume there.")
@click.option("--small", is_flag=True, help="A quick run: p, k in {4, 16}, 100 runs, 2000 steps.")
def shortcut_command(patch_dims, patches, runs, steps, lr, warmup_steps, warmup_factor, teacher_norm,
                     a_init_scale, seed, out, small):
    """Fraction of gradient-descent runs that reach the global minimum, with and
    without the shortcut, from w0 = 0 or a random filter, with and without warm-up
    (rates with 95% Wilson intervals over the runs)."""
    from .plots import plot_dynamics, plot_success
    from .study import StudySettings, dynamics_example, run_success_study

    base = _SMALL if small else dict(patch_dims=(4, 8, 16, 32), patches=(4, 8, 16, 32), runs=200,
                                     steps=4000, warmup_steps=1000)
    pick = lambda given, name: given if given not in (None, ()) else base[name]
    try:
        settings = StudySettings(runs=pick(runs, "runs"), steps=pick(steps, "steps"), lr=lr,
                                 warmup_steps=pick(warmup_steps, "warmup_steps"), warmup_factor=warmup_factor,
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
