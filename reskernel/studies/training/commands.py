"""Click commands for the training studies, to be registered in the main CLI:

    reskernel skipinit [--small] ...   forward statistics + trainability (De & Smith 2020)
    reskernel fromage  [--small] ...   MLP depth study with SGD/Adam/LARS/Fromage (Bernstein et al. 2020)

The data (the two-class subset of the dataset) are the same for every --seed; the
seeds change the initialization and the minibatch order.
"""
from __future__ import annotations

import math
from pathlib import Path

import click

__all__ = ["skipinit_command", "fromage_command"]


def _ints(ctx, param, value):
    """Comma-separated depths, each >= 1."""
    try:
        values = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"expected comma-separated integers >= 1, got {value!r}")
    return values


def _floats(ctx, param, value):
    """Comma-separated learning rates, each finite and > 0."""
    try:
        values = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise click.BadParameter(f"expected comma-separated finite numbers > 0, got {value!r}")
    return values


def _common_options(*, dataset: str, out: str, depths: str, width: int, steps: int, small: str, files: str):
    """The options both training commands share (defaults per command), in --help order."""
    options = [
        click.option("--dataset", type=click.Choice(["mnist2", "cifar2"]), default=dataset, show_default=True,
                     help="Two-class data: mnist2 (digits 4 vs 9) or cifar2 (airplane vs automobile), every "
                          "training and test image of the two classes."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=out, show_default=True,
                     help=f"Folder for {files}; reruns resume there, and runs with other settings (also at the "
                          "same time) add their rows."),
        click.option("--depths", default=depths, show_default=True, callback=_ints,
                     help="Comma-separated depths (hidden layers or residual blocks), each >= 1."),
        click.option("--width", type=click.IntRange(min=1), default=width, show_default=True,
                     help="Hidden width (neurons per layer), >= 1."),
        click.option("--steps", type=click.IntRange(min=1), default=steps, show_default=True,
                     help="Training steps (minibatch updates), >= 1."),
        click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
                     help="Training examples per minibatch, from 1 to the training set's size."),
        click.option("--seed", type=click.IntRange(min=0, max=2**31 - 1), default=0, show_default=True,
                     help="First training seed (init and minibatch order), >= 0."),
        click.option("--seeds", "n_seeds", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Number of training seeds: seed, seed+1, ... (mean and sd are reported), >= 1."),
        click.option("--data-dir", type=click.Path(), default=None, help="Data folder (else $RESKERNEL_DATA)."),
        click.option("--small", is_flag=True, help=small),
        click.option("--overwrite", is_flag=True,
                     help="Recompute (and replace) the results --out already holds for these settings; "
                          "results of other settings are kept."),
    ]

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _check_batch(batch_size, n_train):
    if batch_size > n_train:
        raise click.BadParameter(f"must be <= the {n_train} training images, got {batch_size}",
                                 param_hint="'--batch-size'")


