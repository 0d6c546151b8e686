import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from conftest import assert_close

# The empirical kernel's code paths: FeedForward / ResNet; ReLU (mask), other homogeneous phi
# (leaky ReLU: 1/sqrt(m) in front of phi), non-homogeneous phi (1/sqrt(m) after it); biases or
# not; in_var, out_var = 1 or not. A bias-free ReLU ResNet with gamma = 1 (uniform scales, once
# in this list) runs the same lines as the one with explicit scales; its empirical kernel is
# checked by the wide-net tests below and against neural-tangents in test_reference_nt.py.
ARCHS = [rk.FeedForward(3), rk.ResNet(4, scales=[0.8, 0.4, 0.2, 0.1]),
         # biases, non-ReLU activations, non-default variances; the ResNet branch's two paths
         rk.FeedForward(3, w_var=1.3, b_var=0.2, activation="erf", in_var=0.6),
         rk.ResNet(3, gamma=0.7, w_var=0.9, b_var=0.15, activation="tanh", in_var=1.4, out_var=0.7),
         rk.ResNet(2, alpha=0.6, w_var=1.2, b_var=0.3, activation="leaky_relu", out_var=2.0)]


def _x(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


def _brute_forward(arch, p, x):
    """The net of reskernel.core.arch's module doc, written here in jax.numpy (not the library's
    forward pass): f(x) for x (n, d)."""
    m = p["readout"].shape[0]
    phi = arch.activation
    sb = jnp.sqrt(arch.b_var)
    bias = (lambda name: sb * p[name]) if arch.b_var > 0 else (lambda name: 0.0)
    if isinstance(arch, rk.FeedForward):
        z = jnp.sqrt(arch.in_var) * x @ p["input"].T + bias("input_bias")
        for l in range(arch.depth - 1):
            z = jnp.sqrt(arch.w_var / m) * phi(z) @ p["hidden"][l].T + (sb * p["hidden_bias"][l] if arch.b_var else 0)
        return jnp.sqrt(arch.w_var / m) * phi(z) @ p["readout"] + bias("readout_bias")
    h = (jnp.sqrt(arch.in_var) * x @ p["embed"].T + bias("embed_bias")) / jnp.sqrt(m)
    for l, a in enumerate(arch.branch_scales):
        u = jnp.sqrt(arch.w_var) * h @ p["W"][l].T + (sb * p["b"][l] if arch.b_var else 0)
        h = h + a * phi(u) @ p["V"][l].T / m
    return jnp.sqrt(arch.out_var) * h @ p["readout"] + bias("readout_bias")


@functools.partial(jax.jit, static_argnums=0)
def _brute_jacobian(arch, params, x):
    """{name: d f(x) / d params[name], (n, #entries)}: jax.jacobian of _brute_forward, jitted
    (one compilation per arch; eager, it dispatched ~120 small compilations per call)."""
    jac = jax.jacobian(lambda p: _brute_forward(arch, p, x))(params)
    return {g: j.reshape(x.shape[0], -1) for g, j in jac.items()}


def _brute_ntk(jac, n1, groups):
    """J(x1) J(x2)^T over the parameters of `groups`, x1 the first n1 rows: the brute-force NTK
    (or, for the readout groups, NNGP). In NumPy: eager jax ops compiled per shape (~60 small
    compilations over the archs)."""
    return sum(np.asarray(jac[g])[:n1] @ np.asarray(jac[g])[n1:].T for g in groups)


def _normal_params(net, d, seed=0):
    """N(0, 1) parameters in net.init's layout, drawn by NumPy (net.init compiles per shape;
    it is tested in test_networks.py)."""
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in net.param_shapes(d).items()}


