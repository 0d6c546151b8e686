"""Convergence sweeps: the lean simulator against rk.empirical_kernel with the same weights,
an end-to-end sweep whose width slope must be near -1/2, atomic resume, and input errors."""
import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import reskernel as rk
from reskernel import sweeps
from reskernel.nets._lean import bytes_per_seed


@pytest.mark.parametrize("arch,trained", [(rk.FeedForward(3), "hidden"), (rk.ResNet(3, gamma=0.75), "all")])
def test_lean_simulator_equals_empirical_kernel(x64, arch, trained):
    x = np.random.default_rng(1).normal(size=(5, 4))
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    nngp, ntk = sweeps.lean_kernels(keys, jnp.asarray(x), arch=arch, width=24, trained=trained)
    net = rk.network(arch, 24)
    for i in range(2):
        params = sweeps.lean_params(arch, 24, keys[i], 4)
        ref = rk.empirical_kernel(net, params, x, trained=trained)
        np.testing.assert_allclose(np.asarray(nngp[i]), np.asarray(ref.nngp), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(np.asarray(ntk[i]), np.asarray(ref.ntk), rtol=1e-12, atol=1e-13)
    assert not np.allclose(ntk[0], ntk[1])  # different keys, different networks


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    res = sweeps.sweep(out, archs=["ffnet", "resnet:1"], depths=[2, 4], widths=[32, 128, 512], seeds=8,
                       n_inputs=12, d_in=8, progress=False, log=lambda *_: None)
    return out, res


def test_sweep_error_decays_like_inverse_sqrt_width(small_sweep):
    out, res = small_sweep
    assert (out / "sweep.png").stat().st_size > 0 and (out / "sweep_joint.png").stat().st_size > 0
    stored = json.loads((out / "sweep.json").read_text())
    assert len(stored["cells"]) == 2 * 2 * 3
    assert all(len(c["ntk"]["frob"]) == 8 for c in stored["cells"].values())
    slopes = [s for s in res["summary"]["slopes"] if s["metric"] == "frob"]
    assert len(slopes) == 2 * 2 * 2
    for s in slopes:
        # Each empirical kernel is an average over m neurons: fluctuations ~ m^-1/2, so
        # log error = c - log(m)/2 + noise. The OLS fit over 3 widths x 8 seeds has a
        # standard error `stderr` from the residual scatter (~0.04 here); 4 stderr bounds
        # a Gaussian fluctuation except with probability 6e-5, and 0.08 allows for the
        # O(1/m) bias terms at width 32. A wrong scale (error floor) gives slope ~ 0.
        assert abs(s["slope"] + 0.5) < 4 * s["stderr"] + 0.08, s
        assert s["stderr"] < 0.1
    rows = {(r["arch"], r["depth"], r["width"], r["kernel"]): r for r in res["summary"]["rows"]}
    for arch in ("ffnet", "resnet:1"):
        r32, r512 = rows[(arch, 4, 32, "ntk")], rows[(arch, 4, 512, "ntk")]
        assert r32["frob_p5"] <= r32["frob_p50"] <= r32["frob_p95"]
        assert 2.5 < r32["frob_p50"] / r512["frob_p50"] < 6.5  # sqrt(16) = 4
        arch_d = rk.FeedForward(4) if arch == "ffnet" else rk.ResNet(4, gamma=1.0)
        assert r32["theory_diag_std"] == pytest.approx(math.sqrt(sweeps.diagonal_relative_variance(arch_d, 32)))


def test_sweep_resumes_and_skips(small_sweep, tmp_path):
    out, res = small_sweep
    before = (out / "sweep.json").read_text()
    messages = []
    again = sweeps.sweep(out, archs=["ffnet", "resnet:1"], depths=[2, 4], widths=[32, 128, 512], seeds=8,
                         n_inputs=12, d_in=8, progress=False, plot=False, log=messages.append)
    assert any("96 networks already" in m and "0 to compute" in m for m in messages)
    assert json.loads(before)["cells"] == json.loads((out / "sweep.json").read_text())["cells"]
    assert again["summary"]["slopes"] == res["summary"]["slopes"]
    # No temporary files left behind by the atomic writes.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # A different input set must not be mixed into the same file.
    with pytest.raises(ValueError, match="inputs_sha256"):
        sweeps.sweep(out, archs=["ffnet"], depths=[2], widths=[32], seeds=1, n_inputs=12, d_in=8, seed=1,
                     progress=False, plot=False)


def test_sweep_partial_cell_then_more_seeds(tmp_path):
    kw = dict(archs=["resnet:0.5"], depths=[3], widths=[16], n_inputs=4, d_in=3, progress=False, plot=False,
              log=lambda *_: None)
    first = sweeps.sweep(tmp_path, seeds=2, chunk=2, **kw)
    more = sweeps.sweep(tmp_path, seeds=3, chunk=2, **kw)
    cell = more["cells"]["resnet:0.5|3|16"]
    assert cell["seeds"] == [0, 1, 2]
    assert cell["ntk"]["frob"][:2] == first["cells"]["resnet:0.5|3|16"]["ntk"]["frob"]


def test_chunk_from_memory_budget():
    arch = rk.ResNet(100, gamma=1.0)
    per = bytes_per_seed(arch, 8192, 64, 4)
    # 2 x 0.2 GiB stored activations + W, V and their uint32 hash buffers (6 m^2 floats, 1.5 GiB)
    assert 1.8 * 2**30 < per < 2.2 * 2**30
    assert bytes_per_seed(rk.FeedForward(100), 8192, 64, 4) < 0.6 * per  # one matrix per layer
    assert sweeps.seed_chunk(arch, 8192, 64, 4, 100, 24 * 2**30) == 24 * 2**30 // per
    assert sweeps.seed_chunk(arch, 8192, 64, 4, 100, 1) == 1


def test_too_many_seeds_for_memory_reports_chunk(tmp_path):
    messages = []
    arch = rk.ResNet(3, gamma=1.0)
    budget = 2 * bytes_per_seed(arch, 16, 4, 4) + 1  # two seeds fit
    res = sweeps.sweep(tmp_path, archs=["resnet:1"], depths=[3], widths=[16], seeds=5, n_inputs=4, d_in=3,
                       memory_bytes=budget, progress=False, plot=False, log=messages.append)
    assert any("5 seeds do not fit" in m and "chunks of 2 seeds" in m for m in messages), messages
    cell = res["cells"]["resnet:1|3|16"]
    assert cell["chunk"] == 2 and cell["seeds"] == [0, 1, 2, 3, 4] and len(set(cell["ntk"]["frob"])) == 5
    messages.clear()
    sweeps.sweep(tmp_path / "b", archs=["resnet:1"], depths=[3], widths=[16], seeds=3, n_inputs=4, d_in=3,
                 chunk=3, memory_bytes=budget, progress=False, plot=False, log=messages.append)
    assert any("chunk 3 may exceed" in m and "2 would fit" in m for m in messages), messages


def test_hash_normal_is_standard_normal_and_independent():
    from scipy import stats

    key = jax.random.PRNGKey(7)
    z = np.asarray(sweeps.hash_normal(key, (1024, 1024)), np.float64).ravel()
    n = z.size
    # Moments against N(0, 1) with their sampling standard deviations (var 2, E z^4 sd sqrt(96)).
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z ** 4).mean() - 3) < 5 * math.sqrt(96 / n)
    assert abs(np.mean(np.maximum(z, 0) ** 4) - 1.5) < 5 * math.sqrt(48 / n)  # drives Var |x_L|^2 (1 + 5/m)
    assert stats.kstest(z[:200_000], "norm").pvalue > 1e-4
    assert np.all(np.isfinite(z)) and np.abs(z).max() < 5.4
    # Neighbouring elements, rows, and the streams of neighbouring layer keys are uncorrelated.
    z2 = np.asarray(sweeps.hash_normal(jax.random.fold_in(key, 1), (1024, 1024)), np.float64).ravel()
    for a, b in ((z[:-1], z[1:]), (z[:-1024], z[1024:]), (z, z2)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    # Same key, same numbers (weights are regenerated in the backward pass); typed keys accepted.
    np.testing.assert_array_equal(np.asarray(sweeps.hash_normal(key, (1024, 1024))).ravel(), z.astype(np.float32))
    assert sweeps.hash_normal(jax.random.key(7), (3,)).shape == (3,)
    with pytest.raises(ValueError, match="2\\^32"):
        sweeps.hash_normal(key, (2 ** 16, 2 ** 16))


@pytest.mark.parametrize("arch,width", [(rk.FeedForward(6), 32), (rk.ResNet(6, gamma=0.5), 16)])
def test_diagonal_variance_theory_vs_simulated_networks(arch, width):
    """Hanin-Rolnick factor moments (exact) against 4000 lean-simulated networks, MC error bars."""
    x = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]], np.float32)
    keys = jax.random.split(jax.random.PRNGKey(11), 4000)
    nngp, _ = sweeps.lean_kernels(keys, jnp.asarray(x), arch=arch, width=width)
    scale = 1.0 if isinstance(arch, rk.FeedForward) else float(np.prod(1 + np.asarray(arch.branch_scales) ** 2))
    y = np.asarray(nngp, np.float64)[:, 0, 0] / scale  # E[y] = 1 exactly
    assert abs(y.mean() - 1) < 4 * y.std() / math.sqrt(len(y))
    sq = (y - 1) ** 2
    theory = sweeps.diagonal_relative_variance(arch, width)
    assert abs(sq.mean() - theory) < 4 * sq.std() / math.sqrt(len(sq)), (sq.mean(), theory)


