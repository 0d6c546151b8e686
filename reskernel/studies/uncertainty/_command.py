"""`reskernel uncertainty`: do the kernels' uncertainties mean something? The NNGP posterior's
predicted variance against realized errors (calibration), and the NTK ensemble's predicted
spread against networks actually trained from many seeds (spread). docs/results/uncertainty.md
gives the full study's commands and results."""
from pathlib import Path

import click

from ...cli import finite
from .._store import out_dir_callback

__all__ = ["uncertainty_command", "calibration_table", "spread_table"]

_FULL = dict(datasets="mnist,cifar10", cal_archs="ffnet:20,resnet:20:0.5", n_train=1000, n_test=0, bins=10,
             spread_dataset="mnist", spread_archs="ffnet:3,resnet:3:0.5", spread_n_train=100, spread_n_test=200,
             widths="1024", seeds=20, steps="0,1,3,10,30,100,300", chunk=4)
_SMALL = dict(datasets="mnist", cal_archs="ffnet:3,resnet:3:0.5", n_train=50, n_test=100, bins=5,
              spread_dataset="mnist", spread_archs="ffnet:2,resnet:2:0.5", spread_n_train=20, spread_n_test=20,
              widths="128", seeds=4, steps="0,1,5", chunk=2)


def _ints(text, name, low):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"give comma-separated integers, got {text!r}", param_hint=name) from None
    if not values or min(values) < low:
        raise click.BadParameter(f"give integers >= {low}, got {text!r}", param_hint=name)
    return values


