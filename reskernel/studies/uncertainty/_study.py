"""The two studies and their result store (reskernel.studies._store: JSON + CSV, merged under a
lock, so reruns resume and runs into one folder keep every row).

calibration_study: per (dataset, arch), the NNGP posterior on ten-class data (float64 kernels
and solves), the amplitude s from the marginal likelihood, each test point's predicted variance
s (sigma^2(x) + noise) against the realized squared error of the posterior mean averaged over the
10 outputs, in quantile bins (out/calibration.json/.csv: one row per unit, bins as lists).

spread_study: per (arch, width), networks trained by full-batch gradient descent from seeds
0..S-1 (in batches of `chunk` seeds, each stored as out/nets/<tag>_w<width>_s<a>-<b>.npz when
done: a killed run loses at most one batch), set beside the NTK ensemble's mean and variance at
the same steps, lr and targets (out/spread.json/.csv: one row per (arch, width, step)).
"""
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .._store import Table, read_document
from ._calibration import binned_calibration, calibration_summary, quantile_bins
from ._spread import compare_spread

__all__ = ["ArchSpec", "parse_arch", "calibration_study", "spread_study", "CAL_KEYS", "SPREAD_KEYS"]

CAL_KEYS = ("dataset", "n_train", "n_test", "data_seed", "arch", "activation", "w_var", "b_var", "noise", "bins")
SPREAD_KEYS = ("dataset", "n_train", "n_test", "data_seed", "arch", "activation", "w_var", "b_var", "trained",
               "lr_factor", "width", "step")
CAL_META = {
    "rows": "one per (dataset, arch): the NNGP posterior of the arch trained on n_train ten-class images (targets "
            "0.9/-0.1), its amplitude s = tr(Y^T A^-1 Y) / (n k) (the marginal likelihood's maximum, A = K + noise "
            "I), and each test point's predicted variance s (sigma^2(x) + noise) against the realized squared error "
            "of the posterior mean averaged over the 10 outputs, in quantile bins",
    "noise": "relative to the training NNGP's mean diagonal (the absolute value is noise_abs)",
    "bin_*": "per quantile bin of predicted variance, ascending: lower/upper (range of predicted variance), count, "
             "predicted (mean), realized (mean squared error), stderr (of realized), z, accuracy (argmax correct)",
    "inputs": "each image standardized to zero mean and unit variance over its pixels; in_var = w_var / d, so "
              "K^0 = b_var + w_var x.x' / d (Lee et al. 2018); float64 kernels and solves",
}
SPREAD_META = {
    "rows": "one per (arch, width, step): the NTK ensemble (Lee et al. 2019) of the arch at that step of gradient "
            "descent on (1/2) sum |f - y|^2 with lr = lr_factor / lambda_max(NTK of the training set), beside "
            "`seeds` finite networks of that width (k = 10 outputs, all entries N(0, 1), float32) trained from "
            "seeds 0..seeds-1 with the same lr, targets and steps",
    "stats": "reskernel.studies.uncertainty.compare_spread: z of the means with their sample standard errors, "
             "ratios of the networks' sample variance (pooled over the 10 outputs) to the predicted one, "
             "with the chi-square sampling intervals",
}


class ArchSpec(tuple):
    """(kind, depth, gamma) parsed from 'ffnet:DEPTH' or 'resnet:DEPTH:GAMMA'; str() gives it back."""

    def __new__(cls, kind, depth, gamma=None):
        return super().__new__(cls, (kind, int(depth), None if gamma is None else float(gamma)))

    def __str__(self):
        kind, depth, gamma = self
        return f"ffnet:{depth}" if kind == "ffnet" else f"resnet:{depth}:{gamma:g}"

    def build(self, d: int, w_var: float, b_var: float, activation: str):
        """The arch with Lee et al.'s input convention: in_var = w_var / d."""
        from ...core.arch import FeedForward, ResNet

        kind, depth, gamma = self
        if kind == "ffnet":
            return FeedForward(depth, w_var=w_var, b_var=b_var, activation=activation, in_var=w_var / d)
        return ResNet(depth, gamma=gamma, w_var=w_var, b_var=b_var, activation=activation, in_var=w_var / d)


