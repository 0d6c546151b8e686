"""The success-rate study: how often gradient descent reaches the global minimum
rather than the spurious one, with and without the shortcut, from w_0 = 0 or a
random filter, with and without the first-layer warm-up, over a grid of patch
dimensions p and patch counts k. Results go to the result table
<out>/shortcut_success.json (and its CSV view .csv) of reskernel's result store:
after every configuration its row is merged into the stored ones under the
folder's lock, so runs with other settings (or at the same time) into one folder
keep all their rows; a rerun skips the configurations already there with the
same settings.

Each configuration's success rate comes with its binomial standard error and a
95% Wilson score interval over its `runs` independent teachers and
initializations (the runs are the seeds); for w_0 = 0 it also counts the runs
whose first step points away from w* (`first_step` < 0).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Dict, Iterable, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from ..._checks import positive_int
from ...core.arch import _check_scale
from .._store import Table, locked, read_document, write_json_atomic
from .dynamics import (GLOBAL, SPURIOUS, UNCONVERGED, Schedule, first_step, gradient_descent, outcomes,
                       sample_problems)
from .model import ConvNet

__all__ = ["StudySettings", "run_success_study", "load_results", "dynamics_example", "wilson_interval",
           "RESULTS_NAME"]

RESULTS_NAME = "shortcut_success"


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Everything but (p, k) and the compared variants that fixes a configuration's runs."""

    runs: int = 200
    steps: int = 4000
    lr: float = 0.1
    warmup_steps: int = 1000
    warmup_factor: float = 0.1
    teacher_norm: float = 1.0
    a_init_scale: float = 1.0
    random_w_norm: float = 1.0
    tol: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "runs", positive_int("runs", self.runs))
        Schedule(self.lr, self.steps, self.warmup_steps, self.warmup_factor)   # validates
        for name in ("teacher_norm", "random_w_norm", "tol"):
            object.__setattr__(self, name, _check_scale(name, getattr(self, name), allow_zero=False))
        object.__setattr__(self, "a_init_scale", _check_scale("a_init_scale", self.a_init_scale, allow_zero=True))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")


def _variants(settings: StudySettings):
    """(shortcut, w_init_norm, warmup_steps) compared at every (p, k)."""
    warm = sorted({0, settings.warmup_steps})
    return list(itertools.product((True, False), (0.0, settings.random_w_norm), warm))


_SETTING_FIELDS = [f.name for f in dataclasses.fields(StudySettings)]
_KEY_FIELDS = ["p", "k", "shortcut", "w_init_norm", "warmup"] + _SETTING_FIELDS
_META = {"study": "shortcut", "rows": "one row per configuration (p, k, shortcut, w_init_norm, warmup) and "
         "settings: outcome counts over the runs, success_rate = global / runs, its binomial standard "
         "error success_se and 95% Wilson interval [success_lo, success_hi], first_step_away (w_0 = 0 only)"}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple:
    """Wilson score interval (lo, hi) for a binomial proportion (95% at the default z)."""
    n = positive_int("n", n)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n = {n}], got {successes}")
    rate, z2 = successes / n, z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _run_config(p, k, shortcut, w_init_norm, warmup, s: StudySettings) -> dict:
    net = ConvNet(p, k, shortcut)
    # Same key for every variant at (p, k): paired comparisons on the same teachers.
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s.seed), p), k)
    teacher, init = sample_problems(net, key, s.runs, teacher_norm=s.teacher_norm,
                                    a_init_scale=s.a_init_scale, w_init_norm=w_init_norm)
    final, _ = gradient_descent(net, Schedule(s.lr, s.steps, warmup, s.warmup_factor), init, teacher)
    codes = np.asarray(outcomes(net, final, teacher, tol=s.tol).code)
    counts = np.bincount(codes, minlength=3)
    rate = counts[GLOBAL] / s.runs
    entry = dict(p=p, k=k, shortcut=shortcut, w_init_norm=w_init_norm, warmup=warmup,
                 **dataclasses.asdict(s), **{"global": int(counts[GLOBAL]), "spurious": int(counts[SPURIOUS]),
                                             "unconverged": int(counts[UNCONVERGED])})
    lo, hi = wilson_interval(int(counts[GLOBAL]), s.runs)
    away = int(np.sum(np.asarray(first_step(net, init.a, teacher.a)) < 0)) if w_init_norm == 0 else None
    entry.update(success_rate=float(rate), success_se=float(math.sqrt(rate * (1 - rate) / s.runs)),
                 success_lo=lo, success_hi=hi, first_step_away=away)
    return entry


