"""Finite convolutional nets (reskernel.nets.conv) and their empirical kernels
(reskernel.nets.conv_empirical): against a net written here from reskernel.core.conv_arch's module
doc (loops over taps, no lax.conv) and its jax.jacobian NTK; the dense nets on 1 x 1 images;
circular translation equivariance; bad input; and, in the mean over seeds of nets with 256
channels, the analytic kernels of reskernel.core.conv, with the error falling like C^-1/2.
"""
import dataclasses
import functools
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import reskernel as rk
from conftest import assert_close
from reskernel.core.conv import conv_kernel
from reskernel.core.conv_arch import ConvNet, ConvResNet, taps
from reskernel.nets._lean import hash_normal
from reskernel.nets.conv_empirical import empirical_kernel as conv_empirical_kernel
from reskernel.precision import enable_x64

# Both readouts and paddings, both specs, even and odd filters, biases, activations, variances, scales.
ARCHS = [ConvNet(2, filter_size=3, readout="flatten"),
         ConvNet(2, filter_size=2, readout="gap", padding="circular", w_var=1.3, b_var=0.2, activation="erf",
                 in_var=0.6),
         ConvResNet(2, scales=[0.9, 0.4], filter_size=3, readout="gap", w_var=1.2, b_var=0.15, activation="tanh",
                    in_var=1.4, out_var=0.7)]


def _images(n, h, w, c, seed):
    return np.random.default_rng(seed).normal(size=(n, h, w, c))


def _params(net, in_channels, image_size, seed, dtype=np.float64):
    """N(0, 1) parameters in net.init's layout, drawn by NumPy (jax.random.normal compiles for
    1-2 s per call site on a CPU; net.init itself is tested in test_init)."""
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s).astype(dtype) for n, s in net.param_shapes(in_channels, image_size).items()}


def _shift(y, t0, t1, padding):
    """y(p + t) for every position p of y (n, H, W, C): wrapped, or zero outside the image."""
    if padding == "circular":
        return jnp.roll(y, (-t0, -t1), axis=(1, 2))
    h, w = y.shape[1:3]
    k = max(abs(t0), abs(t1))
    yp = jnp.pad(y, ((0, 0), (k, k), (k, k), (0, 0)))
    return yp[:, k + t0:k + t0 + h, k + t1:k + t1 + w]


def _brute_conv(w, y, padding):
    """sum_t W[t]^T y(p + t), W[i, j] the tap (taps[i], taps[j])."""
    ts = taps(w.shape[0])
    shifted = jnp.stack([_shift(y, ti, tj, padding) for ti in ts for tj in ts])
    return jnp.einsum("tnhwc,tcd->nhwd", shifted, w.reshape(-1, *w.shape[2:]))


def _brute_forward(arch, p, x):
    """f(x) for images x (n, H, W, C0): the nets of reskernel.core.conv_arch's module doc."""
    k, pad, c = arch.filter_size, arch.padding, p["readout"].shape[-1]
    phi = arch.activation
    sb = math.sqrt(arch.b_var)
    bias = (lambda b: sb * b) if arch.b_var > 0 else (lambda b: 0.0)
    if isinstance(arch, ConvNet):
        z = math.sqrt(arch.in_var / k ** 2) * _brute_conv(p["input"], x, pad) + bias(p.get("input_bias"))
        for l in range(arch.depth - 1):
            b = p["hidden_bias"][l] if arch.b_var else None
            z = math.sqrt(arch.w_var / (k * k * c)) * _brute_conv(p["hidden"][l], phi(z), pad) + bias(b)
        top, top_var = phi(z), arch.w_var
    else:
        h = math.sqrt(arch.in_var / k ** 2) * _brute_conv(p["embed"], x, pad) + bias(p.get("embed_bias"))
        for l, a in enumerate(arch.branch_scales):
            b = p["b"][l] if arch.b_var else None
            u = math.sqrt(arch.w_var / (k * k * c)) * _brute_conv(p["W"][l], h, pad) + bias(b)
            h = h + a * math.sqrt(1 / (k * k * c)) * _brute_conv(p["V"][l], phi(u), pad)
        top, top_var = h, arch.out_var
    if arch.readout == "flatten":
        out = math.sqrt(top_var / top[0].size) * jnp.einsum("nhwc,hwc->n", top, p["readout"])
    else:
        out = math.sqrt(top_var / c) * jnp.mean(top, axis=(1, 2)) @ p["readout"]
    return out + bias(p.get("readout_bias"))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _brute_jacobian(arch, params, x, groups):
    """jax.jacobian of _brute_forward at images x in the flattened parameters of `groups`."""
    flat, unravel = jax.flatten_util.ravel_pytree({g: params[g] for g in groups})
    return jax.jacobian(lambda theta: _brute_forward(arch, {**params, **unravel(theta)}, x))(flat)


