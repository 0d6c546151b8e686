"""The learning-curve study (reskernel.studies.learning_curves) on tiny sizes of real MNIST:
a curve point equals a kernel-ridge solve written here (ReLU arc-cosine NNGP in float64 NumPy),
the choice never sees test labels, a rerun recomputes nothing, the nested training sets are
ten_class's, and bad options are refused."""
import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from reskernel.cli import main
from reskernel.data import ten_class
from reskernel.studies import learning_curves
from reskernel.studies.learning_curves import _run

GRID = dict(archs="ffnet", activations="relu", w_vars="1.5,2.5", b_vars="0.1", depths="1,2", kernels="nngp")
SIZES = dict(sizes="20,40", n_val=20, n_test=20)
NOISES = (1e-10, 0.1)


def _study(out, **kw):
    return learning_curves.study("mnist", **SIZES, **GRID, noises=NOISES, out=out, progress=False, plot=False, **kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("curves")
    return out, _study(out)


def _relu_nngp(x1, x2, depth, w_var, b_var):
    """Lee et al. 2018's ReLU NNGP K^depth, float64, written out: K^0 = w x.x'/d + b, then
    K <- b + w/(2 pi) sqrt(k11 k22) (sin t + (pi - t) cos t)."""
    d = x1.shape[1]
    k12 = w_var * x1 @ x2.T / d + b_var
    k11 = w_var * np.sum(x1 * x1, 1) / d + b_var
    k22 = w_var * np.sum(x2 * x2, 1) / d + b_var
    for _ in range(depth):
        norm = np.sqrt(np.outer(k11, k22))
        t = np.arccos(np.clip(k12 / norm, -1.0, 1.0))
        k12 = b_var + w_var / (2 * np.pi) * norm * (np.sin(t) + (np.pi - t) * np.cos(t))
        k11 = b_var + w_var / 2 * k11
        k22 = b_var + w_var / 2 * k22
    return k12


def test_curve_point_equals_a_direct_kernel_ridge_solve(base):
    _, res = base
    ds = ten_class("mnist", None, 20, 20)
    for c in res["curve"]:
        train = _run.nested_split(_run.Split(ds.x_train, ds.y_train, ds.labels_train), c["n_train"])
        k = _relu_nngp(train.x, train.x, c["depth"], c["w_var"], c["b_var"])
        ridge = c["noise"] * np.trace(k) / len(k)
        alpha = np.linalg.solve(k + ridge * np.eye(len(k)), train.y)
        for split, key in (("val", "val_accuracy"), ("test", "test_accuracy")):
            x, labels = getattr(ds, f"x_{split}"), getattr(ds, f"labels_{split}")
            mean = _relu_nngp(x, train.x, c["depth"], c["w_var"], c["b_var"]) @ alpha
            assert c[key] == pytest.approx(np.mean(np.argmax(mean, 1) == labels), abs=1e-12), (c["scope"], key)


def test_the_choice_is_the_best_validation_score(base):
    _, res = base
    for n in res["sizes"]:
        rows = [r for r in res["rows"] if r["n_train"] == n]
        chosen = next(c for c in res["curve"] if c["n_train"] == n and c["scope"] == "all")
        best = max(r["val_accuracy"] for r in rows)
        assert chosen["val_accuracy"] == best
        assert len(rows) == 2 * 2 * 2   # w_vars x depths x noises


def test_shuffled_test_labels_leave_the_choice_unchanged(base, tmp_path, monkeypatch):
    _, res = base

    def shuffled(*args, **kwargs):
        ds = ten_class(*args, **kwargs)
        perm = np.random.default_rng(3).permutation(ds.n_test)
        return dataclasses.replace(ds, y_test=ds.y_test[perm], labels_test=ds.labels_test[perm])

    monkeypatch.setattr("reskernel.data.ten_class", shuffled)
    again = _study(tmp_path / "shuffled")
    pick = lambda rows: [(c["n_train"], c["scope"], c["depth"], c["w_var"], c["noise"], c["val_accuracy"])
                         for c in rows]
    assert pick(again["curve"]) == pick(res["curve"])
    # the test scores themselves do see the shuffled labels (the check above is not vacuous)
    assert [c["test_accuracy"] for c in again["curve"]] != [c["test_accuracy"] for c in res["curve"]]


def test_a_rerun_recomputes_nothing(base, monkeypatch):
    out, res = base
    calls = []
    monkeypatch.setattr(_run, "unit_rows", lambda *a, **k: calls.append(a) or [])
    monkeypatch.setattr(_run, "evaluate", lambda *a, **k: calls.append(a) or [])
    again = _study(out)
    assert calls == [] and again["computed"] == [] and again["evaluated"] == []
    assert len(again["resumed"]) == 2 * 2   # sizes x grid points
    assert [c["test_accuracy"] for c in again["curve"]] == [c["test_accuracy"] for c in res["curve"]]


def test_nested_training_sets_are_ten_class_subsets():
    ds = ten_class("mnist", None, 30, 20)
    small = ten_class("mnist", 40, 0, 20)
    sub = _run.nested_split(_run.Split(ds.x_train, ds.y_train, ds.labels_train), 40)
    np.testing.assert_array_equal(sub.x, small.x_train)
    np.testing.assert_array_equal(sub.labels, small.labels_train)


@pytest.mark.parametrize("sizes", ["15", "0", "abc", ""])
def test_bad_sizes_are_refused(sizes):
    with pytest.raises(ValueError, match="sizes"):
        learning_curves.parse_sizes(sizes)


def test_sizes_beyond_the_files_are_refused():
    with pytest.raises(ValueError, match="exceed"):
        _run.resolve_sizes("100,5000", 2770)
    assert _run.resolve_sizes("all,100", 2770) == [100, 2770]


def test_command_refuses_bad_noises(tmp_path):
    res = CliRunner().invoke(main, ["curves", "--noises", "-1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--noises" in res.output
