"""The ten-class depth study (reskernel.studies.depth_ten) on tiny sizes of real MNIST: the
kernel accuracy at depth 1 equals a direct float64 computation written here, a rerun recomputes
nothing, the trained-net path reduces its training loss and equals the existing trainer run by
hand, and bad options are refused. (Trained nets against the NTK ensemble: tests/test_uncertainty.py.)"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from reskernel.cli import main
from reskernel.data import ten_class
from reskernel.studies import depth_ten
from reskernel.studies.depth_ten import _run
from reskernel.studies.selection import family
from reskernel.studies.selection._grid import Split
from reskernel.studies.uncertainty._trainer import MultiOutput, train_networks

KW = dict(n_train=40, n_test=40, archs="ffnet,resnet:1", w_var=2.0, b_var=0.1, depths="1,2", ffnet_depths="1,2,20",
          progress=False)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    out = tmp_path_factory.mktemp("depth_ten")
    return out, depth_ten.kernel_study("mnist", out=out, **KW)


def test_depth_one_nngp_accuracy_equals_a_direct_computation(kernels):
    _, res = kernels
    ds = ten_class("mnist", 40, 0, 40)
    w, b, d = 2.0, 0.1, ds.dim
    # Lee et al.'s ReLU NNGP at depth 1, float64: K^0 = w x.x'/d + b, K^1 = b + w E[relu(u) relu(v)]
    def nngp(x1, x2):
        k12 = w * x1 @ x2.T / d + b
        q1, q2 = w * np.sum(x1 ** 2, 1) / d + b, w * np.sum(x2 ** 2, 1) / d + b
        norm = np.sqrt(np.outer(q1, q2))
        t = np.arccos(np.clip(k12 / norm, -1, 1))
        return b + w / (2 * np.pi) * norm * (np.sin(t) + (np.pi - t) * np.cos(t))
    k = nngp(ds.x_train, ds.x_train)
    mean = nngp(ds.x_test, ds.x_train) @ np.linalg.solve(k + 1e-10 * np.trace(k) / len(k) * np.eye(len(k)),
                                                        ds.y_train)
    row = next(r for r in res["rows"] if (r["arch"], r["kernel"], r["depth"]) == ("ffnet", "nngp", 1))
    assert row["test_accuracy"] == pytest.approx(np.mean(np.argmax(mean, 1) == ds.labels_test), abs=1e-12)
    assert row["test_mse"] == pytest.approx(np.mean((mean - ds.y_test) ** 2), rel=1e-8)
    # every (arch, kernel, depth) has a row, the FFNet's to its own depths
    got = {(r["arch"], r["kernel"], r["depth"]) for r in res["rows"]}
    assert got == {(a, k, L) for k in ("nngp", "ntk") for a, Ls in (("ffnet", (1, 2, 20)), ("resnet:1", (1, 2)))
                   for L in Ls}


def test_a_rerun_recomputes_nothing(kernels, monkeypatch):
    out, res = kernels
    monkeypatch.setattr(_run, "evaluate", lambda *a, **k: pytest.fail("recomputed"))
    again = depth_ten.kernel_study("mnist", out=out, **KW)
    assert again["computed"] == [] and again["resumed"] == ["ffnet", "resnet:1"]
    assert sorted(map(str, again["rows"])) == sorted(map(str, res["rows"]))


def test_trained_net_reduces_its_loss_and_equals_the_trainer():
    ds = ten_class("mnist", 20, 0, 30)
    train, test = Split(ds.x_train, ds.y_train, ds.labels_train), Split(ds.x_test, ds.y_test, ds.labels_test)
    arch = family("ffnet", "relu", 2.0, 0.0, ds.dim, 2)
    got = _run.net_unit(arch, 64, train, test, steps=(0, 5, 20), seed=3)
    loss = np.asarray(got["net_train_loss"])
    assert loss[-1] < 0.5 * loss[0] and np.all(np.diff(loss) < 0)
    # the same network by hand: the trainer on targets y + f_0(x_train), read as f_t - f_0
    key = jax.random.fold_in(jax.random.PRNGKey(0), 3)
    model = MultiOutput(arch, 64, 10)
    f0 = np.asarray(model.apply(model.init(key, ds.dim), jnp.asarray(ds.x_train, jnp.float32)))
    y = ds.y_train.astype(np.float32) + f0     # in float32, as the trainer adds them
    ref = train_networks(arch, 64, ds.x_train, y, ds.x_test, lr=got["lr"], steps=(0, 5, 20),
                         keys=key[None])
    np.testing.assert_allclose(got["outputs"], ref.outputs[0] - ref.outputs[0, :1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["outputs"][0], 0.0)
    np.testing.assert_allclose(loss, ref.train_loss[0])
    assert got["net_accuracy"][0] == pytest.approx(np.mean(ds.labels_test == 0))   # f = 0: argmax picks class 0


@pytest.mark.parametrize("args, name", [(["--steps", "-3"], "--steps"), (["--depths", "0"], "--depths"),
                                        (["--w-var", "nan"], "--w-var"), (["--n-train", "15"], "--n-train")])
def test_command_refuses_bad_options(tmp_path, args, name):
    res = CliRunner().invoke(main, ["depths", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2 and name in res.output, res.output