def parse_arch(text: str) -> ArchSpec:
    """'ffnet:20' or 'resnet:20:0.5' (depth, branch scale alpha = depth^-gamma) -> ArchSpec."""
    parts = [p.strip() for p in str(text).split(":")]
    try:
        if parts[0] == "ffnet" and len(parts) == 2 and int(parts[1]) >= 1:
            return ArchSpec("ffnet", int(parts[1]))
        if parts[0] == "resnet" and len(parts) == 3 and int(parts[1]) >= 1 and float(parts[2]) >= 0:
            return ArchSpec("resnet", int(parts[1]), float(parts[2]))
    except ValueError:
        pass
    raise ValueError(f"an arch is 'ffnet:DEPTH' or 'resnet:DEPTH:GAMMA' (depth >= 1, gamma >= 0), got {text!r}")


def _data(dataset, n_train, n_test, seed, data_dir):
    from ...data import ten_class

    return ten_class(dataset, n_train, n_test=n_test, seed=seed, data_dir=data_dir)


def _merge_meta(table, meta, datasets):
    """Table meta: `meta` plus the data meta of every dataset this folder has seen."""
    doc = read_document(table.json, {"rows": list, "meta": dict}) or {}
    data = dict(doc.get("meta", {}).get("data", {}))
    data.update(datasets)
    return dict(meta, data=data)


def _nngp(arch, x_train, x_test, block=250):
    """float64 (train (n, n), test x train (m, n), test diagonal (m,)) NNGP blocks."""
    import jax.numpy as jnp

    from ...core.analytic import kernel
    from ...precision import enable_x64

    with enable_x64():
        a, b = jnp.asarray(x_train, jnp.float64), jnp.asarray(x_test, jnp.float64)
        k_tr = np.asarray(kernel(arch, a, get="nngp"))
        k_te = np.asarray(kernel(arch, b, a, get="nngp"))
        diag = np.concatenate([np.diagonal(np.asarray(kernel(arch, b[i:i + block], get="nngp")))
                               for i in range(0, b.shape[0], block)])
    return k_tr, k_te, diag


def calibration_unit(ds, arch, *, noise: float = 1e-6, bins: int = 10) -> dict:
    """One (dataset, arch): the NNGP posterior's predicted variance against realized error.

    Returns the row's measurements (amplitude, log marginal likelihood, factor diagnostics,
    accuracy, test MSE, calibration_summary, and the bins) and "points": the per-point arrays
    (predicted, realized) for plots.
    """
    from ...inference import cholesky_factor, gp_posterior, log_marginal_likelihood, optimal_amplitude

    start = time.perf_counter()
    k_tr, k_te, diag = _nngp(arch, ds.x_train, ds.x_test)
    kernel_s = time.perf_counter() - start
    absolute = noise * float(np.mean(np.diagonal(k_tr)))
    factor = cholesky_factor(k_tr, noise=absolute)
    s = float(optimal_amplitude(factor, ds.y_train))
    post = gp_posterior(factor, ds.y_train, k_te, diag)
    predicted = s * (np.maximum(post.covariance, 0.0) + absolute)
    realized = np.mean((post.mean - ds.y_test) ** 2, axis=1)
    correct = np.argmax(post.mean, axis=1) == ds.labels_test
    cal = binned_calibration(predicted, realized, bins)
    which = quantile_bins(predicted, bins)
    row = {"amplitude": s, "log_ml": float(log_marginal_likelihood(factor, ds.y_train, amplitude=s)),
           "noise_abs": absolute, "jitter": float(factor.jitter), "cond": float(factor.cond),
           "accuracy": float(correct.mean()), "mse": float(realized.mean()),
           "prior_var": float(s * diag.mean()), **calibration_summary(predicted, realized, bins),
           **{f"bin_{name}": np.asarray(v).tolist() for name, v in cal._asdict().items()},
           "bin_accuracy": [float(correct[which == b].mean()) for b in range(bins)],
           "kernel_s": round(kernel_s, 2), "total_s": round(time.perf_counter() - start, 2)}
    return {"row": row, "points": {"predicted": predicted, "realized": realized}}


