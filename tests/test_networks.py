import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from conftest import assert_close


def _numpy_forward(arch, params, x):
    """Independent forward pass written from docs/conventions.md with NumPy."""
    p = {k: np.asarray(v) for k, v in params.items()}
    m = p["readout"].shape[0]
    relu = lambda z: np.maximum(z, 0)
    if isinstance(arch, rk.FeedForward):
        h = np.sqrt(2 / m) * relu(x @ p["input"].T)
        for w in p["hidden"]:
            h = np.sqrt(2 / m) * relu(h @ w.T)
        return h @ p["readout"]
    h = x @ p["embed"].T / np.sqrt(m)
    for a, w, v in zip(arch.branch_scales, p["W"], p["V"]):
        h = h + a * relu(np.sqrt(2 / m) * h @ w.T) @ v.T / np.sqrt(m)
    return h @ p["readout"]


def test_apply_matches_numpy_forward(x64):
    x = np.random.default_rng(0).normal(size=(5, 3))
    for arch in (rk.FeedForward(1), rk.FeedForward(4), rk.ResNet(3, gamma=0.5), rk.ResNet(2, scales=[0.3, 2.0])):
        net = rk.network(arch, 7)
        params = net.init(jax.random.PRNGKey(1), 3)
        out = net.apply(params, x)
        assert out.shape == (5,)
        assert_close(out, _numpy_forward(arch, params, x), rtol=1e-12)
        assert_close(net.apply(params, x[0]), out[0], rtol=1e-12)


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
    net = rk.network(arch, 512)
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