def test_theory_width_joint_limit_scalings():
    eps = 0.1
    ff = [sweeps.theory_width(rk.FeedForward(L), eps) for L in (100, 400)]
    assert ff[1] / ff[0] == pytest.approx(4.0, rel=0.01)  # width ~ depth
    assert ff[0] == pytest.approx(5 * 100 / math.log1p(eps ** 2), rel=0.01)  # exp(5L/m) - 1 = eps^2
    # ResNet: (2 + 4 sum a^2) / eps^2: bounded, -> 200 (gamma > 1/2), -> 600 (gamma = 1/2).
    r1 = [sweeps.theory_width(rk.ResNet(L, gamma=1.0), eps) for L in (10, 100, 1000)]
    assert r1[0] > r1[1] > r1[2] == pytest.approx(200, rel=0.01)
    assert sweeps.theory_width(rk.ResNet(1000, gamma=0.5), eps) == pytest.approx(600, rel=0.01)
    v = sweeps.diagonal_relative_variance(rk.FeedForward(50), 1e5)
    assert v == pytest.approx((1 + 5 / 1e5) ** 50 - 1, rel=1e-9) and v == pytest.approx(5 * 50 / 1e5, rel=2e-3)
    with pytest.raises(ValueError, match="target"):
        sweeps.theory_width(rk.FeedForward(3), 0.0)
    with pytest.raises(ValueError, match="width"):
        sweeps.diagonal_relative_variance(rk.FeedForward(3), -1)
    with pytest.raises(TypeError, match="arch"):
        sweeps.diagonal_relative_variance("ffnet", 10)


