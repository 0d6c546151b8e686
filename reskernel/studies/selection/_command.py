"""`reskernel select`: the model-selection study, or Lee et al. 2018's Table 1 models
(--lee2018), from the command line. The defaults are the study of docs/results/model_selection.md
(1,000 training and 1,000 validation images, 72 grid points and 864 models per data set: ~16 min on
the shared 2-core machine); --small fills every option not given with sizes that run in well under a
minute."""
from pathlib import Path

import click

from ...cli import checked
from .._store import out_dir_callback
from ._choose import CRITERIA
from ._spec import (DEFAULT_GRID, KERNELS, LEE2018, PRECISIONS, SMALL_GRID, parse_activations, parse_archs,
                    parse_depths, parse_list, parse_values)

__all__ = ["select_command"]

# Options the grid search has and the fixed Lee et al. models do not.
_GRID_ONLY = ("n_train", "n_val", "seed", "archs", "activations", "w_vars", "b_vars", "depths", "kernels",
              "criteria", "trained", "plot")
_SMALL = dict(n_train=100, n_val=100, n_test=500, **SMALL_GRID)
_SMALL_LEE = dict(n_test=1000)


def _tens(name, *, allow_all=False, minimum=10):
    def parse(value):
        text = str(value).strip().lower()
        if allow_all and text == "all":
            return None
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"give a multiple of 10{' or all' if allow_all else ''}, got {value!r}") from None
        if n < minimum or n % 10:
            raise ValueError(f"must be a multiple of 10 (n / 10 images of each class) and >= {minimum}, got {n}")
        return n
    return parse


def _seed(value):
    text = str(value).strip().lower()
    if text in ("first", "none"):
        return None
    if not text.isdigit():
        raise ValueError(f"give 'first' (the first images of each class in file order) or an int >= 0, got {value!r}")
    return int(text)


def _opt_list(allowed, name):
    return checked(lambda v: parse_list(v, allowed, name=name))


def _options(*options):
    """One decorator applying the click options `options`, listed in --help in this order."""
    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f
    return apply


# The options `select`, `curves` and `depths` share, each defined here once.
dataset_option = click.option("--dataset", default="mnist", show_default=True, type=click.Choice(sorted(LEE2018)),
                              help="Ten-class data set (images standardized per image, targets 0.9 / -0.1).")


def n_test_option(note=""):
    """--n-test, its help ending with `note`."""
    return click.option("--n-test", default="all", show_default=True,
                        callback=checked(_tens("--n-test", allow_all=True)),
                        help="Test images: 'all' (every image of the test files) or a multiple of 10 "
                             f"(balanced){note}.")


def archs_option(default, text="Comma list of ffnet, resnet:GAMMA (branch scale alpha = L^-gamma)."):
    return click.option("--archs", default=default, show_default=True, callback=checked(parse_archs), help=text)


def kernels_option(default, text="Kernels whose posterior mean predicts."):
    return click.option("--kernel", "kernels", default=default, show_default=True,
                        callback=_opt_list(KERNELS, "--kernel"), help=text)


def grid_options(defaults):
    """The grid chosen among (select, curves): archs, activations, variances, depths, kernels, with
    the defaults `defaults` (a _spec.DEFAULT_GRID)."""
    return _options(
        archs_option(defaults["archs"]),
        click.option("--activations", default=defaults["activations"], show_default=True,
                     callback=checked(parse_activations),
                     help="Comma list of activation names (relu, erf, tanh, gelu, ...)."),
        click.option("--w-vars", default=defaults["w_vars"], show_default=True,
                     callback=checked(lambda v: parse_values(v, name="--w-vars", positive=True)),
                     help="Weight variances sigma_w^2 > 0: '1,1.5,2' or 'start:stop:count'."),
        click.option("--b-vars", default=defaults["b_vars"], show_default=True,
                     callback=checked(lambda v: parse_values(v, name="--b-vars", positive=False)),
                     help="Bias variances sigma_b^2 >= 0: '0,0.25,0.5' or 'start:stop:count'."),
        click.option("--depths", default=defaults["depths"], show_default=True, callback=checked(parse_depths),
                     help="Depths: '1,3,7', 'a:b' (~30 log-spaced) or 'a:b:k'. An FFNet computes all in one pass."),
        kernels_option(defaults["kernels"]))


precision_options = _options(
    click.option("--precision", default="float64", show_default=True, type=click.Choice(PRECISIONS),
                 help="dtype of the kernels (float32: reskernel's tables, ~1e-6 of the largest entry); solves are "
                      "float64."),
    click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]),
                 help="Parameters in the NTK: hidden layers, or all layers (as neural-tangents)."))

batch_size_option = click.option(
    "--batch-size", default=2000, show_default=True, type=click.IntRange(min=1),
    help="Test images per kernel call (memory ~16 x batch x n_train bytes per kernel and depth).")


def output_options(out, figure):
    """--data-dir, --out (default `out`) and --plot/--no-plot (the figure `figure`_<dataset>.png)."""
    return _options(
        click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                     help="Data folder (default $RESKERNEL_DATA or the cache)."),
        click.option("--out", default=out, show_default=True, type=click.Path(file_okay=False),
                     callback=out_dir_callback,
                     help="Folder for the result files and the figure; reruns resume there."),
        click.option("--plot/--no-plot", default=True, show_default=True, help=f"Write {figure}_<dataset>.png."))


