"""Shortcut study (Liu et al. 2019 vs Du et al. 2018): closed-form population loss
against Monte Carlo and finite differences, the derivative rule at w = 0, the
gradient-descent outcome statistics, the study's files, and boundary errors."""
import csv
import dataclasses
import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from reskernel import shortcut as sc
from reskernel.studies.shortcut import study
from conftest import umask


def _random_params(key, p, k, scale=1.0):
    kw, ka = jax.random.split(key)
    return sc.Params(scale * jax.random.normal(kw, (p,)), jax.random.normal(ka, (k,)))


@pytest.fixture
def problem():
    """problem(p, k, shortcut, seed, n_keys) -> (net, teacher, keys): a net, a random
    teacher from the seed's first key, and n_keys further keys."""
    def make(p, k, shortcut, seed, n_keys):
        keys = jax.random.split(jax.random.PRNGKey(seed), n_keys + 1)
        return sc.ConvNet(p, k, shortcut), _random_params(keys[0], p, k), keys[1:]
    return make


# The settings of the small study shared by the study, plot and command tests (the
# command's flags below give the same StudySettings, so the command resumes).
_SMALL = sc.StudySettings(runs=4, steps=30, warmup_steps=5)
_SMALL_ARGS = ["--p", "3", "--k", "2", "--runs", "4", "--steps", "30", "--warmup-steps", "5"]


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """(folder, entries) of the small study at p = 3, k = 2."""
    out = tmp_path_factory.mktemp("shortcut")
    return out, sc.run_success_study(out, patch_dims=(3,), patches=(2,), settings=_SMALL, progress=False)


@pytest.mark.parametrize("shortcut", [True, False])
def test_closed_form_matches_monte_carlo(x64, problem, shortcut):
    p, k = 5, 3
    net, teacher, keys = problem(p, k, shortcut, 1, 7)
    cases = [_random_params(keys[0], p, k, 0.7),
             sc.Params(-0.9 * teacher.w + 0.1 * jax.random.normal(keys[1], (p,)), teacher.a[::-1]),
             sc.Params(teacher.w + 1e-3 * jax.random.normal(keys[2], (p,)), jax.random.normal(keys[3], (k,)))]
    for i, params in enumerate(cases):
        exact = sc.population_loss(net, params, teacher)
        mean, se = sc.monte_carlo_loss(net, params, teacher, keys[4 + i % 3], 400_000)
        assert abs(float(exact) - float(mean)) < 4 * float(se), (i, exact, mean, se)


