"""Analytic kernels against finite-width networks, for every activation, with biases and
non-default variances: the mean over seeds of the empirical NNGP/NTK at width 2048 lies within
a few standard errors (from the seeds' scatter) of reskernel.kernel, and the error falls like
width^-1/2.

The weights are drawn by the lean simulator's keyed hash (reskernel.nets._lean.hash_normal,
i.i.d. N(0, 1) in float32, its moments tested in test_sweeps.py), ~10x cheaper than
jax.random.normal on a CPU: 16 ResNets of width 2048 hold 2.7e8 weights. The same draws serve
every activation (the layout depends only on depth, width and b_var > 0). Kernels in float64.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import reskernel as rk
from reskernel.nets._lean import hash_normal
from reskernel.precision import enable_x64

ACTIVATIONS = ("relu", "leaky_relu", "abs", "erf", "gelu", "sin", "cos", "identity", "tanh")
WIDTH, SEEDS, D = 2048, 16, 4
# three inputs of different norms (the general path's per-row diagonals), pre-activations O(1)
X = np.random.default_rng(7).normal(size=(3, D)) * np.array([[0.4], [0.6], [0.8]])
IU = np.triu_indices(3)
# FFNet: trained="all" adds only the readout, whose gradient kernel is the NNGP itself.
# ResNet: "all" trains every parameter, the embedding too; "hidden" is checked at one
# activation in test_error_falls_like_inverse_sqrt_width.
TRAINED = {"ffnet": "hidden", "resnet": "all"}

# Each comparison is a t statistic with SEEDS - 1 degrees of freedom. Over the file's ~240
# (correlated) comparisons, a two-sided level of 1e-3 / 240 each keeps the chance that a
# correct implementation fails below 1e-3 (Bonferroni): t_15 at that level is 7.0 standard
# errors, ~2-5% of the kernel here. _the_check_resolves_small_changes shows that the
# check fails for nets with one variance 15% off (by 12-56 standard errors).
Z_MAX = float(stats.t.isf(0.5e-3 / 240, SEEDS - 1))


def _arch(kind, activation, **change):
    spec = dict(depth=2, w_var=1.6, b_var=0.3, activation=activation, in_var=0.8)
    if kind == "ffnet":
        return rk.FeedForward(**{**spec, **change})
    return rk.ResNet(**{**spec, "gamma": 0.5, "out_var": 1.5, **change})


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(kind, width, key):
    """One net's parameters in the `kind` layout with biases, float64."""
    shapes = rk.network(_arch(kind, "relu"), width).param_shapes(D)
    keys = jax.random.split(key, len(shapes))
    return {name: hash_normal(k, shape, jnp.float64) for (name, shape), k in zip(shapes.items(), keys)}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _kernels(net, params, x, trained):
    """Empirical (nngp, ntk); under jit the parameter checks skip the values (a host pass
    over 1e8 weights per call otherwise)."""
    return tuple(rk.empirical_kernel(net, params, x, trained=trained))


@functools.lru_cache(maxsize=None)
def _ensembles(kind, width, trained, activations):
    """{activation: (empirical, analytic)}: the empirical (nngp, ntk), each (SEEDS, 3, 3), and
    the analytic (nngp, ntk) of the same arch, all float64. Seeds in the outer loop: one net's
    weights at a time (134 MB for a width-2048 ResNet), shared by the activations."""
    with enable_x64():
        x = jnp.asarray(X)
        nets = {act: rk.network(_arch(kind, act), width) for act in activations}
        emp = {act: [] for act in activations}
        for key in jax.random.split(jax.random.PRNGKey(width), SEEDS):
            params = _draw(kind, width, key)
            for act, net in nets.items():
                emp[act].append(_kernels(net, params, x, trained))
        out = {}
        for act, net in nets.items():
            e = tuple(np.stack([np.asarray(k[i]) for k in emp[act]]) for i in range(2))
            t = tuple(np.asarray(k) for k in rk.kernel(net.arch, x, trained=trained))
            assert all(a.dtype == np.float64 for a in e + t)
            out[act] = e, t
    return out


