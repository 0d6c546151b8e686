"""The phase-diagram study (reskernel.studies.phases): grid parsing and bad inputs, phases and a
depth-1 accuracy against independent computations, resuming after an interruption, two runs
into one folder, and the command line. Small sizes (real MNIST2 subsets of 20-40 images)."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from reskernel.cli import main
from reskernel.studies import phases
from reskernel.studies.phases import _run


def test_parse_values():
    assert phases.parse_values("2,0.5,1,1", name="w", positive=True) == [0.5, 1.0, 2.0]
    assert phases.parse_values("0:1:3, 2", name="b", positive=False) == [0.0, 0.5, 1.0, 2.0]
    assert phases.parse_values("0.3:0.3:1", name="b", positive=False) == [0.3]
    bad = {"": "give values", "a": "cannot read 'a'", "1,,2": "cannot read ''", "1:2": "cannot read the range",
           "2:1:3": "bad range", "0:1:0": "bad range", "nan": "finite", "inf": "finite", "-1": ">= 0"}
    for spec, match in bad.items():
        with pytest.raises(ValueError, match=match) as e:
            phases.parse_values(spec, name="--b-vars", positive=False)
        assert "--b-vars" in str(e.value)
    with pytest.raises(ValueError, match="> 0"):
        phases.parse_values("0,1", name="--w-vars", positive=True)


def test_parse_activations_archs_and_grid():
    assert phases.parse_activations("tanh, erf,tanh") == ["tanh", "erf"]
    for bad in ("", "softsign"):
        with pytest.raises(ValueError, match="activations"):
            phases.parse_activations(bad)
    assert phases.parse_archs("ffnet,resnet:0.5,resnet") == ["ffnet", "resnet:0.5", "resnet:1"]
    for bad in ("mlp", "resnet:x", "resnet:-1", ""):
        with pytest.raises(ValueError, match="archs"):
            phases.parse_archs(bad)
    # ReLU's critical line is w_var = 2 at every b_var: the grid point there is marked, not doubled
    pts = phases.grid_points("relu", [1.0, 2.0, 3.0], [0.05])
    assert [(p.w_var, p.on_line) for p in pts] == [(1.0, False), (2.0, True), (3.0, False)]
    # erf: one point added on the line per b_var (pi / 4 at b_var = 0, docs/signal_propagation.md)
    pts = phases.grid_points("erf", [1.0], [0.0, 0.05])
    line = [p for p in pts if p.on_line]
    assert len(pts) == 4 and [p.b_var for p in line] == [0.0, 0.05]
    assert abs(line[0].w_var - math.pi / 4) < 1e-12 and abs(line[1].w_var - 1.3758390) < 1e-6
    with pytest.raises(ValueError, match="no critical line"):
        phases.grid_points("gelu", [1.0], [0.1])
    assert len(phases.grid_points("gelu", [1.0], [0.1], critical=False)) == 1


def _erf_q_star(w, b):
    """The erf length map's fixed point by plain iteration (closed-form E[erf^2], not the package)."""
    q = 1.0 + b
    for _ in range(10000):
        q = w * (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)) + b
    return q


def _erf_depth1_nngp(xa, xb, w, b):
    """Depth-1 erf FFNet NNGP, unit inputs, in_var = 1: w E[erf(u) erf(v)] + b (arcsine formula)."""
    s = xa @ xb.T + b
    da, db = np.sum(xa * xa, 1) + b, np.sum(xb * xb, 1) + b
    return w * (2 / math.pi) * np.arcsin(2 * s / np.sqrt(np.outer(1 + 2 * da, 1 + 2 * db))) + b


def _key(r):
    return (r["activation"], r["arch"], r["w_var"], r["b_var"], r["precision"], r["kernel"], r["depth"])


SMALL = dict(activations=("erf",), w_vars=(1.0, 3.0), b_vars=(0.05,), depths=(1, 4), archs=("ffnet",),
             precisions=("float64", "float32"), n_train=40, n_test=40, progress=False)