def test_joint_limit_table(small_sweep):
    _, res = small_sweep
    joint = sweeps.joint_limit(res, 0.1)
    assert {(r["arch"], r["depth"], r["kernel"]) for r in joint["rows"]} == {
        (a, d, k) for a in ("ffnet", "resnet:1") for d in (2, 4) for k in ("nngp", "ntk")}
    for r in joint["rows"]:
        assert r["theory_width"] == pytest.approx(sweeps.theory_width(
            rk.FeedForward(r["depth"]) if r["arch"] == "ffnet" else rk.ResNet(r["depth"], gamma=1.0), 0.1))
        assert 0 < r["width"] < math.inf
    ex = {(e["arch"], e["kernel"]): e for e in joint["exponents"]}
    assert ex[("ffnet", "ntk")]["theory"] == 1.0 and ex[("resnet:1", "ntk")]["theory"] == 0.0
    assert ex[("ffnet", "ntk")]["theory_fit"] == pytest.approx(1.0, abs=0.05)
    assert ex[("resnet:1", "ntk")]["theory_fit"] < 0
    assert res["summary"]["joint"] == sweeps.joint_limit(res, 0.05)["rows"]
    with pytest.raises(ValueError, match="target_error"):
        sweeps.joint_limit(res, -1.0)


def test_fit_slope_recovers_known_power():
    rng = np.random.default_rng(0)
    widths = [64, 256, 1024, 4096]
    errs = [3.0 * w ** -0.5 * np.exp(0.1 * rng.normal(size=200)) for w in widths]
    slope, se = sweeps.fit_slope(widths, errs)
    assert abs(slope + 0.5) < 4 * se and se == pytest.approx(0.1 / math.sqrt(800 * 1.25 * math.log(4) ** 2), rel=0.2)
    w, extrapolated = sweeps.width_for_error(widths, [3.0 * w ** -0.5 for w in widths], 3.0 / 32)
    assert w == pytest.approx(1024) and not extrapolated


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(widths=[]), ValueError, "widths"),
    (dict(widths=[0, 32]), ValueError, "widths"),
    (dict(depths=[]), ValueError, "depths"),
    (dict(seeds=0), ValueError, "seeds"),
    (dict(archs=["resnet:x"]), ValueError, "gamma"),
    (dict(archs=["mlp"]), ValueError, "arch"),
    (dict(archs=[rk.FeedForward(2, activation="tanh")]), ValueError, "default ReLU nets"),
    (dict(archs=[rk.ResNet(2, gamma=0.5, b_var=0.1)]), ValueError, "default ReLU nets"),
    (dict(archs=[]), ValueError, "archs"),
    (dict(x=np.ones((3, 4)), d_in=5), ValueError, "dimension"),
    (dict(x=np.ones(4)), ValueError, "rank 2"),
    (dict(depths=[2, 0]), ValueError, "depths"),
    (dict(x=np.zeros((3, 4))), ValueError, "zero-norm"),
    (dict(trained="some"), ValueError, "trained"),
    (dict(chunk=0), ValueError, "chunk"),
])
def test_sweep_bad_input(tmp_path, kwargs, err, match):
    base = dict(archs=["ffnet"], depths=[2], widths=[16], seeds=1, n_inputs=3, progress=False, plot=False)
    base.update(kwargs)
    with pytest.raises(err, match=match):
        sweeps.sweep(tmp_path, **base)
    assert not (tmp_path / "sweep.json").exists()


