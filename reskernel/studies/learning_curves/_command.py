"""`reskernel curves`: learning curves (test accuracy against training-set size, the model chosen
on a validation split at each size) on ten-class MNIST or CIFAR-10. The defaults are the study of
docs/results/learning_curves.md; --small fills every option not given with sizes that run in
well under a minute."""
import click

from ...cli import checked
from ..selection._command import (_tens, batch_size_option, dataset_option, given_options, grid_options, n_test_option,
                                  output_options, precision_options)
from ._spec import DEFAULT_GRID, DEFAULT_NOISES, DEFAULT_SIZES, SMALL, parse_noises, parse_sizes

__all__ = ["curves_command"]


def _text(values):
    return ",".join("all" if v is None else f"{v:g}" for v in values)


@click.command("curves", context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option
@click.option("--small", is_flag=True,
              help="Small sizes for every option not given: sizes 50,100, 50 validation and 200 test images, "
                   "ffnet and resnet:1 (relu, w_var 2, b_var 0.1) at depths 1, 3, ridges 1e-10 and 0.1.")
@click.option("--sizes", default=_text(DEFAULT_SIZES), show_default=True, callback=checked(parse_sizes),
              help="Training-set sizes, multiples of 10 (balanced, nested), and 'all' (every balanced image of the "
                   "training files after the validation split).")
@click.option("--n-val", default="500", show_default=True, callback=checked(_tens("--n-val")),
              help="Validation images (after the largest training set in file order; the same for every size).")
@n_test_option()
@grid_options(DEFAULT_GRID)
@click.option("--noises", default=_text(DEFAULT_NOISES), show_default=True, callback=checked(parse_noises),
              help="Ridges (observation noise relative to each kernel's mean diagonal) chosen among.")
@precision_options
@batch_size_option
@output_options("results/curves", "curves")
@click.pass_context
def curves_command(ctx, dataset, small, sizes, n_val, n_test, archs, activations, w_vars, b_vars, depths, kernels,
                   noises, precision, trained, batch_size, data_dir, out, plot):
    """Test accuracy against training-set size, the model and ridge chosen on validation at each size."""
    given = given_options(ctx)
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
