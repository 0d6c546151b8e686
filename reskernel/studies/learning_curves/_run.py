"""The learning-curve study with its result store.

For each training-set size n (nested: the first n / 10 images of each class in file order, so a
larger set only adds images), every model of the grid (arch, activation, w_var, b_var, kernel,
depth) and every noise (ridge) is scored on one fixed validation split; the choice is made per
(arch, kernel) and overall from those scores alone (selection.choose), and only then are test
predictions computed, for the chosen models. Files in `out` (the result store: merged under the
folder's lock, so a rerun resumes and concurrent runs keep every row):
  curves_<dataset>_grid.json/.csv   a row per (n_train, noise, model): validation scores
  curves_<dataset>_test.json/.csv   a row per (n_train, noise, chosen model): test scores
  curves_<dataset>.json/.csv        a row per (n_train, scope): the choice and its test scores
"""
import numbers
from pathlib import Path
from typing import Optional

import numpy as np

from .._store import Table
from ..selection._choose import choose
from ..selection._evaluate import evaluate
from ..selection._grid import Split, unit_rows
from ..selection._run import GRID_KEYS, TEST_KEYS, _check, _grid_id, _meta, _splits, library_info
from ..selection._spec import model_of
from ._spec import DEFAULT_GRID, DEFAULT_NOISES, DEFAULT_SIZES, check_grid, parse_noises, parse_sizes

__all__ = ["study", "nested_split", "resolve_sizes", "GRID_KEYS", "TEST_KEYS", "CURVE_KEYS"]

CURVE_KEYS = ("dataset", "n_train", "n_val", "seed", "trained", "precision", "n_test", "grid_id", "scope")


