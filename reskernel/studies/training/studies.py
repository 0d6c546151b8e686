"""Studies of issue 5, parts 1 and 2, on arrays (x_train, y_train, x_test, y_test) with
labels +1/-1 and features of mean square ~1 (`load_two_class` gives such data).

  stream_study    forward statistics of the residual stream vs depth, measured beside
                  the closed forms (De & Smith 2020)
  skipinit_study  trainability of deep ResidualMLPs: plain, batch norm, SkipInit, and
                  alpha = depth^-1/2 scaling, at one learning rate grid
  fromage_study   MLPs of constant width, depth 2..50, SGD / Adam / LARS / Fromage on a
                  learning-rate grid each (Bernstein et al. 2020)

Each study runs its configurations under a tqdm bar and stores its records in the result
table `out` (a .json path; the CSV view goes beside it) through reskernel's result store:
after every configuration its rows are merged into the stored ones under the folder's lock,
so runs with other settings (or running at the same time) into one file keep all their
rows. Every record carries the settings that fix it (width, steps, batch size, ..., and a
hash of the data), and configurations already stored with the same settings are skipped
(resumed); overwrite=True recomputes them instead. Training studies
repeat every configuration over `n_seeds` seeds (seed, seed + 1, ...: the initialization
and the minibatch order change, the data do not); `summarize_skipinit` and
`summarize_fromage` report the mean and the sample standard deviation over seeds.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..._checks import positive_int
from .._store import REMEDY, Table, read_document
from .fit import labels_pm1, train
from .nets import MLP, ResidualMLP
from .optimizers import check_learning_rate, check_name
from .propagation import stream_statistics, stream_theory

__all__ = ["RESNET_METHODS", "FROMAGE_GRIDS", "resnet_spec", "load_two_class", "stream_study",
           "skipinit_study", "fromage_study", "summarize_skipinit", "summarize_fromage", "constant_loss",
           "mean_std"]

RESNET_METHODS = ("plain", "batchnorm", "skipinit", "scaled")
FROMAGE_GRIDS = {"sgd": (1.0, 0.1, 0.01), "adam": (0.01, 0.001, 0.0001),
                 "fromage": (0.1, 0.01, 0.001), "lars": (10.0, 1.0, 0.1)}
STALLED = 0.95   # "stalled": final training loss >= STALLED x the best constant predictor's

# The fields that identify a stored row, per study: a row is reused only where all of them agree.
KEYS = {
    "stream": ("method", "depth", "width", "n_seeds", "n", "dtype", "key", "data"),
    "skipinit": ("method", "depth", "seed", "learning_rate", "width", "optimizer", "steps", "batch_size",
                 "n_train", "n_test", "data"),
    "fromage": ("optimizer", "depth", "seed", "learning_rate", "width", "init", "steps", "batch_size",
                "n_train", "n_test", "data"),
}
_META = {
    "stream": "mean squares of the stream (per block, 0..depth) and of the branches at init, measured over "
              "n_seeds nets (with standard errors) beside the closed forms (theory_*)",
    "skipinit": "one row per (method, depth, seed, learning_rate) and settings; status: diverged (loss not "
                f"finite), stalled (final training loss >= {STALLED} x the best constant predictor's), trained",
    "fromage": "one row per (optimizer, depth, seed, learning_rate) and settings; status as in skipinit",
}


def resnet_spec(method: str, depth: int, width: int) -> ResidualMLP:
    """The ResidualMLP of a study method: plain (He init, a = 1), batchnorm, skipinit
    (learnable branch scalars from 0), scaled (fixed alpha = depth^-1/2)."""
    if method == "plain":
        return ResidualMLP(depth, width)
    if method == "batchnorm":
        return ResidualMLP(depth, width, norm="batch")
    if method == "skipinit":
        return ResidualMLP(depth, width, skipinit=0.0)
    if method == "scaled":
        return ResidualMLP(depth, width, gamma=0.5)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(RESNET_METHODS)}")


def load_two_class(dataset: str = "mnist2", classes=None, n_train=None, n_test=None, *,
                   seed: int = 0, data_dir=None):
    """(x_train, y_train, x_test, y_test) from reskernel.data.two_class (centred, on the
    unit sphere), rescaled by sqrt(d) so that features have mean square 1, float32."""
    from ...data import two_class  # lazy: the studies themselves take arrays

    ds = two_class(dataset, classes, n_train, n_test, seed=seed, data_dir=data_dir)
    scale = math.sqrt(ds.x_train.shape[1])
    f32 = lambda a: np.asarray(a, np.float32)
    return f32(ds.x_train) * scale, f32(ds.y_train), f32(ds.x_test) * scale, f32(ds.y_test)


def jsonable(v):
    """Python scalars for JSON; non-finite floats become None."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [jsonable(u) for u in v]
    if isinstance(v, dict):
        return {k: jsonable(u) for k, u in v.items()}
    return v


