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


def _regression(k_tr, k_te, y):
    """Posterior mean of a float64 kernel regression with the study's ridge, solved here."""
    k = np.asarray(k_tr, np.float64)
    ridge = 1e-6 * np.trace(k) / len(k)
    return np.asarray(k_te, np.float64) @ np.linalg.solve(k + ridge * np.eye(len(k)), y)


def _cifar2_small():
    ds = two_class("cifar2", n_train=20, n_test=20, balanced=True, seed=0)
    y, y_test = (np.stack([v, -v], axis=1) for v in (ds.y_train, ds.y_test))
    return _pooled(ds.x_train, 4), _pooled(ds.x_test, 4), y, y_test, (ds.y_test < 0).astype(int)


def _kernels(net, readout, tr, te, all_depths):
    a, b = (tr, te) if readout != "dense" else (tr.reshape(20, -1), te.reshape(20, -1))
    return (rk.kernel(net, a.astype(np.float32), all_depths=all_depths),
            rk.kernel(net, b.astype(np.float32), a.astype(np.float32), all_depths=all_depths))


def test_accuracies_equal_a_float64_regression_written_here_and_a_rerun_recomputes_nothing(tmp_path, monkeypatch):
    # one test, so that pytest -n 2 computes the study once
    res = conv_depth.study("cifar2", out=tmp_path, **KW)
    tr, te, y, y_test, labels = _cifar2_small()
    rows = {(r["arch"], r["readout"], r["kernel"], r["depth"]): r for r in res["rows"]}
    assert len(rows) == len(res["rows"]) == 2 * 2 * 2 * 3 and {r["n_train"] for r in res["rows"]} == {20}
    # the FFNet's depths from one all-depths pass; each ResNet depth its own net, alpha = depth^-gamma
    nets = {("ffnet", "dense"): lambda d: rk.FeedForward(d), ("resnet:1", "dense"): lambda d: rk.ResNet(d, gamma=1.0),
            ("ffnet", "gap"): lambda d: rk.ConvNet(d, filter_size=3, readout="gap"),
            ("resnet:1", "gap"): lambda d: rk.ConvResNet(d, gamma=1.0, filter_size=3, readout="gap")}
    for (arch, readout), net in nets.items():
        if arch == "ffnet":
            k_tr, k_te = _kernels(net(3), readout, tr, te, True)
        for kern in ("nngp", "ntk"):
            for depth in (1, 2, 3):
                if arch == "ffnet":
                    a, b = getattr(k_tr, kern)[depth - 1], getattr(k_te, kern)[depth - 1]
                else:
                    a, b = (getattr(k, kern) for k in _kernels(net(depth), readout, tr, te, False))
                mean = _regression(a, b, y)
                row = rows[(arch, readout, kern, depth)]
                assert row["status"] == "ok" and row["jitter"] == 0.0
                assert row["max_depth"] == (3 if arch == "ffnet" else depth)
                assert row["test_accuracy"] == np.mean(np.argmax(mean, 1) == labels), (arch, readout, kern, depth)
                assert row["test_mse"] == pytest.approx(np.mean((mean - y_test) ** 2), rel=1e-4)
    # a pooled kernel is not the dense one: the study really ran both
    assert rows[("ffnet", "gap", "ntk", 3)]["test_mse"] != rows[("ffnet", "dense", "ntk", 3)]["test_mse"]

    out = tmp_path
    monkeypatch.setattr(_run, "unit_kernels", lambda *a, **k: pytest.fail("recomputed"))
    again = conv_depth.study("cifar2", out=out, **KW)
    assert again["computed"] == [] and len(again["resumed"]) == 2 + 2 * 3
    assert sorted(map(str, again["rows"])) == sorted(map(str, res["rows"]))
    stored = json.loads((out / "conv_depth_cifar2.json").read_text())
    assert len(stored["rows"]) == 24
    assert all(r["unit_wall_s"] >= r["kernel_s"] >= 0 and r["unit_wall_s"] > 0 for r in stored["rows"])


def test_truncated_resnets_are_the_first_blocks_of_the_deepest_net(tmp_path):
    kw = dict(KW, archs="resnet:1", readouts="gap")
    own = conv_depth.study("cifar2", out=tmp_path, resnet_depths="2,3", **kw)
    cut = conv_depth.study("cifar2", out=tmp_path, resnet_depths="truncated", **kw)
    tr, te, y, y_test, labels = _cifar2_small()
    k_tr, k_te = _kernels(rk.ConvResNet(3, gamma=1.0, filter_size=3, readout="gap"), "gap", tr, te, True)
    assert sorted((r["kernel"], r["depth"], r["max_depth"]) for r in own["rows"]) == \
        [(k, d, d) for k in ("nngp", "ntk") for d in (2, 3)]
    assert sorted((r["kernel"], r["depth"], r["max_depth"]) for r in cut["rows"]) == \
        [(k, d, 3) for k in ("nngp", "ntk") for d in (1, 2, 3)]
    mine, theirs = ({(r["kernel"], r["depth"]): r["test_mse"] for r in got["rows"]} for got in (own, cut))
    for kern in ("nngp", "ntk"):
        for depth in (1, 2, 3):
            mean = _regression(getattr(k_tr, kern)[depth - 1], getattr(k_te, kern)[depth - 1], y)
            assert theirs[(kern, depth)] == pytest.approx(np.mean((mean - y_test) ** 2), rel=1e-4)
        # the depth-3 net is the same either way; at depth 2, alpha = 1/2 is not the truncated 1/3
        # (at depth 1 the NTK of the one trained block would differ by a factor alone)
        assert mine[(kern, 3)] == pytest.approx(theirs[(kern, 3)], rel=1e-4)
        assert abs(mine[(kern, 2)] - theirs[(kern, 2)]) > 1e-3 * theirs[(kern, 2)]


def test_cli_small_end_to_end(tmp_path):
    out = tmp_path / "cd"
    r = CliRunner().invoke(main, ["convdepths", "--small", "--datasets", "cifar10", "--archs", "resnet:0.5",
                                  "--readouts", "flatten", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| resnet:0.5 | flatten | NTK |" in r.output and (out / "conv_depth.png").stat().st_size > 1000
    rows = json.loads((out / "conv_depth_cifar10.json").read_text())["rows"]
    # --small: 20 training and 20 test images (two of each class), 4 x 4 images, ResNets of depth 1, 2, 3
    assert {(x["n_train"], x["n_test"], x["image_size"]) for x in rows} == {(20, 20, 4)}
    assert sorted((x["kernel"], x["depth"], x["max_depth"]) for x in rows) == \
        [(k, d, d) for k in ("nngp", "ntk") for d in (1, 2, 3)]
    assert all(0.0 <= x["test_accuracy"] <= 1.0 for x in rows)


@pytest.mark.parametrize("args, words", [
    (["--readouts", "dense,pool"], "readouts must be a comma list of dense, flatten, gap"),
    (["--datasets", "mnist"], "datasets must be a comma list of cifar2, cifar10"),
    (["--image-size", "5"], "'5' is not one of"),
    (["--archs", "cnn"], "arch must be 'ffnet'"),
    (["--depth", "0"], "0 is not in the range x>=1"),
    (["--noise", "nan"], "must be a finite number"),
    (["--depth", "10", "--resnet-depths", "5,20"], "resnet_depths must be 'truncated' or depths in 1..10 (depth)"),
    (["--resnet-depths", "all"], "resnet_depths must be 'truncated'"),
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
