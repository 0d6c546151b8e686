"""The standard configurations of Hanin & Rolnick's study, simulated and summarized into a
resumable JSON file and a PNG, and the `reskernel lengths` command."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from ... import _checks
from ._plot import plot_lengths
from ._simulation import simulate
from ._specs import BLOCKS, _real_tuple, feedforward, geometric_scales, he_variances, resnet, width_profile
from ._summary import LengthSummary, summarize


def _atomic(path: Path, write):
    """Write text through a temporary file in the same folder, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _configs(width, depth, b, gains):
    n, prof = width, width_profile
    lo, hi = max(1, width // 2), 2 * width
    out = {"ffnet_he": feedforward((n,) * (depth + 1))}
    for g in gains:
        widths = (n,) * (depth + 1)
        out[f"ffnet_gain_{g:g}"] = feedforward(widths, he_variances(widths, g))
    out["ffnet_increasing"] = feedforward(prof(lo, hi, depth))
    out["ffnet_decreasing"] = feedforward(prof(hi, lo, depth))
    for block in BLOCKS:
        out[f"resnet_{block}_eta_1"] = resnet(n, (1.0,) * depth, block=block)
        out[f"resnet_{block}_eta_{b:g}^l"] = resnet(n, geometric_scales(b, depth), block=block)
    return out


def study(out, *, width: int = 64, depth: int = 50, seeds: int = 1000, b: float = 0.9,
          gains: Sequence[float] = (0.9, 1.1), seed: int = 0, chunk: Optional[int] = None,
          progress: bool = True) -> dict:
    """Simulate and summarize the standard configurations (FFNet He / non-He gains /
    increasing / decreasing widths; ResNets of both blocks with eta_l = 1 and b^l), writing
    out/lengths.json after each (atomically; entries already there with the same parameters
    are skipped) and out/lengths.png.  Returns {"computed": [...], "skipped": [...], "path": ...}."""
    from tqdm.auto import tqdm

    width = _checks.positive_int("width", width)
    depth = _checks.positive_int("depth", depth)
    seeds = _checks.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for standard errors, got {seeds}")
    gains = tuple(_real_tuple("gains", gains, len(gains), allow_zero=False))
    configs = _configs(width, depth, b, gains)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lengths.json"
    params = {"width": width, "depth": depth, "seeds": seeds, "b": float(b), "gains": list(gains),
              "seed": int(seed), "x64": bool(jax.config.jax_enable_x64)}
    results = {}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("params") == params:
            results = dict(old.get("results", {}))
    computed, skipped = [], []
    key = jax.random.PRNGKey(seed)
    for i, (name, spec) in enumerate(tqdm(configs.items(), desc="lengths", disable=not progress)):
        if name in results:
            skipped.append(name)
            continue
        lengths = simulate(spec, jax.random.fold_in(key, i), seeds, chunk=chunk)
        results[name] = summarize(spec, lengths).to_dict()
        computed.append(name)
        _atomic(path, lambda f: json.dump({"params": params, "results": results}, f, indent=1))
    summaries = {name: LengthSummary.from_dict(results[name]) for name in configs}
    png = plot_lengths(summaries, out / "lengths.png")
    return {"computed": computed, "skipped": skipped, "path": str(path), "png": str(png)}


def _lengths_command():
    import click

    @click.command("lengths")
    @click.option("--out", default="results/lengths", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for lengths.json and lengths.png.")
    @click.option("--width", default=64, show_default=True, type=click.IntRange(min=1), help="Width n.")
    @click.option("--depth", default=50, show_default=True, type=click.IntRange(min=1), help="Depth d.")
    @click.option("--seeds", default=1000, show_default=True, type=click.IntRange(min=2),
                  help="Networks per configuration.")
    @click.option("--b", default=0.9, show_default=True, type=click.FloatRange(min=0.0),
                  help="Summable residual scales eta_l = b^l.")
    @click.option("--gain", "gains", multiple=True, type=click.FloatRange(min=0.0, min_open=True),
                  help="Non-critical FFNet variances sigma^2 = gain * 2 / fan-in (repeatable; default 0.9, 1.1).")
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--chunk", default=None, type=click.IntRange(min=1), help="Seeds per vmapped batch.")
    @click.option("--x64/--no-x64", default=True, show_default=True, help="Simulate in float64.")
    def lengths(out, width, depth, seeds, b, gains, seed, chunk, x64):
        """Activation lengths M_j = |x_j|^2/n_j (Hanin & Rolnick 2018): measured vs exact theory."""
        old = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", x64)
        try:
            res = study(out, width=width, depth=depth, seeds=seeds, b=b, gains=gains or (0.9, 1.1),
                        seed=seed, chunk=chunk)
        finally:
            jax.config.update("jax_enable_x64", old)
        summaries = json.loads(Path(res["path"]).read_text())["results"]
        for name, s in summaries.items():
            z = LengthSummary.from_dict(s).mean_z
            click.echo(f"{name:28s} E[M_d] = {s['mean'][-1]:.4g} +- {s['mean_se'][-1]:.2g}"
                       f"  theory {s['mean_theory'][-1]:.4g}  max|z| {np.nanmax(np.abs(z)):.2f}")
        click.echo(f"wrote {res['path']} and {res['png']} ({len(res['computed'])} computed, "
                   f"{len(res['skipped'])} reused)")

    return lengths


lengths_command = _lengths_command()