def _fingerprint(*arrays) -> str:
    """A short hash of the data (values, dtypes, shapes): rows computed on other data are
    never taken for these, whatever the sizes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _table(out, study: str) -> Optional[Table]:
    """The result table stored at the .json path `out` (None when out is None), checked to hold
    this study's rows."""
    if out is None:
        return None
    path = Path(out)
    if path.suffix != ".json":
        raise ValueError(f"out must name a .json file (the CSV view is written beside it), got {str(path)!r}")
    doc = read_document(path, {"rows": list, "meta": dict})
    if doc is not None and "rows" not in doc:
        raise ValueError(f"the result file {path} is not a result table of this reskernel (an earlier version "
                         f"wrote one configuration per file); {REMEDY}")
    found = (doc or {}).get("meta", {}).get("study", study)
    if found != study:
        raise ValueError(f"the result file {path} holds results of the {found} study, not {study}; {REMEDY}")
    return Table(path.parent, path.stem, KEYS[study])


def _check_data(x_train, y_train, x_test, y_test):
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"x_train and x_test must be (n, d) with the same d; got {x_train.shape}, {x_test.shape}")
    return x_train, labels_pm1(y_train, "y_train"), x_test, labels_pm1(y_test, "y_test")


def _depths(depths):
    depths = tuple(positive_int("depth", d) for d in depths)
    if not depths:
        raise ValueError("depths must not be empty")
    return depths


def constant_loss(y) -> float:
    """Logistic loss of the best constant predictor: the entropy of the class prior (nats)."""
    p = float(np.mean(np.asarray(y) > 0))
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def _status(loss, baseline):
    if loss is None or not math.isfinite(loss):
        return "diverged"
    return "stalled" if loss >= STALLED * baseline else "trained"


def _records_of(result, base, lrs, y_train):
    out, baseline = [], constant_loss(y_train)
    for i, lr in enumerate(lrs):
        loss = float(result.train_loss[i])
        status = _status(loss, baseline)
        acc = (lambda a: None if status == "diverged" else float(a[i]))  # NaN outputs: no predictions
        out.append(dict(base, learning_rate=float(lr), train_loss=loss,
                        train_accuracy=acc(result.train_accuracy), test_accuracy=acc(result.test_accuracy),
                        initial_loss=float(result.loss_history[i, 0]), status=status,
                        loss_history=[float(v) for v in result.loss_history[i]]))
    return out


def _seeds(seed, n_seeds):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return tuple(int(seed) + i for i in range(positive_int("n_seeds", n_seeds)))