def _study(fn, *args, **kwargs):
    """Run a study, turning bad settings into click usage errors."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(str(e)) from None


def _pm(mean, std, spec=".3f"):
    return "-" if mean is None else f"{mean:{spec}}+-{std:{spec}}"


@click.command("skipinit", context_settings={"help_option_names": ["-h", "--help"]})
@_common_options(dataset="cifar2", out="results/skipinit", depths="10,30,100,300", width=64, steps=300,
                 small="A quick run (about 30 s on 2 CPU cores): depth 30, width 32, 60 steps at lr 0.01; "
                       "stream statistics to depth 20.",
                 files="stream.json/.csv/.png and skipinit.json/.csv/.png")
@click.option("--lr", "lrs", default="0.001,0.01,0.1", show_default=True, callback=_floats,
              help="Comma-separated SGD learning rates, each > 0.")
def skipinit_command(dataset, out_dir, depths, width, steps, batch_size, seed, n_seeds, data_dir, small,
                     overwrite, lrs):
    """Batch norm and SkipInit bias residual blocks toward the identity: forward
    statistics vs depth (measured and closed form) and trainability of deep ResNets."""
    from .plots import plot_skipinit, plot_stream
    from .studies import load_two_class, skipinit_study, stream_study, summarize_skipinit

    if small:
        depths, width, steps, lrs = (30,), 32, 60, (0.01,)
    out = Path(out_dir)
    x_train, y_train, x_test, y_test = load_two_class(dataset, data_dir=data_dir)
    _check_batch(batch_size, len(y_train))
    stream = _study(stream_study, x_train[:64], depth=20 if small else min(max(depths, default=1), 100),
                    width=max(width, 64), n_seeds=8 if small else 16, out=out / "stream.json")
    click.echo(f"stream statistics: {plot_stream(stream, out / 'stream.png')}")
    for method, r in stream["methods"].items():
        click.echo(f"  {method:9s} E[Q_L]/q0 measured {r['stream'][-1] / stream['config']['q0']:.4g}"
                   f"  theory {r['theory_stream'][-1] / stream['config']['q0']:.4g}")
    res = _study(skipinit_study, x_train, y_train, x_test, y_test, depths=depths, width=width, learning_rates=lrs,
                 steps=steps, batch_size=batch_size, seed=seed, n_seeds=n_seeds, out=out / "skipinit.json",
                 overwrite=overwrite)
    click.echo(f"trainability: {plot_skipinit(res, out / 'skipinit.png')}")
    click.echo(f"{'method':10s} {'depth':>5s} {'lr':>7s} {'train loss':>15s} {'train acc':>13s} "
               f"{'test acc':>13s}  trained/stalled/diverged")
    for r in summarize_skipinit(res):
        click.echo(f"{r['method']:10s} {r['depth']:5d} {r['learning_rate']:7.3g} "
                   f"{_pm(r['train_loss'], r['train_loss_std'], '.4f'):>15s} "
                   f"{_pm(r['train_accuracy'], r['train_accuracy_std']):>13s} "
                   f"{_pm(r['test_accuracy'], r['test_accuracy_std']):>13s}  "
                   f"{r['trained']}/{r['stalled']}/{r['diverged']}")


@click.command("fromage", context_settings={"help_option_names": ["-h", "--help"]})
@_common_options(dataset="mnist2", out="results/fromage", depths="2,5,10,15,20,25,30,40,50", width=128,
                 steps=500, small="A quick run (about 35 s on 2 CPU cores): depths 2 and 10, width 64, 100 steps.",
                 files="fromage.json/.csv/.png")
@click.option("--init", type=click.Choice(["pytorch", "he"]), default="pytorch", show_default=True,
              help="Weight init: pytorch (nn.Linear's default, as in the paper) or he (N(0, 2/fan-in) weights, "
                   "zero biases).")
def fromage_command(dataset, out_dir, depths, width, steps, batch_size, seed, n_seeds, data_dir, small,
                    overwrite, init):
    """Fromage vs SGD/Adam/LARS on MLPs of growing depth: best training accuracy per depth."""
    from .plots import plot_fromage
    from .studies import fromage_study, load_two_class, summarize_fromage

    if small:
        depths, width, steps = (2, 10), 64, 100
    out = Path(out_dir)
    x_train, y_train, x_test, y_test = load_two_class(dataset, data_dir=data_dir)
    _check_batch(batch_size, len(y_train))
    res = _study(fromage_study, x_train, y_train, x_test, y_test, depths=depths, width=width, init=init,
                 steps=steps, batch_size=batch_size, seed=seed, n_seeds=n_seeds, out=out / "fromage.json",
                 overwrite=overwrite)
    click.echo(f"plot: {plot_fromage(res, out / 'fromage.png')}")
    s = summarize_fromage(res)
    opts = sorted(s["best"])
    click.echo(f"final training accuracy, mean+-sd over {s['seeds']} seeds, at each optimizer's best "
               "grid value (lr):")
    click.echo(f"{'depth':>5s} " + " ".join(f"{o:>22s}" for o in opts) + f" {'fromage@0.01':>13s}")
    for d in sorted(res["config"]["depths"]):
        cells = [f"{_pm(*s['best'][o][d][:2])} ({s['best'][o][d][2]:g})" if d in s["best"][o] else "-"
                 for o in opts]
        fx = s["fromage_at"].get(d)
        click.echo(f"{d:5d} " + " ".join(f"{c:>22s}" for c in cells) + f" {_pm(*fx) if fx else '-':>13s}")
    click.echo(f"deepest depth with mean training accuracy >= {s['threshold']}: {s['deepest']}")
