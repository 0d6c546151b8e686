"""The study and the reproduction, with their result store.

study: grid phase (train and validation splits only) -> choose -> test phase (chosen models
only). Files in `out` (reskernel's result store, merged under the folder's lock, so reruns
resume and concurrent runs keep every row):
  selection_<dataset>_grid.json/.csv    a row per grid model: validation scores, lml
  selection_<dataset>_test.json/.csv    a row per chosen model: test scores
  selection_<dataset>_chosen.json/.csv  a row per (grid, criterion, scope): the choice and its scores
  selection_<dataset>.png               validation accuracy over the grid, chosen models' test accuracy
lee2018: lee2018_<dataset>.json/.csv, one row: Lee et al.'s model, its test accuracy and the
published one.
"""
import hashlib
import json
import math
import numbers
import subprocess
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ...core.arch import check_trained
from .._store import Table, read_document
from ._choose import CRITERIA, choose
from ._evaluate import evaluate
from ._grid import Split, unit_rows
from ._spec import DEFAULT_GRID, LEE2018, MODEL_FIELDS, PRECISIONS, check_grid, model_of

__all__ = ["study", "lee2018", "library_info", "GRID_KEYS", "TEST_KEYS", "CHOSEN_KEYS", "LEE_KEYS"]

SETTINGS = ("dataset", "n_train", "n_val", "seed", "noise", "trained", "precision")
GRID_KEYS = SETTINGS + MODEL_FIELDS
TEST_KEYS = SETTINGS + ("n_test",) + MODEL_FIELDS
CHOSEN_KEYS = SETTINGS + ("n_test", "grid_id", "criterion", "scope")
LEE_KEYS = ("dataset", "n_train", "n_test", "noise", "precision") + MODEL_FIELDS
META = {
    "rows": "grid: one per model (arch, activation, w_var, b_var, kernel, depth) with its validation accuracy "
            "(argmax of the posterior mean against the label) and MSE (over points and the 10 outputs), and for "
            "the NNGP the log marginal likelihood of the training targets (nats, summed over the 10 outputs) at the "
            "closed-form amplitude; test: one per chosen model; chosen: one per (criterion, scope)",
    "model": "K^0 = w_var x.x'/d + b_var (in_var = w_var / d) on standardized images; FFNet: Lee et al.'s K^L is "
             "the NNGP; ResNet: branch scale alpha = L^-gamma, out_var = 1",
    "solve": "posterior mean K_*x (K + (noise + jitter) I)^-1 Y, noise = noise x mean diagonal of K, one float64 "
             "Cholesky per kernel reused across outputs and evaluation batches; jitter (relative) only where "
             "rounding needed it; cond: LAPACK's condition estimate",
    "selection": "grid and chosen models use the training and validation splits only; test predictions are "
                 "computed for chosen models only",
}