def mean_std(values) -> tuple:
    """(mean, sample standard deviation, count) of the finite values; (None, None, 0)
    when none is finite, std 0.0 for a single value."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return None, None, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def _run(study, config, settings, groups, run_group, out, overwrite, progress):
    """Run run_group(group, lrs) -> records for each (group, lrs) whose records (group, setting
    and learning rate alike) `out` lacks, all of them with overwrite, merging each group's
    records into `out`'s table as it ends. Returns {"study", "config", "records"}: this run's."""
    table = _table(out, study)
    key = lambda r: tuple(r[k] for k in KEYS[study])
    keys = lambda g, lrs: [key(dict(g, **settings, learning_rate=lr)) for lr in lrs]
    have = {} if table is None else {key(r): r for r in table.merge()}  # checks the rows, repairs the CSV
    todo = [(g, lrs) for g, lrs in groups if overwrite or not all(k in have for k in keys(g, lrs))]
    meta = {"study": study, "rows": _META[study]}
    for g, lrs in tqdm(todo, desc=study, disable=not progress):
        if table is not None and not overwrite:
            have.update((key(r), r) for r in table.read())  # another run into `out` may have done it
            if all(k in have for k in keys(g, lrs)):
                continue
        records = jsonable(run_group(dict(g, **settings), lrs))
        have.update((key(r), r) for r in records)
        if table is not None:
            have.update((key(r), r) for r in table.merge(records, meta))
    records = [have[k] for g, lrs in groups for k in keys(g, lrs)]
    return {"study": study, "config": config, "records": records}


def stream_study(x, *, depth: int = 100, width: int = 256, n_seeds: int = 16, key=None,
                 methods: Sequence[str] = RESNET_METHODS, out=None, progress: bool = True) -> dict:
    """Measured mean squares of the stream and the branches at init beside the closed forms.

    x: (n, d) inputs, n >= 2. Computed in float32 unless float64 is enabled: the plain
    net's stream (2^l q0) overflows float32 beyond ~120 blocks (those entries are NaN).
    out: a .json path or None; this run's rows (one per method) are merged into its table.
    Returns {"config", "methods": {method: {"stream", "stream_se",
    "branch", "branch_se", "theory_stream", "theory_branch", "ratio", "theory_ratio"}}}.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (n, d) with n >= 2, got {x.shape}")
    key = jax.random.PRNGKey(0) if key is None else key
    table = _table(out, "stream")
    dtype = jnp.result_type(float)
    q0 = float(np.mean(np.sum(x.astype(np.float64) ** 2, 1)) / x.shape[1])
    result = {"study": "stream", "config": dict(depth=positive_int("depth", depth), width=width,
                                                n_seeds=n_seeds, n=x.shape[0], q0=q0), "methods": {}}
    for method in tqdm(list(methods), desc="stream", disable=not progress):
        spec = resnet_spec(method, depth, width)
        s, b = (np.asarray(a, np.float64) for a in stream_statistics(spec, x, key, n_seeds, dtype))
        th = stream_theory(spec, q0)
        with np.errstate(all="ignore"):  # float32 overflows past 2^128: recorded as None
            se = lambda a: a.std(0, ddof=1) / math.sqrt(n_seeds) if n_seeds > 1 else np.zeros(a.shape[1])
            result["methods"][method] = dict(
                stream=s.mean(0), stream_se=se(s), branch=b.mean(0), branch_se=se(b),
                ratio=np.sqrt(b.mean(0) / s.mean(0)[:-1]), theory_stream=th.stream,
                theory_branch=th.branch, theory_ratio=th.ratio)
    if table is not None:
        settings = dict(depth=depth, width=width, n_seeds=n_seeds, n=x.shape[0], dtype=np.dtype(dtype).name,
                        key=np.asarray(jax.random.key_data(key)).ravel().tolist(), data=_fingerprint(x), q0=q0)
        table.merge([jsonable(dict(method=m, **settings, **r)) for m, r in result["methods"].items()],
                    {"study": "stream", "rows": _META["stream"]})
    return result


