"""The ten-class depth study: kernel regression and trained networks against depth, with the
result store (merged under the folder's lock: reruns resume, concurrent runs keep every row).

Kernel phase, per (dataset, arch): the NNGP and NTK posterior means (a tiny jitter: kernel
"regression" at the interpolant) of one n_train set at every depth, scored on the test set
(selection.evaluate: one kernel pass per arch serves every depth, the FFNet's a single recursion
to the deepest; one float64 Cholesky per kernel and depth). Files: depth_ten_<dataset>_kernels.

Network phase, per (dataset, arch, depth, seed): a finite network of `width` with ten outputs,
trained by full-batch gradient descent on (1/2) sum |f - y|^2 from N(0, 1) weights (every layer
trained, the NTK's "all"), lr = lr_factor / lambda_max(NTK of its training set)
(uncertainty._trainer.train_networks and uncertainty._study.ensemble_unit, reused), on the first
net_n_train / 10 images of each class; beside it the infinite-width network trained the same way
(the NTK ensemble's mean at the same steps, and at t = infinity). Files: depth_ten_<dataset>_nets.
"""
import numbers
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np

from .._store import Table
from ..learning_curves._run import nested_split
from ..selection._evaluate import evaluate
from ..selection._grid import Split
from ..selection._run import _check, _meta, _splits, library_info
from ..selection._spec import Model, check_grid, family, gamma_of
from ._spec import DEFAULTS, FFNET_EXTRA_DEPTHS, KERNEL_DEPTHS, kernel_depths

__all__ = ["kernel_study", "net_study", "net_unit", "parse_depth_list", "parse_steps", "KERNEL_KEYS", "NET_KEYS"]

KERNEL_KEYS = ("dataset", "n_train", "n_test", "noise", "trained", "precision", "arch", "activation", "w_var",
               "b_var", "kernel", "depth")
NET_KEYS = ("dataset", "n_train", "n_test", "arch", "activation", "w_var", "b_var", "depth", "width", "seed",
            "lr_factor", "steps")


def _empty(dim) -> Split:
    return Split(np.zeros((0, dim)), np.zeros((0, 10)), np.zeros((0,), np.int64))


def _data(dataset, n_train, n_test, data_dir):
    from ...data import ten_class

    return ten_class(dataset, n_train, 0, n_test, data_dir=data_dir)


