"""The convolutional depth study (reskernel.studies.conv_depth) on tiny sizes of real CIFAR-10:
the pooled images equal a patch loop written here, every stored accuracy and MSE equals a float64
kernel regression solved here from rk.kernel's arrays, a rerun recomputes nothing, the CLI's
--small path runs end to end, and bad options are refused with messages naming them."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import reskernel as rk
from reskernel.cli import main
from reskernel.data import ten_class, two_class
from reskernel.studies import conv_depth
from reskernel.studies.conv_depth import _run

KW = dict(n_train=20, n_test=20, image_size=4, depth=3, archs="ffnet,resnet:1", readouts="dense,gap",
          progress=False)


def _pooled(x, s):
    """Patch means by explicit loops over the s x s patches, each image back on its norm."""
    img = x.reshape(len(x), 32, 32, 3)
    p = 32 // s
    out = np.zeros((len(x), s, s, 3))
    for i in range(s):
        for j in range(s):
            out[:, i, j] = img[:, i * p:(i + 1) * p, j * p:(j + 1) * p].mean(axis=(1, 2))
    return out / np.linalg.norm(out.reshape(len(x), -1), axis=1)[:, None, None, None]


def test_pool_equals_a_patch_loop():
    ds = two_class("cifar2", n_train=6, n_test=2, balanced=True, seed=0)
    np.testing.assert_allclose(conv_depth.pool(ds.x_train, 4), _pooled(ds.x_train, 4), rtol=1e-12, atol=1e-15)
    tc = ten_class("cifar10", 10, 0, 10)
    got = conv_depth.pool(tc.x_train, 8)
    # standardized inputs keep their convention: |x|^2 = d of the pooled image
    np.testing.assert_allclose(got, _pooled(tc.x_train, 8) * np.sqrt(8 * 8 * 3), rtol=1e-12)
    assert abs(got.reshape(10, -1).mean(axis=1)).max() < 1e-12


def test_accuracies_equal_a_float64_regression_written_here_and_a_rerun_recomputes_nothing(tmp_path, monkeypatch):
    # one test, so that pytest -n 2 computes the study once
    res = conv_depth.study("cifar2", out=tmp_path, **KW)
    ds = two_class("cifar2", n_train=20, n_test=20, balanced=True, seed=0)
    tr, te = _pooled(ds.x_train, 4), _pooled(ds.x_test, 4)
    labels = (ds.y_test < 0).astype(int)
    y, y_test = (np.stack([v, -v], axis=1) for v in (ds.y_train, ds.y_test))
    rows = {(r["arch"], r["readout"], r["kernel"], r["depth"]): r for r in res["rows"]}
    assert len(rows) == 2 * 2 * 2 * 3 and {r["n_train"] for r in res["rows"]} == {20}
    archs = {("ffnet", "dense"): rk.FeedForward(3), ("resnet:1", "dense"): rk.ResNet(3, gamma=1.0),
             ("ffnet", "gap"): rk.ConvNet(3, filter_size=3, readout="gap"),
             ("resnet:1", "gap"): rk.ConvResNet(3, gamma=1.0, filter_size=3, readout="gap")}
    for (arch, readout), net in archs.items():
        a, b = (tr, te) if readout != "dense" else (tr.reshape(20, -1), te.reshape(20, -1))
        k_tr = rk.kernel(net, a.astype(np.float32), all_depths=True)
        k_te = rk.kernel(net, b.astype(np.float32), a.astype(np.float32), all_depths=True)
        for kern in ("nngp", "ntk"):
            for depth in (1, 2, 3):
                k = np.asarray(getattr(k_tr, kern)[depth - 1], np.float64)
                ridge = 1e-6 * np.trace(k) / len(k)
                mean = np.asarray(getattr(k_te, kern)[depth - 1], np.float64) @ np.linalg.solve(
                    k + ridge * np.eye(len(k)), y)
                row = rows[(arch, readout, kern, depth)]
                assert row["status"] == "ok" and row["jitter"] == 0.0
                assert row["test_accuracy"] == np.mean(np.argmax(mean, 1) == labels), (arch, readout, kern, depth)
                assert row["test_mse"] == pytest.approx(np.mean((mean - y_test) ** 2), rel=1e-4)
    # a pooled kernel is not the dense one: the study really ran both
    assert rows[("ffnet", "gap", "ntk", 3)]["test_mse"] != rows[("ffnet", "dense", "ntk", 3)]["test_mse"]

    out = tmp_path
    monkeypatch.setattr(_run, "unit_kernels", lambda *a, **k: pytest.fail("recomputed"))
    again = conv_depth.study("cifar2", out=out, **KW)
    assert again["computed"] == [] and len(again["resumed"]) == 4
    assert sorted(map(str, again["rows"])) == sorted(map(str, res["rows"]))
    stored = json.loads((out / "conv_depth_cifar2.json").read_text())
    assert len(stored["rows"]) == 24
    assert all(r["unit_wall_s"] >= r["kernel_s"] >= 0 and r["unit_wall_s"] > 0 for r in stored["rows"])


def test_cli_small_end_to_end(tmp_path):
    out = tmp_path / "cd"
    r = CliRunner().invoke(main, ["convdepths", "--small", "--datasets", "cifar10", "--archs", "resnet:0.5",
                                  "--readouts", "flatten", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| resnet:0.5 | flatten | NTK |" in r.output and (out / "conv_depth.png").stat().st_size > 1000
    rows = json.loads((out / "conv_depth_cifar10.json").read_text())["rows"]
    # --small: 20 training and 20 test images (two of each class), 4 x 4 images, depths 1..3
    assert {(x["n_train"], x["n_test"], x["image_size"], x["max_depth"]) for x in rows} == {(20, 20, 4, 3)}
    assert sorted((x["kernel"], x["depth"]) for x in rows) == [(k, d) for k in ("nngp", "ntk") for d in (1, 2, 3)]
    assert all(0.0 <= x["test_accuracy"] <= 1.0 for x in rows)


@pytest.mark.parametrize("args, words", [
    (["--readouts", "dense,pool"], "readouts must be a comma list of dense, flatten, gap"),
    (["--datasets", "mnist"], "datasets must be a comma list of cifar2, cifar10"),
    (["--image-size", "5"], "'5' is not one of"),
    (["--archs", "cnn"], "arch must be 'ffnet'"),
    (["--depth", "0"], "0 is not in the range x>=1"),
    (["--noise", "nan"], "must be a finite number"),
])
def test_bad_options_are_usage_errors(tmp_path, args, words):
    r = CliRunner().invoke(main, ["convdepths", "--out", str(tmp_path / "x"), *args])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not (tmp_path / "x" / "conv_depth_cifar2.json").exists()


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="image_size must be an int dividing 32"):
        conv_depth.pool(np.zeros((1, 3072)), 5)
    with pytest.raises(ValueError, match="noise must be a finite real"):
        conv_depth.study("cifar2", noise=-1.0, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        conv_depth.study("cifar2", depth=0, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="readouts must be"):
        conv_depth.arch_of("ffnet", "pool", 3)
    # the loaders' own checks: an odd balanced cifar2 size, a cifar10 size that is no multiple of 10
    r = CliRunner().invoke(main, ["convdepths", "--small", "--n-train", "15", "--out", str(tmp_path / "y")])
    assert r.exit_code == 1 and "n_train" in r.output, r.output
