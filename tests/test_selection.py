"""The model-selection study (reskernel.studies.selection): the choice never sees test labels
(shuffled test labels leave it unchanged; test scores are computed for chosen models only), it
is the argmax of the validation scores computed here, the marginal likelihood against SciPy,
resuming after an interruption, the command line (--small, --lee2018) and its bad options.
Tiny sizes: real MNIST, 50 training / 50 validation / 100 test images."""
import dataclasses
import json

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from click.testing import CliRunner

import reskernel as rk
from reskernel.cli import main
from reskernel.precision import enable_x64
from reskernel.studies import selection
from reskernel.studies.selection import _run

GRID = dict(archs="ffnet,resnet:1", activations="relu", w_vars="1.5,2", b_vars="0.1", depths="1,3",
            kernels="nngp,ntk")
SIZES = dict(n_train=50, n_val=50, n_test=100)
MODEL = ("arch", "activation", "w_var", "b_var", "kernel", "depth")


def _run_study(out, **kw):
    return selection.study("mnist", **SIZES, **GRID, out=out, progress=False, plot=kw.pop("plot", False), **kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return _run_study(tmp_path_factory.mktemp("base"), plot=True)


def _model(r):
    return tuple(r[k] for k in MODEL)


def test_shuffled_test_labels_leave_the_choice_unchanged(base, tmp_path, monkeypatch):
    from reskernel.data import ten_class

    def shuffled(*args, **kwargs):
        ds = ten_class(*args, **kwargs)
        perm = np.random.default_rng(1).permutation(ds.n_test)
        return dataclasses.replace(ds, y_test=ds.y_test[perm], labels_test=ds.labels_test[perm])

    asked = []
    real = _run.evaluate

    def recording(models, *args, **kwargs):
        asked.extend(models)
        return real(models, *args, **kwargs)

    monkeypatch.setattr("reskernel.data.ten_class", shuffled)
    monkeypatch.setattr(_run, "evaluate", recording)
    res = _run_study(tmp_path / "shuffled")
    pick = lambda rows: [(c["criterion"], c["scope"], _model(c), c["val_accuracy"], c["val_mse"], c["lml"])
                         for c in rows]
    assert pick(res["chosen"]) == pick(base["chosen"])
    assert [{k: v for k, v in r.items() if not k.endswith("_s")} for r in res["rows"]] == \
           [{k: v for k, v in r.items() if not k.endswith("_s")} for r in base["rows"]]
    # test predictions were asked for the chosen models only, each once
    assert sorted(asked) == sorted(set(_model(c) for c in base["chosen"]))
    # ... and the test labels were read there: the shuffled ones score near chance
    before = {_model(r): r["test_accuracy"] for r in base["test_rows"]}
    after = {_model(r): r["test_accuracy"] for r in res["test_rows"]}
    assert before.keys() == after.keys() and all(after[m] < before[m] - 0.2 for m in before), (before, after)


def test_choice_is_the_argmax_of_the_validation_scores(base):
    rows = base["rows"]
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    assert not any(k.startswith("test") for r in rows for k in r)   # grid rows hold no test scores
    order = lambda r: (r["arch"] != "ffnet", r["arch"], r["activation"], r["w_var"], r["b_var"],
                       ("nngp", "ntk").index(r["kernel"]), r["depth"])
    expected = {}
    for crit in ("val_accuracy", "lml"):
        pool = [r for r in rows if crit == "val_accuracy" or r["kernel"] == "nngp"]
        scopes = {"all": pool}
        for r in pool:
            scopes.setdefault(f"{r['arch']} {r['kernel']}", []).append(r)
        for scope, sel in scopes.items():
            sel = sorted(sel, key=order)
            if crit == "val_accuracy":
                # lexsort: last key primary; -index keeps the first of equals
                keys = (-np.arange(len(sel)), [-r["val_mse"] for r in sel], [r["val_accuracy"] for r in sel])
                i = np.lexsort(keys)[-1]
            else:
                i = int(np.argmax([r["lml"] for r in sel]))
            expected[(crit, scope)] = _model(sel[i])
    got = {(c["criterion"], c["scope"]): _model(c) for c in base["chosen"]}
    assert got == expected
    for c in base["chosen"]:   # the test phase recomputed the validation accuracy with the same factor
        assert c["status"] == "ok" and c["val_accuracy_check"] == c["val_accuracy"]
        assert 0 <= c["test_accuracy"] <= 1 and c["n_test"] == 100
    meta = json.loads(base["json"][0].read_text())["meta"]
    (run,) = meta["runs"].values()
    (lib,) = run["written_by"]
    assert lib["reskernel"] == rk.__version__ and lib == dict(base["library"], utc=lib["utc"])
    assert run["data"]["splits"]["val"]["n"] == 50
    assert base["pngs"] and base["pngs"][0].stat().st_size > 1000


def test_scores_and_marginal_likelihood_against_scipy(base):
    from reskernel.data import ten_class

    ds = ten_class("mnist", 50, 50, 100)
    row = next(r for r in base["rows"] if (r["arch"], r["kernel"], r["w_var"], r["depth"]) == ("ffnet", "nngp", 2.0, 3))
    arch = rk.FeedForward(3, w_var=2.0, b_var=0.1, activation="relu", in_var=2.0 / 784)
    with enable_x64():
        k = np.asarray(rk.kernel(arch, ds.x_train).nngp, np.float64)
        k_val = np.asarray(rk.kernel(arch, ds.x_val, ds.x_train).nngp, np.float64)
    a = k + 1e-10 * np.trace(k) / 50 * np.eye(50)
    cho = scipy.linalg.cho_factor(a, lower=True)
    alpha = scipy.linalg.cho_solve(cho, ds.y_train)
    s = np.sum(ds.y_train * alpha) / ds.y_train.size                   # argmax_s of log N(Y; 0, s A)
    lml = sum(scipy.stats.multivariate_normal(np.zeros(50), s * a, allow_singular=False).logpdf(ds.y_train[:, j])
              for j in range(10))
    assert row["amplitude"] == pytest.approx(s, rel=1e-8)
    assert row["lml"] == pytest.approx(lml, rel=1e-8, abs=1e-6)
    mean = k_val @ alpha
    assert row["val_accuracy"] == np.mean(np.argmax(mean, 1) == ds.labels_val)
    assert row["val_mse"] == pytest.approx(np.mean((mean - ds.y_val) ** 2), rel=1e-9)


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    from reskernel.studies.selection import _grid

    out, calls = tmp_path / "o", []
    real = _grid.unit_rows

    def interrupted(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_run, "unit_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run_study(out)
    first = json.loads((out / "selection_mnist_grid.json").read_text())["rows"]
    assert len(first) == 2 * 4 and not (out / "selection_mnist_test.json").exists()
    monkeypatch.setattr(_run, "unit_rows", real)
    res = _run_study(out)
    assert len(res["resumed"]) == 2 and len(res["computed"]) == 2 and res["evaluated"]
    kept = {_model(r): r for r in res["rows"]}
    assert all(kept[_model(r)] == r for r in first)        # not recomputed
    again = _run_study(out)
    assert not again["computed"] and len(again["resumed"]) == 4 and not again["evaluated"]
    assert again["chosen"] == res["chosen"]
    csv = (out / "selection_mnist_grid.csv").read_text().strip().splitlines()
    assert len(csv) == 1 + 16


def test_cli_small_and_lee2018(tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["select", "--small", "--n-train", "50", "--n-val", "50", "--n-test", "100",
                                    "--archs", "ffnet", "--depths", "1,3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Chosen models" in res.output and "val_accuracy | all" in res.output
    for name in ("selection_mnist_grid", "selection_mnist_test", "selection_mnist_chosen"):
        assert (out / f"{name}.json").is_file() and (out / f"{name}.csv").is_file()
    assert (out / "selection_mnist.png").stat().st_size > 1000
    res = CliRunner().invoke(main, ["select", "--lee2018", "--small", "--n-test", "100", "--out", str(out)])
    assert res.exit_code == 0, res.output
    row = json.loads((out / "lee2018_mnist.json").read_text())["rows"][0]
    assert (row["depth"], row["w_var"], row["b_var"], row["n_train"], row["n_test"]) == (20, 1.45, 0.28, 1000, 100)
    assert row["published"] == 0.9279 and 0.8 < row["test_accuracy"] <= 1 and "0.9279" in res.output
    again = CliRunner().invoke(main, ["select", "--lee2018", "--small", "--n-test", "100", "--out", str(out)])
    assert again.exit_code == 0 and "resumed" in again.output


@pytest.mark.parametrize("args, option", [
    (["--n-train", "15"], "--n-train"), (["--n-val", "0"], "--n-val"), (["--n-test", "many"], "--n-test"),
    (["--seed", "-1"], "--seed"), (["--w-vars", "0"], "--w-vars"), (["--b-vars", "-1"], "--b-vars"),
    (["--archs", "mlp"], "--archs"), (["--activations", "softsign"], "--activations"),
    (["--depths", "0"], "--depths"), (["--kernel", "rbf"], "--kernel"), (["--criteria", "best"], "--criteria"),
    (["--precision", "float16"], "--precision"), (["--dataset", "mnist2"], "--dataset"), (["--noise", "-1"], "--noise"),
    (["--lee2018", "--w-vars", "1"], "--w-vars"),
])
def test_cli_bad_options_are_usage_errors(tmp_path, args, option):
    res = CliRunner().invoke(main, ["select", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and option in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_api_errors():
    with pytest.raises(ValueError, match="n_val"):
        selection.study("mnist", n_train=50, n_val=0, progress=False)
    with pytest.raises(ValueError, match="criteria"):
        selection.study("mnist", criteria=("test_accuracy",), progress=False)
    with pytest.raises(ValueError, match="dataset"):
        selection.lee2018("mnist2")
    with pytest.raises(ValueError, match="noise"):
        selection.lee2018("mnist", noise=-1.0)
    with pytest.raises(ValueError, match="archs"):
        selection.study("mnist", archs="mlp", progress=False)