@pytest.mark.parametrize("arch, trained", list(zip(ARCHS, ["hidden", "all", "all"])))
def test_methods_agree_with_brute_force_jacobians(x64, arch, trained):
    net = rk.network(arch, channels=3)
    params = _params(net, 2, (4, 5), 0)
    x1, x2 = _images(3, 4, 5, 2, 1), _images(2, 4, 5, 2, 2)
    groups = rk.networks.param_groups(arch.dense, trained)
    assert (set(groups) == set(params)) == (trained == "all")
    # the Jacobian of the readout alone: d f / d (v, b_out), whose kernel is the NNGP
    readout = rk.networks.param_groups(arch.dense, "nngp")
    every = tuple(sorted(set(groups) | set(readout)))
    assert every[-len(readout):] == readout   # ravel_pytree sorts the names: the readout's columns come last
    jac = _brute_jacobian(arch, params, np.concatenate([x1, x2]), every)
    j1, j2 = jac[:3], jac[3:]
    cut = -sum(params[g].size for g in readout)
    (j1, r1), (j2, r2) = ((j[:, :cut] if trained == "hidden" else j, j[:, cut:]) for j in (j1, j2))
    # the NNGP is the readout's gradient kernel, features . features' + b_var: with the readout
    # weights, the features give f, so the forward pass is checked too. "jacobian" (jax.jacrev of
    # the library's forward) at one arch: its compilation is the slowest.
    for method in ("structured", "jacobian") if arch is ARCHS[0] else ("structured",):
        e = rk.empirical_kernel(net, params, x1, x2, trained=trained, method=method, batch_size=2)
        assert e.ntk.shape == (3, 2) and e.ntk.dtype == np.float64
        assert_close(e.ntk, j1 @ j2.T, rtol=1e-10, atol=1e-12)
        assert_close(e.nngp, r1 @ r2.T, rtol=1e-12)
    if arch in ARCHS[1:]:  # symmetric call, two blocks, the last padded (diagonal blocks: filter gradients formed once)
        e = rk.empirical_kernel(net, params, x1, trained=trained, batch_size=2)
        assert_close(e.ntk, j1 @ j1.T, rtol=1e-10, atol=1e-12)


def _dense_params(arch, p):
    """The dense net's parameters equal to a conv net's on 1 x 1 images: every tap reads the one
    pixel, so a k x k filter acts as sum_t W[t] = k W_dense^T (and k^2 W_dense's gradient
    spreads evenly over the k^2 taps, so the NTKs agree too)."""
    def mat(w):  # (..., k, k, C_in, C_out) -> (..., C_out, C_in)
        return jnp.swapaxes(w.sum(axis=(-4, -3)), -1, -2) / arch.filter_size

    filters = ("input", "hidden", "embed", "W", "V")
    return {n: mat(v) if n in filters else v.reshape(-1) if n == "readout" else v for n, v in p.items()}


@pytest.mark.parametrize("arch", [ConvNet(3, filter_size=3, padding="circular", b_var=0.3, activation="erf",
                                          in_var=0.7),
                                  ConvResNet(2, alpha=0.6, filter_size=1, readout="flatten", b_var=0.2,
                                             activation="tanh", out_var=1.3)])
def test_one_pixel_images_are_the_dense_nets(x64, arch):
    """A 1 x 1 image with circular padding (any filter) or filter_size 1: the dense net."""
    conv_net, dense_net = rk.network(arch, channels=5), rk.network(arch.dense, width=5)
    p = _params(conv_net, 4, (1, 1), 3)
    q = _dense_params(arch, p)
    x = _images(4, 1, 1, 4, 5)
    assert_close(conv_net.apply(p, x), dense_net.apply(q, x.reshape(4, 4)), rtol=1e-12)
    e = rk.empirical_kernel(conv_net, p, x, trained="all")
    d = rk.empirical_kernel(dense_net, q, x.reshape(4, 4), trained="all")
    assert_close(e.nngp, d.nngp, rtol=1e-12)
    assert_close(e.ntk, d.ntk, rtol=1e-10)


@pytest.mark.parametrize("arch", [ConvNet(2, filter_size=3, padding="circular", b_var=0.1, readout="flatten"),
                                  ConvResNet(2, filter_size=2, padding="circular", readout="gap")])
