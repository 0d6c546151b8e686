"""Command line: `reskernel COMMAND --help`. Each study module owns its command.

A command's module (and with it JAX) is imported only when that command runs, so
`reskernel --help` answers at once; the listing's one-line descriptions come from _COMMANDS.
Every command's --out folder is checked while the options are parsed, before any computing.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}

# name: (module, attribute, one line for `reskernel --help`)
_COMMANDS = {
    "convdepths": ("reskernel.studies.conv_depth", "convdepths_command", "Conv vs dense kernels: accuracy vs depth."),
    "curves": ("reskernel.studies.learning_curves", "curves_command",
               "Learning curves: ten-class test accuracy vs training-set size, model chosen on validation."),
    "depths": ("reskernel.studies.depth_ten", "depths_command",
               "Ten-class accuracy vs depth: FFNet/ResNet NNGP and NTK (to L = 10,000) and trained networks."),
    "fromage": ("reskernel.studies.training.commands", "fromage_command",
                "Fromage vs SGD/Adam/LARS on MLPs of growing depth (Bernstein et al. 2020)."),
    "lengths": ("reskernel.studies.lengths", "lengths_command",
                "Activation lengths at init, measured vs exact theory (Hanin & Rolnick 2018)."),
    "phases": ("reskernel.studies.phases", "phases_command",
               "Kernel-regression accuracy on the (w_var, b_var) phase diagram, FFNet vs ResNet, by depth."),
    "regress": ("reskernel.studies.depth_study", "regress_command",
                "Kernel regression accuracy vs depth (FFNet vs ResNet, NTK/NNGP, float64/float32)."),
    "select": ("reskernel.studies.selection", "select_command",
               "Model selection on a validation split (ten-class MNIST/CIFAR-10), and Lee et al. 2018's Table 1."),
    "shortcut": ("reskernel.studies.shortcut", "shortcut_command",
                 "Success rate of gradient descent with and without the shortcut (Liu et al. 2019)."),
    "skipinit": ("reskernel.studies.training.commands", "skipinit_command",
                 "Batch norm and SkipInit: forward statistics and trainability of deep ResNets (De & Smith 2020)."),
    "uncertainty": ("reskernel.studies.uncertainty", "uncertainty_command",
                    "Do the GP's and the NTK ensemble's uncertainties mean something? Calibration, and trained nets."),
    "sweep": ("reskernel.studies.sweeps", "sweep_command",
              "Empirical NNGP/NTK vs analytic kernels over widths, depths, architectures and seeds."),
}


def _out_dir(ctx, param, value):
    from .studies._store import out_dir_callback

    return out_dir_callback(ctx, param, value)


def _check_out_early(command: click.Command) -> None:
    """Give the command's --out option the shared folder check, after its own callback."""
    from .studies._store import out_dir_callback

    for param in command.params:
        if "--out" not in getattr(param, "opts", ()) or param.callback in (out_dir_callback, _out_dir):
            continue
        if getattr(param.callback, "checks_out_dir", False):
            continue
        previous = param.callback

        def callback(ctx, param, value, previous=previous):
            if previous is not None:
                value = previous(ctx, param, value)
            return out_dir_callback(ctx, param, value)

        callback.checks_out_dir = True
        param.callback = callback


class LazyGroup(click.Group):
    """A group whose commands (beyond those added directly) are imported on first use."""

    def list_commands(self, ctx):
        return sorted(set(self.commands) | set(_COMMANDS))

    def get_command(self, ctx, name):
        if name not in self.commands and name in _COMMANDS:
            module, attribute, _ = _COMMANDS[name]
            command = getattr(importlib.import_module(module), attribute)
            _check_out_early(command)
            self.add_command(command, name)
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else _COMMANDS[name][2]) for name in names
                if name not in self.commands or not self.commands[name].hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="reskernel")
def main():
    """reskernel: infinite-width kernels of deep feedforward nets and ResNets."""


def finite(ctx, param, value):
    """A click callback refusing nan and inf (click's FloatRange lets them through), for a float
    option or a repeatable one (a tuple)."""
    bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v is not None and not math.isfinite(v)]
    if bad:
        raise click.BadParameter(f"must be a finite number, got {bad[0]}")
    return value


def checked(fn):
    """A click callback applying fn to the option's text; its ValueError or TypeError becomes a
    usage error naming the option (exit code 2)."""
    def callback(ctx, param, value):
        if value is None or ctx.resilient_parsing:
            return value
        try:
            return fn(value)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return callback


def comma_ints(name, *, unique=False):
    """A click callback reading comma-separated ints >= 1 for the option `name` (plural), as
    given or, with unique, sorted without repeats; bad values raise click.BadParameter."""
    def convert(ctx, param, value):
        try:
            vals = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{name} must be comma-separated ints, got {value!r}") from None
        if not vals:
            raise click.BadParameter(f"give at least one {name[:-1]}")
        if min(vals) < 1:
            raise click.BadParameter(f"{name} must be >= 1, got {min(vals)}")
        return sorted(set(vals)) if unique else vals
    return convert


