"""Depth study on the shared real data: reference accuracies, resuming, bad input, CLI, finite width."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import reskernel as rk
from reskernel.studies.depth_study import _family_kernels, _pairs, _unpack, finite_width_check, parse_depths, \
    regress_command, study
from reskernel.precision import enable_x64
from tqdm import tqdm
from conftest import assert_close


def test_parse_depths():
    d = parse_depths("1:1000")
    assert d[0] == 1 and d[-1] == 1000 and 25 <= len(d) <= 30 and d == sorted(set(d))
    assert np.all(np.diff(np.log(d)) > 0)
    assert parse_depths("1,10,100") == [1, 10, 100]
    assert parse_depths("5:5") == [5]
    assert parse_depths("1:100:3") == [1, 10, 100]
    for bad in ("", "0", "1:0", "a:b", "1,,x", "-3", "1:10:0", "1.5"):
        with pytest.raises(ValueError):
            parse_depths(bad)


@pytest.mark.parametrize("arch, gamma", [("ffnet", None), ("resnet", 0.5)])
def test_study_kernels_equal_per_depth_kernel(arch, gamma):
    # The study's fast path (pairs only, depths in chunks, ResNet a^2 carried as arrays) against
    # rk.kernel of each depth's own network; chunk=2 crosses chunk boundaries.
    rng = np.random.default_rng(4)
    x_tr, x_te = rng.normal(size=(7, 5)), 3.0 * rng.normal(size=(4, 5))
    depths = [1, 9, 40]
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        with enable_x64(dtype == np.float64):
            rho, norms = _pairs(x_tr, x_te, dtype)
            ks = _family_kernels(arch, gamma, rho, depths, "hidden", 2, tqdm(disable=True))
            x_all = jnp.asarray(np.concatenate([x_tr, x_te]), dtype)
            if arch == "ffnet":       # FFNet depth l is the l-th layer of the deepest net
                every = rk.kernel(rk.FeedForward(depths[-1]), x_all, x_all[:7], all_depths=True)
                want = [rk.Kernel(every.nngp[d - 1], every.ntk[d - 1]) for d in depths]
            else:
                want = [rk.kernel(rk.ResNet(d, gamma=gamma), x_all, x_all[:7]) for d in depths]
            for j in range(len(depths)):
                for name in ("nngp", "ntk"):
                    k_tr, k_te = _unpack(ks[name][j:j + 1], norms, 7, 4)
                    ref = np.asarray(getattr(want[j], name), np.float64)   # atol: depth-1 NTK crosses zero
                    assert_close(np.concatenate([k_tr[0], k_te[0]]), ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_cifar2_reference_accuracies_and_resume(tmp_path):
    # README reference (float64 NTK regression, full CIFAR2 airplane vs automobile, 1041/198,
    # ridge 1e-6 x mean diagonal): FFNet 0.879 (L=1), 0.793 (L=100). +-0.006 ~ one test image.
    res = study("cifar2", archs=["ffnet"], depths=[1, 100], kernels=["ntk"], precisions=["float64"],
                out=tmp_path, progress=False)
    acc = {r["depth"]: r["accuracy"] for r in res["rows"]}
    assert res["rows"][0]["n_train"] == 1041 and res["rows"][0]["n_test"] == 198
    assert acc[1] == pytest.approx(0.879, abs=0.006)
    assert acc[100] == pytest.approx(0.793, abs=0.006)
    assert res["png"].exists() and res["csv"].read_text().count("\n") == 3
    again = study("cifar2", archs=["ffnet"], depths=[1, 100], kernels=["ntk"], precisions=["float64"],
                  out=tmp_path, progress=False)
    assert again["computed"] == [] and [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in res["rows"]]
    stored = json.loads(res["json"].read_text())
    assert stored["meta"]["data"]["classes"] == [0, 1] and len(stored["rows"]) == 2


def test_small_study_resnet_and_float32(tmp_path):
    res = study("mnist2", archs=["ffnet", "resnet"], gammas=[1.0], depths=[1, 4], ffnet_depths=[1, 2, 50],
                kernels=["ntk", "nngp"], precisions=["float64", "float32"], n_train=60, n_test=80,
                out=tmp_path, progress=False)
    assert len(res["rows"]) == (3 + 2) * 2 * 2
    for r in res["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and np.isfinite(r["mse"])
        assert r["ridge_used"] == r["ridge"] or r["precision"] == "float32"   # float64 kernels need no jitter
    f64 = {(r["arch"], r["kernel"], r["depth"]): r["accuracy"] for r in res["rows"] if r["precision"] == "float64"}
    f32 = {(r["arch"], r["kernel"], r["depth"]): r["accuracy"] for r in res["rows"] if r["precision"] == "float32"}
    # at depth 1 correlations are far from 1: float32 kernels classify like float64 (up to a test image)
    for key in [("ffnet", "ntk", 1), ("resnet", "ntk", 1), ("resnet", "ntk", 4)]:
        assert abs(f64[key] - f32[key]) <= 1 / 80 + 1e-12


@pytest.mark.parametrize("kwargs, match", [
    (dict(dataset="mnist3"), "dataset"),
    (dict(classes=(0, 12)), "class"),
    (dict(depths=[]), "depths"),
    (dict(depths=[0, 2]), "depths"),
    (dict(archs=["convnet"]), "archs"),
    (dict(n_train=100000), "n_train"),
    (dict(n_train=1), "at least 2"),
    (dict(archs=["resnet"], gammas=[-1.0]), "gammas"),
    (dict(kernels=["rbf"]), "kernels"),
    (dict(precisions=["float16"]), "precisions"),
])
def test_study_bad_input_writes_nothing(tmp_path, kwargs, match):
    args = dict(dataset="cifar2", archs=["ffnet"], depths=[1], kernels=["ntk"], precisions=["float64"],
                n_train=10, n_test=10, out=tmp_path / "out", progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        study(args.pop("dataset"), **args)
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(regress_command, ["--dataset", "mnist2", "--arch", "ffnet,resnet", "--gamma", "1",
                                       "--depths", "1,3", "--kernel", "ntk", "--precision", "float64",
                                       "--n-train", "40", "--n-test", "40", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| FFNet | ntk | float64 |" in r.output
    assert {p.name for p in out.iterdir()} == {"regress_mnist2.json", "regress_mnist2.csv", "regress_mnist2.png"}
    for args in (["--depths", "1:x"], ["--depths", "0"], ["--arch", "mlp"], ["--kernel", "rbf"],
                 ["--classes", "3,3"], ["--gamma", "-1"]):
        bad = runner.invoke(regress_command, ["--n-train", "10", "--n-test", "10", "--out", str(tmp_path / "bad")]
                            + args)
        assert bad.exit_code != 0 and not (tmp_path / "bad").exists(), (args, bad.output)


def test_finite_width_gap_shrinks():
    # Centred networks trained by gradient descent approach the NTK predictions with a gap
    # ~ 1/sqrt(width): 16x the width should cut it ~4x; require at least 2x.
    res = finite_width_check((64, 1024), n_train=20, n_test=30, steps=30)
    gaps = [r["gap"] for r in res["rows"]]
    assert gaps[1] < 0.5 * gaps[0], gaps
    assert gaps[1] < 0.2