def skipinit_study(x_train, y_train, x_test, y_test, *, depths=(10, 30, 100, 300),
                   methods: Sequence[str] = ("plain", "batchnorm", "skipinit", "scaled"),
                   width: int = 64, learning_rates=(0.1,), optimizer_name: str = "sgd",
                   steps: int = 300, batch_size: Optional[int] = 128, seed: int = 0, n_seeds: int = 1,
                   out=None, overwrite: bool = False, progress: bool = True) -> dict:
    """Train each method at each depth and seed on the learning-rate grid (vmapped; the
    same init for every learning rate of a seed).

    Records: method, depth, seed, the settings (width, optimizer, steps, batch_size, n_train,
    n_test, data: a hash of the four arrays), learning_rate, initial_loss, train_loss,
    train_accuracy and test_accuracy (None if the run diverged), status ("diverged": loss not
    finite; "stalled": final training loss >= 0.95 x that of the best constant predictor,
    `constant_loss(y_train)`; else "trained"), loss_history.

    out: a .json path (or None): records already there with the same settings are reused,
    unless overwrite (then recomputed and replaced); records of other settings are kept.
    """
    x_train, y_train, x_test, y_test = _check_data(x_train, y_train, x_test, y_test)
    depths = _depths(depths)
    for m in methods:
        resnet_spec(m, 1, 1)
    check_name(optimizer_name)
    lrs = tuple(float(v) for v in np.atleast_1d(check_learning_rate(np.asarray(learning_rates, float))))
    seeds = _seeds(seed, n_seeds)
    settings = dict(width=positive_int("width", width), optimizer=optimizer_name, steps=positive_int("steps", steps),
                    batch_size=batch_size, n_train=len(y_train), n_test=len(y_test),
                    data=_fingerprint(x_train, y_train, x_test, y_test))
    config = dict(depths=depths, methods=tuple(methods), width=width, learning_rates=lrs, optimizer=optimizer_name,
                  steps=steps, batch_size=batch_size, seed=seed, n_seeds=len(seeds), n_train=len(y_train),
                  n_test=len(y_test), data=settings["data"])
    groups = [({"method": m, "depth": d, "seed": s}, lrs) for d in depths for m in methods for s in seeds]

    def run_group(g, lrs):
        spec = resnet_spec(g["method"], g["depth"], width)
        res = train(spec, x_train, y_train, optimizer_name=optimizer_name, learning_rate=np.asarray(lrs),
                    steps=steps, batch_size=batch_size, key=jax.random.PRNGKey(g["seed"]),
                    x_test=x_test, y_test=y_test)
        return _records_of(jax.device_get(res), g, lrs, y_train)

    return _run("skipinit", config, settings, groups, run_group, out, overwrite, progress)


def fromage_study(x_train, y_train, x_test, y_test, *, depths=(2, 5, 10, 15, 20, 25, 30, 40, 50),
                  grids=None, width: int = 128, init: str = "pytorch", steps: int = 500,
                  batch_size: Optional[int] = 128, seed: int = 0, n_seeds: int = 1, out=None,
                  overwrite: bool = False, progress: bool = True) -> dict:
    """Train MLP(depth, width, init) with each optimizer on its grid (default FROMAGE_GRIDS,
    the paper's grids for SGD, Adam and Fromage). SGD and LARS use momentum 0.9.

    With init="pytorch" every leaf (biases too, nonzero at init) gets the layerwise update,
    as in the paper's code; with init="he" the zero biases go to the plain route.
    Records as in skipinit_study, with "optimizer" in place of "method" and "init" among the
    settings, one per (optimizer, depth, seed, learning rate); `out` as in skipinit_study.
    """
    x_train, y_train, x_test, y_test = _check_data(x_train, y_train, x_test, y_test)
    depths = _depths(depths)
    grids = dict(FROMAGE_GRIDS if grids is None else grids)
    for name, grid in grids.items():
        check_name(name)
        check_learning_rate(np.asarray(grid, float), f"grids[{name!r}]")
    grids = {k: tuple(float(v) for v in np.atleast_1d(g)) for k, g in grids.items()}
    MLP(1, width, init=init)
    seeds = _seeds(seed, n_seeds)
    settings = dict(width=width, init=init, steps=positive_int("steps", steps), batch_size=batch_size,
                    n_train=len(y_train), n_test=len(y_test), data=_fingerprint(x_train, y_train, x_test, y_test))
    config = dict(depths=depths, grids=grids, width=width, init=init, steps=steps, batch_size=batch_size, seed=seed,
                  n_seeds=len(seeds), n_train=len(y_train), n_test=len(y_test), data=settings["data"])
    groups = [({"optimizer": o, "depth": d, "seed": s}, grids[o]) for d in depths for o in grids for s in seeds]
    extra = {"plain_roles": ()} if init == "pytorch" else {}

    def run_group(g, lrs):
        spec = MLP(g["depth"], width, init=init)
        kw = extra if g["optimizer"] in ("lars", "fromage") else {}
        res = train(spec, x_train, y_train, optimizer_name=g["optimizer"], learning_rate=np.asarray(lrs),
                    steps=steps, batch_size=batch_size, key=jax.random.PRNGKey(g["seed"]),
                    x_test=x_test, y_test=y_test, **kw)
        return _records_of(jax.device_get(res), g, lrs, y_train)

    return _run("fromage", config, settings, groups, run_group, out, overwrite, progress)