def test_relu_cross_known_angles_and_float32_accuracy(x64):
    u = jnp.array([3.0, 0.0, 0.0])
    v = jnp.array([0.0, 2.0, 0.0])
    np.testing.assert_allclose(sc.relu_cross(u, u), 9.0 / 2, rtol=1e-14)        # E relu^2 = |u|^2 / 2
    np.testing.assert_allclose(sc.relu_cross(u, -u), 0.0, atol=1e-14)
    np.testing.assert_allclose(sc.relu_cross(u, v), 6.0 / (2 * np.pi), rtol=1e-14)
    # Nearly parallel filters: the atan2 form keeps float32 at float32 accuracy.
    w = jnp.array([1.0, 0.3, -0.2])
    w2 = w + jnp.array([0.0, 2e-4, 1e-4])
    ref = sc.relu_cross(w, w2)
    got = sc.relu_cross(w.astype(jnp.float32), w2.astype(jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6)


@pytest.mark.parametrize("shortcut", [True, False])
def test_gradient_matches_finite_differences(x64, problem, shortcut):
    p, k = 4, 3
    net, teacher, keys = problem(p, k, shortcut, 2, 1)
    params = _random_params(keys[0], p, k)
    grad = jax.grad(lambda th: sc.population_loss(net, th, teacher))(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = lambda x: sc.population_loss(net, unravel(x), teacher)
    eps = 1e-6
    fd = np.array([(f(flat + eps * e) - f(flat - eps * e)) / (2 * eps) for e in np.eye(flat.size)])
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(grad)[0], fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shortcut", [True, False])
def test_global_minimum_has_zero_loss_and_gradient(x64, problem, shortcut):
    net, teacher, _ = problem(6, 4, shortcut, 3, 0)
    lossfn = lambda th: sc.population_loss(net, th, teacher)
    assert abs(float(lossfn(teacher))) < 1e-13
    grad = jax.grad(lossfn)(teacher)
    np.testing.assert_allclose(grad.w, 0.0, atol=1e-12)
    np.testing.assert_allclose(grad.a, 0.0, atol=1e-12)
    rescaled = sc.Params(2.0 * teacher.w, teacher.a / 2.0)
    # The CNN is invariant under (w, a) -> (c w, a / c); the shortcut breaks that symmetry.
    if shortcut:
        assert float(lossfn(rescaled)) > 1e-2
    else:
        assert abs(float(lossfn(rescaled))) < 1e-13


@pytest.mark.parametrize("shortcut", [True, False])
def test_gradient_at_zero_is_the_symmetric_derivative(x64, problem, shortcut):
    p, k = 5, 4
    net, teacher, keys = problem(p, k, shortcut, 4, 2)
    a = jax.random.normal(keys[0], (k,))
    at_zero = sc.Params(jnp.zeros(p), a)
    grad = jax.jit(jax.grad(lambda th: sc.population_loss(net, th, teacher)))(at_zero)
    assert np.all(np.isfinite(grad.w)) and np.all(np.isfinite(grad.a))
    # With relu'(0) = 1/2: grad_w = -w* sum_j (a_j/2 + s/k)(a*_j/2 + s/k), s = 1 with the shortcut.
    s = 1.0 if shortcut else 0.0
    expected = -teacher.w * jnp.sum((a / 2 + s / k) * (teacher.a / 2 + s / k))
    np.testing.assert_allclose(grad.w, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad.a, 0.0, atol=1e-15)
    np.testing.assert_allclose(grad.w, -sc.first_step(net, a, teacher.a) * teacher.w, rtol=1e-12, atol=1e-15)
    # ... which is the average of the one-sided derivatives along +u and -u.
    u = jax.random.normal(keys[1], (p,))
    t = 1e-7
    lossfn = lambda w: sc.population_loss(net, sc.Params(w, a), teacher)
    np.testing.assert_allclose((lossfn(t * u) - lossfn(-t * u)) / (2 * t), grad.w @ u, rtol=1e-6)


def test_loss_traces_under_jit_and_keeps_float32():
    net = sc.ConvNet(3, 2)
    teacher = sc.Params(jnp.ones(3, jnp.float32), jnp.ones(2, jnp.float32))
    batch = sc.Params(jnp.zeros((7, 3), jnp.float32), jnp.ones((7, 2), jnp.float32))
    out = jax.jit(lambda th: sc.population_loss(net, th, teacher))(batch)
    assert out.shape == (7,) and out.dtype == jnp.float32
    one = sc.population_loss(net, sc.Params(batch.w[0], batch.a[0]), teacher)
    np.testing.assert_allclose(out, np.full(7, one), rtol=1e-6)


def test_success_rates_with_and_without_shortcut():
    """Measured (p = k = 8, 400 runs, seeds 0-2): ResNet from w0 = 0 reaches the
    global minimum in 95-97% of runs, the CNN from a random filter in 66-67%
    (58-61% at k = 16); the warm-up changes no outcome; the ResNet's failures are
    the runs whose first step points to -w*."""
    p, k, runs = 8, 8, 400
    key = jax.random.PRNGKey(0)
    res, cnn = sc.ConvNet(p, k, True), sc.ConvNet(p, k, False)
    teacher, init = sc.sample_problems(res, key, runs)
    final, _ = sc.gradient_descent(res, sc.Schedule(0.1, 3000), init, teacher)
    code = np.asarray(sc.outcomes(res, final, teacher).code)
    warm, _ = sc.gradient_descent(res, sc.Schedule(0.1, 3000, 1000, 0.1), init, teacher)
    code_warm = np.asarray(sc.outcomes(res, warm, teacher).code)
    teacher_c, init_c = sc.sample_problems(cnn, key, runs, w_init_norm=1.0)
    np.testing.assert_array_equal(teacher_c.a, teacher.a)          # paired: the same teachers
    final_c, _ = sc.gradient_descent(cnn, sc.Schedule(0.1, 3000), init_c, teacher_c)
    code_c = np.asarray(sc.outcomes(cnn, final_c, teacher_c).code)

    rate, rate_c = np.mean(code == sc.GLOBAL), np.mean(code_c == sc.GLOBAL)
    assert rate >= 0.90, rate
    assert rate_c <= 0.78, rate_c
    assert np.mean(code_c == sc.SPURIOUS) >= 0.2
    assert rate - rate_c >= 0.18
    assert np.mean(code != code_warm) <= 0.02
    first_step_away = np.asarray(sc.first_step(res, init.a, teacher.a)) < 0
    assert np.mean(first_step_away == (code == sc.SPURIOUS)) >= 0.98


def test_trajectory_record_matches_final_state():
    net = sc.ConvNet(4, 3)
    teacher, init = sc.sample_problems(net, jax.random.PRNGKey(5), 2)
    sched = sc.Schedule(0.1, 200, 50, 0.1)
    final, traj = sc.gradient_descent(net, sched, init, teacher, record=True)
    assert traj.loss.shape == (2, 201) and traj.a.shape == (2, 201, 3)
    np.testing.assert_allclose(traj.a[:, -1], final.a, rtol=1e-6)
    np.testing.assert_allclose(traj.w_norm[:, 0], 0.0)
    np.testing.assert_allclose(traj.loss[:, -1], sc.population_loss(net, final, teacher), rtol=1e-5)
    one, traj1 = sc.gradient_descent(net, sched, jax.tree_util.tree_map(lambda x: x[1], init),
                                     jax.tree_util.tree_map(lambda x: x[1], teacher), record=True)
    np.testing.assert_allclose(one.w, final.w[1], rtol=1e-4, atol=1e-6)   # float32, batched vs not
    assert traj1.loss.shape == (201,)


def test_study_writes_resumes_and_plots(small_study, monkeypatch, tmp_path):
    out, entries = small_study
    assert len(entries) == 8
    assert all(e["global"] + e["spurious"] + e["unconverged"] == 4 for e in entries)
    for e in entries:
        assert e["success_lo"] <= e["success_rate"] <= e["success_hi"]
        assert (e["first_step_away"] is None) == (e["w_init_norm"] != 0)
    saved = json.loads((out / "shortcut_success.json").read_text())["rows"]
    as_set = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)
    assert as_set(saved) == as_set(entries) and as_set(sc.load_results(out)) == as_set(entries)
    assert (out / "shortcut_success.csv").read_text().count("\n") == 9

    def fail(*args):
        raise AssertionError("a finished configuration was recomputed")
    monkeypatch.setattr(study, "_run_config", fail)
    assert sc.run_success_study(out, patch_dims=(3,), patches=(2,), settings=_SMALL, progress=False) == entries
    monkeypatch.undo()

    png = sc.plot_success(entries, tmp_path / "success.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_into_one_folder_keep_each_others_rows(small_study, tmp_path, monkeypatch):
    """A run with another seed writes into the folder while this one computes: both runs'
    rows stay, JSON and CSV agree, the files get the umask's permissions."""
    run_config = study._run_config
    other = dataclasses.replace(_SMALL, seed=1)

    def run_beside_another_run(*args):
        monkeypatch.setattr(study, "_run_config", run_config)
        sc.run_success_study(tmp_path, patch_dims=(3,), patches=(2,), settings=other, progress=False)
        return run_config(*args)

    monkeypatch.setattr(study, "_run_config", run_beside_another_run)
    with umask(0o022):
        entries = sc.run_success_study(tmp_path, patch_dims=(3,), patches=(2,), settings=_SMALL, progress=False)
    assert entries == small_study[1]  # the same settings give the same rates, wherever they are stored
    rows = sc.load_results(tmp_path)
    assert sorted(r["seed"] for r in rows) == [0] * 8 + [1] * 8
    with open(tmp_path / "shortcut_success.csv") as f:
        assert len(list(csv.DictReader(f))) == 16
    for name in ("shortcut_success.json", "shortcut_success.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_results_of_earlier_versions_are_converted(small_study, tmp_path, monkeypatch):
    entries = small_study[1]
    old = [{k: v for k, v in e.items() if k not in ("success_lo", "success_hi")} for e in entries]
    (tmp_path / "shortcut_success.json").write_text(json.dumps({"entries": old}))
    monkeypatch.setattr(study, "_run_config", None)   # resumes: nothing is recomputed
    assert sc.run_success_study(tmp_path, patch_dims=(3,), patches=(2,), settings=_SMALL, progress=False) == entries
    assert len(json.loads((tmp_path / "shortcut_success.json").read_text())["rows"]) == 8
    assert (tmp_path / "shortcut_success.csv").read_text().count("\n") == 9


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest
    for successes, n in [(0, 10), (3, 10), (97, 100), (200, 200)]:
        ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        np.testing.assert_allclose(sc.wilson_interval(successes, n), (ci.low, ci.high), rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="successes must be in"):
        sc.wilson_interval(11, 10)


def test_command_runs_and_rejects_bad_settings(small_study, monkeypatch):
    out, entries = small_study
    monkeypatch.setattr(study, "_run_config", None)   # resumes: nothing is recomputed
    runner = CliRunner()
    result = runner.invoke(sc.shortcut_command, _SMALL_ARGS + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "first step away from w*" in result.output and "[" in result.output
    assert (out / "shortcut_success.png").exists() and (out / "shortcut_dynamics.png").exists()
    for args, option in [(["--runs", "0"], "--runs"), (["--lr", "-0.1"], "--lr"), (["--lr", "nan"], "--lr"),
                         (["--p", "0"], "--p"), (["--k", "-2"], "--k"), (["--steps", "0"], "--steps"),
                         (["--warmup-steps", "-1"], "--warmup-steps"),
                         (["--steps", "10", "--warmup-steps", "20"], "--warmup-steps"),
                         (["--warmup-factor", "0"], "--warmup-factor"), (["--warmup-factor", "1.5"], "--warmup-factor"),
                         (["--teacher-norm", "inf"], "--teacher-norm"), (["--a-init-scale", "-1"], "--a-init-scale"),
                         (["--seed", "-1"], "--seed")]:
        bad = runner.invoke(sc.shortcut_command, args + ["--small", "--out", str(out)])
        assert bad.exit_code == 2 and option in bad.output and "Traceback" not in bad.output, (args, bad.output)


@pytest.mark.parametrize("make, err, match", [
    (lambda: sc.ConvNet(0, 3), ValueError, "patch_dim must be >= 1"),
    (lambda: sc.ConvNet(3, 0), ValueError, "patches must be >= 1"),
    (lambda: sc.ConvNet(3, 2.5), TypeError, "patches must be an int"),
    (lambda: sc.ConvNet(3, 2, shortcut="yes"), TypeError, "shortcut must be a bool"),
    (lambda: sc.Schedule(0.0, 10), ValueError, "lr must be > 0"),
    (lambda: sc.Schedule(-1.0, 10), ValueError, "lr must be > 0"),
    (lambda: sc.Schedule(float("nan"), 10), ValueError, "lr must be finite"),
    (lambda: sc.Schedule("0.1", 10), TypeError, "lr must be a real number"),
    (lambda: sc.Schedule(0.1, 0), ValueError, "steps must be >= 1"),
    (lambda: sc.Schedule(0.1, 10, 11), ValueError, "warmup_steps must be in"),
    (lambda: sc.Schedule(0.1, 10, 5, 0.0), ValueError, "warmup_factor must be > 0"),
    (lambda: sc.Schedule(0.1, 10, 5, 1.5), ValueError, r"warmup_factor must be in \(0, 1\]"),
    (lambda: sc.sample_problems(sc.ConvNet(3, 2), jax.random.PRNGKey(0), 0), ValueError, "runs must be >= 1"),
    (lambda: sc.first_step(sc.ConvNet(3, 2), jnp.ones(3), jnp.ones(2)), ValueError, "shape"),
    (lambda: sc.StudySettings(runs=0), ValueError, "runs must be >= 1"),
    (lambda: sc.StudySettings(lr=-1.0), ValueError, "lr must be > 0"),
    (lambda: sc.run_success_study("/tmp/unused", patch_dims=(0,), settings=sc.StudySettings(runs=1, steps=1, warmup_steps=0)),
     ValueError, "patch_dims must be >= 1"),
    (lambda: sc.population_loss(sc.ConvNet(3, 2), sc.Params(jnp.ones(4), jnp.ones(2)),
                                sc.Params(jnp.ones(3), jnp.ones(2))), ValueError, "w of shape"),
    (lambda: sc.population_loss("net", sc.Params(jnp.ones(3), jnp.ones(2)),
                                sc.Params(jnp.ones(3), jnp.ones(2))), TypeError, "ConvNet"),
    (lambda: sc.output(sc.ConvNet(3, 2), sc.Params(jnp.ones(3), jnp.ones(2)), jnp.ones((5, 3, 2))),
     ValueError, "z of shape"),
    (lambda: sc.monte_carlo_loss(sc.ConvNet(3, 2), sc.Params(jnp.ones(3), jnp.ones(2)),
                                 sc.Params(jnp.ones(3), jnp.ones(2)), jax.random.PRNGKey(0), 0),
     ValueError, "samples must be >= 1"),
])
def test_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()