def kernel_study(dataset: str = "mnist", *, n_train: int = DEFAULTS["n_train"], n_test: Optional[int] = None,
                 archs=DEFAULTS["archs"], activation: str = DEFAULTS["activation"], w_var: float = DEFAULTS["w_var"],
                 b_var: float = DEFAULTS["b_var"], depths=KERNEL_DEPTHS,
                 ffnet_depths=KERNEL_DEPTHS + FFNET_EXTRA_DEPTHS, kernels=DEFAULTS["kernels"],
                 trained: str = "hidden", noise: float = 1e-10, batch_size: int = 1000, out="results/depth_ten",
                 data_dir=None, progress: bool = True) -> dict:
    """Kernel test accuracy against depth (module doc). Each arch is one resumable unit.

    Args:
      dataset: "mnist" or "cifar10"; n_train: the first n_train / 10 images of each class in
        file order; n_test: None (every test image) or a multiple of 10 (balanced, file order).
      archs: "ffnet,resnet:0.5,..." (alpha = L^-gamma); activation, w_var, b_var: the nets
        (Lee et al.'s K^0 = w_var x.x'/d + b_var on standardized images).
      depths: the ResNets' depths; ffnet_depths: the FFNet's (one recursion to the deepest).
      kernels, trained, noise: as selection.study (solves and kernels float64).
    Returns {"rows" (this run's settings), "json", "computed" (archs), "resumed"}.
    """
    from tqdm.auto import tqdm

    grid = check_grid(archs, activation, [w_var], [b_var], "1", kernels)
    noise, precision, trained = _check(noise, "float64", trained, None)
    ds = _data(dataset, n_train, n_test, data_dir)
    train, _, test = _splits(ds)
    table = Table(Path(out), f"depth_ten_{dataset}_kernels", KERNEL_KEYS)
    base = {"dataset": dataset, "n_train": ds.n_train, "n_test": ds.n_test, "noise": noise, "trained": trained,
            "precision": precision}
    library = library_info()
    have = {table.key(r) for r in table.merge()}
    computed, resumed = [], []
    for arch in tqdm(grid["archs"], desc=f"depth kernels {dataset}", unit="arch", disable=not progress):
        ds_ = kernel_depths(arch, parse_depth_list(depths), parse_depth_list(ffnet_depths))
        models = [Model(arch, grid["activations"][0], float(w_var), float(b_var), k, d)
                  for k in grid["kernels"] for d in ds_]
        if all(table.key(dict(base, **m._asdict())) in have for m in models):
            resumed.append(arch)
            continue
        start = time.perf_counter()
        rows = evaluate(models, train, _empty(ds.dim), test, precision=precision, trained=trained, noise=noise,
                        dim=int(ds.dim), batch_size=batch_size)
        wall = round(time.perf_counter() - start, 1)
        rows = [dict(base, **{k: v for k, v in r.items() if k not in ("val_accuracy_check", "val_mse_check")},
                     arch_wall_s=wall) for r in rows]
        have = {table.key(r) for r in table.merge(rows, _meta(table, ds, base, library))}
        computed.append(arch)
    mine = [r for r in table.read() if all(r[k] == v for k, v in base.items())
            and r["arch"] in grid["archs"] and r["w_var"] == float(w_var) and r["b_var"] == float(b_var)]
    return {"rows": mine, "json": table.json, "computed": computed, "resumed": resumed}


def parse_depth_list(depths) -> tuple:
    """'1,3,10' or a sequence -> sorted distinct ints >= 1."""
    items = [v for v in depths.split(",") if v.strip()] if isinstance(depths, str) else list(depths)
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, str)):
            raise ValueError(f"depths must be ints >= 1, got {v!r}")
        try:
            d = int(v)
        except ValueError:
            raise ValueError(f"depths must be ints >= 1, got {v!r}") from None
        if d < 1:
            raise ValueError(f"depths must be ints >= 1, got {v!r}")
        out.append(d)
    if not out:
        raise ValueError("depths: give at least one depth")
    return tuple(sorted(set(out)))