@pytest.mark.parametrize("arch", ARCHS)
def test_methods_agree_with_brute_force_jacobians(x64, arch):
    """Both `trained` choices in one test: they share the brute-force Jacobian (and, for
    FeedForward without biases, the structured method's compilation). At the first two archs
    (a FeedForward, a ResNet) x1 and x2 are split into ragged blocks (3, 3, 1 and 3, 1; 4, 3
    and 4) by both methods; the block assembly does not depend on the arch, so the others
    split 6 and 3 rows into equal blocks of 3 (2 x 1 blocks), one block shape per method and
    `trained` to compile instead of two (and 1 instead of 4 shape pairs to contract). A single
    block is the default in test_symmetric_call_and_jit and the wide-net tests. Compilation is
    the cost here."""
    ragged = arch in ARCHS[:2]
    n1, n2 = (7, 4) if ragged else (6, 3)
    net = rk.network(arch, 12)
    params = _normal_params(net, 4)
    x1, x2 = _x(n1, 4, 1), _x(n2, 4, 2)
    jac = _brute_jacobian(arch, params, np.concatenate([x1, x2]))
    # NNGP: the readout-gradient kernel, d f / d (v, b_out) = (features, sqrt(b_var))
    readout = _brute_ntk(jac, n1, rk.networks.param_groups(arch, "nngp"))
    feats = np.asarray(net.features(params, np.concatenate([x1, x2])))
    assert_close(feats[:n1] @ feats[n1:].T + arch.b_var, readout, rtol=1e-12)
    for trained in ("hidden", "all"):
        groups = rk.networks.param_groups(arch, trained)
        # every parameter is trained in "all"; "hidden" leaves out the readout (and embedding)
        assert (set(groups) == set(params)) == (trained == "all")
        direct = _brute_ntk(jac, n1, groups)
        # "jacobian" (jax.jacrev of the library's forward; only the choice of groups depends
        # on `trained`) at "all" everywhere, "hidden" at the three biased nets (both kinds)
        methods = (("structured", 3), ("jacobian", 4 if ragged else 3)) if trained == "all" or arch.b_var > 0 else (("structured", 3),)
        for method, bs in methods:
            e = rk.empirical_kernel(net, params, x1, x2, trained=trained, method=method, batch_size=bs)
            assert e.ntk.shape == (n1, n2)
            assert_close(e.ntk, direct, rtol=1e-10, atol=1e-12, err_msg=f"{trained} {method}")
            assert_close(e.nngp, readout, rtol=1e-12, err_msg=f"{trained} {method}")


def test_symmetric_call_and_jit(x64):
    net = rk.network(rk.ResNet(2), 10)
    params = _normal_params(net, 3)
    x = _x(6, 3, 3)
    e = rk.empirical_kernel(net, params, x, batch_size=4)
    assert_close(e.ntk, e.ntk.T, rtol=1e-12)
    assert_close(e.ntk, rk.empirical_kernel(net, params, x, x).ntk, rtol=1e-12)
    # the building blocks trace under jit (params as arguments)
    feats = jax.jit(net.features)(params, x)
    assert_close(feats @ feats.T, e.nngp, rtol=1e-12)


@functools.lru_cache(maxsize=None)
def _ensemble(arch, width, seeds):
    """Empirical kernels of `seeds` independent float32 nets (net.init) on 4 fixed inputs:
    (x, nngp, {"hidden": ntk, "all": ntk}), each kernel stacked over seeds. One jit: lax.map
    over the keys draws one net at a time and computes both `trained` kernels from it (under
    jit the parameter checks skip the values)."""
    x = _x(4, 5, 10).astype(np.float32)
    net = rk.network(arch, width)

    def one(key):
        params = net.init(key, 5, dtype=jnp.float32)
        hidden = rk.empirical_kernel(net, params, x, trained="hidden")
        return hidden.nngp, hidden.ntk, rk.empirical_kernel(net, params, x, trained="all").ntk

    keys = jax.random.split(jax.random.PRNGKey(width), seeds)
    nngp, hidden, all_ = (np.asarray(k, np.float64) for k in jax.jit(lambda k: jax.lax.map(one, k))(keys))
    return x.astype(np.float64), nngp, {"hidden": hidden, "all": all_}


# 48 nets of width 512 resolve the mean as finely as 12 of width 2048 (the standard error is
# ~ (width * seeds)^-1/2) with a quarter of the weights to draw; the nets' scatter, ~ width^-1/2,
# is twice that at 2048.
WIDE, SEEDS = 512, 48


