"""The uncertainty study (reskernel.studies.uncertainty): quantile binning against an independent
computation, the calibration statistics on GP draws (calibrated by construction) and on a
mis-scaled variance, the spread statistics on Gaussian samples, the gradient-descent trainer
against closed forms, and the command's --small run with its resume. Small sizes."""
import doctest
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import reskernel as rk
from reskernel.inference import cholesky_factor, gp_posterior, optimal_amplitude
from reskernel.studies import uncertainty as unc
from reskernel.studies.uncertainty import _calibration, _spread, _study, _trainer
from conftest import HAS_DATA, NO_DATA, assert_close


# ------------------------------------------------------------------ binning

def _bins_by_hand(p, r, bins):
    """Quantile bins written out: bin b holds the values from the start-th to the (end-1)-th
    smallest predicted value, the first m % bins bins one point longer."""
    m = p.size
    sizes = [m // bins + (b < m % bins) for b in range(bins)]
    s = np.sort(p)
    out, start = [], 0
    for size in sizes:
        lo, hi = s[start], s[start + size - 1]
        sel = (p >= lo) & (p <= hi)
        rb = r[sel]
        out.append((lo, hi, sel.sum(), p[sel].mean(), rb.mean(), rb.std(ddof=1) / np.sqrt(sel.sum())))
        start += size
    return [np.array(c) for c in zip(*out)]


def test_binning_against_independent_computation():
    rng = np.random.default_rng(0)
    p = rng.gamma(2.0, size=103)                      # distinct values, 103 = 7 x 14 + 5
    r = p * rng.chisquare(10, size=103) / 10
    cal = unc.binned_calibration(p, r, bins=7)
    lo, hi, count, pm, rm, se = _bins_by_hand(p, r, 7)
    assert cal.count.tolist() == count.tolist() == [15] * 5 + [14] * 2
    for got, want in [(cal.lower, lo), (cal.upper, hi), (cal.predicted, pm), (cal.realized, rm), (cal.stderr, se)]:
        assert_close(got, want, rtol=1e-13)
    assert_close(cal.z, (rm - pm) / se, rtol=1e-12)
    assert (np.diff(cal.predicted) > 0).all() and (cal.upper[:-1] < cal.lower[1:]).all()
    # ties: equal counts whatever the values; one bin is the whole set
    which = unc.quantile_bins(np.zeros(10), 3)
    assert np.bincount(which).tolist() == [4, 3, 3]
    whole = unc.binned_calibration(p, r, bins=1)
    assert_close(whole.realized, [r.mean()], rtol=1e-14)
    for bad, match in [(dict(bins=0), "bins"), (dict(bins=104), "bins"), (dict(bins=2.0), "bins")]:
        with pytest.raises(ValueError, match=match):
            unc.binned_calibration(p, r, **bad)
    with pytest.raises(ValueError, match="one length"):
        unc.binned_calibration(p, r[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        unc.binned_calibration(p, -r)


# ------------------------------------------------------------------ calibration on a known answer

def _gp_case(seed, n=60, m=800, k=10, amplitude=2.5):
    """Targets (n + m, k) drawn from the GP of a depth-2 FFNet's NNGP on random inputs (times
    amplitude): the posterior fitted on the first n is then calibrated on the other m."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + m, 6))
    k_all = np.asarray(rk.kernel(rk.FeedForward(2, b_var=0.1), x).nngp, np.float64)
    noise = 1e-3
    lower = np.linalg.cholesky(k_all + noise * np.eye(n + m))
    y = np.sqrt(amplitude) * lower @ rng.normal(size=(n + m, k))
    factor = cholesky_factor(k_all[:n, :n], noise=noise)
    s = float(optimal_amplitude(factor, y[:n]))
    post = gp_posterior(factor, y[:n], k_all[n:, :n], np.diagonal(k_all)[n:].copy())
    predicted = s * (post.covariance + noise)
    realized = np.mean((post.mean - y[n:]) ** 2, axis=1)
    return predicted, realized, s


def test_gp_draws_are_calibrated_and_misscaling_is_detected(x64):
    predicted, realized, s = _gp_case(1)
    assert abs(s / 2.5 - 1) < 0.15                     # the closed-form amplitude finds the scale
    good = unc.calibration_summary(predicted, realized, bins=10)
    assert abs(good["ratio"] - 1) < 0.15 and abs(good["log_slope"] - 1) < 0.35, good
    assert good["within_2se"] >= 0.8 and good["chi2_p"] > 1e-3 and good["spearman"] > 0.2, good
    for factor in (3.0, 1 / 3):                        # variances three times too large or too small
        bad = unc.calibration_summary(predicted * factor, realized, bins=10)
        assert abs(bad["ratio"] * factor - good["ratio"]) < 1e-9
        assert bad["ratio_high"] < 0.5 or bad["ratio_low"] > 2, bad
        assert bad["within_2se"] <= 0.2 and bad["chi2_p"] < 1e-6, bad
    # correlations and slopes do not depend on the scale: only ratio and z see it
    scaled = unc.calibration_summary(predicted * 3.0, realized, bins=10)
    assert_close(scaled["log_slope"], good["log_slope"], rtol=1e-10)
    assert_close(scaled["spearman"], good["spearman"], rtol=1e-12)


def test_spread_statistics_on_gaussian_samples():
    rng = np.random.default_rng(2)
    t, m, k, seeds = 2, 150, 10, 30
    mean = rng.normal(size=(t, m, k))
    var = rng.uniform(0.5, 2.0, size=(t, m))
    samples = mean + np.sqrt(var)[..., None] * rng.normal(size=(seeds, t, m, k))
    rows = unc.compare_spread(mean, var, samples)
    low, high = unc.variance_interval(k * (seeds - 1))
    for row in rows:
        assert row["dof"] == k * (seeds - 1) and (row["ratio_low"], row["ratio_high"]) == (low, high)
        assert 0.9 < row["z_rms"] < 1.1 and 0.9 < row["z_within_2"] <= 1.0
        assert 0.88 < row["ratio_within"] and abs(row["ratio_median"] - 1) < 0.05
        assert row["var_ratio_low"] < 1 < row["var_ratio_high"]
    # a variance 30% off and a shifted mean are seen
    off = unc.compare_spread(mean + 0.5 * np.sqrt(var)[..., None], var * 1.3, samples)
    assert all(r["var_ratio_high"] < 0.85 and r["ratio_within"] < 0.5 and r["z_rms"] > 2 for r in off)
    # the chi-square interval against sampling by hand
    draws = rng.chisquare(20, size=200000) / 20
    assert_close(unc.variance_interval(20), np.quantile(draws, [0.025, 0.975]), rtol=1e-2)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        unc.compare_spread(mean, var, samples[:1])
    with pytest.raises(ValueError, match="matching"):
        unc.compare_spread(mean, var[:, :-1], samples)


# ------------------------------------------------------------------ the trainer

def test_gradient_descent_against_a_linear_model(x64):
    rng = np.random.default_rng(3)
    x, xe, y = rng.normal(size=(7, 4)), rng.normal(size=(3, 4)), rng.normal(size=(7, 2))
    p0 = {"w": rng.normal(size=(4, 2)), "b": rng.normal(size=(2,))}
    lr = 0.05
    out = unc.gradient_descent(lambda p, x: x @ p["w"] + p["b"], {k: jnp.asarray(v) for k, v in p0.items()}, x, y,
                               xe, lr=lr, steps=[0, 1, 1, 4])
    w, b, want, loss = p0["w"], p0["b"], [], []
    for step in range(5):
        if step in (0, 1, 4):
            want += [xe @ w + b] * (2 if step == 1 else 1)
            loss += [0.5 * np.sum((x @ w + b - y) ** 2)] * (2 if step == 1 else 1)
        r = x @ w + b - y                                   # dL/df for L = (1/2) sum (f - y)^2
        w, b = w - lr * x.T @ r, b - lr * r.sum(0)
    assert out.outputs.shape == (4, 3, 2) and out.train_loss.shape == (4,)
    assert_close(out.outputs, np.stack(want), rtol=1e-12)
    assert_close(out.train_loss, loss, rtol=1e-12)
    # only "w" trainable: b keeps its value
    fixed = unc.gradient_descent(lambda p, x: x @ p["w"] + p["b"], p0, x, y, xe, lr=lr, steps=[1], trainable=["w"])
    w1 = p0["w"] - lr * x.T @ (x @ p0["w"] + p0["b"] - y)
    assert_close(fixed.outputs[0], xe @ w1 + p0["b"], rtol=1e-12)
    for bad, match in [(dict(steps=[2, 1]), "steps"), (dict(steps=[0.5]), "steps"), (dict(lr=0.0), "lr"),
                       (dict(trainable=["v"]), "trainable")]:
        kw = dict(lr=lr, steps=[1]) | bad
        with pytest.raises(ValueError, match=match):
            unc.gradient_descent(lambda p, x: x @ p["w"], p0, x, y, xe, **kw)


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("trained", ["all", "hidden"])
def test_trained_networks_one_step_closed_form(x64, trained, lean, monkeypatch):
    """A depth-1 linear FFNet with k outputs, f = c X W^T V, c = sqrt(in_var w_var / m): one
    descent step moves W by -lr c V R^T X and (all) V by -lr c W X^T R, R = f - Y. lean: the
    path of large networks (stepped from the host, parameters donated), forced by a 0 threshold."""
    if lean:
        monkeypatch.setattr(_trainer, "_LEAN_BYTES", 0)
    rng = np.random.default_rng(4)
    x, xe, y = rng.normal(size=(5, 3)), rng.normal(size=(2, 3)), rng.normal(size=(5, 4))
    arch = rk.FeedForward(1, w_var=1.5, activation="identity", in_var=0.7)
    width, lr = 16, 0.02
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(5), i) for i in range(2)])
    out = unc.train_networks(arch, width, x, y, xe, lr=lr, steps=[0, 1], keys=keys, trained=trained,
                             dtype=jnp.float64)
    model = unc.MultiOutput(arch, width, 4)
    c = np.sqrt(0.7 * 1.5 / width)
    for s in range(2):
        p = model.init(keys[s], 3, jnp.float64)
        w, v = np.asarray(p["input"]), np.asarray(p["readout"])
        f = lambda x, w, v: c * x @ w.T @ v                      # noqa: E731
        assert_close(model.apply(p, xe), f(xe, w, v), rtol=1e-12)
        r = f(x, w, v) - y
        w1 = w - lr * c * v @ r.T @ x
        v1 = v - lr * c * w @ x.T @ r if trained == "all" else v
        assert_close(out.outputs[s, 0], f(xe, w, v), rtol=1e-12)
        assert_close(out.outputs[s, 1], f(xe, w1, v1), rtol=1e-10)
        assert_close(out.train_loss[s], [0.5 * np.sum(r ** 2), 0.5 * np.sum((f(x, w1, v1) - y) ** 2)], rtol=1e-10)
    # one output column with the scalar net's readout is the scalar net
    net = rk.network(arch, width)
    p = net.init(keys[0], 3, jnp.float64)
    one = dict(p, readout=p["readout"][:, None])
    assert_close(unc.MultiOutput(arch, width, 1).apply(one, xe)[:, 0], net.apply(p, xe), rtol=1e-12)
    with pytest.raises(ValueError, match="outputs"):
        unc.MultiOutput(arch, width, 0)


def test_lean_path_equals_the_jitted_one(monkeypatch):
    """Large networks' host-stepped path (_lean) against the one-program path on a biased
    ResNet over several steps, both trained sets, two seeds: the same arithmetic (float32
    rounding apart); and train_networks takes it above _LEAN_BYTES only."""
    rng = np.random.default_rng(7)
    x, xe, y = rng.normal(size=(6, 5)), rng.normal(size=(3, 5)), rng.normal(size=(6, 2))
    arch = rk.ResNet(3, gamma=0.5, w_var=1.7, b_var=0.2)
    keys = jax.random.split(jax.random.PRNGKey(8), 2)
    assert _trainer._param_bytes(arch, 32, 2, 5, jnp.float32) == 4 * (32 * 5 + 32 + 3 * (2 * 32 * 32 + 32) + 32 * 2 + 2)
    for trained, centred, lr in (("all", False, 0.05), ("hidden", False, 0.05), ("all", True, 0.01)):
        kw = dict(lr=lr, steps=[0, 2, 2, 5], keys=keys, trained=trained, centred=centred)
        ref = unc.train_networks(arch, 32, x, y, xe, **kw)
        monkeypatch.setattr(_trainer, "_LEAN_BYTES", 0)
        got = unc.train_networks(arch, 32, x, y, xe, **kw)
        monkeypatch.undo()
        assert got.outputs.shape == ref.outputs.shape == (2, 4, 3, 2)
        assert_close(got.outputs, ref.outputs, rtol=1e-5, atol=1e-5)
        assert_close(got.train_loss, ref.train_loss, rtol=1e-5)
        assert not np.allclose(ref.outputs[:, 0], ref.outputs[:, -1], atol=1e-3)   # the nets moved
        if centred:   # f_t - f_0: 0 at step 0, and the uncentred nets' outputs less their f_0
            assert np.all(got.outputs[:, 0] == 0) and np.all(ref.outputs[:, 0] == 0)
            plain = unc.train_networks(arch, 32, x, y, xe, lr=lr, steps=[0], keys=keys)
            f0 = unc.train_networks(arch, 32, x, y, x, lr=lr, steps=[0], keys=keys).outputs[:, 0]
            moved = unc.train_networks(arch, 32, x, y + f0[0], xe, lr=lr, steps=[0, 2, 2, 5], keys=keys[:1])
            assert_close(ref.outputs[0], moved.outputs[0] - plain.outputs[0], rtol=1e-5, atol=1e-5)
            later = unc.train_networks(arch, 32, x, y, xe, **dict(kw, steps=[2, 5]))   # f_0 still subtracted
            assert_close(later.outputs, ref.outputs[:, 2:], rtol=1e-5, atol=1e-5)
            assert_close(later.train_loss, ref.train_loss[:, 2:], rtol=1e-5)


@pytest.mark.parametrize("arch, trained", [
    (rk.ResNet(4, gamma=0.5), "all"),
    (rk.ResNet(3, gamma=1.0, w_var=1.5, b_var=0.3, in_var=0.8, out_var=1.3), "all"),
    (rk.ResNet(3, gamma=0.75, b_var=0.3), "hidden"),
    (rk.ResNet(2, alpha=0.4, activation="tanh", b_var=0.2), "all"),
])
def test_layerwise_resnet_step_is_the_gradient_step(x64, arch, trained):
    """_layerwise.resnet_step (each block updated in place during the backward pass) against
    _trainer._step (jax.grad of the loss, then the update), float64: equal to rounding."""
    from reskernel.nets.networks import param_groups
    from reskernel.studies.uncertainty._layerwise import resnet_step

    names = tuple(param_groups(arch, trained))
    model = unc.MultiOutput(arch, 16, 3)
    moving, fixed = _trainer._split(model.init(jax.random.PRNGKey(1), 5, jnp.float64), names)
    rng = np.random.default_rng(2)
    x, y = jnp.asarray(rng.normal(size=(7, 5))), jnp.asarray(rng.normal(size=(7, 3)))
    want = _trainer._step(model.apply, moving, fixed, x, y, 0.05)
    got = jax.jit(resnet_step(model, names, 0.05))(moving, fixed, x, y)
    assert sorted(got) == sorted(want) == sorted(names)
    for k in names:
        assert_close(got[k], want[k], rtol=1e-13, atol=1e-14)
        assert not np.allclose(got[k], moving[k])          # every trained array moved


def test_layerwise_resnet_step_holds_one_copy():
    """XLA's memory analysis (no timing): jax.grad's step holds a temporary gradient as large as
    the parameters; the layerwise step, parameters donated, only the blocks' inputs (L, n, m) and
    a few (m, m) arrays of the block at hand."""
    from reskernel.nets.networks import param_groups
    from reskernel.studies.uncertainty._layerwise import resnet_step

    arch = rk.ResNet(32, gamma=0.5)
    names = tuple(param_groups(arch, "all"))
    model = unc.MultiOutput(arch, 64, 10)
    moving, fixed = _trainer._split(model.init(jax.random.PRNGKey(0), 20, jnp.float32), names)
    x, y = jnp.ones((8, 20)), jnp.zeros((8, 10))
    size = sum(v.nbytes for v in jax.tree.leaves(moving))
    def temp(step):
        mem = jax.jit(step, donate_argnums=0).lower(moving, fixed, x, y).compile().memory_analysis()
        return (mem.temp_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes) / size
    assert temp(lambda mv, fx, x, y: _trainer._step(model.apply, mv, fx, x, y, 0.01)) > 0.9
    assert temp(resnet_step(model, names, 0.01)) < 0.25


def test_parse_arch_and_doctests():
    assert str(unc.parse_arch("ffnet:20")) == "ffnet:20"
    spec = unc.parse_arch(" resnet:3:0.5 ")
    assert str(spec) == "resnet:3:0.5" and spec.build(784, 1.45, 0.28, "relu").in_var == 1.45 / 784
    for bad in ("mlp:3", "ffnet", "ffnet:0", "resnet:3", "resnet:3:x", "resnet:2:-1"):
        with pytest.raises(ValueError, match="ffnet:DEPTH"):
            unc.parse_arch(bad)
    for module in (_calibration, _spread, _trainer, _study):
        assert doctest.testmod(module).failed == 0


# ------------------------------------------------------------------ the command

def _invoke(out, *extra):
    args = ["--small", "--cal-archs", "ffnet:2,resnet:2:0.5", "--spread-archs", "ffnet:2", "--out", str(out), *extra]
    return CliRunner().invoke(unc.uncertainty_command, args)


@pytest.mark.skipif(not HAS_DATA, reason=NO_DATA)
def test_small_command_writes_its_files_and_resumes(tmp_path):
    out = tmp_path / "unc"
    res = _invoke(out)
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"calibration.json", "calibration.csv", "calibration.png", "spread.json", "spread.csv", "spread.png",
            "spread_points.png", "nets"} <= names
    nets = sorted((out / "nets").iterdir())
    assert len(nets) == 2                                    # 4 seeds in batches of 2
    cal = json.loads((out / "calibration.json").read_text())
    spread = json.loads((out / "spread.json").read_text())
    assert len(cal["rows"]) == 2 and len(spread["rows"]) == 3  # (2 archs) and (1 arch x 3 steps)
    assert {r["seeds"] for r in spread["rows"]} == {4} and cal["meta"]["data"]["mnist"]["dataset"] == "mnist"
    for r in cal["rows"]:
        assert r["bins"] == 5 and sum(r["bin_count"]) == r["n_test"] == 100 and r["amplitude"] > 0
    # a rerun resumes everything and rewrites the same numbers
    again = _invoke(out, "--no-plot")
    assert again.exit_code == 0, again.output
    assert "0 unit(s) computed, 2 resumed" in again.output and "0 batch(es) of seeds trained, 2 resumed" in again.output
    assert json.loads((out / "calibration.json").read_text())["rows"] == cal["rows"]
    assert json.loads((out / "spread.json").read_text())["rows"] == spread["rows"]
    # a run killed before its last batch: only that batch is trained again, to the same outputs
    before = np.load(nets[-1])["outputs"]
    nets[-1].unlink()
    third = _invoke(out, "--parts", "spread", "--no-plot")
    assert "1 batch(es) of seeds trained, 1 resumed" in third.output, third.output
    assert_close(np.load(nets[-1])["outputs"], before, rtol=1e-6, atol=1e-6)
    # bad options are usage errors naming the option
    for bad in (["--cal-archs", "mlp:2"], ["--widths", "0"], ["--parts", "nope"], ["--lr-factor", "2"],
                ["--activation", "swish"]):
        res = CliRunner().invoke(unc.uncertainty_command, [*bad, "--out", str(tmp_path / "x")])
        assert res.exit_code == 2 and bad[0] in res.output, res.output