def test_circular_padding_is_translation_equivariant(arch):
    net = rk.network(arch, channels=6)
    p = _params(net, 2, (5, 4), 1, np.float32)
    x = _images(3, 5, 4, 2, 6).astype(np.float32)
    rolled = np.roll(x, (2, -1), axis=(1, 2))
    top = net.forward(p, x).inputs["hidden" if isinstance(arch, ConvNet) else "V"][-1]
    top_rolled = net.forward(p, rolled).inputs["hidden" if isinstance(arch, ConvNet) else "V"][-1]
    assert_close(top_rolled, np.roll(top, (2, -1), axis=(1, 2)), rtol=1e-5, atol=1e-6)
    if arch.readout == "gap":   # pooled outputs and kernels are invariant
        assert_close(net.apply(p, rolled), net.apply(p, x), rtol=1e-5, atol=1e-6)
        e, e_rolled = rk.empirical_kernel(net, p, x), rk.empirical_kernel(net, p, rolled, x)
        assert_close(e_rolled.ntk, e.ntk, rtol=1e-5, atol=1e-6)
        assert_close(e_rolled.nngp, e.nngp, rtol=1e-5, atol=1e-6)
        # zero padding ("same") is not: the images' borders move
        same = rk.network(dataclasses.replace(arch, padding="same"), channels=6)
        moved = np.abs(same.apply(p, rolled) - same.apply(p, x)) / np.abs(same.apply(p, x))
        assert moved.max() > 1e-2, moved


def test_init():
    """net.init: the layout of param_shapes, N(0, 1) entries, the same weights whatever b_var."""
    arch = ConvResNet(2, filter_size=3, readout="flatten")
    net, biased = rk.network(arch, channels=16), rk.network(dataclasses.replace(arch, b_var=0.1), channels=16)
    p = net.init(jax.random.PRNGKey(4), 3, image_size=(2, 3))
    q = biased.init(jax.random.PRNGKey(4), 3, jnp.float32, image_size=(2, 3))
    assert {n: v.shape for n, v in q.items()} == biased.param_shapes(3, (2, 3))
    assert set(q) - set(p) == {"embed_bias", "b", "readout_bias"} and q["b"].dtype == np.float32
    for name in p:
        np.testing.assert_array_equal(p[name], q[name])
    w = np.concatenate([np.ravel(v) for v in p.values()])   # 9,360 draws
    assert abs(w.mean()) < 4 / math.sqrt(w.size) and abs(w.std() - 1) < 4 / math.sqrt(2 * w.size)
    assert not np.array_equal(p["W"][0], p["W"][1])


def test_bad_input():
    arch = ConvNet(2, filter_size=3, readout="flatten")
    net = rk.network(arch, channels=4)
    p = net.init(jax.random.PRNGKey(0), 3, image_size=(5, 5))
    x = _images(2, 5, 5, 3, 0)
    with pytest.raises(ValueError, match="rank 4"):
        rk.empirical_kernel(net, p, x.reshape(2, 25, 3))
    with pytest.raises(ValueError, match="made for images of 3 channels, x1 has 2"):
        rk.empirical_kernel(net, p, x[..., :2])
    with pytest.raises(ValueError, match="made for 5 x 5 images"):
        net.apply(p, _images(2, 6, 6, 3, 0))
    gap = rk.network(ConvNet(2), channels=4)
    with pytest.raises(ValueError, match="channels-first"):
        gap.apply(_params(gap, 8, None, 0, np.float32), np.ones((2, 2, 8, 8)))
    with pytest.raises(ValueError, match="one shape"):
        rk.empirical_kernel(net, p, x, _images(2, 5, 5, 2, 0))
    with pytest.raises(ValueError, match="image_size"):
        net.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        rk.network(ConvNet(2), channels=4).init(jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="non-finite"):
        net.apply(p, np.where(x > 2, np.nan, x))
    with pytest.raises(ValueError, match="method must be one of"):
        rk.empirical_kernel(net, p, x, method="ntvp-magic")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        rk.empirical_kernel(net, p, x, batch_size=0)
    with pytest.raises(ValueError, match="missing"):
        net.apply({k: v for k, v in p.items() if k != "hidden"}, x)
    with pytest.raises(TypeError, match="convolutional net"):
        conv_empirical_kernel(rk.network(rk.FeedForward(2), 4), p, x)
    with pytest.raises(TypeError, match="channels= is the width of a convolutional arch"):
        rk.network(rk.FeedForward(2), channels=4)
    with pytest.raises(TypeError, match="exactly one of width and channels"):
        rk.network(arch, width=4, channels=4)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        rk.network(arch, channels=0)
    assert rk.network(arch, 4) == net    # width is the channel count