def test_interrupted_run_resumes_and_numbers_match_independent_ones(tmp_path, monkeypatch):
    from reskernel.data import two_class

    out = tmp_path / "o"
    real, calls = _run._unit_rows, []

    def interrupted(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_run, "_unit_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        phases.study(out=out, plot=False, **SMALL)
    first = json.loads((out / "phases_mnist2.json").read_text())["rows"]
    assert len(first) == 2 * 2 * 2 * 2   # two units: 2 precisions x 2 kernels x 2 depths
    monkeypatch.setattr(_run, "_unit_rows", real)
    res = phases.study(out=out, **SMALL)
    assert len(res["resumed"]) == 2 and len(res["computed"]) == 1
    assert res["computed"][0]["w_var"] == 3.0
    rows = {_key(r): r for r in res["rows"]}
    assert len(rows) == 3 * 8
    for r in first:   # the interrupted run's rows were kept, not recomputed
        assert rows[_key(r)] == r
    again = phases.study(out=out, plot=False, **SMALL)
    assert not again["computed"] and len(again["resumed"]) == 3
    assert len(res["pngs"]) == 4 and all(p.stat().st_size > 1000 for p in res["pngs"])

    # phases and chi_1 against the closed-form erf moments: E[erf'(sqrt(q) z)^2] = (4/pi) / sqrt(1 + 4q)
    for w in (1.0, 3.0):
        q = _erf_q_star(w, 0.05)
        chi = w * (4 / math.pi) / math.sqrt(1 + 4 * q)
        r = rows[("erf", "ffnet", w, 0.05, "float64", "ntk", 4)]
        assert abs(r["q_star"] - q) < 1e-9 and abs(r["chi_1"] - chi) < 1e-9
        assert r["phase"] == ("ordered" if chi < 1 else "chaotic") and not r["on_line"]
    line = [r for r in res["rows"] if r["on_line"]]
    assert line and all(abs(r["chi_1"] - 1) < 1e-9 and r["phase"] == "critical" for r in line)
    assert abs(line[0]["w_var"] - line[0]["w_crit"]) < 1e-15

    # the depth-1 NNGP accuracy against a regression solved here with the closed-form kernel
    ds = two_class("mnist2", None, 40, 40, seed=0)
    for w in (1.0, 3.0):
        k_tr = _erf_depth1_nngp(ds.x_train, ds.x_train, w, 0.05)
        k_te = _erf_depth1_nngp(ds.x_test, ds.x_train, w, 0.05)
        ridge = 1e-6 * np.trace(k_tr) / len(k_tr)
        pred = k_te @ np.linalg.solve(k_tr + ridge * np.eye(len(k_tr)), ds.y_train)
        r = rows[("erf", "ffnet", w, 0.05, "float64", "nngp", 1)]
        assert r["accuracy"] == np.mean(np.sign(pred) == ds.y_test)
        assert abs(r["mse"] - np.mean((pred - ds.y_test) ** 2)) < 1e-7 * r["mse"]
        assert r["majority"] == max(np.mean(ds.y_test > 0), np.mean(ds.y_test < 0))
        # float32 beside float64: its distance to the float64 kernel is recorded
        r32 = rows[("erf", "ffnet", w, 0.05, "float32", "nngp", 1)]
        assert 0 < r32["kernel_err"] < 1e-6 and r32["accuracy"] == r["accuracy"]
    assert "float32" in phases.float32_table(res["rows"]) and "erf" in phases.depth_table(res["rows"])


def test_relu_phases_are_those_of_chi_1():
    # ReLU: chi_1 = w_var E[relu'(z)^2] = w_var / 2 at every b_var (no fixed point needed)
    for w, b in ((1.0, 0.0), (1.0, 0.5), (2.0, 0.05), (3.0, 0.05)):
        s = phases.point_signal("relu", w, b)
        assert s["chi_1"] == w / 2
        assert s["phase"] == {1.0: "bounded", 2.0: "critical", 3.0: "unbounded"}[w]
        assert (s["q_star"] is None) == (w >= 2)   # unbounded variance: stored as null


def _args(out, w_vars):
    return ["phases", "--activations", "relu", "--w-vars", w_vars, "--b-vars", "0.05", "--no-critical",
            "--depths", "1,3", "--archs", "ffnet,resnet:1", "--n-train", "20", "--n-test", "20", "--no-plot",
            "--out", str(out)]


def test_two_runs_into_one_folder_keep_every_row(tmp_path, monkeypatch):
    """A run over w_var 2, 3 writes into the folder while this one (w_var 1, 2, by the command)
    computes its first unit: every row of both stays, and the units the other run finished are
    resumed, not recomputed. In-process, so the other run's writes fall inside this one every
    time; two real processes writing one folder at once are tested once for the whole store, in
    test_store.py."""
    out = tmp_path / "o"
    real = _run._unit_rows
    other = dict(activations=("relu",), w_vars=(2.0, 3.0), b_vars=(0.05,), critical=False, depths=(1, 3),
                 archs=("ffnet", "resnet:1"), n_train=20, n_test=20, out=out, progress=False, plot=False)

    def unit_beside_another_run(*args, **kwargs):
        monkeypatch.setattr(_run, "_unit_rows", real)
        phases.study(**other)
        return real(*args, **kwargs)

    monkeypatch.setattr(_run, "_unit_rows", unit_beside_another_run)
    first = CliRunner().invoke(main, _args(out, "1,2"))
    assert first.exit_code == 0, first.output
    assert "2 unit(s) computed, 2 resumed" in first.output and "Accuracy lost" in first.output, first.output
    doc = json.loads((out / "phases_mnist2.json").read_text())
    keys = {_key(r) for r in doc["rows"]}
    assert len(keys) == len(doc["rows"]) == 3 * 2 * 2 * 2   # w_var 1, 2, 3 x 2 archs x 2 kernels x 2 depths
    csv_lines = (out / "phases_mnist2.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(doc["rows"])
    res = {_key(r): r for r in doc["rows"]}
    assert res[("relu", "resnet:1", 2.0, 0.05, "float64", "ntk", 3)]["chi_total"] > 0
    assert res[("relu", "ffnet", 2.0, 0.05, "float64", "ntk", 3)]["chi_total"] is None
    # a rerun of either grid resumes everything and says so
    again = CliRunner().invoke(main, _args(out, "1,3"))
    assert again.exit_code == 0 and "0 unit(s) computed, 4 resumed" in again.output, again.output


@pytest.mark.parametrize("option, value", [
    ("--w-vars", "0"), ("--w-vars", "1,x"), ("--b-vars", "-0.1"), ("--b-vars", "1:0:3"),
    ("--activations", "softsign"), ("--archs", "mlp"), ("--depths", "0"), ("--ffnet-depths", "1:0"),
    ("--precision", "float16"), ("--kernel", "rbf"), ("--n-train", "1"), ("--classes", "4"),
])
def test_cli_bad_settings_are_usage_errors(tmp_path, option, value):
    res = CliRunner().invoke(main, ["phases", option, value, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and option in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()