@pytest.mark.slow
@pytest.mark.parametrize("arch", [rk.FeedForward(3), rk.ResNet(3, gamma=1.0), rk.ResNet(3, gamma=0.5)])
@pytest.mark.parametrize("trained", ["hidden", "all"])
def test_wide_nets_converge_to_theory(x64, arch, trained):
    """Mean over seeds at width 512 within a few standard errors of the analytic kernel."""
    x, nngp, ntks = _ensemble(arch, WIDE, SEEDS)
    ntk = ntks[trained]
    theory = rk.kernel(arch, x, trained=trained)
    iu = np.triu_indices(4)
    for emp, th in ((nngp, theory.nngp), (ntk, theory.ntk)):
        mean, se = emp.mean(0)[iu], emp.std(0, ddof=1)[iu] / np.sqrt(len(emp))
        z = np.abs(mean - np.asarray(th)[iu]) / se
        assert z.max() < 4.5, (z, mean, np.asarray(th)[iu])
        # and the spread itself is small at this width: the kernel concentrates (0.15 at width
        # 2048, so 0.3 at 512)
        assert np.max(emp.std(0)[iu] / np.abs(np.asarray(th)[iu]).max()) < 0.15 * np.sqrt(2048 / WIDE)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [rk.FeedForward(3), rk.ResNet(3, gamma=1.0)])
