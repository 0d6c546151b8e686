"""`reskernel depths`: the ten-class depth study (kernels to depth 10,000 for the FFNet, trained
finite networks where they fit) on MNIST or CIFAR-10. --small fills every option not given with
sizes that take about a minute of CPU."""
from pathlib import Path

import click

from ...cli import checked, finite
from ..selection._command import (_tens, archs_option, dataset_option, given_options, kernels_option, n_test_option,
                                  output_options)
from ..selection._spec import parse_archs
from ._run import parse_depth_list, parse_steps
from ._spec import DEFAULTS, FFNET_EXTRA_DEPTHS, KERNEL_DEPTHS, SMALL

__all__ = ["depths_command"]


def _ints(values):
    return ",".join(str(v) for v in values)


@click.command("depths", context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option
@click.option("--small", is_flag=True,
              help="Small sizes for every option not given: 50 kernel / 20 network training images, 100 test, "
                   "depths 1,3 (FFNet 1,3,30), nets of width 64 at depths 1,3 for 20 steps.")
@click.option("--n-train", default=str(DEFAULTS["n_train"]), show_default=True, callback=checked(_tens("--n-train")),
              help="Kernel training images (the first n / 10 of each class in file order).")
@n_test_option(", in file order; kernels and nets share them")
@archs_option(DEFAULTS["archs"], "Kernel archs: ffnet, resnet:GAMMA (alpha = L^-gamma).")
@click.option("--activation", default=DEFAULTS["activation"], show_default=True, help="Activation name.")
@click.option("--w-var", default=DEFAULTS["w_var"], show_default=True, type=click.FloatRange(min=0, min_open=True),
              callback=finite, help="Weight variance sigma_w^2.")
@click.option("--b-var", default=DEFAULTS["b_var"], show_default=True, type=click.FloatRange(min=0), callback=finite,
              help="Bias variance sigma_b^2.")
@click.option("--depths", default=_ints(KERNEL_DEPTHS), show_default=True, callback=checked(parse_depth_list),
              help="The ResNets' kernel depths.")
@click.option("--ffnet-depths", default=_ints(KERNEL_DEPTHS + FFNET_EXTRA_DEPTHS), show_default=True,
              callback=checked(parse_depth_list), help="The FFNet's kernel depths (one recursion to the deepest).")
@kernels_option(DEFAULTS["kernels"], "Kernels.")
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
@output_options("results/depth_ten", "depth_ten")
@click.pass_context
def depths_command(ctx, dataset, small, n_train, n_test, archs, activation, w_var, b_var, depths, ffnet_depths,
                   kernels, nets, net_archs, net_depths, width, net_n_train, seeds, steps, lr_factor, data_dir, out,
                   plot):
    """Ten-class accuracy against depth: NNGP/NTK of FFNets and ResNets, and trained networks."""
    from ._run import kernel_study, net_study
    from ._summary import kernel_table, net_table

    given = given_options(ctx)
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
