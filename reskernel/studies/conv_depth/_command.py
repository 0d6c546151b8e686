"""`reskernel convdepths`: kernel-regression accuracy against depth 1..L of convolutional and dense
FFNets / ResNets on pooled CIFAR images. --small fills every option not given with sizes that take
well under a minute of CPU."""
from pathlib import Path

import click

from ...cli import checked, finite
from .._store import out_dir_callback
from ..phases._spec import parse_archs
from ._run import parse_datasets, parse_readouts, parse_resnet_depths
from ._spec import DEFAULTS, SMALL

__all__ = ["convdepths_command"]


def _given(ctx) -> set:
    from click.core import ParameterSource

    return {p.name for p in ctx.command.params
            if ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)}


@click.command("convdepths", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--datasets", default=DEFAULTS["datasets"], show_default=True, callback=checked(parse_datasets),
              help="cifar2 (airplane vs automobile, balanced, seed 0) and/or cifar10 (n / 10 of each class, file "
                   "order).")
@click.option("--small", is_flag=True, help="Small sizes for every option not given: 20 train, 20 test, 4x4 images, "
                                            "depth 3.")
@click.option("--n-train", default=DEFAULTS["n_train"], show_default=True, type=click.IntRange(min=2),
              help="Training images (cifar2: even; cifar10: a multiple of 10).")
@click.option("--n-test", default=DEFAULTS["n_test"], show_default=True, type=click.IntRange(min=2),
              help="Test images (as --n-train).")
@click.option("--image-size", default=DEFAULTS["image_size"], show_default=True,
              type=click.Choice(["1", "2", "4", "8", "16", "32"]), callback=lambda c, p, v: int(v),
              help="Images mean-pooled to SIZE x SIZE x 3 (the gap kernel costs ~ SIZE^4 per pair and layer).")
@click.option("--depth", default=DEFAULTS["depth"], show_default=True, type=click.IntRange(min=1),
              help="The deepest net; every depth 1..DEPTH comes from one pass.")
@click.option("--archs", default=DEFAULTS["archs"], show_default=True, callback=checked(parse_archs),
              help="ffnet, resnet:GAMMA (alpha = DEPTH^-gamma).")
@click.option("--readouts", default=DEFAULTS["readouts"], show_default=True, callback=checked(parse_readouts),
              help="dense (FFNet/ResNet on flattened images), flatten, gap (ConvNet/ConvResNet).")
@click.option("--resnet-depths", default=None,
              help="The ResNets' depths, each its own net of alpha = L^-gamma ('1,10,100' or 'a:b:count' in "
                   "1..DEPTH; default 1,2,3,5,10,20,30,50,100 up to DEPTH, and DEPTH), or 'truncated': every depth "
                   "1..DEPTH from one pass of the DEPTH-block net (depth l = its first l blocks, alpha = "
                   "DEPTH^-gamma).")
@click.option("--filter-size", default=DEFAULTS["filter_size"], show_default=True, type=click.IntRange(min=1),
              help="The convs' filter size k.")
@click.option("--noise", default=DEFAULTS["noise"], show_default=True, type=click.FloatRange(min=0),
              callback=finite, help="Ridge, relative to the mean training diagonal of each kernel.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data folder (default $RESKERNEL_DATA or the cache).")
@click.option("--out", default="results/conv_depth", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for the result files and the figure; reruns resume there.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write conv_depth.png in --out.")
@click.pass_context
def convdepths_command(ctx, datasets, small, n_train, n_test, image_size, depth, archs, readouts, resnet_depths,
                       filter_size, noise, data_dir, out, plot):
    """Does the depth result carry over to convolutions? Accuracy vs depth, conv and dense kernels."""
    from ._run import study
    from ._summary import table

    v = dict(n_train=n_train, n_test=n_test, image_size=image_size, depth=depth)
    if small:
        given = _given(ctx)
        v.update({k: x for k, x in SMALL.items() if k not in given})
    try:
        parse_resnet_depths(resnet_depths, v["depth"])
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    try:
        got = study(datasets, archs=archs, readouts=readouts, filter_size=filter_size, noise=noise, out=out,
                    resnet_depths=resnet_depths, data_dir=data_dir, **v)
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(table(got["rows"]))
    click.echo("wrote " + ", ".join(got["json"].values()))
    if plot:
        from ._plots import plot_conv_depths

        click.echo(f"wrote {plot_conv_depths(got['rows'], Path(out) / 'conv_depth.png')}")