def parse_steps(steps) -> tuple:
    """'10,100' or a sequence -> 0 and the distinct step counts >= 1, sorted (0: the initial net)."""
    items = [v for v in steps.split(",") if v.strip()] if isinstance(steps, str) else list(steps)
    try:
        vals = [int(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"steps must be ints >= 0, got {steps!r}") from None
    if any(v < 0 for v in vals) or any(isinstance(v, bool) for v in items):
        raise ValueError(f"steps must be ints >= 0, got {steps!r}")
    return (0,) + tuple(sorted(set(v for v in vals if v > 0)))


def net_unit(arch, width: int, train: Split, test: Split, *, steps, seed: int = 0, lr_factor: float = 1.0) -> dict:
    """One trained network of `arch` (an arch object) and `width`, and its infinite-width
    counterpart, trained the same way: {"lr", "lambda_max", "steps", "net_accuracy" (T,), "net_train_loss" (T,),
    "ntk_accuracy" (T,), "ntk_inf_accuracy", "outputs" (T, m, 10)}.
    The network (key fold_in(PRNGKey(0), seed)) is centred: trained on targets y + f_0(x_train)
    and read as f_t - f_0, so that f_0 = 0 and its limit is the NTK ensemble's mean (outputs
    (T, m, 10) are those differences); net_train_loss is the centred net's
    (1/2) sum |f_t - f_0 - y|^2 over the training set."""
    import jax

    from ..uncertainty._study import ensemble_unit
    from ..uncertainty._trainer import train_networks

    steps = tuple(int(s) for s in steps)
    data = SimpleNamespace(n_train=len(train.labels), x_train=train.x, y_train=train.y, x_test=test.x)
    ens = ensemble_unit(data, arch, steps + (np.inf,), lr_factor=lr_factor, trained="all")
    key = jax.random.fold_in(jax.random.PRNGKey(0), int(seed))
    # Centred: the network whose infinite-width limit is the NTK ensemble's mean (a single
    # uncentred net carries its random f_0 ~ N(0, K)).
    got = train_networks(arch, width, train.x, train.y, test.x, lr=float(ens["lr"]), steps=steps,
                         keys=key[None], trained="all", centred=True)
    acc = lambda f: np.mean(np.argmax(f, -1) == test.labels, axis=-1)   # noqa: E731
    return {"lr": float(ens["lr"]), "lambda_max": float(ens["lambda_max"]), "steps": list(steps),
            "net_accuracy": acc(got.outputs[0]).tolist(), "net_train_loss": got.train_loss[0].tolist(),
            "ntk_accuracy": acc(ens["mean"][:-1]).tolist(),
            "ntk_inf_accuracy": float(acc(ens["mean"][-1])), "outputs": got.outputs[0]}


def net_study(dataset: str = "mnist", *, n_train: int = DEFAULTS["net_n_train"], n_test: Optional[int] = None,
              archs=DEFAULTS["net_archs"], activation: str = DEFAULTS["activation"], w_var: float = DEFAULTS["w_var"],
              b_var: float = DEFAULTS["b_var"], depths=DEFAULTS["net_depths"], width: int = DEFAULTS["width"],
              seeds: int = DEFAULTS["seeds"], steps=DEFAULTS["steps"], lr_factor: float = DEFAULTS["lr_factor"],
              out="results/depth_ten", data_dir=None, progress: bool = True) -> dict:
    """Trained finite networks against depth (module doc); each (arch, depth, seed) is one
    resumable unit, stored as soon as it is done. Returns {"rows", "json", "computed", "resumed"}."""
    from tqdm.auto import tqdm

    grid = check_grid(archs, activation, [w_var], [b_var], depths, "ntk")
    steps = parse_steps(steps)
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    ds = _data(dataset, n_train, n_test, data_dir)
    train, _, test = _splits(ds)
    table = Table(Path(out), f"depth_ten_{dataset}_nets", NET_KEYS)
    base = {"dataset": dataset, "n_train": ds.n_train, "n_test": ds.n_test, "activation": grid["activations"][0],
            "w_var": float(w_var), "b_var": float(b_var), "width": int(width), "lr_factor": float(lr_factor),
            "steps": list(steps)}
    library = library_info()
    have = {table.key(r) for r in table.merge()}
    units = [(a, d, s) for a in grid["archs"] for d in grid["depths"] for s in range(seeds)]
    computed, resumed = [], []
    bar = tqdm(units, desc=f"depth nets {dataset}", unit="net", disable=not progress)
    for arch, depth, seed in bar:
        row_key = dict(base, arch=arch, depth=int(depth), seed=seed)
        if table.key(row_key) in have:
            resumed.append((arch, depth, seed))
            continue
        bar.set_postfix_str(f"{arch} L={depth} seed {seed}")
        start = time.perf_counter()
        got = net_unit(family(arch, base["activation"], w_var, b_var, int(ds.dim), depth), int(width), train, test,
                       steps=steps, seed=seed, lr_factor=lr_factor)
        got.pop("outputs")
        row = dict(row_key, gamma=gamma_of(arch), **got, wall_s=round(time.perf_counter() - start, 1))
        have = {table.key(r) for r in table.merge([row], _meta(table, ds, base, library))}
        computed.append((arch, depth, seed))
    mine = [r for r in table.read() if all(r[k] == v for k, v in base.items()) and r["arch"] in grid["archs"]]
    return {"rows": mine, "json": table.json, "computed": computed, "resumed": resumed}
