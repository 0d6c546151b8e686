import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from conftest import assert_close


# The general nets: every activation family, biases, non-default variances, both paths of
# the ResNet branch (homogeneous phi: the 1/sqrt(m) ahead of phi).
GENERAL = [
    rk.FeedForward(3, w_var=1.3, b_var=0.2, activation="erf", in_var=0.6),
    rk.FeedForward(1, w_var=2.5, b_var=0.4, activation="gelu"),
    rk.FeedForward(2, activation="cos", in_var=1.7),
    rk.ResNet(3, gamma=0.7, w_var=0.9, b_var=0.15, activation="tanh", in_var=1.4, out_var=0.7),
    rk.ResNet(2, scales=[0.3, 2.0], w_var=1.2, b_var=0.3, activation="leaky_relu", out_var=2.0),
    rk.ResNet(1, alpha=0.5, b_var=0.25, activation="abs", in_var=0.5),
    rk.ResNet(2, w_var=3.0, activation="sin"),
]


def _numpy_forward(arch, params, x):
    """Independent forward pass written from reskernel.core.arch's module doc with NumPy."""
    p = {k: np.asarray(v) for k, v in params.items()}
    m = p["readout"].shape[0]
    phi = lambda z: np.asarray(arch.activation(z))
    sb = np.sqrt(arch.b_var)
    bias = (lambda name: sb * p[name]) if arch.b_var > 0 else (lambda name: np.zeros(()))
    if isinstance(arch, rk.FeedForward):
        z = np.sqrt(arch.in_var) * x @ p["input"].T + bias("input_bias")
        for l, w in enumerate(p["hidden"]):
            z = np.sqrt(arch.w_var / m) * phi(z) @ w.T + (bias("hidden_bias")[l] if arch.b_var > 0 else 0.0)
        return np.sqrt(arch.w_var / m) * phi(z) @ p["readout"] + bias("readout_bias")
    h = (np.sqrt(arch.in_var) * x @ p["embed"].T + bias("embed_bias")) / np.sqrt(m)
    for l, (a, w, v) in enumerate(zip(arch.branch_scales, p["W"], p["V"])):
        u = np.sqrt(arch.w_var) * h @ w.T + (bias("b")[l] if arch.b_var > 0 else 0.0)
        h = h + a * phi(u) @ v.T / m
    return np.sqrt(arch.out_var) * h @ p["readout"] + bias("readout_bias")


def test_apply_matches_numpy_forward(x64):
    x = np.random.default_rng(0).normal(size=(5, 3))
    default = [rk.FeedForward(1), rk.FeedForward(4), rk.ResNet(3, gamma=0.5), rk.ResNet(2, scales=[0.3, 2.0])]
    rng = np.random.default_rng(1)
    for arch in default + GENERAL:
        net = rk.network(arch, 7)
        # NumPy draws: net.init compiles per shape (~4 per arch); it is tested below
        params = {k: rng.normal(size=shape) for k, shape in net.param_shapes(3).items()}
        out = net.apply(params, x)
        assert out.shape == (5,)
        assert_close(out, _numpy_forward(arch, params, x), rtol=1e-12, err_msg=str(arch))
        assert_close(net.apply(params, x[0]), out[0], rtol=1e-12)
        # the features are the readout's input, scaled so that NNGP = features . features' + b_var
        feats = net.features(params, x)
        bias = arch.b_var ** 0.5 * params["readout_bias"] if arch.b_var > 0 else 0.0
        assert_close(feats @ params["readout"] + bias, out, rtol=1e-12)


def test_default_nets_unchanged_by_the_general_parametrization(x64):
    """A default net spelled out with its defaults is the same object; giving b_var > 0 only
    adds bias parameters: the weights drawn from a key stay those of the bias-free net, and with
    zero biases the outputs are the bias-free net's."""
    assert rk.FeedForward(3, w_var=2.0, b_var=0.0, activation="relu", in_var=1.0) == rk.FeedForward(3)
    x = np.random.default_rng(2).normal(size=(4, 3))
    for arch, biases in ((rk.FeedForward(3), ("input_bias", "hidden_bias", "readout_bias")),
                         (rk.ResNet(2), ("embed_bias", "b", "readout_bias"))):
        plain = rk.network(arch, 8)
        biased = rk.network(dataclasses.replace(arch, b_var=0.3), 8)
        p0 = plain.init(jax.random.PRNGKey(5), 3)
        p1 = biased.init(jax.random.PRNGKey(5), 3)
        assert set(p1) == set(p0) | set(biases)
        assert biased.param_shapes(3) == {k: v.shape for k, v in p1.items()}
        for k in p0:
            np.testing.assert_array_equal(p0[k], p1[k])
        assert not np.allclose(p1[biases[0]], p1[next(iter(p0))][:, 0])  # their own draws
        zero = {**p1, **{b: jnp.zeros_like(p1[b]) for b in biases}}
        assert_close(biased.apply(zero, x), plain.apply(p0, x), rtol=1e-14)