@main.command(context_settings=CONTEXT)
@click.option("--out", default="results/demo", show_default=True, type=click.Path(file_okay=False),
              callback=_out_dir, help="Folder for demo.json and demo.png.")
@click.option("--widths", default="64,256,1024,4096", show_default=True, callback=comma_ints("widths", unique=True),
              help="Comma-separated widths m >= 1.")
@click.option("--depth", default=10, show_default=True, type=click.IntRange(min=1),
              help="Depth L of both networks (hidden layers of the FFNet, blocks of the ResNet).")
@click.option("--seeds", default=8, show_default=True, type=click.IntRange(min=1),
              help="Networks drawn per architecture and width (the percentiles are over them).")
def demo(out, widths, depth, seeds):
    """Theory vs finite width: empirical NTKs of real networks converge to the analytic kernel.

    Draws `seeds` FFNets and ResNets (gamma = 1) of the given depth at each width, computes
    their empirical NTK on 8 unit inputs, and prints and plots the relative Frobenius error
    against the analytic NTK (float64 analytic, float32 networks).
    """
    import jax
    import numpy as np
    from tqdm import tqdm

    import reskernel as rk
    from .precision import enable_x64
    from .studies._store import write_json_atomic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    archs = {"FFNet": rk.FeedForward(depth), "ResNet(gamma=1)": rk.ResNet(depth, gamma=1.0)}
    rows = []
    bar = tqdm(total=len(archs) * len(widths) * seeds, desc="demo", unit="net")
    for name, arch in archs.items():
        with enable_x64():
            theory = np.asarray(rk.kernel(arch, x).ntk)
        for width in widths:
            net = rk.network(arch, width)
            errs = []
            for key in jax.random.split(jax.random.PRNGKey(width), seeds):
                params = net.init(key, x.shape[1], dtype=np.float32)
                emp = np.asarray(rk.empirical_kernel(net, params, x.astype(np.float32)).ntk, np.float64)
                errs.append(np.linalg.norm(emp - theory) / np.linalg.norm(theory))
                bar.update()
            rows.append({"arch": name, "depth": depth, "width": width, "seeds": seeds,
                         "rel_error_median": float(np.median(errs)), "rel_error_p5": float(np.percentile(errs, 5)),
                         "rel_error_p95": float(np.percentile(errs, 95))})
    bar.close()
    write_json_atomic(Path(out) / "demo.json", {"rows": rows, "inputs": "8 random unit vectors in R^16"})
    click.echo(f"{'arch':<16}{'width':>7}{'median rel. error':>20}{'5-95%':>22}")
    for r in rows:
        click.echo(f"{r['arch']:<16}{r['width']:>7}{r['rel_error_median']:>20.4f}"
                   f"{r['rel_error_p5']:>11.4f}-{r['rel_error_p95']:.4f}")
    for name in archs:
        sel = [r for r in rows if r["arch"] == name]
        if len(sel) > 1:
            slope = np.polyfit(np.log([r["width"] for r in sel]), np.log([r["rel_error_median"] for r in sel]), 1)[0]
            click.echo(f"{name}: slope of log error vs log width = {slope:.2f} (theory -0.5)")
    _plot_demo(rows, Path(out) / "demo.png")
    click.echo(f"wrote {Path(out) / 'demo.json'} and {Path(out) / 'demo.png'}")


def _plot_demo(rows, path):
    """Median error vs width with 5-95% bands per architecture, and the m^-1/2 law through the
    medians (its constant fitted, its slope not)."""
    import numpy as np
    from matplotlib.ticker import NullLocator

    from .plotting import figure, save

    fig, ax = figure()
    for name in dict.fromkeys(r["arch"] for r in rows):
        sel = [r for r in rows if r["arch"] == name]
        w = [r["width"] for r in sel]
        line, = ax.plot(w, [r["rel_error_median"] for r in sel], "o-", label=f"{name} (median)")
        ax.fill_between(w, [r["rel_error_p5"] for r in sel], [r["rel_error_p95"] for r in sel], alpha=0.2,
                        color=line.get_color(), label=f"{name} (5-95% of seeds)")
    widths = np.array(sorted({r["width"] for r in rows}), float)
    c = float(np.exp(np.mean([np.log(r["rel_error_median"] * np.sqrt(r["width"])) for r in rows])))
    ax.plot(widths, c * widths ** -0.5, "k:", lw=1.2, label=r"theory: error $\propto m^{-1/2}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("width m (neurons)")
    ax.set_ylabel("relative Frobenius error of empirical NTK")
    ax.set_title(f"empirical vs analytic NTK, depth {rows[0]['depth']}, {rows[0]['seeds']} seeds per width",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    save(fig, path)


if __name__ == "__main__":
    main()
