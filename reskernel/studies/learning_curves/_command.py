"""`reskernel curves`: learning curves (test accuracy against training-set size, the model chosen
on a validation split at each size) on ten-class MNIST or CIFAR-10. The defaults are the study of
docs/results/learning_curves.md; --small fills every option not given with sizes that run in
well under a minute."""
import click

from ...cli import checked
from .._store import out_dir_callback
from ..selection._command import _tens
from ..selection._spec import KERNELS, LEE2018, PRECISIONS, parse_activations, parse_archs, parse_depths, parse_list
from ..selection._spec import parse_values
from ._spec import DEFAULT_GRID, DEFAULT_NOISES, DEFAULT_SIZES, SMALL, parse_noises, parse_sizes

__all__ = ["curves_command"]


def _text(values):
    return ",".join("all" if v is None else f"{v:g}" for v in values)


@click.command("curves", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", default="mnist", show_default=True, type=click.Choice(sorted(LEE2018)),
              help="Ten-class data set (images standardized per image, targets 0.9 / -0.1).")
@click.option("--small", is_flag=True,
              help="Small sizes for every option not given: sizes 50,100, 50 validation and 200 test images, "
                   "ffnet and resnet:1 (relu, w_var 2, b_var 0.1) at depths 1, 3, ridges 1e-10 and 0.1.")
@click.option("--sizes", default=_text(DEFAULT_SIZES), show_default=True, callback=checked(parse_sizes),
              help="Training-set sizes, multiples of 10 (balanced, nested), and 'all' (every balanced image of the "
                   "training files after the validation split).")
@click.option("--n-val", default="500", show_default=True, callback=checked(_tens("--n-val")),
              help="Validation images (after the largest training set in file order; the same for every size).")
@click.option("--n-test", default="all", show_default=True, callback=checked(_tens("--n-test", allow_all=True)),
              help="Test images: 'all' or a multiple of 10 (balanced).")
@click.option("--archs", default=DEFAULT_GRID["archs"], show_default=True, callback=checked(parse_archs),
              help="Comma list of ffnet, resnet:GAMMA (branch scale alpha = L^-gamma).")
@click.option("--activations", default=DEFAULT_GRID["activations"], show_default=True,
              callback=checked(parse_activations), help="Comma list of activation names.")
@click.option("--w-vars", default=DEFAULT_GRID["w_vars"], show_default=True,
              callback=checked(lambda v: parse_values(v, name="--w-vars", positive=True)),
              help="Weight variances sigma_w^2 > 0.")
@click.option("--b-vars", default=DEFAULT_GRID["b_vars"], show_default=True,
              callback=checked(lambda v: parse_values(v, name="--b-vars", positive=False)),
              help="Bias variances sigma_b^2 >= 0.")
@click.option("--depths", default=DEFAULT_GRID["depths"], show_default=True, callback=checked(parse_depths),
              help="Depths chosen among.")
@click.option("--kernel", "kernels", default=DEFAULT_GRID["kernels"], show_default=True,
              callback=checked(lambda v: parse_list(v, KERNELS, name="--kernel")), help="Kernels.")
@click.option("--noises", default=_text(DEFAULT_NOISES), show_default=True, callback=checked(parse_noises),
              help="Ridges (observation noise relative to each kernel's mean diagonal) chosen among.")
@click.option("--precision", default="float64", show_default=True, type=click.Choice(PRECISIONS),
              help="dtype of the kernels; solves are float64.")
@click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]),
              help="Parameters in the NTK.")
@click.option("--batch-size", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Test images per kernel call.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data folder (default $RESKERNEL_DATA or the cache).")
@click.option("--out", default="results/curves", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for the result files and the figure; reruns resume there.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write curves_<dataset>.png.")
@click.pass_context
def curves_command(ctx, dataset, small, sizes, n_val, n_test, archs, activations, w_vars, b_vars, depths, kernels,
                   noises, precision, trained, batch_size, data_dir, out, plot):
    """Test accuracy against training-set size, the model and ridge chosen on validation at each size."""
    from click.core import ParameterSource

    given = {p.name for p in ctx.command.params
             if ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)}
    values = dict(sizes=sizes, n_val=n_val, n_test=n_test, archs=archs, activations=activations, w_vars=w_vars,
                  b_vars=b_vars, depths=depths, kernels=kernels, noises=noises)
    if small:
        values.update({k: v for k, v in SMALL.items() if k not in given})
    from ._run import study
    from ._summary import curve_table

    try:
        res = study(dataset, **values, precision=precision, trained=trained, batch_size=batch_size, out=out,
                    data_dir=data_dir, plot=plot)
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(curve_table(res["curve"]))
    click.echo(f"sizes {res['sizes']}: {len(res['computed'])} (size, grid point) computed, {len(res['resumed'])} "
               f"resumed, {len(res['evaluated'])} models tested now")
    for path in res["json"] + res["pngs"]:
        click.echo(f"wrote {path}")