def _table(out) -> Table:
    """The result table of the folder `out`; a file in the layout of earlier versions
    ({"entries": [...]}) is converted in place first, keeping its entries."""
    table = Table(out, RESULTS_NAME, _KEY_FIELDS)
    if table.json.exists():
        with locked(table.folder):
            doc = read_document(table.json, {"entries": list})
            if doc is not None and "rows" not in doc and "entries" in doc:
                write_json_atomic(table.json, {"meta": _META, "rows": doc["entries"]})
    return table


def _completed(entry: dict) -> dict:
    """An entry with the fields that files of earlier versions lack (the interval, first-step counts)."""
    if "success_lo" not in entry:
        entry["success_lo"], entry["success_hi"] = wilson_interval(entry["global"], entry["runs"])
    entry.setdefault("first_step_away", None)
    return entry


def load_results(out) -> list:
    """Rows of <out>/shortcut_success.json ([] when absent); the CSV is regenerated from them."""
    return [_completed(e) for e in _table(out).merge()]


def _sizes(name, values) -> tuple:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = (values,)
    values = tuple(positive_int(name, v) for v in values)
    if not values:
        raise ValueError(f"{name} must name at least one size")
    return values


def run_success_study(out, *, patch_dims: Iterable[int] = (4, 8, 16, 32),
                      patches: Iterable[int] = (4, 8, 16, 32),
                      settings: Optional[StudySettings] = None, progress: bool = True) -> list:
    """Success rates over the grid patch_dims (p) x patches (k) x variants.

    Variants: shortcut in {True, False} x w_0 in {0, random of norm
    settings.random_w_norm} x warm-up in {none, settings.warmup_steps steps}.
    Each configuration runs settings.runs random teachers and initializations
    (the same ones for every variant at a given (p, k)). Returns the entries for
    these settings (dicts with counts global / spurious / unconverged,
    success_rate and its binomial standard error success_se).
    """
    settings = StudySettings() if settings is None else settings
    if not isinstance(settings, StudySettings):
        raise TypeError(f"settings must be a StudySettings, got {type(settings).__name__}")
    ps, ks = _sizes("patch_dims", patch_dims), _sizes("patches", patches)
    table = _table(Path(out))
    index = {table.key(e): _completed(e) for e in table.merge()}  # checks the rows, repairs the CSV
    common = dataclasses.asdict(settings)
    configs = [(p, k, sc, w0, warm) for p, k, (sc, w0, warm) in itertools.product(ps, ks, _variants(settings))]
    key = lambda c: table.key(dict(zip(("p", "k", "shortcut", "w_init_norm", "warmup"), c), **common))
    todo = [c for c in configs if key(c) not in index]
    for cfg in tqdm(todo, desc="shortcut success study", disable=not progress):
        index.update((table.key(e), _completed(e)) for e in table.read())  # another run into `out` may have done it
        if key(cfg) in index:
            continue
        entry = _run_config(*cfg, settings)
        index[key(cfg)] = entry
        index.update((table.key(e), e) for e in table.merge([entry], _META))
    return [index[key(c)] for c in configs]


def dynamics_example(p: int = 16, k: int = 16, *, settings: Optional[StudySettings] = None,
                     run: int = 0) -> Dict[str, tuple]:
    """Trajectories of one teacher and initialization (draw `run` of the study's
    sampling at (p, k)) for the ResNet from w_0 = 0 with and without warm-up and
    the CNN from a random filter: {label: (Trajectory, teacher Params)}."""
    settings = StudySettings() if settings is None else settings
    p, k = positive_int("p", p), positive_int("k", k)
    if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run < settings.runs:
        raise ValueError(f"run must be an int in [0, runs = {settings.runs}), got {run!r}")
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(settings.seed), p), k)
    s = settings
    out = {}
    for label, sc, w0, warm in [("ResNet, w0 = 0, warm-up", True, 0.0, s.warmup_steps),
                                ("ResNet, w0 = 0, no warm-up", True, 0.0, 0),
                                ("CNN, random w0", False, s.random_w_norm, 0)]:
        net = ConvNet(p, k, sc)
        teacher, init = sample_problems(net, key, s.runs, teacher_norm=s.teacher_norm,
                                        a_init_scale=s.a_init_scale, w_init_norm=w0)
        pick = lambda x: x[run]
        teacher, init = jax.tree_util.tree_map(pick, teacher), jax.tree_util.tree_map(pick, init)
        _, traj = gradient_descent(net, Schedule(s.lr, s.steps, warm, s.warmup_factor), init, teacher,
                                   record=True)
        out[label] = (jax.tree_util.tree_map(np.asarray, traj), jax.tree_util.tree_map(np.asarray, teacher))
    return out