def _accuracy(r):
    """Final training accuracy of a record, 0 for a diverged run (it predicts nothing)."""
    a = r["train_accuracy"]
    return 0.0 if r["status"] == "diverged" or a is None or not math.isfinite(a) else float(a)


def summarize_skipinit(result: dict) -> list:
    """One row per (method, depth, learning_rate), aggregated over seeds: dicts with
    seeds (count), trained / stalled / diverged (counts), and mean / std over the
    seeds that did not diverge of train_loss, train_accuracy and test_accuracy
    (keys "<name>" and "<name>_std"; None where every seed diverged)."""
    groups = {}
    for r in result["records"]:
        groups.setdefault((r["method"], r["depth"], r["learning_rate"]), []).append(r)
    rows = []
    for (m, d, lr), rs in groups.items():
        row = dict(method=m, depth=d, learning_rate=lr, seeds=len(rs),
                   **{st: sum(r["status"] == st for r in rs) for st in ("trained", "stalled", "diverged")})
        ok = [r for r in rs if r["status"] != "diverged"]
        for name in ("train_loss", "train_accuracy", "test_accuracy"):
            row[name], row[name + "_std"], _ = mean_std([r[name] for r in ok])
        rows.append(row)
    order = lambda r: (r["learning_rate"], RESNET_METHODS.index(r["method"]) if r["method"] in RESNET_METHODS
                       else 9, r["depth"])
    return sorted(rows, key=order)


def summarize_fromage(result: dict, threshold: float = 0.9, fromage_lr: float = 0.01) -> dict:
    """Per (optimizer, depth): the grid value with the best mean final training accuracy
    over seeds (a diverged run counts as accuracy 0), that mean and its standard
    deviation over seeds; Fromage at `fromage_lr` alone; per optimizer the deepest
    depth whose (best) mean accuracy reaches `threshold`.

    Returns {"best": {opt: {depth: (mean, std, lr)}}, "fromage_at": {depth: (mean, std)},
    "deepest": {opt: depth or None, "fromage@<lr>": ...}, "threshold", "seeds"}.
    """
    groups = {}
    for r in result["records"]:
        groups.setdefault((r["optimizer"], r["depth"], r["learning_rate"]), []).append(_accuracy(r))
    best, fixed, n = {}, {}, 0
    for (opt, d, lr), accs in sorted(groups.items()):
        mean, std, n = mean_std(accs)
        cur = best.setdefault(opt, {}).get(d)
        if cur is None or mean > cur[0]:
            best[opt][d] = (mean, std, lr)
        if opt == "fromage" and math.isclose(lr, fromage_lr):
            fixed[d] = (mean, std)

    def deepest(table):
        ok = [d for d, v in table.items() if v[0] >= threshold]
        return max(ok) if ok else None

    out = {opt: deepest(t) for opt, t in best.items()}
    out[f"fromage@{fromage_lr:g}"] = deepest(fixed)
    return {"best": best, "fromage_at": fixed, "deepest": out, "threshold": threshold, "seeds": n}