def calibration_study(datasets=("mnist", "cifar10"), archs=("ffnet:20", "resnet:20:0.5"), *, w_var: float = 1.45,
                      b_var: float = 0.28, activation: str = "relu", n_train: int = 1000, n_test=None,
                      data_seed=None, noise: float = 1e-6, bins: int = 10, out="results/uncertainty", data_dir=None,
                      progress: bool = True) -> dict:
    """Run (or resume) the NNGP calibration study; returns {"rows", "json", "computed", "resumed"}.

    Units (dataset, arch) already stored with these settings are skipped.
    """
    from tqdm.auto import tqdm

    archs = [a if isinstance(a, ArchSpec) else parse_arch(a) for a in archs]
    table = Table(out, "calibration", CAL_KEYS)
    have = {table.key(r) for r in table.merge()}
    computed, resumed, loaded = [], [], {}
    units = [(d, a) for d in datasets for a in archs]
    for dataset, spec in tqdm(units, desc="calibration", unit="unit", disable=not progress):
        if dataset not in loaded:
            loaded[dataset] = _data(dataset, n_train, n_test, data_seed, data_dir)
        ds = loaded[dataset]
        base = {"dataset": dataset, "n_train": ds.n_train, "n_test": ds.n_test, "data_seed": data_seed,
                "arch": str(spec), "activation": activation, "w_var": float(w_var), "b_var": float(b_var),
                "noise": float(noise), "bins": int(bins)}
        if table.key(base) in have:
            resumed.append(base)
            continue
        unit = calibration_unit(ds, spec.build(ds.dim, w_var, b_var, activation), noise=noise, bins=bins)
        row = dict(base, **unit["row"])
        have = {table.key(r) for r in table.merge([row], _merge_meta(table, CAL_META, {dataset: ds.meta}))}
        computed.append(row)
    wanted = {table.key(r) for r in computed + resumed}
    return {"rows": [r for r in table.read() if table.key(r) in wanted], "json": table.json, "csv": table.csv,
            "computed": computed, "resumed": resumed}


