"""`reskernel sweep`: the convergence sweep from the command line."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ...cli import comma_ints
from .._store import out_dir_callback
from ._run import sweep
from ._spec import parse_arch

__all__ = ["sweep_command"]


def _archs(ctx, param, value):
    names = [a.strip() for a in value.split(",") if a.strip()]
    if not names:
        raise click.BadParameter("give at least one architecture")
    for name in names:
        try:
            parse_arch(name)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e)) from None
    return names


def _load_inputs(ctx, param, value):
    if value is None:
        return None
    try:
        return np.load(value)
    except (ValueError, OSError, EOFError) as e:
        raise click.BadParameter(f"cannot read {value} as a .npy array of (n, d) inputs: {e}") from None


@click.command("sweep", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="results/sweep", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for sweep.json, sweep.png, sweep_joint.png; reruns resume "
              "there, and runs over other grids (same --seed, --dtype, --trained, inputs) add to it.")
@click.option("--archs", default="ffnet,resnet:1,resnet:0.75,resnet:0.5", show_default=True, callback=_archs,
              help="Comma-separated: ffnet, resnet, resnet:GAMMA.")
@click.option("--depths", default="4,16", show_default=True, callback=comma_ints("depths"),
              help="Comma-separated depths L >= 1.")
@click.option("--widths", default="64,128,256,512,1024", show_default=True, callback=comma_ints("widths"),
              help="Comma-separated widths m >= 1 (a network must fit the memory budget).")
@click.option("--seeds", default=8, show_default=True, type=click.IntRange(min=1),
              help="Networks per (arch, depth, width).")
@click.option("--n-inputs", default=64, show_default=True, type=click.IntRange(min=1),
              help="Random unit-sphere inputs (ignored with --inputs).")
@click.option("--d-in", default=None, type=click.IntRange(min=1), help="Input dimension [default: 16].")
@click.option("--inputs", "x", default=None, type=click.Path(exists=True, dir_okay=False), callback=_load_inputs,
              help="A .npy file of (n, d) inputs instead of random ones.")
@click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]),
              help="Parameters in the NTK: hidden layers, or all layers (as neural-tangents).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the random inputs and of the networks.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]),
              help="Simulation dtype of the networks (the analytic kernels are float64).")
@click.option("--chunk", default=None, type=click.IntRange(min=1),
              help="Seeds per vmapped batch [default: as many as fit the memory budget].")
@click.option("--memory-gb", default=None, type=click.FloatRange(min=0.0, min_open=True),
              help="Memory budget for a chunk in GiB [default: half of the available device/host memory].")
@click.option("--target-error", default=0.05, show_default=True, type=click.FloatRange(min=0.0, min_open=True),
              help="Relative error for the width-for-error vs depth table.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write sweep.png and sweep_joint.png.")
def sweep_command(out, archs, depths, widths, seeds, n_inputs, d_in, x, trained, seed, dtype, chunk, memory_gb,
                  target_error, plot):
    """Empirical NNGP/NTK vs analytic kernels over widths, depths, architectures and seeds."""
    memory = None if memory_gb is None else max(1, int(memory_gb * 2**30))
    try:
        res = sweep(out, archs=archs, depths=depths, widths=widths, seeds=seeds, x=x, n_inputs=n_inputs, d_in=d_in,
                    trained=trained, seed=seed, dtype=dtype, chunk=chunk, memory_bytes=memory,
                    target_error=target_error, plot=plot, log=click.echo)
    except (ValueError, TypeError) as e:
        raise click.UsageError(str(e)) from None
    s = res["summary"]
    click.echo(f"{'arch':<13}{'depth':>6}{'kernel':>7}{'slope (frob, all seeds)':>26}{'median-slope':>14}")
    for r in s["slopes"]:
        if r["metric"] == "frob":
            click.echo(f"{r['arch']:<13}{r['depth']:>6}{r['kernel']:>7}{r['slope']:>17.3f} +- {r['stderr']:.3f}"
                       f"{r['slope_of_medians']:>14.3f}")
    click.echo(f"joint limit: width for median relative Frobenius error {target_error:g} (measured) beside the "
               f"width for NNGP-diagonal relative std {target_error:g} (theory)")
    for r in s["joint"]:
        note = " (extrapolated)" if r["extrapolated"] else " " * 15
        click.echo(f"  {r['arch']:<13} depth {r['depth']:>5} {r['kernel']:<5} measured {r['width']:>10.0f}"
                   f"{note}  theory {r['theory_width']:>10.0f}")
    for r in s["depth_exponents"]:
        th = "" if r["theory"] is None else f", asymptotic {r['theory']:g}"
        click.echo(f"width-for-error ~ depth^{r['measured']:.2f} measured, depth^{r['theory_fit']:.2f} theory{th}: "
                   f"{r['arch']} {r['kernel']}")
    click.echo(f"wrote {Path(out) / 'sweep.json'}" + (", sweep.png, sweep_joint.png" if plot else ""))
