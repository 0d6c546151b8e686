"""Training runs and studies: BN / SkipInit train a deep ResNet at a learning rate where
the unnormalized one diverges; vmapped grids equal single runs; studies resume from
their JSON; plots and commands."""
import csv
import json

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from reskernel import training as tr
from reskernel.studies.training import plots, studies
from reskernel.studies.training.commands import fromage_command, skipinit_command
from conftest import HAS_DATA, NO_DATA, assert_close, umask


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype(np.float32)
    y = np.sign(x[:, 0] * x[:, 1] + 0.3 * x[:, 2]).astype(np.float32)
    return x, y


def test_batchnorm_and_skipinit_train_where_plain_diverges(data):
    """Depth 30, SGD (momentum 0.9) at lr 0.03, 60 full-batch steps. Measured: the plain
    ResNet's stream has mean square ~2^30 at init and its loss is NaN after the first 20
    steps; BN and SkipInit bring the training loss from ~2 and ~0.7 to < 0.01."""
    x, y = data
    for method in ("plain", "batchnorm", "skipinit"):
        spec = tr.resnet_spec(method, 30, 32)
        r = tr.train(spec, x, y, optimizer_name="sgd", learning_rate=0.03, steps=60, n_evals=3,
                     key=jax.random.PRNGKey(1))
        hist = np.asarray(r.loss_history)
        if method == "plain":
            assert hist[0] > 100 and not np.isfinite(hist[-1])
        else:
            assert np.isfinite(hist[-1]) and hist[-1] < 0.1 * hist[0]


def test_grid_equals_single_runs(data):
    x, y = data
    spec = tr.MLP(2, 16)
    grid = tr.train(spec, x, y, optimizer_name="adam", learning_rate=[1e-3, 1e-2], steps=20, batch_size=16,
                    key=jax.random.PRNGKey(0), x_test=x[:8], y_test=y[:8])
    one = tr.train(spec, x, y, optimizer_name="adam", learning_rate=1e-2, steps=20, batch_size=16,
                   key=jax.random.PRNGKey(0), x_test=x[:8], y_test=y[:8])
    assert grid.loss_history.shape == (2, 11)
    assert_close(grid.loss_history[1], one.loss_history, rtol=1e-4)
    assert_close(grid.test_loss[1], one.test_loss, rtol=1e-4)
    assert float(one.train_loss) < float(one.loss_history[0])


def test_skipinit_study_resumes(data, tmp_path, monkeypatch):
    x, y = data
    out = tmp_path / "si.json"
    kw = dict(depths=(2,), methods=("skipinit",), width=8, learning_rates=(0.01, 0.1), steps=4,
              batch_size=None, out=out, progress=False)
    first = tr.skipinit_study(x, y, x[:16], y[:16], **kw)
    assert len(first["records"]) == 2
    stored = json.loads(out.read_text())
    assert stored["rows"] == json.loads(json.dumps(first["records"])) and stored["meta"]["study"] == "skipinit"
    assert all(r["width"] == 8 and r["steps"] == 4 and len(r["data"]) == 16 for r in first["records"])
    assert (tmp_path / "si.csv").read_text().count("\n") == 3

    def boom(*a, **k):
        raise AssertionError("a finished configuration was trained again")

    monkeypatch.setattr(studies, "train", boom)
    again = tr.skipinit_study(x, y, x[:16], y[:16], **kw)
    assert again["records"] == json.loads(out.read_text())["rows"]
    part = tr.skipinit_study(x, y, x[:16], y[:16], **dict(kw, learning_rates=(0.1,)))  # a subset: stored
    assert part["records"] == again["records"][1:]
    with pytest.raises(AssertionError, match="trained again"):  # other data: not taken for these
        tr.skipinit_study(x, -y, x[:16], y[:16], **kw)
    with pytest.raises(AssertionError, match="trained again"):  # overwrite recomputes
        tr.skipinit_study(x, y, x[:16], y[:16], overwrite=True, **kw)
    assert plots.plot_skipinit(again, tmp_path / "si.png").endswith("si.png")
    assert (tmp_path / "si.png").stat().st_size > 1000
    rows = tr.summarize_skipinit(again)
    assert {r["method"] for r in rows} == {"skipinit"} and all(r["seeds"] == 1 for r in rows)
    assert all(r["trained"] + r["stalled"] + r["diverged"] == 1 for r in rows)


