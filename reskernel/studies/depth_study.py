"""Depth study: test accuracy of NNGP/NTK kernel regression vs depth on real two-class
data (MNIST2, CIFAR2), FFNet against ResNets with alpha = L^-gamma, float64 against
float32 kernels; and a finite-width check that wide trained networks approach the
NTK predictions.

Kernels are computed only on the pairs regression needs (train x train upper
triangle, test x train), as one elementwise recursion per (architecture, gamma,
precision): FFNet one pass to the largest depth; ResNet each depth with its own
alpha = l^-gamma. Regression always solves in float64 (ridge relative to the
mean diagonal); "precision" is the dtype of the kernel computation.

    reskernel regress --dataset cifar2 --arch ffnet,resnet --gamma 0.5,0.75,1 \\
        --depths 1:1000 --kernel ntk,nngp --precision float64,float32
"""
from __future__ import annotations

import math
import numbers
import re
import time
from pathlib import Path
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._store import Table, out_dir_callback, write_json_atomic
from ..core.arch import FeedForward, ResNet
from ..precision import enable_x64
from ..inference.regression import _as_kernels, _check_ridge, _solve, check_depths, depth_kernels, gd_predictions, scores

__all__ = ["parse_depths", "parse_list", "study", "plot_study", "summary_table", "finite_width_check", "regress_command",
           "ARCHS", "KERNELS", "PRECISIONS"]

ARCHS = ("ffnet", "resnet")
KERNELS = ("ntk", "nngp")
PRECISIONS = ("float64", "float32")
# A float32 kernel can be indefinite by more than the ridge: rounding accumulated over the
# depth recursion (measured: MNIST2 ResNet gamma=1 NNGP at L=1000, float32, smallest
# eigenvalue -6e-4 x mean diagonal; float64 +1e-5). The study then raises the ridge by
# jitter (10 eps, tenfold steps, at most this, relative) and records it per row (ridge_used).
MAX_JITTER = 1e-2
KEY_FIELDS = ("dataset", "classes", "n_train", "n_test", "seed", "ridge", "trained", "arch", "gamma",
              "precision", "kernel", "depth")


