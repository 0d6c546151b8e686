"""The standard configurations of Hanin & Rolnick's study, simulated and summarized into a
resumable result table (lengths.json and its CSV view) and a PNG, and the `reskernel lengths`
command."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from ... import _checks
from .._store import REMEDY, Table, read_document
from ._plot import plot_lengths
from ._simulation import simulate
from ._specs import BLOCKS, _real_tuple, feedforward, geometric_scales, he_variances, resnet, width_profile
from ._summary import LengthSummary, summarize

# A row: one configuration under one set of study parameters (all of which fix its draws: the
# configuration's index, and so its key, depends on the number of gains), its LengthSummary
# fields and its spec's fields.
KEY_FIELDS = ("config", "width", "depth", "seeds", "b", "gains", "seed", "x64")
_SPEC_FIELDS = ("widths", "sigma2", "scales", "block")
_META = {"study": "lengths", "rows": "one row per configuration and study parameters: activation lengths "
         "M_j = |x_j|^2/n_j per layer j = 0..depth, measured over `seeds` nets (with standard errors and "
         "5-95 percentiles) beside the theory (mean_theory, bounds mean_lower/mean_upper, ...); the spec "
         "(widths, sigma2, scales, block)"}


def _row(name, params, summary: LengthSummary) -> dict:
    d = summary.to_dict()
    return {"config": name, **params, **{k: v for k, v in d.items() if k != "spec"}, **d["spec"]}


def _summary(row) -> LengthSummary:
    return LengthSummary.from_dict(dict(row, spec={k: row[k] for k in _SPEC_FIELDS}))


def _table(out) -> Table:
    table = Table(out, "lengths", KEY_FIELDS)
    doc = read_document(table.json, {"rows": list, "meta": dict})
    if doc is not None and "rows" not in doc:
        raise ValueError(f"the result file {table.json} is not a result table of this reskernel (an earlier "
                         f"version wrote one set of parameters per file); {REMEDY}")
    return table


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
    increasing / decreasing widths; ResNets of both blocks with eta_l = 1 and b^l), merging each
    configuration's row into the result table out/lengths.json (and .csv) of reskernel's result
    store as it ends (rows of other parameters, also from runs at the same time, are kept;
    configurations already there with the same parameters are skipped), and out/lengths.png.
    Returns {"computed": [...], "skipped": [...], "results": {name: LengthSummary}, "path", "png"}."""
    from tqdm.auto import tqdm

    width = _checks.positive_int("width", width)
    depth = _checks.positive_int("depth", depth)
    seeds = _checks.positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for standard errors, got {seeds}")
    gains = tuple(_real_tuple("gains", gains, len(gains), allow_zero=False))
    configs = _configs(width, depth, b, gains)
    table = _table(Path(out))
    params = {"width": width, "depth": depth, "seeds": seeds, "b": float(b), "gains": list(gains),
              "seed": int(seed), "x64": bool(jax.config.jax_enable_x64)}
    key = lambda name: table.key(dict(params, config=name))
    stored = {table.key(r): r for r in table.merge()}  # checks the rows, repairs the CSV
    results, computed, skipped = {}, [], []
    rng = jax.random.PRNGKey(seed)
    for i, (name, spec) in enumerate(tqdm(configs.items(), desc="lengths", disable=not progress)):
        if key(name) not in stored:
            stored.update((table.key(r), r) for r in table.read())  # another run into `out` may have done it
        if key(name) in stored:
            results[name] = _summary(stored[key(name)])
            skipped.append(name)
            continue
        lengths = simulate(spec, jax.random.fold_in(rng, i), seeds, chunk=chunk)
        results[name] = summarize(spec, lengths)
        stored.update((table.key(r), r) for r in table.merge([_row(name, params, results[name])], _META))
        computed.append(name)
    png = plot_lengths(results, table.folder / "lengths.png")
    return {"computed": computed, "skipped": skipped, "results": results, "path": str(table.json), "png": str(png)}


def _lengths_command():
    import click

    from ...cli import finite

    @click.command("lengths", context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--out", default="results/lengths", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for lengths.json/.csv and lengths.png; reruns resume there, and runs with other "
                       "parameters (also at the same time) add their rows.")
    @click.option("--width", default=64, show_default=True, type=click.IntRange(min=1),
                  help="Width n (neurons per layer), >= 1.")
    @click.option("--depth", default=50, show_default=True, type=click.IntRange(min=1),
                  help="Depth d (layers or residual blocks), >= 1.")
    @click.option("--seeds", default=1000, show_default=True, type=click.IntRange(min=2),
                  help="Networks per configuration, >= 2.")
    @click.option("--b", default=0.9, show_default=True, type=click.FloatRange(min=0.0), callback=finite,
                  help="Summable residual scales eta_l = b^l, b >= 0.")
    @click.option("--gain", "gains", multiple=True, type=click.FloatRange(min=0.0, min_open=True), callback=finite,
                  help="Non-critical FFNet variances sigma^2 = gain * 2 / fan-in, gain > 0 (repeatable). "
                       "[default: 0.9 1.1]")
    @click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0, max=2**31 - 1),
                  help="Seed of the weights (configuration i draws from fold_in(PRNGKey(seed), i)), >= 0.")
    @click.option("--chunk", default=None, type=click.IntRange(min=1),
                  help="Seeds per vmapped batch, >= 1 (fewer use less memory). "
                       "[default: as many as 256 MiB of weights allow]")
    @click.option("--x64/--no-x64", default=True, show_default=True, help="Simulate in float64.")
    def lengths(out, width, depth, seeds, b, gains, seed, chunk, x64):
        """Activation lengths M_j = |x_j|^2/n_j (Hanin & Rolnick 2018): measured vs exact theory."""
        old = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", x64)
        try:
            res = study(out, width=width, depth=depth, seeds=seeds, b=b, gains=gains or (0.9, 1.1),
                        seed=seed, chunk=chunk)
        except ValueError as e:   # a damaged result file: named, with what to do
            raise click.ClickException(str(e)) from None
        finally:
            jax.config.update("jax_enable_x64", old)
        for name, s in res["results"].items():
            click.echo(f"{name:28s} E[M_d] = {s.mean[-1]:.4g} +- {s.mean_se[-1]:.2g}"
                       f"  theory {s.mean_theory[-1]:.4g}  max|z| {np.nanmax(np.abs(s.mean_z)):.2f}")
        click.echo(f"wrote {res['path']} and {res['png']} ({len(res['computed'])} computed, "
                   f"{len(res['skipped'])} reused)")

    return lengths


lengths_command = _lengths_command()