def _names(text, allowed, name):
    items = [v.strip() for v in str(text).split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise click.BadParameter(f"choose among {', '.join(allowed)}, got {text!r}", param_hint=name)
    return items


def _help(text, key):
    return f"{text} [default: {_FULL[key]}; --small: {_SMALL[key]}]"


@click.command("uncertainty", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--parts", default="calibration,spread", show_default=True,
              help="Which studies: calibration (NNGP variance vs realized error), spread (NTK ensemble vs trained nets).")
@click.option("--datasets", default=None, help=_help("Calibration: ten-class data sets (mnist, cifar10).", "datasets"))
@click.option("--cal-archs", default=None,
              help=_help("Calibration: archs 'ffnet:DEPTH' or 'resnet:DEPTH:GAMMA' (alpha = DEPTH^-GAMMA).", "cal_archs"))
@click.option("--w-var", default=1.45, show_default=True, type=click.FloatRange(min=0.0, min_open=True),
              callback=finite, help="Weight variance sigma_w^2 of every arch; in_var = w_var / d (Lee et al. 2018).")
@click.option("--b-var", default=0.28, show_default=True, type=click.FloatRange(min=0.0), callback=finite,
              help="Bias variance sigma_b^2 of every arch.")
@click.option("--activation", default="relu", show_default=True, help="Activation name (reskernel.activations).")
@click.option("--n-train", default=None, type=click.IntRange(min=10),
              help=_help("Calibration: training images (a multiple of 10, balanced).", "n_train"))
@click.option("--n-test", default=None, type=click.IntRange(min=0),
              help=_help("Calibration: test images per data set (a multiple of 10; 0: every test image).", "n_test"))
@click.option("--noise", default=1e-6, show_default=True, type=click.FloatRange(min=0.0), callback=finite,
              help="Calibration: observation-noise variance relative to the training NNGP's mean diagonal.")
@click.option("--bins", default=None, type=click.IntRange(min=1), help=_help("Calibration: quantile bins.", "bins"))
@click.option("--spread-dataset", default=None, type=click.Choice(["mnist", "cifar10"]),
              help=_help("Spread: data set.", "spread_dataset"))
@click.option("--spread-archs", default=None, help=_help("Spread: archs, as --cal-archs.", "spread_archs"))
@click.option("--spread-n-train", default=None, type=click.IntRange(min=10),
              help=_help("Spread: training images (a multiple of 10).", "spread_n_train"))
@click.option("--spread-n-test", default=None, type=click.IntRange(min=10),
              help=_help("Spread: test images (a multiple of 10).", "spread_n_test"))
@click.option("--widths", default=None, help=_help("Spread: widths of the trained networks, comma list.", "widths"))
@click.option("--seeds", default=None, type=click.IntRange(min=2), help=_help("Spread: networks per width.", "seeds"))
@click.option("--steps", default=None, help=_help("Spread: gradient-descent steps at which to compare.", "steps"))
@click.option("--lr-factor", default=1.0, show_default=True, type=click.FloatRange(0.0, 2.0, min_open=True,
              max_open=True), callback=finite,
              help="Spread: learning rate = this / largest eigenvalue of the training NTK (descent needs < 2).")
@click.option("--trained", default="all", show_default=True, type=click.Choice(["all", "hidden"]),
              help="Spread: parameters trained (all: the standard NTK; hidden: readout and embedding fixed).")
@click.option("--chunk", default=None, type=click.IntRange(min=1),
              help=_help("Spread: seeds per stored batch (a killed run loses at most one).", "chunk"))
@click.option("--data-seed", default=None, type=click.IntRange(min=0),
              help="Seed of the image subsets [default: none, the first images of each class in file order].")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data folder (default $RESKERNEL_DATA or the cache).")
@click.option("--out", default="results/uncertainty", show_default=True, type=click.Path(file_okay=False),
              callback=out_dir_callback, help="Folder for calibration.json/.csv, spread.json/.csv, nets/ and the "
              "figures; reruns resume there.")
@click.option("--plot/--no-plot", default=True, show_default=True,
              help="Write the figures (spread.png shows every width stored in --out for these settings).")
@click.option("--small", is_flag=True, help="A quick run (under a minute on 2 CPU cores): MNIST, tiny subsets, "
              "3-layer kernels, width-128 nets.")
def uncertainty_command(parts, datasets, cal_archs, w_var, b_var, activation, n_train, n_test, noise, bins,
                        spread_dataset, spread_archs, spread_n_train, spread_n_test, widths, seeds, steps, lr_factor,
                        trained, chunk, data_seed, data_dir, out, plot, small):
    """NNGP calibration and NTK-ensemble spread against trained networks, on ten-class data."""
    from ._study import calibration_study, parse_arch, spread_study

    given = dict(datasets=datasets, cal_archs=cal_archs, n_train=n_train, n_test=n_test, bins=bins,
                 spread_dataset=spread_dataset, spread_archs=spread_archs, spread_n_train=spread_n_train,
                 spread_n_test=spread_n_test, widths=widths, seeds=seeds, steps=steps, chunk=chunk)
    o = {k: (v if v is not None else (_SMALL if small else _FULL)[k]) for k, v in given.items()}
    parts = _names(parts, ("calibration", "spread"), "'--parts'")
    sets = _names(o["datasets"], ("mnist", "cifar10"), "'--datasets'")
    try:
        cal = [parse_arch(a) for a in o["cal_archs"].split(",")]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--cal-archs'") from None
    try:
        spr = [parse_arch(a) for a in o["spread_archs"].split(",")]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--spread-archs'") from None
    from ...core.activations import NAMES

    if activation not in NAMES:
        raise click.BadParameter(f"choose among {', '.join(sorted(NAMES))}, got {activation!r}",
                                 param_hint="'--activation'")
    ws = _ints(o["widths"], "'--widths'", 1)
    st = sorted(set(_ints(o["steps"], "'--steps'", 0)))
    common = dict(w_var=w_var, b_var=b_var, activation=activation, data_seed=data_seed, out=out, data_dir=data_dir)
    pngs = []
    try:
        if "calibration" in parts:
            res = calibration_study(sets, cal, n_train=o["n_train"], n_test=o["n_test"] or None, noise=noise,
                                    bins=o["bins"], **common)
            click.echo(calibration_table(res["rows"]))
            click.echo(f"calibration: {len(res['computed'])} unit(s) computed, {len(res['resumed'])} resumed from "
                       f"{res['json']}")
            if plot and res["rows"]:
                from ._plots import plot_calibration

                pngs.append(plot_calibration(res["rows"], out))
        if "spread" in parts:
            res = spread_study(o["spread_dataset"], spr, n_train=o["spread_n_train"], n_test=o["spread_n_test"],
                               widths=ws, seeds=o["seeds"], steps=st, lr_factor=lr_factor, trained=trained,
                               chunk=o["chunk"], **common)
            click.echo(spread_table(res["stored"]))
            click.echo(f"spread: {len(res['computed'])} batch(es) of seeds trained, {len(res['resumed'])} resumed "
                       f"from {Path(out) / 'nets'}")
            if plot and res["rows"]:
                from ._plots import plot_spread, plot_spread_points

                pngs += [plot_spread(res["stored"], out), plot_spread_points(res["arrays"], out)]
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    if pngs:
        click.echo("wrote " + ", ".join(Path(p).name for p in pngs))


def calibration_table(rows) -> str:
    """The calibration rows as a Markdown table."""
    head = ("| data | arch | n_test | amplitude s | accuracy | mean error | mean predicted | ratio [95%] | log-slope "
            "| corr | spearman | within 1 / 2 s.e. |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['arch']} | {r['n_test']} | {r['amplitude']:.4g} | {r['accuracy']:.4f} | "
                     f"{r['mse']:.4f} | {r['mse'] / r['ratio']:.4f} | {r['ratio']:.3f} [{r['ratio_low']:.3f}, "
                     f"{r['ratio_high']:.3f}] | {r['log_slope']:.2f} | {r['pearson']:.3f} | {r['spearman']:.3f} | "
                     f"{r['within_1se']:.0%} / {r['within_2se']:.0%} |")
    return "\n".join(lines)


def spread_table(rows) -> str:
    """The spread rows as a Markdown table (one line per arch, width and step)."""
    head = ("| arch | width | step | ensemble acc | nets acc | train loss: ensemble / nets | var predicted | "
            "var measured | ratio [95%] | median point ratio (within) | rms z of means (within 2) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["arch"], r["width"], r["step"])):
        lines.append(f"| {r['arch']} | {r['width']} | {r['step']} | {r['ensemble_accuracy']:.3f} | "
                     f"{r['nets_accuracy']:.3f} | {r['ensemble_train_loss']:.3g} / {r['nets_train_loss']:.3g} | "
                     f"{r['var_pred']:.4g} | {r['var_sample']:.4g} | {r['var_ratio']:.3f} [{r['var_ratio_low']:.3f}, "
                     f"{r['var_ratio_high']:.3f}] | {r['ratio_median']:.3f} ({r['ratio_within']:.0%}) | "
                     f"{r['z_rms']:.2f} ({r['z_within_2']:.0%}) |")
    return "\n".join(lines)