def test_error_shrinks_like_one_over_sqrt_width(x64, arch):
    """RMS deviation from theory at widths m and 16 m: ratio about sqrt(16) = 4. The width-512
    ensembles are test_wide_nets_converge_to_theory's."""
    rms = []
    for width in (WIDE // 16, WIDE):
        x, _, ntks = _ensemble(arch, width, SEEDS)
        ntk = ntks["hidden"]
        theory = np.asarray(rk.kernel(arch, x).ntk)
        rms.append(np.sqrt(np.mean((ntk - theory) ** 2)))
    ratio = rms[0] / rms[1]
    # 48 seeds x 16 entries: the RMS estimates carry ~10-15% noise each
    assert 2.8 < ratio < 5.7, ratio


# ---- parameters are checked against the network before any kernel is computed

def _net_params(arch=rk.FeedForward(3), width=8, d=4, seed=0):
    """A net and float32 parameters in its layout, drawn by NumPy: net.init compiles one
    jax.random.normal per shape (~1.5 s each, ~10 shapes here); net.init itself is tested in
    test_networks.py and by the wide-net tests above."""
    net = rk.network(arch, width)
    return net, {k: jnp.asarray(v, jnp.float32) for k, v in _normal_params(net, d, seed).items()}


@pytest.mark.parametrize("method", rk.empirical.METHODS)
def test_int_readout_is_refused(method):
    # Before: the inputs were cast to the readout's int32 and the kernel came out ~60% off.
    net, params = _net_params()
    bad = {**params, "readout": params["readout"].astype(jnp.int32)}
    with pytest.raises(TypeError, match=r"params\['readout'\] has dtype int32; parameters must be float32 or float64"):
        rk.empirical_kernel(net, bad, _x(3, 4, 0), method=method)


@pytest.mark.parametrize("method", rk.empirical.METHODS)
def test_params_of_a_deeper_net_are_refused(method):
    # Before: method="jacobian" silently returned the depth-4 net's kernel.
    net, _ = _net_params(rk.FeedForward(3))
    _, deeper = _net_params(rk.FeedForward(4))
    with pytest.raises(ValueError, match=r"params\['hidden'\] has shape \(3, 8, 8\), expected \(2, 8, 8\) for a "
                                         r"FeedForward\(depth=3\) of width 8.*depth-4 net, this one has depth 3"):
        rk.empirical_kernel(net, deeper, _x(3, 4, 0), method=method)
    res, _ = _net_params(rk.ResNet(2))
    _, res3 = _net_params(rk.ResNet(3))
    with pytest.raises(ValueError, match=r"params\['W'\] has shape \(3, 8, 8\), expected \(2, 8, 8\)"):
        rk.empirical_kernel(res, res3, _x(3, 4, 0), method=method)


@pytest.mark.parametrize("method", rk.empirical.METHODS)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_params_are_refused(method, value):
    # Before: NaN kernels.
    net, params = _net_params(rk.ResNet(2))
    bad = {**params, "V": params["V"].at[1, 2, 3].set(value)}
    with pytest.raises(ValueError, match=r"params\['V'\] has 1 non-finite entries \(nan or inf\) of 128"):
        rk.empirical_kernel(net, bad, _x(3, 4, 0), method=method)


@pytest.mark.parametrize("edit, exc, match", [
    (lambda p: {k: v for k, v in p.items() if k != "hidden"}, ValueError, r"keys \['input', 'hidden', 'readout'\]; missing \['hidden'\]"),
    (lambda p: {**p, "embed": p["input"]}, ValueError, r"unexpected \['embed'\]"),
    (lambda p: [p["input"], p["hidden"], p["readout"]], TypeError, "params must be the dict made by net.init"),
    (lambda p: {**p, "readout": p["readout"].tolist()}, TypeError, r"params\['readout'\] must be an array of shape \(8,\)"),
    (lambda p: {**p, "readout": p["readout"][:7]}, ValueError, r"params\['readout'\] has shape \(7,\), expected \(8,\)"),
    (lambda p: {**p, "input": p["input"][:, :3]}, ValueError, "expect inputs of dimension 3, got inputs of dimension 4"),
    (lambda p: {**p, "hidden": p["hidden"].astype(jnp.float16)}, TypeError, r"params\['hidden'\] has dtype float16"),
    (lambda p: {**p, "input": np.asarray(p["input"], np.float64)}, TypeError,
     "params mix dtypes .input float64, hidden float32, readout float32."),
])
def test_bad_params_structure_shapes_dtypes(edit, exc, match):
    net, params = _net_params()
    with pytest.raises(exc, match=match):
        rk.empirical_kernel(net, edit(params), _x(3, 4, 0))


def test_params_checked_under_jit_and_vmap():
    net, params = _net_params()
    x = _x(3, 4, 0).astype(np.float32)
    # Traced params: shapes and dtypes are checked at trace time, values are not (unknown).
    out = jax.jit(net.apply)(params, x)
    assert_close(out, net.apply(params, x))
    _, deeper = _net_params(rk.FeedForward(4))
    with pytest.raises(ValueError, match="depth-4 net"):
        jax.jit(net.apply)(deeper, x)
    # two nets stacked, as jax.vmap(net.init) over two keys makes them (tested in
    # test_networks.py::test_init_shapes_and_vmap_over_keys)
    second = _net_params(seed=1)[1]
    stacked = {k: jnp.stack([params[k], second[k]]) for k in params}
    assert jax.vmap(lambda p: net.apply(p, x))(stacked).shape == (2, 3)
    with pytest.raises(ValueError, match=r"params\['input'\] has shape \(2, 8, 4\), expected \(8, 4\)"):
        net.apply(stacked, x)  # a stack of nets is not one net: vmap over it


@pytest.mark.parametrize("method", rk.empirical.METHODS)
def test_bias_params_must_match_b_var(method):
    # The bias arrays exist exactly when b_var > 0; a mismatch names them and b_var.
    biased, params = _net_params(rk.ResNet(2, b_var=0.2, activation="erf"))
    plain, _ = _net_params(rk.ResNet(2))
    x = _x(3, 4, 0)
    with pytest.raises(ValueError, match=r"missing \['b'\] \(an arch with b_var = 0.2 has bias parameters "
                                         r"\['embed_bias', 'b', 'readout_bias'\]"):
        rk.empirical_kernel(biased, {k: v for k, v in params.items() if k != "b"}, x, method=method)
    with pytest.raises(ValueError, match=r"unexpected \['b', 'embed_bias', 'readout_bias'\] \(this arch has "
                                         r"b_var = 0, so no bias parameters"):
        rk.empirical_kernel(plain, params, x, method=method)
    with pytest.raises(ValueError, match=r"params\['readout_bias'\] has 1 non-finite entries"):
        rk.empirical_kernel(biased, {**params, "readout_bias": jnp.asarray(np.inf, jnp.float32)}, x, method=method)
    e = rk.empirical_kernel(biased, params, x, method=method)
    assert e.ntk.dtype == jnp.float32 and e.nngp.shape == (3, 3)


def test_lean_simulator_refuses_general_nets():
    # It writes out the bias-free He-scaled ReLU nets only: another net would be simulated wrong.
    from reskernel.nets._lean import lean_kernels, lean_params

    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    for arch in (rk.FeedForward(2, activation="tanh"), rk.ResNet(2, b_var=0.1), rk.ResNet(2, out_var=2.0)):
        with pytest.raises(ValueError, match="the lean simulator covers the default bias-free He-scaled ReLU nets only"):
            lean_kernels(keys, jnp.ones((2, 3)), arch=arch, width=8)
        with pytest.raises(ValueError, match="use reskernel.empirical_kernel"):
            lean_params(arch, 8, keys[0], 3)
