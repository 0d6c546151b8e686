"""Activation lengths (Hanin & Rolnick 2018): finite-width Monte Carlo against the exact
finite-width theory of reskernel.lengths, with standard errors; bounds and errors.

Every simulation uses a fixed key; sizes are chosen so that Sum 1/n_j stays moderate
(the lengths are products of independent factors, heavy-tailed when Sum 1/n_j is large)
and a few compiled shapes are shared between tests (same depth, padded width, chunk)."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reskernel import lengths as L
from conftest import umask

Z = 4.0          # "several standard errors"
SEEDS = 4000
KEY = jax.random.PRNGKey(20180)


def _sim(spec, x0=None, seeds=SEEDS, key=KEY):
    return L.simulate(spec, key, seeds, x0, chunk=min(seeds, SEEDS))


# ---- FFNets: one compiled shape (depth 6, padded width 32) for all profiles -----------

D = 6
FFNETS = {
    "constant": (L.feedforward((32,) * (D + 1)), 1.0),
    "increasing": (L.feedforward(L.width_profile(16, 32, D)), 1.0),
    "decreasing_gain_1.1": (L.feedforward(L.width_profile(32, 16, D),
                                          L.he_variances(L.width_profile(32, 16, D), 1.1)), 1.1),
    "constant_gain_0.9": (L.feedforward((32,) * (D + 1), L.he_variances((32,) * (D + 1), 0.9)), 0.9),
    "arbitrary": (L.feedforward((20, 28, 16, 32, 24, 18, 30), (0.05, 0.12, 0.04, 0.09, 0.06, 0.1)), None),
}


@pytest.fixture(scope="module")
def ffnet_lengths():
    return {name: _sim(spec) for name, (spec, _) in FFNETS.items()}


@pytest.fixture(scope="module")
def ffnet_summaries(ffnet_lengths):
    return {name: L.summarize(FFNETS[name][0], m) for name, m in ffnet_lengths.items()}


def test_width_profiles_are_what_they_say():
    assert L.width_profile(16, 32, D) == (16, 19, 21, 24, 27, 29, 32)
    assert L.width_profile(32, 16, D) == (32, 29, 27, 24, 21, 19, 16)
    assert L.width_profile(7, 7, 3) == (7, 7, 7, 7)
    assert L.he_variances((4, 8, 2)) == (0.5, 0.25)
    assert L.geometric_scales(0.5, 3) == (0.5, 0.25, 0.125)


@pytest.mark.parametrize("name", list(FFNETS))
def test_ffnet_mean_length_matches_theory(ffnet_summaries, name):
    spec, gain = FFNETS[name]
    s = ffnet_summaries[name]
    # Theory, recomputed independently: E[M_j] = M_0 prod_{i<=j} n_{i-1} sigma_i^2 / 2.
    c = [n * v / 2 for n, v in zip(spec.widths[:-1], spec.sigma2)]
    np.testing.assert_allclose(s.mean_theory, np.concatenate([[1.0], np.cumprod(c)]), rtol=1e-12)
    if gain is not None:  # He (gain 1) is critical; other gains explode/vanish as gain^j
        np.testing.assert_allclose(s.mean_theory, gain ** np.arange(D + 1), rtol=1e-12)
    z = (s.mean - s.mean_theory)[1:] / s.mean_se[1:]
    assert np.all(np.abs(z) < Z), (name, s.mean, s.mean_theory, s.mean_se)


@pytest.mark.parametrize("name", list(FFNETS))
def test_ffnet_second_moment_ratio_is_prod_1_plus_5_over_n(ffnet_summaries, name):
    spec, _ = FFNETS[name]
    s = ffnet_summaries[name]
    expected = np.concatenate([[1.0], np.cumprod([1 + 5 / n for n in spec.widths[1:]])])
    np.testing.assert_allclose(s.ratio_theory, expected, rtol=1e-12)  # independent of sigma_j
    assert expected[-1] <= math.exp(5 * s.beta)
    z = (s.ratio - s.ratio_theory)[1:] / s.ratio_se[1:]
    assert np.all(np.abs(z) < Z), (name, s.ratio, s.ratio_theory, s.ratio_se)
    z2 = (s.second - s.second_theory)[1:] / s.second_se[1:]
    assert np.all(np.abs(z2) < Z)
    # The measured ratio really grows: the last layer is far from 1 in standard errors.
    assert (s.ratio[-1] - 1) / s.ratio_se[-1] > 2 * Z


@pytest.mark.parametrize("name", ["constant", "increasing", "decreasing_gain_1.1"])
def test_ffnet_empirical_variance_across_layers(ffnet_summaries, name):
    s = ffnet_summaries[name]
    assert abs(s.fm2 - s.fm2_theory) < Z * s.fm2_se, (s.fm2, s.fm2_theory, s.fm2_se)
    assert s.fm2 > 2 * Z * s.fm2_se  # and it is well resolved from 0


def test_fm2_grows_with_sum_of_reciprocal_widths_and_depth():
    he = lambda w: L.feedforward(w)
    v = [L.expected_empirical_variance(he((n,) * 21)) for n in (16, 32, 64, 128)]
    assert all(a > b for a, b in zip(v, v[1:]))
    # Constant Sum 1/n_j (width proportional to depth) keeps it O(1); constant width does not.
    prop = [L.expected_empirical_variance(he((4 * d,) * (d + 1))) for d in (10, 40, 160)]
    const = [L.expected_empirical_variance(he((40,) * (d + 1))) for d in (10, 40, 160)]
    assert max(prop) < 2 * min(prop)
    assert const[-1] > 50 * const[0]


def test_single_layer_factor_moments_exact():
    """E[Y] = 1 and E[Y^2] = 1 + 5/n for Y = (2/n) sum_i relu(g_i)^2 (not 1 + 2/n, 1 + 3/n)."""
    for n in (1, 3, 5):
        spec = L.feedforward((5, n), (0.4,))
        m = np.asarray(L.simulate(spec, jax.random.fold_in(KEY, n), 100_000, chunk=100_000), np.float64)
        c = 5 * 0.4 / 2
        y = m[:, 1] / c
        se1, se2 = y.std() / math.sqrt(y.size), (y * y).std() / math.sqrt(y.size)
        assert abs(y.mean() - 1) < Z * se1
        assert abs((y * y).mean() - (1 + 5 / n)) < Z * se2, (n, (y * y).mean())
        np.testing.assert_allclose(L.second_moment(spec)[1] / L.mean_length(spec)[1] ** 2, 1 + 5 / n)


# ---- ResNets ------------------------------------------------------------------------------


def test_linear_resnet_exact_mean_and_second_moment():
    width, depth = 24, 6
    for scales in [(1.0,) * depth, L.geometric_scales(0.7, depth)]:
        spec = L.resnet(width, scales, block="linear")
        s = L.summarize(spec, _sim(spec))
        e = np.array(scales) ** 2  # He: e_l = eta_l^2
        np.testing.assert_allclose(s.mean_theory, np.concatenate([[1.0], np.cumprod(1 + e)]), rtol=1e-12)
        ez2 = 1 + 2 * e + 4 * e / width + e * e * (1 + 5 / width) * (1 + 2 / width)
        np.testing.assert_allclose(s.second_theory, np.concatenate([[1.0], np.cumprod(ez2)]), rtol=1e-12)
        for meas, th, se in [(s.mean, s.mean_theory, s.mean_se), (s.second, s.second_theory, s.second_se),
                             (s.ratio, s.ratio_theory, s.ratio_se)]:
            z = (meas - th)[1:] / se[1:]
            assert np.all(np.abs(z) < Z), (scales[0], meas, th, se)
        assert abs(s.fm2 - s.fm2_theory) < Z * s.fm2_se


def test_resnet_summable_scales_bounded_constant_scales_explode():
    width = 32
    for block in L.BLOCKS:
        bounded = [L.mean_bounds(L.resnet(width, L.geometric_scales(0.7, d), block=block))[1][-1]
                   for d in (10, 100, 1000)]
        second = [L.second_moment_bound(L.resnet(width, L.geometric_scales(0.7, d), block=block))[-1]
                  for d in (10, 100, 1000)]
        np.testing.assert_allclose(bounded[1], bounded[2], rtol=1e-12)  # converged: sum eta < inf
        np.testing.assert_allclose(second[1], second[2], rtol=1e-12)
        assert bounded[-1] < 40 and second[-1] < 1e4
        lower = [L.mean_bounds(L.resnet(width, (1.0,) * d, block=block))[0][-1] for d in (10, 20, 40)]
        np.testing.assert_allclose(lower, [2.0**10, 2.0**20, 2.0**40], rtol=1e-12)  # prod (1 + eta^2)
    # The closed-form limit for the linear block: prod (1 + 0.49^l).
    lim = np.prod(1 + 0.49 ** np.arange(1, 200))
    np.testing.assert_allclose(L.mean_length(L.resnet(width, L.geometric_scales(0.7, 200), block="linear"))[-1],
                               lim, rtol=1e-12)


@pytest.mark.parametrize("x0", ["ones", "mixed"])
def test_relu_resnet_hanin_rolnick_block(x0):
    width, depth = 32, 12
    x0 = None if x0 == "ones" else np.linspace(-1.5, 0.5, width)  # mean(x0) < 0: general lower bound
    for scales in [(1.0,) * depth, L.geometric_scales(0.7, depth)]:
        spec = L.resnet(width, scales)
        assert not spec.exact
        s = L.summarize(spec, _sim(spec, x0), x0)
        # Layer 1 is exact: E[M_1] = M_0 + 2 eta m_0 sqrt(c M_0 / pi) + eta^2 c M_0, c = 1 (He).
        xx = np.ones(width) if x0 is None else x0
        m0, mu0 = float(xx @ xx) / width, float(xx.mean())
        exact1 = m0 + 2 * scales[0] * mu0 * math.sqrt(m0 / math.pi) + scales[0] ** 2 * m0
        np.testing.assert_allclose(s.mean_theory[1], exact1, rtol=1e-12)
        assert abs(s.mean[1] - exact1) < Z * s.mean_se[1]
        # Every layer within the closed-form bounds (up to Monte Carlo error) ...
        se = s.mean_se[1:]
        assert np.all(s.mean[1:] > s.mean_lower[1:] - Z * se)
        assert np.all(s.mean[1:] < s.mean_upper[1:] + Z * se)
        assert np.all(s.second[1:] < s.second_upper[1:] + Z * s.second_se[1:])
        # ... and within a few percent of the n -> inf recursion (corrections are O(1/n)).
        assert np.all(np.abs(s.mean[1:] / s.mean_theory[1:] - 1) < 0.1 + Z * se / s.mean_theory[1:])
        if scales[0] == 1.0 and x0 is None:  # the lower bound 2^l: explodes
            assert s.mean[-1] > 2.0**depth and s.mean_lower[-1] == 2.0**depth


# ---- simulator mechanics -------------------------------------------------------------------


def test_chunks_rows_jit_typed_keys_and_log_agree():
    spec = L.feedforward((6, 9, 4, 7), (0.3, 0.2, 0.5))
    key = jax.random.PRNGKey(3)
    x0 = jnp.linspace(0.5, 2.0, 6)
    full = L.simulate(spec, key, 10, x0)
    assert full.shape == (10, 4) and full.dtype == jnp.float32
    np.testing.assert_allclose(full[:, 0], float(x0 @ x0) / 6, rtol=1e-6)
    np.testing.assert_allclose(L.simulate(spec, key, 10, x0, chunk=4), full, rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(L.simulate(spec, key, 10, x0, chunk=4, log=True)), full, rtol=1e-5)
    # New-style typed keys carry the same bits as PRNGKey: the same networks.
    np.testing.assert_allclose(L.simulate(spec, jax.random.key(3), 10, x0), full, rtol=1e-6)
    # Row i is the network of split(key)[i]; layer_lengths traces under jit with a traced input.
    keys = jax.random.split(key, 10)
    jitted = jax.jit(lambda k, x: L.layer_lengths(spec, k, x))
    for i in (0, 7):
        np.testing.assert_allclose(jitted(keys[i], x0), full[i], rtol=1e-6)


def test_no_overflow_deep_resnet_in_log_space():
    spec = L.resnet(8, (1.0,) * 300, block="linear")
    logm = L.simulate(spec, jax.random.PRNGKey(1), 4, log=True)
    assert np.all(np.isfinite(logm)) and float(logm[:, -1].mean()) > 100  # past float32 3e38 = e^88.7


def test_float64_preserved(x64):
    spec = L.feedforward((5, 7, 3))
    out = L.simulate(spec, jax.random.PRNGKey(0), 3, jnp.ones(5, jnp.float64))
    assert out.dtype == jnp.float64


def test_summary_roundtrip_and_empirical_variance(ffnet_lengths, ffnet_summaries):
    spec, _ = FFNETS["arbitrary"]
    s, m = ffnet_summaries["arbitrary"], ffnet_lengths["arbitrary"]
    back = L.LengthSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.spec == spec and back.seeds == SEEDS
    for f in ("mean", "mean_se", "ratio", "q05", "q95"):
        np.testing.assert_allclose(getattr(back, f), getattr(s, f))
    assert back.fm2 == s.fm2
    ev = np.asarray(m, np.float64)[:, 1:]
    np.testing.assert_allclose(np.asarray(L.empirical_variance(m)), ev.var(axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s.fm2, ev.var(axis=1).mean(), rtol=1e-12)


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("make, exc, match", [
    (lambda: L.feedforward([]), ValueError, "empty"),
    (lambda: L.feedforward([5]), ValueError, "depth must be >= 1"),
    (lambda: L.feedforward([5, 0, 3]), ValueError, r"widths\[1\] must be an int >= 1"),
    (lambda: L.feedforward([5, 2.5]), TypeError, r"widths\[1\]"),
    (lambda: L.feedforward([5, 4], [-1.0]), ValueError, r"sigma2\[0\] must be finite and > 0"),
    (lambda: L.feedforward([5, 4], [float("nan")]), ValueError, r"sigma2\[0\]"),
    (lambda: L.feedforward([5, 4, 3], [1.0]), ValueError, "one entry per layer"),
    (lambda: L.feedforward([5, 4], 0.0), ValueError, r"sigma2\[0\]"),
    (lambda: L.resnet(4, [1.0, -0.5]), ValueError, r"scales\[1\] must be finite and >= 0"),
    (lambda: L.resnet(4, [float("inf")]), ValueError, r"scales\[0\]"),
    (lambda: L.resnet(4, []), ValueError, "depth must be >= 1"),
    (lambda: L.resnet(0, [1.0]), ValueError, "width must be >= 1"),
    (lambda: L.resnet(4, [1.0], block="conv"), ValueError, "block must be one of"),
    (lambda: L.LengthSpec((4, 5), (0.5,), (1.0,)), ValueError, "one width for every layer"),
    (lambda: L.he_variances([4, 4], gain=-1), ValueError, "gain"),
    (lambda: L.width_profile(4, 8, 0), ValueError, "depth must be >= 1"),
    (lambda: L.simulate(L.feedforward([3, 3]), KEY, 0), ValueError, "seeds must be >= 1"),
    (lambda: L.simulate(L.feedforward([3, 3]), KEY, 2, chunk=0), ValueError, "chunk must be >= 1"),
    (lambda: L.simulate(L.feedforward([3, 3]), KEY, 2, np.ones(4)), ValueError, r"x0 must have shape"),
    (lambda: L.simulate(L.feedforward([3, 3]), KEY, 2, np.zeros(3)), ValueError, "x0 must be nonzero"),
    (lambda: L.simulate(L.feedforward([3, 3]), KEY, 2, np.array([1, np.nan, 0])), ValueError, "non-finite"),
    (lambda: L.simulate((3, 3), KEY, 2), TypeError, "LengthSpec"),
    (lambda: L.summarize(L.feedforward([3, 3]), np.ones((4, 3))), ValueError, "lengths must have shape"),
    (lambda: L.study("unused", seeds=1), ValueError, "seeds must be >= 2"),
])
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ---- study, plot and CLI -------------------------------------------------------------------


CONFIGS = {"ffnet_he", "ffnet_gain_0.9", "ffnet_gain_1.1", "ffnet_increasing", "ffnet_decreasing",
           "resnet_relu_eta_1", "resnet_relu_eta_0.9^l", "resnet_linear_eta_1", "resnet_linear_eta_0.9^l"}


def test_cli_writes_json_and_png_and_resumes(tmp_path):
    from click.testing import CliRunner

    args = ["--out", str(tmp_path), "--width", "8", "--depth", "4", "--seeds", "64", "--no-x64"]
    runner = CliRunner()
    res = runner.invoke(L.lengths_command, args)
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "lengths.json").read_text())["rows"]
    assert {r["config"] for r in rows} == CONFIGS and len(rows) == 9
    he = next(r for r in rows if r["config"] == "ffnet_he")
    assert len(he["mean"]) == 5 and he["mean_theory"] == [1.0] * 5 and he["widths"] == [8] * 5
    assert (tmp_path / "lengths.csv").read_text().count("\n") == 10
    assert (tmp_path / "lengths.png").read_bytes()[:4] == b"\x89PNG"
    assert "9 computed, 0 reused" in res.output
    res2 = runner.invoke(L.lengths_command, args)
    assert res2.exit_code == 0 and "0 computed, 9 reused" in res2.output
    printed = lambda out: [line[line.index("E[M_d]"):] for line in out.splitlines() if "E[M_d]" in line]
    assert len(printed(res.output)) == 9 and printed(res2.output) == printed(res.output)  # stored rows print alike
    assert not list(tmp_path.glob(".*.tmp"))


def test_runs_into_one_folder_keep_each_others_rows(tmp_path, monkeypatch):
    """A run with another seed writes into the folder while this one simulates: both runs'
    rows stay (each merge reads the stored rows under the lock), and the files get the
    umask's permissions."""
    from reskernel.studies.lengths import _study

    simulate = _study.simulate
    kw = dict(width=8, depth=4, seeds=64, progress=False)

    def simulate_beside_another_run(*args, **kwargs):
        monkeypatch.setattr(_study, "simulate", simulate)
        L.study(tmp_path, seed=1, **kw)
        return simulate(*args, **kwargs)

    monkeypatch.setattr(_study, "simulate", simulate_beside_another_run)
    with umask(0o022):
        res = L.study(tmp_path, seed=0, **kw)
    assert len(res["computed"]) == 9 and set(res["results"]) == CONFIGS
    rows = json.loads((tmp_path / "lengths.json").read_text())["rows"]
    assert sorted((r["seed"], r["config"]) for r in rows) == sorted((s, c) for s in (0, 1) for c in CONFIGS)
    assert (tmp_path / "lengths.csv").read_text().count("\n") == 19
    for name in ("lengths.json", "lengths.csv", "lengths.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    again = L.study(tmp_path, seed=1, **kw)  # resumes the other run's rows
    assert again["computed"] == [] and len(again["skipped"]) == 9


def test_study_names_files_it_cannot_use(tmp_path):
    (tmp_path / "lengths.json").write_text('{"params": {}, "results": {}}')  # an earlier version's layout
    with pytest.raises(ValueError, match="lengths.json is not a result table.*move it away"):
        L.study(tmp_path, width=8, depth=4, seeds=64, progress=False)
    (tmp_path / "lengths.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match="lengths.json is not valid JSON"):
        L.study(tmp_path, width=8, depth=4, seeds=64, progress=False)
