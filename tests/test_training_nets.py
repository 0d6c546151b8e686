"""reskernel.studies.training nets and forward statistics: NumPy reference forward passes, and
the closed-form mean squares of the residual stream vs Monte Carlo over initializations."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reskernel import training as tr
from conftest import assert_close


def _numpy_forward(spec, p, x, stats=None):
    """Independent forward pass written from the nets module doc."""
    p = jax.tree_util.tree_map(np.asarray, p)
    relu = lambda z: np.maximum(z, 0)
    if isinstance(spec, tr.MLP):
        b = (lambda q: q["b"]) if spec.bias else (lambda q: 0.0)
        h = relu(x @ p["input"]["w"].T + b(p["input"]))
        for i in range(spec.depth - 1):
            h = relu(h @ p["hidden"]["w"][i].T + (p["hidden"]["b"][i] if spec.bias else 0.0))
        return h @ p["readout"]["w"] + b(p["readout"])
    h = x @ p["embed"]["w"].T + p["embed"]["b"]
    bl = p["blocks"]
    for i in range(spec.depth):
        z = h
        if spec.norm == "batch":
            mu, var = (h.mean(0), h.var(0)) if stats is None else (stats[0][i], stats[1][i])
            z = (h - mu) / np.sqrt(var + spec.eps) * bl["gain"][i] + bl["shift"][i]
        u = relu(z @ bl["w1"][i].T + bl["b1"][i]) @ bl["w2"][i].T + bl["b2"][i]
        s = bl["skip"][i] if spec.skipinit is not None else 1.0
        h = h + spec.branch_scale * s * u
    return h @ p["readout"]["w"] + p["readout"]["b"]


def _perturbed(params, key):
    """Params with every leaf moved off its init (so zero biases and unit gains are tested)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [l + 0.3 * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])


@pytest.mark.parametrize("spec", [
    tr.MLP(3, 6, init="pytorch"), tr.MLP(2, 5, bias=False),
    tr.ResidualMLP(3, 6, norm="batch", skipinit=0.0, gamma=0.5), tr.ResidualMLP(2, 5, skipinit=1.0, alpha=0.3)])
def test_forward_matches_numpy(x64, spec):
    x = np.random.default_rng(0).normal(size=(7, 4))
    p = _perturbed(spec.init_params(jax.random.PRNGKey(1), 4, jnp.float64), jax.random.PRNGKey(2))
    out = spec.apply(p, x)  # jitted inside
    assert out.shape == (7,) and out.dtype == jnp.float64
    assert_close(out, _numpy_forward(spec, p, x), rtol=1e-10)
    if isinstance(spec, tr.ResidualMLP) and spec.norm == "batch":
        stats = spec.batch_stats(p, x)
        x2 = x[::-1] + 1.0
        assert_close(spec.apply(p, x2, stats), _numpy_forward(spec, p, x2, stats), rtol=1e-10)
        assert_close(spec.apply(p, x, stats), out, rtol=1e-10)


def test_init_scales_and_layout():
    spec = tr.MLP(3, 256, init="pytorch")
    p = spec.init_params(jax.random.PRNGKey(0), 300)
    # U(-1/sqrt(n), 1/sqrt(n)) has variance 1/(3n); relative standard errors < 0.005 here
    assert abs(float(jnp.var(p["input"]["w"])) * 3 * 300 - 1) < 0.02
    assert abs(float(jnp.var(p["hidden"]["w"])) * 3 * 256 - 1) < 0.02
    res = tr.ResidualMLP(4, 256, norm="batch", skipinit=0.0)
    q = res.init_params(jax.random.PRNGKey(0), 100)
    assert abs(float(jnp.var(q["blocks"]["w1"])) * 256 / 2 - 1) < 0.02
    assert float(jnp.abs(q["blocks"]["skip"]).max()) == 0.0
    for s, params in ((spec, p), (res, q)):
        layout = s.layout()
        assert jax.tree_util.tree_structure(layout) == jax.tree_util.tree_structure(params)
        assert set(jax.tree_util.tree_leaves(layout)) <= set(tr.ROLES)


def test_spec_errors():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        tr.MLP(0, 4)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        tr.ResidualMLP(0, 4)
    with pytest.raises(TypeError, match="width"):
        tr.ResidualMLP(3, 4.5)
    with pytest.raises(ValueError, match="norm must be one of"):
        tr.ResidualMLP(3, 4, norm="layer")
    with pytest.raises(ValueError, match="at most one of alpha and gamma"):
        tr.ResidualMLP(3, 4, alpha=0.1, gamma=1.0)
    with pytest.raises(ValueError, match="init must be one of"):
        tr.MLP(3, 4, init="xavier")
    spec = tr.MLP(2, 4)
    with pytest.raises(ValueError, match="features"):
        spec.apply(spec.init_params(jax.random.PRNGKey(0), 3), np.ones((2, 5)))


# Closed forms of the propagation module doc, against Monte Carlo over initializations.
_SEEDS = 48


@pytest.mark.parametrize("spec", [
    tr.ResidualMLP(10, 64),                                  # E Q_l = 2^l q0
    tr.ResidualMLP(10, 64, norm="batch"),                    # E Q_l = q0 + l
    tr.ResidualMLP(10, 64, norm="batch", skipinit=0.5),      # q0 + l / 4
    tr.ResidualMLP(10, 64, gamma=0.5),                       # (1 + 1/L)^l q0
])
def test_stream_statistics_match_closed_form(x64, spec):
    x = np.random.default_rng(3).normal(size=(16, 12)) * 1.3
    q0 = float(np.mean(np.sum(x ** 2, 1)) / 12)
    s, b = (np.asarray(a) for a in tr.stream_statistics(spec, x, jax.random.PRNGKey(5), _SEEDS, jnp.float64))
    th = tr.stream_theory(spec, q0)
    for measured, theory in ((s[:, 1:], th.stream[1:]), (b, th.branch)):
        se = measured.std(0, ddof=1) / math.sqrt(_SEEDS)
        z = (measured.mean(0) - theory) / se
        assert np.all(np.abs(z) < 4.5), z
    # ratio of branch to skip path: a s without BN, a s / sqrt(q0 + (l-1) a^2 s^2) with it
    a_s = spec.branch_scale * (1.0 if spec.skipinit is None else spec.skipinit)
    ls = np.arange(1, spec.depth + 1)
    expect = a_s * np.ones(spec.depth) if spec.norm == "none" else a_s / np.sqrt(q0 + (ls - 1) * a_s ** 2)
    assert_close(th.ratio, expect, rtol=1e-12)


def test_stream_closed_forms_and_skipinit_identity(x64):
    th = tr.stream_theory(tr.ResidualMLP(6, 8), 1.0)
    assert_close(th.stream, 2.0 ** np.arange(7), rtol=1e-14)
    assert_close(tr.stream_theory(tr.ResidualMLP(6, 8, norm="batch"), 1.0).stream, 1.0 + np.arange(7), rtol=1e-14)
    # SkipInit at 0: every block is exactly the identity at init
    spec = tr.ResidualMLP(5, 16, skipinit=0.0)
    x = np.random.default_rng(0).normal(size=(6, 3))
    s, b = tr.stream_statistics(spec, x, jax.random.PRNGKey(0), 2, jnp.float64)
    assert np.all(np.asarray(b) == 0) and np.all(np.asarray(s) == np.asarray(s)[:, :1])