def given_options(ctx) -> set:
    """Names of the command's options given on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    return {p.name for p in ctx.command.params
            if ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)}


@click.command("select", context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option
@click.option("--lee2018", is_flag=True,
              help="Instead of the grid search, run Lee et al. 2018's Table 1 model for --dataset (ReLU NNGP; MNIST "
                   "20-1.45-0.28, CIFAR-10 7-1.28-0.00) on 1,000 training images (the first 100 of each class in file "
                   "order) and every test image, beside the published accuracy.")
@click.option("--small", is_flag=True,
              help="Small sizes for every option not given: 100 train / 100 validation / 500 test images, 4 grid "
                   "points (ffnet and resnet:1, relu, w_var 1.5 and 2, b_var 0.1) at depths 1, 3, 10; with "
                   "--lee2018, 1,000 test images. Well under a minute.")
@click.option("--n-train", default="1000", show_default=True, callback=checked(_tens("--n-train")),
              help="Training images, a multiple of 10 (balanced: n / 10 of each class).")
@click.option("--n-val", default="1000", show_default=True, callback=checked(_tens("--n-val")),
              help="Validation images (from the training files, after the training ones), a multiple of 10; the "
                   "choice is made on them.")
@n_test_option()
@click.option("--seed", default="first", show_default=True, callback=checked(_seed),
              help="'first': the first images of each class in file order; an int: a seeded random draw.")
@grid_options(DEFAULT_GRID)
@click.option("--criteria", default=",".join(CRITERIA), show_default=True, callback=_opt_list(CRITERIA, "--criteria"),
              help="val_accuracy: highest validation accuracy; lml: NNGP with the highest marginal likelihood "
                   "of the training targets (closed-form amplitude).")
@precision_options
@click.option("--noise", default=1e-10, show_default=True, type=click.FloatRange(min=0.0),
              help="Observation noise relative to each kernel's mean diagonal (a tiny jitter, as Lee et al.).")
@batch_size_option
@output_options("results/select", "selection")
@click.pass_context
def select_command(ctx, dataset, lee2018, small, n_train, n_val, n_test, seed, archs, activations, w_vars, b_vars,
                   depths, kernels, criteria, precision, trained, noise, batch_size, data_dir, out, plot):
    """Choose depth, variances, activation, arch and kernel on a validation split; report test scores."""
    given = given_options(ctx)
    if lee2018:
        extra = sorted(set(_GRID_ONLY) & given)
        if extra:
            names = ", ".join("--" + e.replace("_", "-").replace("kernels", "kernel") for e in extra)
            raise click.UsageError(f"--lee2018 runs the paper's fixed model on 1,000 training images; {names} "
                                   "do(es) not apply (it takes --dataset, --n-test, --precision, --noise, "
                                   "--batch-size, --data-dir, --out, --small)", ctx=ctx)
    values = dict(n_train=n_train, n_val=n_val, n_test=n_test, archs=archs, activations=activations, w_vars=w_vars,
                  b_vars=b_vars, depths=depths, kernels=kernels)
    if small:
        for k, v in (_SMALL_LEE if lee2018 else _SMALL).items():
            if k not in given:
                values[k] = v
    try:
        if lee2018:
            _run_lee(dataset, values["n_test"], precision, noise, batch_size, out, data_dir)
        else:
            _run_study(dataset, values, seed, criteria, precision, trained, noise, batch_size, out, data_dir, plot)
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None


def _run_lee(dataset, n_test, precision, noise, batch_size, out, data_dir):
    from ._run import lee2018
    from ._summary import lee_table

    res = lee2018(dataset, n_test=n_test, precision=precision, noise=noise, batch_size=batch_size, out=out,
                  data_dir=data_dir)
    r = res["row"]
    click.echo(lee_table([r]))
    click.echo(f"\ntest images: {r['test_files_note']}; noise {r['noise']:g} x mean diagonal, jitter "
               f"{r['jitter']:.2g}, condition number {r['cond'] or float('inf'):.3g}")
    click.echo(f"wrote {res['json']}" + (" (resumed: the row was there)" if res["resumed"] else
                                         f" (kernels {r['kernel_s']:.1f} s, solves {r['solve_s']:.1f} s)"))


def _run_study(dataset, v, seed, criteria, precision, trained, noise, batch_size, out, data_dir, plot):
    from ._run import study
    from ._summary import chosen_table, depth_table

    res = study(dataset, n_train=v["n_train"], n_val=v["n_val"], n_test=v["n_test"], seed=seed, archs=v["archs"],
                activations=v["activations"], w_vars=v["w_vars"], b_vars=v["b_vars"], depths=v["depths"],
                kernels=v["kernels"], criteria=criteria, precision=precision, trained=trained, noise=noise,
                batch_size=batch_size, out=out, data_dir=data_dir, plot=plot)
    click.echo("Best validation accuracy over (w_var, b_var), by depth:")
    click.echo(depth_table(res["rows"]))
    click.echo(f"\nChosen models (test scores of these only; {res['chosen'][0]['n_test'] if res['chosen'] else 0} "
               "test images):")
    click.echo(chosen_table(res["chosen"]))
    resumed = f", {len(res['resumed'])} resumed" if res["resumed"] else ""
    click.echo(f"\nwrote {', '.join(Path(p).name for p in res['json'] + res['pngs'])} in {out} "
               f"({len(res['computed'])} grid point(s) computed{resumed}; {len(res['evaluated'])} model(s) tested now)")
