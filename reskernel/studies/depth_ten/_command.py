"""`reskernel depths`: the ten-class depth study (kernels to depth 10,000 for the FFNet, trained
finite networks where they fit) on MNIST or CIFAR-10. --small fills every option not given with
sizes that take about a minute of CPU."""
from pathlib import Path

import click

from ...cli import checked, finite
from .._store import out_dir_callback
from ..selection._command import _tens
from ..selection._spec import KERNELS, LEE2018, parse_archs, parse_list
from ._run import parse_depth_list, parse_steps
from ._spec import DEFAULTS, FFNET_EXTRA_DEPTHS, KERNEL_DEPTHS, SMALL

__all__ = ["depths_command"]


def _ints(values):
    return ",".join(str(v) for v in values)


@click.command("depths", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", default="mnist", show_default=True, type=click.Choice(sorted(LEE2018)),
              help="Ten-class data set (images standardized per image, targets 0.9 / -0.1).")
@click.option("--small", is_flag=True,
              help="Small sizes for every option not given: 50 kernel / 20 network training images, 100 test, "
                   "depths 1,3 (FFNet 1,3,30), nets of width 64 at depths 1,3 for 20 steps.")
@click.option("--n-train", default=str(DEFAULTS["n_train"]), show_default=True, callback=checked(_tens("--n-train")),
              help="Kernel training images (the first n / 10 of each class in file order).")
@click.option("--n-test", default="all", show_default=True, callback=checked(_tens("--n-test", allow_all=True)),
              help="Test images: 'all' or a multiple of 10 (balanced, file order); kernels and nets share them.")
@click.option("--archs", default=DEFAULTS["archs"], show_default=True, callback=checked(parse_archs),
              help="Kernel archs: ffnet, resnet:GAMMA (alpha = L^-gamma).")
@click.option("--activation", default=DEFAULTS["activation"], show_default=True, help="Activation name.")
@click.option("--w-var", default=DEFAULTS["w_var"], show_default=True, type=click.FloatRange(min=0, min_open=True),
              callback=finite, help="Weight variance sigma_w^2.")
@click.option("--b-var", default=DEFAULTS["b_var"], show_default=True, type=click.FloatRange(min=0), callback=finite,
              help="Bias variance sigma_b^2.")
@click.option("--depths", default=_ints(KERNEL_DEPTHS), show_default=True, callback=checked(parse_depth_list),
              help="The ResNets' kernel depths.")
@click.option("--ffnet-depths", default=_ints(KERNEL_DEPTHS + FFNET_EXTRA_DEPTHS), show_default=True,
              callback=checked(parse_depth_list), help="The FFNet's kernel depths (one recursion to the deepest).")
@click.option("--kernel", "kernels", default=DEFAULTS["kernels"], show_default=True,
              callback=checked(lambda v: parse_list(v, KERNELS, name="--kernel")), help="Kernels.")
@click.option("--nets/--no-nets", default=True, show_default=True, help="Also train finite networks.")
@click.option("--net-archs", default=DEFAULTS["net_archs"], show_default=True, callback=checked(parse_archs),
              help="Archs of the trained networks.")
@click.option("--net-depths", default=DEFAULTS["net_depths"], show_default=True, callback=checked(parse_depth_list),
              help="Depths of the trained networks.")
@click.option("--width", default=DEFAULTS["width"], show_default=True, type=click.IntRange(min=1),
              help="Width of the trained networks.")
@click.option("--net-n-train", default=str(DEFAULTS["net_n_train"]), show_default=True,
              callback=checked(_tens("--net-n-train")), help="Training images of the networks (first of each class).")
@click.option("--seeds", default=DEFAULTS["seeds"], show_default=True, type=click.IntRange(min=1),
              help="Networks per (arch, depth).")
@click.option("--steps", default=DEFAULTS["steps"], show_default=True, callback=checked(parse_steps),
              help="Gradient-descent steps at which nets and NTK are scored (0 is always added).")
@click.option("--lr-factor", default=DEFAULTS["lr_factor"], show_default=True,
              type=click.FloatRange(min=0, min_open=True), callback=finite,
              help="lr = lr_factor / lambda_max(NTK of the training set).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data folder (default $RESKERNEL_DATA or the cache).")
@click.option("--out", default="results/depth_ten", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for the result files and the figure; reruns resume there.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write depth_ten_<dataset>.png.")
@click.pass_context
def depths_command(ctx, dataset, small, n_train, n_test, archs, activation, w_var, b_var, depths, ffnet_depths,
                   kernels, nets, net_archs, net_depths, width, net_n_train, seeds, steps, lr_factor, data_dir, out,
                   plot):
    """Ten-class accuracy against depth: NNGP/NTK of FFNets and ResNets, and trained networks."""
    from click.core import ParameterSource

    from ._run import kernel_study, net_study
    from ._summary import kernel_table, net_table

    given = {p.name for p in ctx.command.params
             if ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)}
    v = dict(n_train=n_train, n_test=n_test, depths=depths, ffnet_depths=ffnet_depths, net_depths=net_depths,
             width=width, net_n_train=net_n_train, steps=steps)
    if small:
        v.update({k: x for k, x in SMALL.items() if k not in given})
    common = dict(activation=activation, w_var=w_var, b_var=b_var, out=out, data_dir=data_dir)
    try:
        k = kernel_study(dataset, n_train=v["n_train"], n_test=v["n_test"], archs=archs, depths=v["depths"],
                         ffnet_depths=v["ffnet_depths"], kernels=kernels, **common)
        click.echo(kernel_table(k["rows"]))
        n = {"rows": []}
        if nets:
            n = net_study(dataset, n_train=v["net_n_train"], n_test=v["n_test"], archs=net_archs,
                          depths=v["net_depths"], width=v["width"], seeds=seeds, steps=v["steps"],
                          lr_factor=lr_factor, **common)
            click.echo(net_table(n["rows"]))
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {k['json']}" + (f" and {n['json']}" if nets else ""))
    if plot:
        from ._plots import plot_depths

        click.echo(f"wrote {plot_depths({dataset: k['rows']}, {dataset: n['rows']}, Path(out) / f'depth_ten_{dataset}.png')}")