def nested_split(train: Split, n: int) -> Split:
    """The first n / 10 rows of each class of `train` (rows in file order): the training set
    ten_class(dataset, n, ...) would give. ValueError when a class has fewer rows."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 10 or n % 10:
        raise ValueError(f"n must be a multiple of 10 >= 10 (n / 10 images of each class), got {n!r}")
    per = int(n) // 10
    rows = []
    for c in range(10):
        mine = np.flatnonzero(train.labels == c)
        if len(mine) < per:
            raise ValueError(f"n={n} needs {per} images of class {c}; the training split holds {len(mine)}")
        rows.append(mine[:per])
    idx = np.sort(np.concatenate(rows))
    return Split(train.x[idx], train.y[idx], train.labels[idx])


def resolve_sizes(sizes, n_max: int) -> list:
    """parse_sizes(sizes) with None ('all') replaced by n_max; ValueError for a size above n_max."""
    sizes = parse_sizes(sizes)
    big = [n for n in sizes if n is not None and n > n_max]
    if big:
        raise ValueError(f"sizes {big} exceed the {n_max} balanced training images the files hold beside the "
                         f"validation split; use 'all' for {n_max}")
    return sorted({n_max if n is None else n for n in sizes})


def study(dataset: str = "mnist", *, sizes=DEFAULT_SIZES, n_val: int = 500, n_test: Optional[int] = None,
          archs=DEFAULT_GRID["archs"], activations=DEFAULT_GRID["activations"], w_vars=DEFAULT_GRID["w_vars"],
          b_vars=DEFAULT_GRID["b_vars"], depths=DEFAULT_GRID["depths"], kernels=DEFAULT_GRID["kernels"],
          noises=DEFAULT_NOISES, precision: str = "float64", trained: str = "hidden", batch_size: int = 2000,
          out="results/curves", data_dir=None, progress: bool = True, plot: bool = True) -> dict:
    """Run (or resume) the learning curves of one ten-class data set.

    Args:
      dataset: "mnist" or "cifar10" (reskernel.data.ten_class: standardized images, 0.9/-0.1 targets).
      sizes: training-set sizes (multiples of 10) and/or None / "all": every balanced image of the
        training files after the validation split ("100,200,all" or a sequence).
      n_val: validation images (a multiple of 10 >= 10), the n_val / 10 of each class that follow
        the largest training set in file order: one validation split for every size.
      n_test: None (every test image of the files) or a multiple of 10 (balanced, file order).
      archs, activations, w_vars, b_vars, depths, kernels: the grid (as selection.study).
      noises: ridges relative to each kernel's mean diagonal, chosen among with the model.
      precision, trained, batch_size: as selection.study (solves are float64).
      out: the result folder.
    Returns:
      {"curve" (rows of curves_<dataset>.json for these settings), "rows" (grid rows), "test_rows",
       "sizes", "json", "pngs", "computed" ((n, point) pairs computed now), "resumed", "evaluated"
       (models tested now)}.
    """
    from tqdm.auto import tqdm

    from ...data import ten_class

    grid = check_grid(archs, activations, w_vars, b_vars, depths, kernels)
    noises = parse_noises(noises)
    _, precision, trained = _check(noises[0], precision, trained, None)
    if isinstance(n_val, bool) or not isinstance(n_val, numbers.Integral) or n_val < 10 or n_val % 10:
        raise ValueError(f"n_val must be a multiple of 10 >= 10 (the choice is made on it), got {n_val!r}")
    ds = ten_class(dataset, None, int(n_val), n_test, data_dir=data_dir)
    full, val, test = _splits(ds)
    sizes = resolve_sizes(sizes, ds.n_train)
    dim, out, library = int(ds.dim), Path(out), library_info()
    grid_id = _grid_id(dict(grid, noises=list(noises)))
    table = Table(out, f"curves_{dataset}_grid", GRID_KEYS)
    test_table = Table(out, f"curves_{dataset}_test", TEST_KEYS)
    curve_table = Table(out, f"curves_{dataset}", CURVE_KEYS)
    points = [(a, act, w, b) for a in grid["archs"] for act in grid["activations"] for w in grid["w_vars"]
              for b in grid["b_vars"]]
    have = {table.key(r) for r in table.merge()}
    test_table.merge()
    computed, resumed, evaluated, curve, all_rows, test_rows = [], [], [], [], [], []
    bar = tqdm(total=len(sizes) * len(points), desc=f"curves {dataset}", unit="point", disable=not progress)
    for n in sizes:
        train = nested_split(full, n)
        settings = {"dataset": dataset, "n_train": n, "n_val": ds.n_val, "seed": None, "trained": trained,
                    "precision": precision}
        meta_settings = dict(settings, training_rows=f"the first {n // 10} of each class of splits.train")

        def keys(point):
            return [table.key(dict(settings, noise=nz, arch=point[0], activation=point[1], w_var=point[2],
                                   b_var=point[3], kernel=k, depth=d))
                    for nz in noises for k in grid["kernels"] for d in grid["depths"]]

        for point in points:
            if not all(k in have for k in keys(point)):
                have = {table.key(r) for r in table.read()}   # another run into `out` may have done it
            if all(k in have for k in keys(point)):
                resumed.append((n, point))
                bar.update()
                continue
            bar.set_postfix_str(f"n={n} {point[0]} w={point[2]:g} b={point[3]:g}")
            rows = unit_rows(settings, point, grid["depths"], grid["kernels"], train, val, precision=precision,
                             trained=trained, noise=noises[0], dim=dim, noises=noises)
            have = {table.key(r) for r in table.merge(rows, _meta(table, ds, meta_settings, library))}
            computed.append((n, point))
            bar.update()
        wanted = {k for p in points for k in keys(p)}
        rows = sorted((r for r in table.read() if table.key(r) in wanted), key=lambda r: r["noise"])
        all_rows.extend(rows)
        # validation scores only; equal scores go to the smaller noise (rows sorted by noise)
        chosen = choose(rows, ("val_accuracy",), keep=("noise",))
        test_base = dict(settings, n_test=ds.n_test)
        stored = {test_table.key(r): r for r in test_table.read()}
        for nz in sorted({c["noise"] for c in chosen}):
            models = list(dict.fromkeys(model_of(c) for c in chosen if c["noise"] == nz))
            todo = [m for m in models if test_table.key(dict(test_base, noise=nz, **m._asdict())) not in stored]
            if todo:
                new = evaluate(todo, train, val, test, precision=precision, trained=trained, noise=nz, dim=dim,
                               batch_size=batch_size)
                merged = test_table.merge([dict(test_base, noise=nz, **r) for r in new],
                                          _meta(test_table, ds, dict(meta_settings, n_test=ds.n_test), library))
                stored = {test_table.key(r): r for r in merged}
                evaluated.extend((n, nz, m) for m in todo)
        for c in chosen:
            t = stored.get(test_table.key(dict(test_base, noise=c["noise"], **model_of(c)._asdict())), {})
            test_rows.append(t)
            curve.append(dict(test_base, grid_id=grid_id, **{k: v for k, v in c.items() if k != "criterion"},
                              **{k: t.get(k) for k in ("test_accuracy", "test_mse", "status")}))
    bar.close()
    curve_table.merge(curve, _meta(curve_table, ds, {"dataset": dataset, "n_val": ds.n_val, "grid_id": grid_id,
                                                      "grid": grid, "noises": list(noises)}, library))
    pngs = []
    if plot and curve:
        from ._plots import plot_curves

        pngs = [plot_curves({dataset: curve}, out / f"curves_{dataset}.png")]
    return {"curve": curve, "rows": all_rows, "test_rows": test_rows, "sizes": sizes,
            "json": [table.json, test_table.json, curve_table.json], "pngs": pngs, "computed": computed,
            "resumed": resumed, "evaluated": evaluated}