def _ensemble(kind, activation, width=WIDTH, trained=None):
    trained = trained or TRAINED[kind]
    acts = ACTIVATIONS if (width, trained) == (WIDTH, TRAINED[kind]) else (activation,)
    return _ensembles(kind, width, trained, acts)[activation]


def _z(emp, theory):
    """|mean - theory| / standard error of the mean, on the upper triangle."""
    mean = emp.mean(0)[IU]
    se = emp.std(0, ddof=1)[IU] / math.sqrt(emp.shape[0])
    return np.abs(mean - theory[IU]) / se


def _check(emp, theory, what):
    for name, e, t in zip(("nngp", "ntk"), emp, theory):
        z = _z(e, t)
        assert z.max() < Z_MAX, (what, name, z, e.mean(0)[IU], t[IU])
        # the kernel concentrates at this width: each net within ~10% of the theory
        spread = e.std(0)[IU].max() / np.abs(t[IU]).max()
        assert spread < 0.1, (what, name, spread)


@pytest.mark.parametrize("kind", ["ffnet", "resnet"])
def test_wide_nets_match_the_analytic_kernels(kind):
    """Every activation of one kind, then the power check on the same ensembles, in one test:
    as separate tests, pytest -n 2 sent them to both workers, and each computed the ensembles
    of all nine activations (their lru_cache is per process)."""
    failures = []
    for activation in ACTIVATIONS:
        try:
            _check(*_ensemble(kind, activation), (kind, activation, TRAINED[kind]))
        except AssertionError as err:
            failures.append(str(err))
    assert not failures, "\n".join(failures)
    _the_check_resolves_small_changes(kind)


def _the_check_resolves_small_changes(kind):
    """The same ensembles against the kernels of nets with one variance 15% off: the check
    fails, so it would see a missing or misplaced scale."""
    for activation in {"ffnet": ("tanh",), "resnet": ("gelu", "relu")}[kind]:
        emp, _ = _ensemble(kind, activation)
        changes = [{"w_var": 1.6 * 1.15}, {"b_var": 0.3 * 1.15}, {"in_var": 0.8 * 1.15}]
        if kind == "resnet":
            changes.append({"out_var": 1.5 * 1.15})
        for change in changes:
            with enable_x64():
                wrong = rk.kernel(_arch(kind, activation, **change), jnp.asarray(X), trained=TRAINED[kind])
            z = max(_z(emp[0], np.asarray(wrong.nngp)).max(), _z(emp[1], np.asarray(wrong.ntk)).max())
            assert z > Z_MAX, (kind, activation, change, z)


@pytest.mark.parametrize("kind, activation", [("ffnet", "tanh"), ("resnet", "gelu")])
def test_error_falls_like_inverse_sqrt_width(kind, activation):
    """log of each net's relative error against log width: OLS slope -1/2 (16 nets per width,
    trained="hidden"; for the ResNet also the analytic check at width 2048)."""
    logm, loge = [], []
    for width in (128, 512, WIDTH):
        emp, theory = _ensemble(kind, activation, width, trained="hidden")
        for e, t in zip(emp, theory):  # NNGP and NTK, a point per seed each
            err = np.linalg.norm(e - t, axis=(1, 2)) / np.linalg.norm(t)
            logm += [math.log(width)] * len(err)
            loge += list(np.log(err))
    _check(emp, theory, (kind, activation, "hidden"))
    fit = stats.linregress(logm, loge)
    # Fluctuations of an average over m neurons are ~ m^-1/2; the fit's standard error from the
    # residual scatter is 0.05-0.07 here, 4 of them bound a Gaussian fluctuation except with
    # probability 6e-5, and 0.05 allows for the O(1/m) bias of the mean at width 128. A wrong
    # scale or a missing term leaves an error floor: a slope near 0.
    assert fit.stderr < 0.1, fit
    assert abs(fit.slope + 0.5) < 4 * fit.stderr + 0.05, fit