# ---- finite width: the mean over seeds against reskernel.core.conv (float32 nets, float64 theory)

CHANNELS, SEEDS = 256, 16
X = _images(3, 4, 4, 2, 7) * np.array([0.6, 0.8, 1.0])[:, None, None, None]   # three norms
IU = np.triu_indices(3)
WIDE = [(ConvNet(2, filter_size=3, readout="gap"), "hidden"),
        (ConvResNet(2, gamma=0.5, filter_size=3, readout="flatten"), "all"),
        (ConvResNet(2, alpha=0.7, filter_size=3, readout="gap", padding="circular", b_var=0.1, out_var=1.5,
                    activation="erf"), "hidden")]
# t statistics with SEEDS - 1 degrees of freedom over 3 archs x 2 kernels x 6 entries: a
# two-sided level of 1e-3 / 36 each keeps the chance that a correct implementation fails any
# below 1e-3 (Bonferroni): 5.9 standard errors.
Z_MAX = float(stats.t.isf(0.5e-3 / 36, SEEDS - 1))


@functools.lru_cache(maxsize=None)
def _ensemble(arch, trained, channels):
    """Empirical (nngp, ntk) of SEEDS nets, each (SEEDS, 3, 3), float32; weights by the lean
    simulator's hash (N(0, 1), tested in test_sweeps.py), 10x cheaper than jax.random.normal."""
    net = rk.network(arch, channels=channels)
    shapes = net.param_shapes(2, (4, 4))

    @jax.jit
    def one(key):
        keys = jax.random.split(key, len(shapes))
        params = {n: hash_normal(k, s, jnp.float32) for (n, s), k in zip(shapes.items(), keys)}
        return tuple(rk.empirical_kernel(net, params, jnp.asarray(X, jnp.float32), trained=trained))

    kernels = [one(k) for k in jax.random.split(jax.random.PRNGKey(channels), SEEDS)]
    return tuple(np.stack([np.asarray(k[i], np.float64) for k in kernels]) for i in range(2))


def _theory(arch, trained):
    """The analytic (nngp, ntk), float64."""
    with enable_x64():
        return tuple(np.asarray(k) for k in conv_kernel(arch, X, trained=trained))


def _z(emp, theory):
    """|mean - theory| / standard error of the mean, on the upper triangle."""
    se = emp.std(0, ddof=1)[IU] / math.sqrt(emp.shape[0])
    return np.abs(emp.mean(0)[IU] - theory[IU]) / se


@pytest.mark.slow
@pytest.mark.parametrize("arch, trained", WIDE)
def test_wide_nets_match_the_analytic_kernels(arch, trained):
    emp, theory = _ensemble(arch, trained, CHANNELS), _theory(arch, trained)
    assert theory[0].dtype == np.float64
    for name, e, t in zip(("nngp", "ntk"), emp, theory):
        z = _z(e, t)
        assert z.max() < Z_MAX, (name, z, e.mean(0)[IU], t[IU])


@pytest.mark.slow
def test_the_check_resolves_small_changes():
    """The same ensembles against the kernels of nets with one variance 20% off: the check fails
    (by 8-30 standard errors here), so it would see a missing or misplaced scale."""
    for (arch, trained), change in zip(WIDE, [{"in_var": 1.2}, {"out_var": 1.2}, {"b_var": 0.12}]):
        emp = _ensemble(arch, trained, CHANNELS)
        wrong = _theory(dataclasses.replace(arch, **change), trained)
        z = max(_z(e, t).max() for e, t in zip(emp, wrong))
        assert z > Z_MAX, (arch, change, z)


@pytest.mark.slow
def test_error_falls_like_inverse_sqrt_channels():
    """log of each net's relative error against log C at C = 64 and 256: OLS slope -1/2 (the
    pooled ConvResNet, 16 nets per width)."""
    arch, trained = WIDE[2]
    theory = _theory(arch, trained)
    logc, loge = [], []
    for channels in (64, CHANNELS):
        for e, t in zip(_ensemble(arch, trained, channels), theory):
            err = np.linalg.norm(e - t, axis=(1, 2)) / np.linalg.norm(t)
            logc += [math.log(channels)] * len(err)
            loge += list(np.log(err))
    fit = stats.linregress(logc, loge)
    # as in test_finite_width.py: 4 standard errors of the fit and 0.05 for the O(1/C) bias of
    # the mean at C = 64; a wrong scale or a missing term leaves an error floor (slope near 0)
    assert fit.stderr < 0.12, fit
    assert abs(fit.slope + 0.5) < 4 * fit.stderr + 0.05, fit