def test_init_shapes_and_vmap_over_keys():
    net = rk.network(rk.ResNet(4), 16)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = jax.vmap(lambda k: net.init(k, 5))(keys)
    assert params["W"].shape == (3, 4, 16, 16) and params["embed"].shape == (3, 16, 5)
    x = jnp.ones((2, 5))
    out = jax.vmap(lambda p: net.apply(p, x))(params)
    assert out.shape == (3, 2)
    assert not np.allclose(out[0], out[1])  # different keys, different nets
    ff = rk.network(rk.FeedForward(1), 8).init(jax.random.PRNGKey(0), 2)
    assert ff["hidden"].shape == (0, 8, 8)


def test_jit_and_output_scale():
    """f(x) has variance K_L(x, x) over initializations: an O(1) output at any width."""
    arch = rk.FeedForward(3)
    # Width 128 (was 512, 16x the weights drawn): for the He-scaled ReLU net E f(x)^2 = K_L(x, x)
    # holds exactly at every width (E relu(z)^2 = var(z) / 2 layer by layer); only the small
    # excess kurtosis of f, O(depth / m), adds to the sample variance's scatter below.
    net = rk.network(arch, 128)
    x = jnp.array([[0.6, 0.8]])
    keys = jax.random.split(jax.random.PRNGKey(3), 400)
    outs = jax.jit(jax.vmap(lambda k: net.apply(net.init(k, 2), x)))(keys)
    var = float(jnp.var(outs))
    # var of the sample variance of 400 near-Gaussian draws: sqrt(2/400) ~ 7%
    assert abs(var - 1.0) < 4 * math.sqrt(2 / 400)