def test_sweep_command(tmp_path):
    runner = CliRunner()
    r = runner.invoke(sweeps.sweep_command, ["--out", str(tmp_path), "--archs", "ffnet", "--depths", "2",
                                             "--widths", "16,32", "--seeds", "2", "--n-inputs", "3", "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "slope" in r.output and (tmp_path / "sweep.json").exists()
    bad = runner.invoke(sweeps.sweep_command, ["--out", str(tmp_path), "--widths", "0,16"])
    assert bad.exit_code != 0 and "widths" in bad.output
    bad = runner.invoke(sweeps.sweep_command, ["--out", str(tmp_path / "b"), "--archs", "mlp", "--widths", "16"])
    assert bad.exit_code != 0 and "arch" in bad.output


# Two sweep commands over other widths run at once into one folder (real processes) keep both
# cells: test_store.py's test_concurrent_study_runs_keep_both_runs_rows, the one concurrent CLI
# run of the suite (the sweep is the study whose store path, update_document, the standard-library
# writers there do not exercise).


def test_runs_into_one_folder_merge_and_return_their_own_grid(tmp_path):
    # test_sweep_command's inputs (3 of dimension 16) and seeds: widths 16 and 32 compile once
    kw = dict(archs=["ffnet"], depths=[2], seeds=2, n_inputs=3, progress=False, plot=False, log=lambda *_: None)
    sweeps.sweep(tmp_path, widths=[16, 32], **kw)
    res = sweeps.sweep(tmp_path, widths=[32, 64], **kw)
    assert res["config"]["widths"] == [32, 64] and {r["width"] for r in res["summary"]["rows"]} == {32, 64}
    stored = json.loads((tmp_path / "sweep.json").read_text())
    assert stored["config"]["widths"] == [16, 32, 64] and len(stored["cells"]) == 3
    assert {r["width"] for r in stored["summary"]["rows"]} == {16, 32, 64}


def test_network_over_the_memory_budget_is_refused_before_starting(tmp_path):
    need = bytes_per_seed(rk.FeedForward(4), 512, 8, 4)
    with pytest.raises(ValueError, match=r"ffnet depth 4 width 512 needs [0-9.]+ GiB per network.*budget") as e:
        sweeps.sweep(tmp_path, archs=["ffnet"], depths=[2, 4], widths=[16, 512], seeds=1, n_inputs=8,
                     memory_bytes=need - 1, progress=False, plot=False)
    assert "width 16" not in str(e.value) and f"{need / 2**30:.3g} GiB" in str(e.value)
    assert not (tmp_path / "sweep.json").exists()


def test_sweep_command_says_the_memory_a_huge_width_needs(tmp_path):
    r = CliRunner().invoke(sweeps.sweep_command, ["--out", str(tmp_path), "--archs", "ffnet,resnet", "--depths", "4",
                                                  "--widths", "100000", "--seeds", "1"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    need = bytes_per_seed(rk.FeedForward(4), 100000, 64, 4) / 2**30
    assert f"ffnet depth 4 width 100000 needs {need:.3g} GiB per network" in r.output, r.output
    assert "wider than the simulator's 46340" in r.output and not (tmp_path / "sweep.json").exists()


@pytest.mark.parametrize("kwargs, match, wrong", [
    # Huge inputs: the inputs are to blame, not the depth growth of the ResNet.
    (dict(archs=["resnet:1"], dtype="float64", scale=1e160), "inputs of squared norm up to 10\\^320.*rescale",
     "grows like"),
    (dict(archs=["ffnet"], dtype="float32", scale=1e20), "beyond the range of float32.*rescale", "grows like"),
    (dict(archs=["resnet:0"], dtype="float32", scale=1.0, depths=[300]), "grows like.*gamma >= 1/2", "rescale"),
])
def test_kernels_beyond_the_dtype_range_blame_the_right_cause(tmp_path, kwargs, match, wrong):
    x = np.random.default_rng(0).normal(size=(4, 3))
    x = kwargs.pop("scale") * x / np.linalg.norm(x, axis=1, keepdims=True)
    args = dict(depths=[4], widths=[16], seeds=1, x=x, progress=False, plot=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as e:
        sweeps.sweep(tmp_path, **args)
    assert wrong not in str(e.value)
    assert not (tmp_path / "sweep.json").exists()


@pytest.mark.parametrize("text, match", [
    ('{"config": {"seed": 0', "not valid JSON"),
    ('{"config": [], "cells": {}}', "entry 'config' is an array, not an object"),
    ("null", "holds null"),
])
def test_damaged_sweep_file_is_named(tmp_path, text, match):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        sweeps.sweep(tmp_path, archs=["ffnet"], depths=[2], widths=[16], seeds=1, n_inputs=3, progress=False,
                     plot=False)
    assert str(tmp_path / "sweep.json") in str(e.value) and "move it away" in str(e.value)
    r = CliRunner().invoke(sweeps.sweep_command, ["--out", str(tmp_path), "--archs", "ffnet", "--depths", "2",
                                                  "--widths", "16", "--seeds", "1", "--n-inputs", "3", "--no-plot"])
    assert r.exit_code == 2 and "sweep.json" in r.output and "Traceback" not in r.output, r.output


def test_damaged_cell_is_named(tmp_path):
    kw = dict(archs=["ffnet"], depths=[2], widths=[16], seeds=2, n_inputs=3, progress=False, plot=False,
              log=lambda *_: None)
    sweeps.sweep(tmp_path, **kw)
    stored = json.loads((tmp_path / "sweep.json").read_text())
    stored["cells"]["ffnet|2|16"]["ntk"]["frob"].pop()
    (tmp_path / "sweep.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=re.escape("cell 'ffnet|2|16' is damaged")):
        sweeps.sweep(tmp_path, **kw)


def test_joint_plot_with_one_depth_draws_what_its_legend_shows(tmp_path, monkeypatch):
    import reskernel.plotting as plotting

    res = sweeps.sweep(tmp_path, archs=["ffnet", "resnet:1"], depths=[3], widths=[16, 64], seeds=3, n_inputs=4,
                       d_in=3, progress=False, plot=False, log=lambda *_: None)
    figs = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: figs.append(fig))
    sweeps.plot_joint(res, tmp_path / "joint.png")
    for ax in figs[0].axes:
        drawn = [(line.get_color(), line.get_linestyle(), line.get_marker(), len(line.get_xdata()))
                 for line in ax.lines]
        handles = ax.get_legend().legend_handles
        assert len(handles) in (4, 5)  # measured and theory per arch (and the extrapolated marker)
        for h in handles:
            color, style, marker = h.get_color(), h.get_linestyle(), h.get_marker()
            if style != "None":  # a line in the legend: a line of >= 2 points in the panel
                assert any(c == color and s == style and n >= 2 for c, s, _, n in drawn), (h.get_label(), drawn)
            # a marker in the legend: drawn (the black cross stands for crosses of any colour)
            assert any(m == marker and n >= 1 and color in ("k", c) for c, _, m, n in drawn), (h.get_label(), drawn)
        assert all(s == "None" for _, s, _, _ in drawn)  # one depth: nothing to join