def parse_depths(spec: str, points: int = 30) -> list:
    """Depth spec -> sorted unique ints >= 1.

    "a:b" -> ~`points` log-spaced depths from a to b including both ends;
    "a:b:k" -> k log-spaced depths; "1,10,100" -> those depths; forms can be mixed with commas.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"depth spec must be a non-empty string like '1:1000' or '1,10,100', got {spec!r}")
    out = []
    for part in spec.split(","):
        part = part.strip()
        if re.fullmatch(r"\d+", part):
            out.append(int(part))
        elif re.fullmatch(r"\d+:\d+(:\d+)?", part):
            nums = [int(v) for v in part.split(":")]
            a, b = nums[0], nums[1]
            k = nums[2] if len(nums) == 3 else points
            if a < 1 or b < a or k < 1:
                raise ValueError(f"bad depth range {part!r}: need 1 <= start <= stop and count >= 1")
            if k == 1 or a == b:
                out.extend({a, b})
            else:
                out.extend(np.unique(np.round(np.geomspace(a, b, k)).astype(np.int64)).tolist())
        else:
            raise ValueError(f"bad depth spec part {part!r} in {spec!r}; use 'start:stop', 'start:stop:count' "
                             "or comma-separated ints >= 1")
    depths = sorted(set(out))
    check_depths(depths)
    return depths


def parse_list(spec, allowed=None, *, kind=str, name="value") -> list:
    """Comma-separated list -> list of `kind`, each in `allowed` (when given); non-empty."""
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items:
        raise ValueError(f"{name}: give at least one value")
    out = []
    for s in items:
        try:
            v = kind(s)
        except ValueError:
            raise ValueError(f"{name}: cannot read {s!r} as {kind.__name__}") from None
        if allowed is not None and v not in allowed:
            raise ValueError(f"{name}: unknown value {s!r}; allowed: {', '.join(map(str, allowed))}")
        if v not in out:
            out.append(v)
    return out


def _same(row, base) -> bool:
    """Row computed with the data/solver settings `base`."""
    return all(row.get(k) == v for k, v in base.items())


def _family_kernels(arch, gamma, x_train, x_test, depths, trained, dtype, bar):
    """{kernel: (train (k, n, n), test x train (k, m, n))} float64 NumPy arrays at `depths`
    (sorted): rk.regression.depth_kernels in `dtype`, the library's kernels (float32: the
    tables, as rk.kernel), the progress bar advanced per depth."""
    family = FeedForward(1) if arch == "ffnet" else ResNet(1, gamma=gamma)
    a = jnp.asarray(x_train, dtype)
    b = jnp.asarray(x_test, dtype)
    k_tr = depth_kernels(family, a, None, depths, trained=trained, progress=bar.update)
    k_te = depth_kernels(family, b, a, depths, trained=trained, progress=bar.update)
    return {name: (np.asarray(k_tr[i], np.float64), np.asarray(k_te[i], np.float64))
            for i, name in enumerate(("nngp", "ntk"))}


def study(dataset: str = "cifar2", *, archs: Sequence[str] = ARCHS, gammas: Sequence[float] = (0.5, 0.75, 1.0),
          depths: Sequence[int] = (1, 10, 100, 1000), ffnet_depths: Optional[Sequence[int]] = None,
          kernels: Sequence[str] = KERNELS, precisions: Sequence[str] = PRECISIONS, classes=None,
          n_train: Optional[int] = None, n_test: Optional[int] = None, seed: int = 0, ridge: float = 1e-6,
          trained: str = "hidden", out="results/regress", data_dir=None,
          progress: bool = True) -> dict:
    """Run (or resume) the depth study; returns {"rows", "json", "csv", "png", "computed", "resumed"}.

    Rows: one per (arch, gamma, precision, kernel, depth) with test accuracy, test MSE and
    the data settings. Units already in out/regress_<dataset>.json with the same settings are
    skipped ("resumed"); after each unit its rows are merged into the stored ones under the
    folder's lock (runs with other settings may write there at the same time), and the CSV is
    regenerated from the JSON, also on resume.
    """
    from tqdm import tqdm

    from ..data import two_class

    archs = parse_list(",".join(archs), ARCHS, name="archs")
    kernels = parse_list(",".join(kernels), KERNELS, name="kernels")
    precisions = parse_list(",".join(precisions), PRECISIONS, name="precisions")
    depths = [int(d) for d in check_depths(depths)]
    ffnet_depths = depths if ffnet_depths is None else [int(d) for d in check_depths(ffnet_depths)]
    depths, ffnet_depths = sorted(set(depths)), sorted(set(ffnet_depths))
    gammas = [float(g) for g in gammas]
    ridge = _check_ridge(ridge)
    if "resnet" in archs and (not gammas or any(not (math.isfinite(g) and g >= 0) for g in gammas)):
        raise ValueError(f"gammas must be a non-empty list of finite reals >= 0, got {gammas}")
    ds = two_class(dataset, classes, n_train, n_test, seed=seed, data_dir=data_dir)
    if ds.n_train < 2 or len(np.unique(ds.y_train)) < 2:
        raise ValueError(f"need at least 2 training images covering both classes, got {ds.n_train}")
    out = Path(out)
    stem = f"regress_{dataset}"
    table = Table(out, stem, KEY_FIELDS)
    rows = table.merge()  # checks the stored rows and rewrites the CSV from them
    have = {table.key(r) for r in rows}
    base = {"dataset": dataset, "classes": list(ds.classes), "n_train": ds.n_train, "n_test": ds.n_test,
            "seed": int(seed), "ridge": float(ridge), "trained": trained}
    meta = {"data": ds.metadata, "solver": "Cholesky in float64, ridge x mean diagonal (raised by jitter, "
            f"at most {MAX_JITTER:g}, where the kernel is not positive definite: ridge_used)",
            "precision": "dtype of the kernel recursion", "resnet_alpha": "each depth l its own alpha = l^-gamma"}
    units = [("ffnet", None, p) for p in precisions if "ffnet" in archs]
    units += [("resnet", g, p) for g in gammas for p in precisions if "resnet" in archs]
    todo, computed, resumed = [], [], []
    for arch, g, p in units:
        ds_ = ffnet_depths if arch == "ffnet" else depths
        keys = [table.key(dict(base, arch=arch, gamma=g, precision=p, kernel=k, depth=d)) for k in kernels
                for d in ds_]
        if all(k in have for k in keys):
            resumed.append({"arch": arch, "gamma": g, "precision": p})
        else:
            todo.append((arch, g, p, ds_))
    total = 2 * sum(sum(d) if a == "resnet" else max(d) for a, _, _, d in todo)  # train, then test x train
    bar = tqdm(total=total, desc=f"regress {dataset}", unit="layer", disable=not progress or not todo)
    for arch, g, p, ds_ in todo:
        bar.set_postfix_str(f"{arch}{'' if g is None else f' gamma={g:g}'} {p}")
        dtype = np.float64 if p == "float64" else np.float32
        start = time.perf_counter()
        with enable_x64(p == "float64"):
            ks = _family_kernels(arch, g, ds.x_train, ds.x_test, ds_, trained, dtype, bar)
        kernel_s = time.perf_counter() - start
        new = []
        for kname in kernels:
            k_tr, k_te = ks[kname]
            pred, used = _solve(*_as_kernels(k_tr, k_te, ds.y_train), float(ridge), MAX_JITTER)
            acc, mse = scores(pred, ds.y_test)
            for j, d in enumerate(ds_):
                new.append(dict(base, arch=arch, gamma=g, precision=p, kernel=kname, depth=int(d),
                                accuracy=float(acc[j]), mse=float(mse[j]), ridge_used=float(used[j]),
                                alpha=None if arch == "ffnet" else float(d) ** (-g)))
            if (used > ridge).any():
                bar.write(f"{arch}{'' if g is None else f' gamma={g:g}'} {p} {kname}: kernel not positive definite "
                          f"with ridge {ridge:g} at depth(s) {[int(d) for d, u in zip(ds_, used) if u > ridge]}; "
                          f"jitter raised the ridge to {used.max():.3g} x mean diagonal (column ridge_used)")
        computed.append({"arch": arch, "gamma": g, "precision": p, "kernel_s": round(kernel_s, 2),
                         "solve_s": round(time.perf_counter() - start - kernel_s, 2)})
        rows = table.merge(new, meta)
    bar.close()
    if not rows:
        raise ValueError("nothing to report")
    sel = [r for r in rows if _same(r, base)]
    png = plot_study(sel, out / f"{stem}.png")
    return {"rows": sel, "json": table.json, "csv": table.csv, "png": png, "computed": computed, "resumed": resumed}


def plot_study(rows, path):
    """Test accuracy vs depth (log x), one panel per kernel; colour = architecture,
    solid = float64, dashed = float32; grey line = majority-class rate."""
    from ..plotting import figure, save

    kernels = [k for k in KERNELS if any(r["kernel"] == k for r in rows)]
    fig, axes = figure(len(kernels))
    axes = np.atleast_1d(axes)
    colors = {}
    for ax, kname in zip(axes, kernels):
        sel = [r for r in rows if r["kernel"] == kname]
        for arch, g in dict.fromkeys((r["arch"], r["gamma"]) for r in sel):
            label = "FFNet" if arch == "ffnet" else f"ResNet gamma={g:g}"
            color = colors.setdefault(label, f"C{len(colors)}")
            for p, style in (("float64", "-"), ("float32", "--")):
                pts = sorted((r["depth"], r["accuracy"]) for r in sel
                             if r["arch"] == arch and r["gamma"] == g and r["precision"] == p)
                if pts:
                    d, a = zip(*pts)
                    ax.plot(d, a, style, color=color, marker="o", ms=2.5, label=f"{label} ({p})")
        r0 = rows[0]
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("depth L")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{r0['dataset']} {r0['classes']}: {kname.upper()} regression "
                     f"(n_train={r0['n_train']}, n_test={r0['n_test']})", fontsize=9)
        ax.legend(fontsize=6)
    return save(fig, path)


def finite_width_check(widths: Sequence[int] = (256, 2048), *, arch=None, dataset: str = "mnist2",
                       classes=None, n_train: int = 100, n_test: int = 200, steps: int = 200,
                       lr_fraction: float = 1.0, seed: int = 0, data_dir=None) -> dict:
    """Wide networks trained by full-batch gradient descent vs NTK regression predictions.

    The network is centred: g(x) = f(x; theta) - f(x; theta_0) (theta_0 frozen), so g starts at 0 and in
    the kernel regime follows g_t(x) = K_x,train K^-1 (I - (I - lr K)^t) y exactly (discrete GD on
    (1/2) sum_i (g(x_i) - y_i)^2, the trained parameters the "hidden" set, float32 networks).
    K is the analytic NTK (trained="hidden", float64), lr = lr_fraction / lambda_max(K_train).

    Args:
      widths: widths to train (each >= 1).
      arch: FeedForward or ResNet spec (default FeedForward(2)).
      dataset, classes, n_train, n_test, seed, data_dir: as in reskernel.data.two_class.
      steps: gradient-descent steps.
    Returns:
      dict with per-width rows {"width", "gap" (relative L2 distance of test predictions to the NTK
      prediction), "accuracy" (network), "train_loss"} and "ntk_accuracy", "lr", settings.
    """
    import optax

    from ..core import analytic
    from ..data import two_class
    from ..nets.networks import network, param_groups

    arch = FeedForward(2) if arch is None else arch
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of ints >= 1, got {widths}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not (isinstance(lr_fraction, numbers.Real) and 0 < lr_fraction < 2):
        raise ValueError(f"lr_fraction must be in (0, 2) (stability of gradient descent), got {lr_fraction!r}")
    ds = two_class(dataset, classes, n_train, n_test, seed=seed, data_dir=data_dir)
    with enable_x64():
        k_tr = np.asarray(analytic.kernel(arch, ds.x_train).ntk)
        k_te = np.asarray(analytic.kernel(arch, ds.x_test, ds.x_train).ntk)
    lr = float(lr_fraction / np.linalg.eigvalsh(k_tr)[-1])
    target = gd_predictions(k_tr, k_te, ds.y_train, steps, lr=lr)
    ntk_acc = float(np.mean(np.sign(target) == ds.y_test))
    groups = param_groups(arch, "hidden")
    x_tr, x_te = jnp.asarray(ds.x_train, jnp.float32), jnp.asarray(ds.x_test, jnp.float32)
    y_tr = jnp.asarray(ds.y_train, jnp.float32)
    rows = []
    for i, width in enumerate(widths):
        net = network(arch, width)
        params0 = net.init(jax.random.fold_in(jax.random.PRNGKey(seed), i), ds.dim, dtype=jnp.float32)
        f0_tr, f0_te = net.apply(params0, x_tr), net.apply(params0, x_te)
        fixed = {k: v for k, v in params0.items() if k not in groups}
        opt = optax.sgd(lr)

        def loss(theta):
            g = net.apply({**fixed, **theta}, x_tr) - f0_tr
            return 0.5 * jnp.sum((g - y_tr) ** 2)

        @jax.jit
        def train(theta):
            def step(carry, _):
                th, st = carry
                value, grads = jax.value_and_grad(loss)(th)
                upd, st = opt.update(grads, st, th)
                return (optax.apply_updates(th, upd), st), value
            theta0 = theta
            (theta, _), losses = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=steps)
            return theta, losses

        theta, losses = train({k: params0[k] for k in groups})
        pred = np.asarray(net.apply({**fixed, **theta}, x_te) - f0_te, np.float64)
        rows.append({"width": width, "gap": float(np.linalg.norm(pred - target) / np.linalg.norm(target)),
                     "accuracy": float(np.mean(np.sign(pred) == ds.y_test)),
                     "train_loss": float(loss(theta)) if steps else float(0.5 * np.sum(ds.y_train ** 2))})
    return {"rows": rows, "ntk_accuracy": ntk_acc, "lr": lr, "steps": steps, "arch": repr(arch),
            "centering": "g = f(theta) - f(theta_0)", "trained": "hidden", "data": ds.metadata}


def _regress_command():
    import click

    def _parse(fn, value, hint):
        try:
            return fn(value)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e), param_hint=hint) from None

    @click.command("regress", context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--dataset", default="cifar2", show_default=True, type=click.Choice(["mnist2", "cifar2"]),
                  help="Two-class subset of MNIST or CIFAR-10.")
    @click.option("--classes", default=None, help="Two classes, e.g. '4,9' or 'airplane,automobile' "
                  "[default: 4,9 for mnist2; airplane,automobile (0,1) for cifar2].")
    @click.option("--arch", "archs", default="ffnet,resnet", show_default=True, help="Comma list of ffnet, resnet.")
    @click.option("--gamma", "gammas", default="0.5,0.75,1", show_default=True, help="ResNet gammas, alpha = L^-gamma.")
    @click.option("--depths", default="1:1000", show_default=True,
                  help="Depths: 'a:b' (~30 log-spaced incl. ends), 'a:b:k' (k points) or '1,10,100'.")
    @click.option("--ffnet-depths", default=None, help="FFNet depths (default: --depths); FFNet depths cost "
                  "one pass to the largest, so e.g. 1:10000 is cheap.")
    @click.option("--kernel", "kernels", default="ntk,nngp", show_default=True,
                  help="Comma list of ntk, nngp: the kernels to regress with.")
    @click.option("--precision", "precisions", default="float64,float32", show_default=True,
                  help="dtype of the kernel recursion (the solve is always float64).")
    @click.option("--n-train", default=None, type=click.IntRange(min=2), help="Training images (default all).")
    @click.option("--n-test", default=None, type=click.IntRange(min=1), help="Test images (default all).")
    @click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                  help="Seed of the subsets drawn by --n-train/--n-test (and of --finite-widths networks).")
    @click.option("--ridge", default=1e-6, show_default=True, type=click.FloatRange(min=0.0),
                  help="Ridge relative to the mean diagonal.")
    @click.option("--trained", default="hidden", show_default=True, type=click.Choice(["hidden", "all"]),
                  help="Parameters in the NTK: hidden layers, or all layers (as neural-tangents).")
    @click.option("--finite-widths", default=None,
                  help="Also train networks of these widths (e.g. 256,2048) on a 100/200 subset and compare "
                       "with NTK regression.")
    @click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Data folder "
                  "(default $RESKERNEL_DATA or the cache).")
    @click.option("--out", default="results/regress", show_default=True, type=click.Path(file_okay=False),
                  callback=out_dir_callback, help="Folder for regress_<dataset>.json/.csv/.png; reruns resume "
                  "there, and runs with other settings add their rows to the same files.")
    def command(dataset, classes, archs, gammas, depths, ffnet_depths, kernels, precisions, n_train, n_test, seed,
                ridge, trained, finite_widths, data_dir, out):
        """Kernel regression accuracy vs depth (FFNet vs ResNet, NTK/NNGP, float64/float32)."""
        archs = _parse(lambda v: parse_list(v, ARCHS, name="--arch"), archs, "--arch")
        gammas = _parse(lambda v: parse_list(v, kind=float, name="--gamma"), gammas, "--gamma")
        if any(not (math.isfinite(g) and g >= 0) for g in gammas):
            raise click.BadParameter(f"gammas must be finite and >= 0, got {gammas}", param_hint="--gamma")
        depth_list = _parse(parse_depths, depths, "--depths")
        ff = depth_list if ffnet_depths is None else _parse(parse_depths, ffnet_depths, "--ffnet-depths")
        kernels = _parse(lambda v: parse_list(v, KERNELS, name="--kernel"), kernels, "--kernel")
        precisions = _parse(lambda v: parse_list(v, PRECISIONS, name="--precision"), precisions, "--precision")
        widths = None
        if finite_widths is not None:
            widths = _parse(lambda v: parse_list(v, kind=int, name="--finite-widths"), finite_widths,
                            "--finite-widths")
            if any(w < 1 for w in widths):
                raise click.BadParameter("widths must be >= 1", param_hint="--finite-widths")
        pair = None
        if classes is not None:
            pair = [int(c) if c.strip().isdigit() else c.strip() for c in classes.split(",")]
        try:
            res = study(dataset, archs=archs, gammas=gammas, depths=depth_list, ffnet_depths=ff, kernels=kernels,
                        precisions=precisions, classes=pair, n_train=n_train, n_test=n_test, seed=seed,
                        ridge=ridge, trained=trained, out=out, data_dir=data_dir)
        except (ValueError, TypeError, OSError) as e:
            raise click.ClickException(str(e)) from None
        click.echo(summary_table(res["rows"]))
        resumed = f", {len(res['resumed'])} resumed from {res['json'].name}" if res["resumed"] else ""
        click.echo(f"wrote {res['json']}, {res['csv']} and {res['png']} "
                   f"({len(res['computed'])} unit(s) computed{resumed})")
        for u in res["computed"]:
            name = u["arch"] if u["gamma"] is None else f"{u['arch']} gamma={u['gamma']:g}"
            click.echo(f"  {name} {u['precision']}: kernels {u['kernel_s']:.1f} s, solves {u['solve_s']:.1f} s")
        if widths:
            fw = finite_width_check(widths, dataset=dataset, classes=pair, seed=seed, data_dir=data_dir)
            path = write_json_atomic(Path(out) / f"finite_width_{dataset}.json", fw)
            click.echo(f"finite width: NTK accuracy {fw['ntk_accuracy']:.3f}; " + "; ".join(
                f"width {r['width']}: gap {r['gap']:.3f}, accuracy {r['accuracy']:.3f}" for r in fw["rows"]))
            click.echo(f"wrote {path}")

    return command


def summary_table(rows) -> str:
    """Markdown table: accuracy per (arch, gamma, kernel, precision) row, depths as columns."""
    depths = sorted({r["depth"] for r in rows})
    lines = ["| arch | kernel | precision | " + " | ".join(f"L={d}" for d in depths) + " |",
             "|" + "---|" * (3 + len(depths))]
    groups = dict.fromkeys((r["arch"], r["gamma"], r["kernel"], r["precision"]) for r in rows)
    for arch, g, k, p in sorted(groups, key=lambda t: (t[0], t[1] or 0, t[2], t[3])):
        acc = {r["depth"]: r["accuracy"] for r in rows
               if (r["arch"], r["gamma"], r["kernel"], r["precision"]) == (arch, g, k, p)}
        name = "FFNet" if arch == "ffnet" else f"ResNet g={g:g}"
        lines.append(f"| {name} | {k} | {p} | " + " | ".join(f"{acc[d]:.3f}" if d in acc else "" for d in depths)
                     + " |")
    return "\n".join(lines)


regress_command = _regress_command()
