"""Command line: `reskernel COMMAND --help`. Each study module owns its command."""
from __future__ import annotations

import os
from pathlib import Path

import click

from .studies._io import write_json_atomic
from .precision import enable_x64


@click.group()
def main():
    """reskernel: infinite-width kernels of deep feedforward nets and ResNets."""


@main.command()
@click.option("--out", default="results/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for demo.json and demo.png.")
@click.option("--widths", default="64,256,1024,4096", show_default=True, help="Comma-separated widths.")
@click.option("--depth", default=10, show_default=True, type=int)
@click.option("--seeds", default=8, show_default=True, type=int)
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

    widths = [int(w) for w in widths.split(",") if w.strip()]
    if not widths:
        raise click.BadParameter("give at least one width", param_hint="--widths")
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
    os.makedirs(out, exist_ok=True)
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
    from .plotting import figure, save

    fig, ax = figure()
    for name in dict.fromkeys(r["arch"] for r in rows):
        sel = [r for r in rows if r["arch"] == name]
        w = [r["width"] for r in sel]
        ax.plot(w, [r["rel_error_median"] for r in sel], "o-", label=name)
        ax.fill_between(w, [r["rel_error_p5"] for r in sel], [r["rel_error_p95"] for r in sel], alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width m (neurons)")
    ax.set_ylabel("relative Frobenius error of empirical NTK")
    ax.set_title(f"empirical vs analytic NTK, depth {rows[0]['depth']} (median, 5-95% band)")
    ax.legend()
    save(fig, path)


def _register():
    """Each study module owns its command; they are attached here."""
    from .studies.depth_study import regress_command
    from .studies.lengths import lengths_command
    from .studies.shortcut import shortcut_command
    from .studies.sweeps import sweep_command
    from .studies.training.commands import fromage_command, skipinit_command

    for command in (lengths_command, shortcut_command, regress_command, sweep_command, skipinit_command,
                    fromage_command):
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