def test_apply_features_forward_check_params_and_inputs():
    net = rk.network(rk.ResNet(2), 6)
    params = net.init(jax.random.PRNGKey(0), 3, dtype=jnp.float32)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    nan = {**params, "W": params["W"].at[0, 0, 0].set(np.nan)}
    for call in (net.apply, net.features, net.forward):
        with pytest.raises(ValueError, match=r"params\['W'\] has 1 non-finite entries"):
            call(nan, x)  # before: NaN outputs
        with pytest.raises(TypeError, match="x has dtype float16"):
            call(params, x.astype(np.float16))
        with pytest.raises(ValueError, match="x has non-finite"):
            call(params, np.where(x > 1, np.inf, x))
    with pytest.raises(ValueError, match="x is ragged"):
        net.apply(params, [[1.0, 2.0, 3.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="perturb must be None or a dict"):
        net.forward(params, x, perturb=1.0)
    assert net.forward(params, x).out.shape == (4,)
    assert net.apply(params, [1, 2, 3]).shape == ()  # ints are cast to the params' dtype
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        net.init(jax.random.PRNGKey(0), 3, dtype=jnp.int32)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got bfloat16"):
        net.init(jax.random.PRNGKey(0), 3, dtype=jnp.bfloat16)
    assert net.param_shapes(3) == {k: v.shape for k, v in params.items()}
    with pytest.raises(ValueError, match="width must be >= 1"):
        rk.Network(rk.FeedForward(2), 0)  # the dataclass checks too, not only rk.network
    with pytest.raises(TypeError, match="arch must be"):
        rk.Network("resnet", 4)


def test_bias_params_are_checked():
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    ff = rk.network(rk.FeedForward(3, b_var=0.1, activation="erf"), 8)
    p = ff.init(jax.random.PRNGKey(0), 4, dtype=jnp.float32)
    assert ff.param_shapes(4) == {"input": (8, 4), "hidden": (2, 8, 8), "readout": (8,),
                                  "input_bias": (8,), "hidden_bias": (2, 8), "readout_bias": ()}
    res = rk.network(rk.ResNet(2, b_var=0.1), 8)
    assert res.param_shapes(4) == {"embed": (8, 4), "W": (2, 8, 8), "V": (2, 8, 8), "readout": (8,),
                                   "embed_bias": (8,), "b": (2, 8), "readout_bias": ()}
    pr = res.init(jax.random.PRNGKey(0), 4, dtype=jnp.float32)
    deeper = rk.network(rk.FeedForward(4, b_var=0.1), 8).init(jax.random.PRNGKey(0), 4, dtype=jnp.float32)
    cases = [
        (ff, {k: v for k, v in p.items() if k != "hidden_bias"}, ValueError,
         r"missing \['hidden_bias'\] \(an arch with b_var = 0.1 has bias parameters "
         r"\['input_bias', 'hidden_bias', 'readout_bias'\]; net.init makes them\)"),
        (rk.network(rk.FeedForward(3), 8), p, ValueError,
         r"unexpected \['hidden_bias', 'input_bias', 'readout_bias'\] \(this arch has b_var = 0, so no bias"),
        (ff, {**p, "hidden_bias": deeper["hidden_bias"]}, ValueError,
         r"params\['hidden_bias'\] has shape \(3, 8\), expected \(2, 8\).*depth-4 net, this one has depth 3"),
        (res, {**pr, "b": pr["b"][:1]}, ValueError, r"params\['b'\] has shape \(1, 8\), expected \(2, 8\).*depth-1 net"),
        (ff, {**p, "readout_bias": 0.5}, TypeError, r"params\['readout_bias'\] must be an array of shape \(\), got float"),
        (ff, {**p, "readout_bias": p["readout_bias"][None]}, ValueError,
         r"params\['readout_bias'\] has shape \(1,\), expected \(\)"),
        (res, {**pr, "embed_bias": pr["embed_bias"].at[3].set(np.nan)}, ValueError,
         r"params\['embed_bias'\] has 1 non-finite entries \(nan or inf\) of 8"),
        (res, {**pr, "b": np.asarray(pr["b"], np.float64)}, TypeError, "params mix dtypes"),
    ]
    for net, params, exc, match in cases:
        for call in (net.apply, net.features, net.forward):
            with pytest.raises(exc, match=match):
                call(params, x)
    with pytest.raises(ValueError, match=r"perturb keys must be among \['input', 'hidden'\], got unexpected "
                                         r"\['input_bias'\] \(a bias shares the perturbation"):
        ff.forward(p, x, perturb={"input_bias": jnp.zeros((3, 8))})


def _perturbations(net, n):
    m, depth = net.width, net.arch.depth
    if isinstance(net.arch, rk.FeedForward):
        return {"input": jnp.zeros((n, m)), "hidden": jnp.zeros((depth - 1, n, m))}
    return {"embed": jnp.zeros((n, m)), "W": jnp.zeros((depth, n, m)), "V": jnp.zeros((depth, n, m))}


def _s2(arch, m):
    """s^2 of each group's maps y = s W u, written from the module doc of reskernel.networks."""
    if isinstance(arch, rk.FeedForward):
        return {"input": arch.in_var, "hidden": 1.0, "input_bias": arch.b_var, "hidden_bias": arch.b_var,
                "readout": 1.0, "readout_bias": arch.b_var}
    a2 = np.asarray(arch.branch_scales)[:, None, None] ** 2
    return {"embed": arch.in_var / m, "embed_bias": arch.b_var / m, "W": arch.w_var, "b": arch.b_var,
            "V": a2 / m, "readout": 1.0, "readout_bias": arch.b_var}


@pytest.mark.parametrize("arch", [GENERAL[0], GENERAL[3], GENERAL[4]])
def test_trace_and_perturbations_give_the_ntk(x64, arch):
    """sum over groups of s^2 <u, u'> <delta, delta'>, with u from Trace.inputs and delta the
    gradient of f with respect to `perturb`, is the NTK of every parameter (direct Jacobians)."""
    net = rk.network(arch, 6)
    params = net.init(jax.random.PRNGKey(2), 3)
    x = np.random.default_rng(3).normal(size=(4, 3))
    n = x.shape[0]
    trace = net.forward(params, x)
    jac = jax.jacrev(lambda e: net.forward(params, x, e).out)(_perturbations(net, n))
    # example i's delta is the derivative of f(x_i) by its own row of the perturbation
    idx = np.arange(n)
    delta = {k: (j[idx, idx] if j.ndim == 3 else j[idx, :, idx].transpose(1, 0, 2)) for k, j in jac.items()}
    target = {"input": "input", "input_bias": "input", "hidden": "hidden", "hidden_bias": "hidden",
              "embed": "embed", "embed_bias": "embed", "W": "W", "b": "W", "V": "V"}
    s2 = _s2(arch, 6)
    ntk = 0.0
    for g in rk.networks.param_groups(arch, "all"):
        u = trace.inputs[g]
        d = delta[target[g]] if g in target else jnp.ones(u.shape[:-1] + (1,))  # readout: y = f
        if g in ("input_bias", "hidden_bias", "embed_bias", "b", "readout_bias"):
            np.testing.assert_array_equal(u, 1.0)
        ntk = ntk + np.sum(s2[g] * (u @ jnp.swapaxes(u, -1, -2)) * (d @ jnp.swapaxes(d, -1, -2)),
                           axis=0 if u.ndim == 3 else ())
    j = jax.jacrev(lambda theta: net.apply(theta, x))(params)
    direct = sum(j[k].reshape(n, -1) @ j[k].reshape(n, -1).T for k in params)
    assert_close(ntk, direct, rtol=1e-11)