def _tag(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def _save_npz(path: Path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def ensemble_unit(ds, arch, steps, *, lr_factor: float = 1.0, trained: str = "all") -> dict:
    """The NTK ensemble of `arch` on ds at gradient-descent `steps`: {"lr", "lambda_max",
    "mean" (T, m, k), "variance" (T, m), "train_loss" (T,): the expected training loss of its networks,
    (1/2) sum |mean - y|^2 + (k/2) sum of the variances at the training points}."""
    import jax.numpy as jnp

    from ...core.analytic import kernel
    from ...inference import eigh_factor, ntk_ensemble
    from ...precision import enable_x64

    n = ds.n_train
    with enable_x64():
        k = kernel(arch, jnp.asarray(np.concatenate([ds.x_train, ds.x_test]), jnp.float64), trained=trained)
    ntk, nngp = np.asarray(k.ntk), np.asarray(k.nngp)
    factor = eigh_factor(ntk[:n, :n])
    lam = float(factor.values[-1])
    lr = lr_factor / lam
    ens = ntk_ensemble(factor, ds.y_train, ntk[n:, :n], list(steps), lr=lr, nngp_train=nngp[:n, :n],
                       nngp_test_train=nngp[n:, :n], nngp_test_test=np.diagonal(nngp)[n:].copy())
    fit = ntk_ensemble(factor, ds.y_train, ntk[:n, :n], list(steps), lr=lr, nngp_train=nngp[:n, :n],
                       nngp_test_train=nngp[:n, :n], nngp_test_test=np.diagonal(nngp)[:n].copy())
    k_out = ds.y_train.shape[1]
    loss = 0.5 * np.sum((fit.mean - ds.y_train) ** 2, axis=(-2, -1)) + 0.5 * k_out * fit.covariance.sum(-1)
    return {"lr": lr, "lambda_max": lam, "mean": ens.mean, "variance": ens.covariance, "train_loss": loss}


def spread_study(dataset: str = "mnist", archs=("ffnet:3", "resnet:3:0.5"), *, w_var: float = 1.45,
                 b_var: float = 0.28, activation: str = "relu", n_train: int = 100, n_test: int = 200,
                 data_seed=None, widths=(1024,), seeds: int = 20, steps=(0, 1, 3, 10, 30, 100, 300),
                 lr_factor: float = 1.0, trained: str = "all", chunk: int = 4, out="results/uncertainty",
                 data_dir=None, progress: bool = True) -> dict:
    """Run (or resume) the NTK ensemble against trained networks.

    Returns {"rows" (this run's), "stored" (every stored row of these settings and archs, also of
    other widths), "json", "csv", "computed" (batches of seeds trained now), "resumed" (found),
    "arrays": {(arch, width): {"ensemble": ensemble_unit(...), "outputs": (S, T, m, k),
    "labels": (m,)}}} for plots.
    """
    import jax
    from tqdm.auto import tqdm

    from ._trainer import train_networks

    archs = [a if isinstance(a, ArchSpec) else parse_arch(a) for a in archs]
    steps = tuple(int(s) for s in steps)
    ds = _data(dataset, n_train, n_test, data_seed, data_dir)
    table = Table(out, "spread", SPREAD_KEYS)
    table.merge()
    batches = [(a, min(a + chunk, seeds)) for a in range(0, seeds, chunk)]
    units = [(spec, w, b) for spec in archs for w in widths for b in batches]
    computed, resumed, arrays, rows, ensembles = [], [], {}, [], {}

    def settings(spec):
        return {"dataset": dataset, "n_train": ds.n_train, "n_test": ds.n_test, "data_seed": data_seed,
                "arch": str(spec), "activation": activation, "w_var": float(w_var), "b_var": float(b_var),
                "trained": trained, "lr_factor": float(lr_factor), "steps": list(steps)}

    def net_file(spec, width, a, b):
        # named by a hash of the settings, so runs with other settings never read these seeds
        return Path(out) / "nets" / f"{_tag(settings(spec))}_w{width}_s{a}-{b}.npz"

    bar = tqdm(units, desc="spread", unit="batch", disable=not progress)
    for spec, width, (a, b) in bar:
        arch = spec.build(ds.dim, w_var, b_var, activation)
        if spec not in ensembles:
            ensembles[spec] = ensemble_unit(ds, arch, steps, lr_factor=lr_factor, trained=trained)
        ens = ensembles[spec]
        path = net_file(spec, width, a, b)
        if path.exists():
            resumed.append(str(path))
            continue
        bar.set_postfix_str(f"{spec} width {width} seeds {a}..{b - 1}")
        start = time.perf_counter()
        # seed i is fold_in(PRNGKey(0), i) whatever the number of seeds: more seeds only add networks
        keys = jax.numpy.stack([jax.random.fold_in(jax.random.PRNGKey(0), i) for i in range(a, b)])
        got = train_networks(arch, width, ds.x_train, ds.y_train, ds.x_test, lr=float(ens["lr"]), steps=steps,
                             keys=keys, trained=trained)
        _save_npz(path, outputs=got.outputs, train_loss=got.train_loss, settings=json.dumps(settings(spec)),
                  seconds=time.perf_counter() - start)
        computed.append({"arch": str(spec), "width": width, "seeds": [a, b], "s": time.perf_counter() - start})
    bar.close()
    for spec in archs:
        for width in widths:
            ens = ensembles[spec]
            parts = []
            for a, b in batches:
                with np.load(net_file(spec, width, a, b)) as f:
                    parts.append((f["outputs"], f["train_loss"], float(f["seconds"])))
            outputs = np.concatenate([p[0] for p in parts])
            net_loss = np.concatenate([p[1] for p in parts])
            train_s = sum(p[2] for p in parts)
            arrays[(str(spec), width)] = {"ensemble": ens, "outputs": outputs, "labels": ds.labels_test}
            stats = compare_spread(ens["mean"], ens["variance"], outputs)
            net_acc = np.mean(np.argmax(outputs, -1) == ds.labels_test, axis=-1)          # (S, T)
            for t, step in enumerate(steps):
                base = {k: v for k, v in settings(spec).items() if k in SPREAD_KEYS}
                rows.append(dict(base, width=int(width), step=int(step), lr=ens["lr"], lambda_max=ens["lambda_max"],
                                 ensemble_accuracy=float(np.mean(np.argmax(ens["mean"][t], -1) == ds.labels_test)),
                                 nets_accuracy=float(net_acc[:, t].mean()),
                                 nets_mean_accuracy=float(np.mean(np.argmax(outputs[:, t].mean(0), -1)
                                                                  == ds.labels_test)),
                                 ensemble_train_loss=float(ens["train_loss"][t]),
                                 nets_train_loss=float(net_loss[:, t].mean()), train_s=round(train_s, 1),
                                 **stats[t]))
    stored = table.merge(rows, _merge_meta(table, SPREAD_META, {dataset: ds.meta}))
    same = {k: v for k, v in settings(archs[0]).items() if k in SPREAD_KEYS and k not in ("arch", "width", "step")}
    stored = [r for r in stored if r["arch"] in {str(a) for a in archs} and all(r[k] == v for k, v in same.items())]
    return {"rows": rows, "stored": stored, "json": table.json, "csv": table.csv, "computed": computed,
            "resumed": resumed, "arrays": arrays}