def library_info() -> dict:
    """reskernel's version, its git commit (and whether reskernel/ had local changes), jax's version."""
    import jax

    from ... import __version__

    info = {"reskernel": __version__, "jax": jax.__version__, "numpy": np.__version__, "commit": None, "dirty": None}
    root = Path(__file__).resolve().parents[3]
    try:
        info["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                        timeout=10, check=True).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "reskernel"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        info["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _check(noise, precision, trained, seed):
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite real >= 0 (relative to the mean diagonal), got {noise!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be None (first images in file order) or an int >= 0, got {seed!r}")
    return float(noise), precision, check_trained(trained)


def _splits(ds):
    return tuple(Split(getattr(ds, f"x_{s}"), getattr(ds, f"y_{s}"), getattr(ds, f"labels_{s}"))
                 for s in ("train", "val", "test"))


def _meta(table, ds, settings, library) -> dict:
    """META with the records of every settings' data and of the libraries of the runs that wrote
    rows: runs[settings] = {"data", "written_by": [library records, a new one only when it differs
    from the last, with the UTC time of its first write]}."""
    doc = read_document(table.json, {"meta": dict}) or {}
    meta = dict(META, **{k: v for k, v in doc.get("meta", {}).items() if k not in META})
    runs = dict(meta.get("runs", {}))
    key = json.dumps(settings, sort_keys=True)
    written = list(runs.get(key, {}).get("written_by", []))
    if not written or {k: v for k, v in written[-1].items() if k != "utc"} != library:
        written.append(dict(library, utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    runs[key] = {"data": ds.meta, "written_by": written}
    meta["runs"] = runs
    return meta


def _grid_id(grid) -> str:
    return hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:12]


def study(dataset: str = "mnist", *, n_train: int = 1000, n_val: int = 1000, n_test: Optional[int] = None,
          seed: Optional[int] = None, archs=DEFAULT_GRID["archs"], activations=DEFAULT_GRID["activations"],
          w_vars=DEFAULT_GRID["w_vars"], b_vars=DEFAULT_GRID["b_vars"], depths=DEFAULT_GRID["depths"],
          kernels=DEFAULT_GRID["kernels"], criteria=CRITERIA, precision: str = "float64", trained: str = "hidden",
          noise: float = 1e-10, batch_size: int = 2000, out="results/select", data_dir=None, progress: bool = True,
          plot: bool = True) -> dict:
    """Run (or resume) the model-selection study on ten-class MNIST or CIFAR-10.

    Grid phase: for each grid point (arch, activation, w_var, b_var), the NNGP and NTK of the
    training and validation images at every depth (reskernel.regression.depth_kernels: one
    pass for an FFNet), the posterior mean at the validation images, validation accuracy and
    MSE, and for the NNGP the log marginal likelihood at the closed-form amplitude. Choice:
    `choose` on those rows. Test phase: test accuracy and MSE of the chosen models only.

    Args:
      dataset: "mnist" or "cifar10" (reskernel.data.ten_class: standardized images, 0.9/-0.1 targets).
      n_train, n_val: multiples of 10, balanced (the first of each class in file order, or
        seeded); n_val >= 10: the choice needs a validation split.
      n_test: None for every test image of the data files, or a multiple of 10.
      archs, activations, w_vars, b_vars, depths, kernels: the grid, as lists or as the
        command's strings ("ffnet,resnet:0.5", "1:2.5:4", "1,3,7").
      criteria: of ("val_accuracy", "lml").
      precision: the kernels' dtype ("float64" or "float32"); solves are float64.
      trained: the NTK's trained set ("hidden" or "all").
      noise: observation noise relative to each kernel's mean diagonal (a tiny jitter).
      batch_size: test points per kernel call.
      out: the result folder.
    Returns:
      {"rows" (this grid's rows), "chosen", "test_rows", "data_meta", "library" (this run's
       library_info; the result files' meta keep the record of each run that wrote rows), "json", "pngs",
       "computed" (grid points computed now), "resumed", "evaluated" (models tested now)}.
    """
    from tqdm.auto import tqdm

    from ...data import ten_class

    grid = check_grid(archs, activations, w_vars, b_vars, depths, kernels)
    criteria = list(dict.fromkeys(criteria))
    for c in criteria:
        if c not in CRITERIA:
            raise ValueError(f"criteria must be among {CRITERIA}, got {c!r}")
    noise, precision, trained = _check(noise, precision, trained, seed)
    if isinstance(n_val, bool) or not isinstance(n_val, numbers.Integral) or n_val < 10:
        raise ValueError(f"n_val must be an int >= 10 (the choice is made on the validation split), got {n_val!r}")
    ds = ten_class(dataset, n_train, n_val, n_test, seed=seed, data_dir=data_dir)
    train, val, test = _splits(ds)
    dim = int(ds.dim)
    out = Path(out)
    settings = {"dataset": dataset, "n_train": ds.n_train, "n_val": ds.n_val, "seed": seed, "noise": noise,
                "trained": trained, "precision": precision}
    table = Table(out, f"selection_{dataset}_grid", GRID_KEYS)
    library = library_info()
    meta = _meta(table, ds, settings, library)
    points = [(a, act, w, b) for a in grid["archs"] for act in grid["activations"] for w in grid["w_vars"]
              for b in grid["b_vars"]]

    def keys(point):
        return [table.key(dict(settings, arch=point[0], activation=point[1], w_var=point[2], b_var=point[3],
                               kernel=k, depth=d)) for k in grid["kernels"] for d in grid["depths"]]

    have = {table.key(r) for r in table.merge()}   # checks the stored rows, repairs the CSV
    computed, resumed = [], []
    bar = tqdm(points, desc=f"select {dataset}", unit="point", disable=not progress)
    for point in bar:
        if not all(k in have for k in keys(point)):
            have = {table.key(r) for r in table.read()}   # another run into `out` may have done it
        if all(k in have for k in keys(point)):
            resumed.append(point)
            continue
        bar.set_postfix_str(f"{point[0]} {point[1]} w={point[2]:g} b={point[3]:g}")
        rows = unit_rows(settings, point, grid["depths"], grid["kernels"], train, val, precision=precision,
                         trained=trained, noise=noise, dim=dim)
        have = {table.key(r) for r in table.merge(rows, meta)}
        computed.append(point)
    bar.close()
    wanted = {k for p in points for k in keys(p)}
    rows = [r for r in table.read() if table.key(r) in wanted]

    chosen = choose(rows, criteria)          # validation scores and training likelihoods only
    test_table = Table(out, f"selection_{dataset}_test", TEST_KEYS)
    test_base = dict(settings, n_test=ds.n_test)
    have = {test_table.key(r) for r in test_table.merge()}
    models = list(dict.fromkeys(model_of(c) for c in chosen))
    todo = [m for m in models if test_table.key(dict(test_base, **m._asdict())) not in have]
    if todo:
        new = evaluate(todo, train, val, test, precision=precision, trained=trained, noise=noise, dim=dim,
                       batch_size=batch_size, progress=progress)
        test_table.merge([dict(test_base, **r) for r in new], _meta(test_table, ds, test_base, library))
    tested = {model_of(r): r for r in test_table.read() if all(r.get(k) == v for k, v in test_base.items())}
    grid_id = _grid_id(grid)
    chosen_rows = []
    for c in chosen:
        t = tested.get(model_of(c), {})
        chosen_rows.append(dict(test_base, grid_id=grid_id, grid=json.dumps(grid), **c,
                                **{k: t.get(k) for k in ("test_accuracy", "test_mse", "val_accuracy_check",
                                                         "status")}))
    chosen_table = Table(out, f"selection_{dataset}_chosen", CHOSEN_KEYS)
    chosen_table.merge(chosen_rows, _meta(chosen_table, ds, test_base, library))
    pngs = []
    if plot and rows:
        from ._plots import plot_selection

        pngs = [plot_selection(rows, chosen_rows, out / f"selection_{dataset}.png")]
    return {"rows": rows, "chosen": chosen_rows, "test_rows": [tested[m] for m in models if m in tested],
            "data_meta": ds.meta, "library": library,
            "json": [table.json, test_table.json, chosen_table.json], "pngs": pngs, "computed": computed,
            "resumed": resumed, "evaluated": todo}


def lee2018(dataset: str = "mnist", *, n_train: int = 1000, n_test: Optional[int] = None,
            precision: str = "float64", noise: float = 1e-10, batch_size: int = 2000, out="results/select",
            data_dir=None, progress: bool = True) -> dict:
    """Lee et al. 2018, Table 1, for one data set: their model (LEE2018[dataset]: ReLU NNGP,
    MNIST depth 20, sigma_w^2 = 1.45, sigma_b^2 = 0.28; CIFAR-10 depth 7, 1.28, 0.00), trained on
    the first n_train / 10 images of each class in file order (1,000 in the paper), tested on
    every test image of the data files (n_test None); standardized images, 0.9/-0.1 targets,
    noise a tiny jitter (Lee et al. start at 1e-10). Resumes: a stored row is returned as is.

    Returns {"row" (test_accuracy, test_mse, published, difference, n_test, test_files_note,
    ...), "json", "resumed"}.
    """
    from ...data import ten_class

    if dataset not in LEE2018:
        raise ValueError(f"dataset must be one of {tuple(LEE2018)}, got {dataset!r}")
    noise, precision, _ = _check(noise, precision, "hidden", None)
    spec = LEE2018[dataset]
    ds = ten_class(dataset, n_train, 0, n_test, data_dir=data_dir)
    train, val, test = _splits(ds)
    table = Table(Path(out), f"lee2018_{dataset}", LEE_KEYS)
    key = dict(dataset=dataset, n_train=ds.n_train, n_test=ds.n_test, noise=noise, precision=precision,
               **spec.model._asdict())
    for r in table.merge():
        if table.key(r) == table.key(key):
            return {"row": r, "json": table.json, "resumed": True}
    row = evaluate([spec.model], train, val, test, precision=precision, trained="hidden", noise=noise,
                   dim=int(ds.dim), batch_size=batch_size, progress=progress)[0]
    official = {"mnist": 10_000, "cifar10": 10_000}[dataset]
    note = ("every image of the official test set" if ds.n_test >= official and n_test is None else
            f"{ds.n_test:,} test images (the data files hold {sum(ds.meta['available']['test']):,} of the official "
            f"{official:,}: {ds.meta['splits']['test']['rule']})")
    row = dict(key, **{k: v for k, v in row.items() if k not in key}, published=spec.published,
               difference=None if row["test_accuracy"] is None else row["test_accuracy"] - spec.published,
               test_files_note=note)
    table.merge([row], _meta(table, ds, key, library_info()))
    return {"row": row, "json": table.json, "resumed": False}
