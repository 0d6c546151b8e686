"""`reskernel phases`: the phase-diagram study from the command line. The defaults are a small
run (two activations, three points plus the critical line, depths to 100, 100/100 images: about
a minute on a 2-core CPU); docs/results/phases.md gives the full study's commands."""
from __future__ import annotations

from pathlib import Path

import click

from ...cli import checked
from .._store import out_dir_callback
from ..depth_study import KERNELS, PRECISIONS, parse_depths, parse_list
from ._spec import parse_activations, parse_archs, parse_values

__all__ = ["phases_command"]


def _classes(value):
    items = [c.strip() for c in value.split(",") if c.strip()]
    if len(items) != 2:
        raise ValueError(f"give two classes, e.g. '4,9' or 'airplane,automobile', got {value!r}")
    return [int(c) if c.isdigit() else c for c in items]


@click.command("phases", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", default="mnist2", show_default=True, type=click.Choice(["mnist2", "cifar2"]),
              help="Two-class subset of MNIST or CIFAR-10.")
@click.option("--classes", default=None, callback=checked(_classes),
              help="Two classes, e.g. '4,9' [default: 4,9 for mnist2; airplane,automobile for cifar2].")
@click.option("--activations", default="erf,relu", show_default=True, callback=checked(parse_activations),
              help="Comma list of activation names (tanh, erf, relu, ...; tanh's Hermite series is ~100x "
                   "costlier per kernel entry).")
@click.option("--w-vars", default="1,2,3", show_default=True,
              callback=checked(lambda v: parse_values(v, name="--w-vars", positive=True)),
              help="Weight variances w_var > 0: '0.5,1,2' or 'start:stop:count'.")
@click.option("--b-vars", default="0.05", show_default=True,
              callback=checked(lambda v: parse_values(v, name="--b-vars", positive=False)),
              help="Bias variances b_var >= 0: '0,0.05,0.5' or 'start:stop:count'.")
@click.option("--critical/--no-critical", default=True, show_default=True,
              help="Also run one point on the critical line (reskernel.critical_line) at each b_var.")
@click.option("--depths", default="1,10,100", show_default=True, callback=checked(parse_depths),
              help="Depths: '1,10,100', 'a:b' (~30 log-spaced) or 'a:b:k'.")
@click.option("--ffnet-depths", default=None, callback=checked(parse_depths),
              help="FFNet depths [default: --depths]; one pass to the deepest, so extra depths are cheap.")
@click.option("--archs", default="ffnet,resnet:0.5,resnet:1", show_default=True, callback=checked(parse_archs),
              help="Comma list of ffnet, resnet:GAMMA (branch scale alpha = L^-gamma).")
@click.option("--kernel", "kernels", default="ntk,nngp", show_default=True,
              callback=checked(lambda v: parse_list(v, KERNELS, name="--kernel")), help="Kernels to regress with.")
@click.option("--precision", "precisions", default="float64", show_default=True,
              callback=checked(lambda v: parse_list(v, PRECISIONS, name="--precision")),
              help="Kernel dtypes; with float64,float32 the float32 rows record their distance to float64.")
@click.option("--n-train", default=100, show_default=True, type=click.IntRange(min=2), help="Training images.")
@click.option("--n-test", default=100, show_default=True, type=click.IntRange(min=1), help="Test images.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the image subsets.")
@click.option("--ridge", default=1e-6, show_default=True, type=click.FloatRange(min=0.0),
              help="Ridge relative to the mean diagonal.")
@click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]),
              help="Parameters in the NTK: hidden layers, or all layers (as neural-tangents).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data folder (default $RESKERNEL_DATA or the cache).")
@click.option("--out", default="results/phases", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for phases_<dataset>.json/.csv and the figures; reruns resume "
              "there, and runs with other grids (also at the same time) add their rows.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write the figures.")
def phases_command(dataset, classes, activations, w_vars, b_vars, critical, depths, ffnet_depths, archs, kernels,
                   precisions, n_train, n_test, seed, ridge, trained, data_dir, out, plot):
    """Kernel-regression accuracy on the (w_var, b_var) phase diagram, FFNet vs ResNet, by depth."""
    from . import _summary
    from ._run import study

    try:
        res = study(dataset, activations=activations, w_vars=w_vars, b_vars=b_vars, critical=critical,
                    depths=depths, ffnet_depths=ffnet_depths, archs=archs, kernels=kernels,
                    precisions=precisions, classes=classes, n_train=n_train, n_test=n_test, seed=seed,
                    ridge=ridge, trained=trained, out=out, data_dir=data_dir, plot=plot)
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    kernel = "ntk" if "ntk" in kernels else kernels[0]
    click.echo(f"{kernel.upper()} test accuracy by distance to the critical line (mean over points):")
    click.echo(_summary.depth_table(res["rows"], kernel))
    click.echo("\nAccuracy lost from the first to the last depth:")
    click.echo(_summary.resnet_table(res["rows"], kernel))
    if any(r["precision"] == "float32" for r in res["rows"]):
        click.echo("\nfloat32 against float64:")
        click.echo(_summary.float32_table(res["rows"], kernel))
    resumed = f", {len(res['resumed'])} resumed from {res['json'].name}" if res["resumed"] else ""
    click.echo(f"\nwrote {res['json']}, {res['csv']}"
               + "".join(f", {Path(p).name}" for p in res["pngs"])
               + f" ({len(res['computed'])} unit(s) computed{resumed})")
    if res["computed"]:
        total = sum(sum(u["kernel_s"].values()) for u in res["computed"])
        click.echo(f"kernels: {total:.1f} s over {len(res['computed'])} unit(s)")