def test_runs_into_one_file_keep_each_others_rows(data, tmp_path, monkeypatch):
    """A run with other settings (seed 7) writes into the file while this one trains: both
    runs' rows stay, JSON and CSV agree, the files get the umask's permissions."""
    x, y = data
    out = tmp_path / "si.json"
    # The settings of test_skipinit_study_resumes: the compiled training is reused.
    kw = dict(depths=(2,), methods=("skipinit",), width=8, learning_rates=(0.01, 0.1), steps=4,
              batch_size=None, out=out, progress=False)
    train = studies.train

    def train_beside_another_run(*args, **kwargs):
        monkeypatch.setattr(studies, "train", train)
        tr.skipinit_study(x, y, x[:16], y[:16], seed=7, **kw)
        return train(*args, **kwargs)

    monkeypatch.setattr(studies, "train", train_beside_another_run)
    with umask(0o022):
        res = tr.skipinit_study(x, y, x[:16], y[:16], seed=0, **kw)
    assert [r["seed"] for r in res["records"]] == [0, 0]
    rows = json.loads(out.read_text())["rows"]
    assert sorted((r["seed"], r["learning_rate"]) for r in rows) == [(0, 0.01), (0, 0.1), (7, 0.01), (7, 0.1)]
    with open(tmp_path / "si.csv") as f:
        assert sorted((int(r["seed"]), float(r["learning_rate"])) for r in csv.DictReader(f)) == \
            sorted((r["seed"], r["learning_rate"]) for r in rows)
    for name in ("si.json", "si.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_seeds_aggregate_to_mean_and_sd(data, tmp_path):
    """Two seeds: different inits give different losses; the summary's mean and sd are
    numpy's over the per-seed records, and adding a seed is a different configuration."""
    x, y = data
    # The settings of test_skipinit_study_resumes: the compiled training is reused.
    kw = dict(depths=(2,), methods=("skipinit",), width=8, learning_rates=(0.01, 0.1), steps=4,
              batch_size=None, progress=False)
    res = tr.skipinit_study(x, y, x[:16], y[:16], n_seeds=2, seed=3, out=tmp_path / "s.json", **kw)
    recs = [r for r in res["records"] if r["learning_rate"] == 0.1]
    assert sorted(r["seed"] for r in recs) == [3, 4] and len(res["records"]) == 4
    losses = [r["train_loss"] for r in recs]
    assert abs(losses[0] - losses[1]) > 1e-6
    row = next(r for r in tr.summarize_skipinit(res) if r["learning_rate"] == 0.1)
    assert row["seeds"] == 2
    assert_close(row["train_loss"], np.mean(losses), rtol=1e-12)
    assert_close(row["train_loss_std"], np.std(losses, ddof=1), rtol=1e-12)
    more = tr.skipinit_study(x, y, x[:16], y[:16], n_seeds=3, seed=3, out=tmp_path / "s.json", **kw)
    assert more["records"][:4] == res["records"] and len(json.loads((tmp_path / "s.json").read_text())["rows"]) == 6
    with pytest.raises(ValueError, match="n_seeds must be >= 1"):
        tr.skipinit_study(x, y, x[:16], y[:16], n_seeds=0, **kw)
    assert tr.mean_std([1.0, None, float("nan"), 3.0]) == (2.0, np.sqrt(2.0), 2)
    assert tr.mean_std([None]) == (None, None, 0)


def test_fromage_study_and_summary(data, tmp_path):
    x, y = data
    grids = {"fromage": (0.01, 0.1)}
    res = tr.fromage_study(x, y, x[:16], y[:16], depths=(1, 3), grids=grids, width=8, init="he", steps=10,
                           batch_size=None, n_seeds=2, out=tmp_path / "f.json", progress=False)
    assert len(res["records"]) == 8
    s = tr.summarize_fromage(res, threshold=0.0)
    assert set(s["best"]) == {"fromage"} and set(s["fromage_at"]) == {1, 3} and s["seeds"] == 2
    assert s["deepest"]["fromage@0.01"] == 3
    for d in (1, 3):
        means = {}
        for lr in grids["fromage"]:
            accs = [r["train_accuracy"] for r in res["records"] if r["depth"] == d and r["learning_rate"] == lr]
            means[lr] = (np.mean(accs), np.std(accs, ddof=1))
        lr = max(means, key=lambda v: means[v][0])
        assert_close(s["best"]["fromage"][d][:2], means[lr], rtol=1e-12)
        assert s["best"]["fromage"][d][2] == lr
        assert_close(s["fromage_at"][d], means[0.01], rtol=1e-12)
    plots.plot_fromage(res, tmp_path / "f.png")
    stream = tr.stream_study(x[:8], depth=3, width=8, n_seeds=2, methods=("batchnorm",),
                             out=tmp_path / "s.json", progress=False)
    assert_close(stream["methods"]["batchnorm"]["theory_stream"], stream["config"]["q0"] + np.arange(4), rtol=1e-12)
    plots.plot_stream(stream, tmp_path / "s.png")
    assert (tmp_path / "s.png").exists()


def test_study_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        tr.skipinit_study(x, y, x, y, learning_rates=(-0.1,), progress=False)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        tr.skipinit_study(x, y, x, y, depths=(0, 3), progress=False)
    with pytest.raises(ValueError, match="unknown method 'layernorm'"):
        tr.skipinit_study(x, y, x, y, methods=("layernorm",), progress=False)
    with pytest.raises(ValueError, match="unknown optimizer 'sgdm'; choose one of sgd, adam, lars, fromage"):
        tr.fromage_study(x, y, x, y, grids={"sgdm": (0.1,)}, progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        tr.train(tr.MLP(1, 4), x, y, steps=0)
    with pytest.raises(ValueError, match="batch_size must be <="):
        tr.train(tr.MLP(1, 4), x, y, batch_size=1000)


def test_study_files_of_other_kinds_are_named(data, tmp_path):
    x, y = data
    kw = dict(depths=(2,), grids={"sgd": (0.1,)}, width=4, steps=2, batch_size=None, progress=False)
    old = tmp_path / "old.json"
    old.write_text('{"study": "fromage", "config": {}, "records": []}')  # an earlier version's layout
    with pytest.raises(ValueError, match="old.json is not a result table.*move it away"):
        tr.fromage_study(x, y, x, y, out=old, **kw)
    other = tmp_path / "other.json"
    other.write_text('{"meta": {"study": "skipinit"}, "rows": []}')
    with pytest.raises(ValueError, match="holds results of the skipinit study, not fromage"):
        tr.fromage_study(x, y, x, y, out=other, **kw)
    with pytest.raises(ValueError, match="out must name a .json file"):
        tr.fromage_study(x, y, x, y, out=tmp_path / "f.txt", **kw)


def test_commands_parse(tmp_path):
    runner = CliRunner()
    for cmd in (skipinit_command, fromage_command):
        r = runner.invoke(cmd, ["--help"])
        assert r.exit_code == 0 and "--small" in r.output
    r = runner.invoke(fromage_command, ["--depths", "2,x"])
    assert r.exit_code == 2 and "--depths" in r.output and "comma-separated integers" in r.output
    r = runner.invoke(skipinit_command, ["--help"])
    assert "--seeds" in r.output and "--lr" in r.output and "--init" not in r.output
    r = runner.invoke(fromage_command, ["--help"])
    assert "--seeds" in r.output and "--init" in r.output and "--lr " not in r.output
    # bad settings are usage errors naming the option, raised before any training
    r = runner.invoke(fromage_command, ["--depths", "0,2", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--depths" in r.output and ">= 1" in r.output
    r = runner.invoke(fromage_command, ["--depths", "2", "--seeds", "0", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--seeds" in r.output
    r = runner.invoke(skipinit_command, ["--lr", "0.1,nan", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--lr" in r.output


@pytest.mark.skipif(not HAS_DATA, reason=NO_DATA)
def test_batch_size_larger_than_the_data_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(fromage_command, ["--batch-size", "1000000", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--batch-size" in r.output and "training images" in r.output, r.output
    assert not (tmp_path / "o").exists()
