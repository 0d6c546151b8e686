"""Every bad input gets a clear ValueError or TypeError naming the problem."""
import jax
import numpy as np
import pytest

import reskernel as rk

X = np.array([[1.0, 0.0, 0.5], [0.2, 1.0, 0.0]])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(depth=0), ValueError, "depth must be >= 1"),
    (dict(depth=-3), ValueError, "depth must be >= 1"),
    (dict(depth=2.5), TypeError, "depth must be an int"),
    (dict(depth=True), TypeError, "depth must be an int"),
])
def test_bad_depth(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        rk.FeedForward(**kwargs)
    with pytest.raises(exc, match=match):
        rk.ResNet(**kwargs)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(gamma=-0.5), ValueError, "gamma must be >= 0"),
    (dict(gamma=float("nan")), ValueError, "gamma must be finite"),
    (dict(gamma=float("inf")), ValueError, "gamma must be finite"),
    (dict(alpha=0.0), ValueError, "alpha must be > 0"),
    (dict(alpha=-1.0), ValueError, "alpha must be > 0"),
    (dict(alpha=float("inf")), ValueError, "alpha must be finite"),
    (dict(gamma=1.0, alpha=0.5), ValueError, "at most one of"),
    (dict(scales=[0.5, 0.5]), ValueError, "one entry per block"),
    (dict(scales=[0.5, -0.1, 0.2]), ValueError, r"scales\[1\] must be >= 0"),
    (dict(scales=[0.5, float("nan"), 0.2]), ValueError, r"scales\[1\] must be finite"),
    (dict(gamma="1"), TypeError, "gamma must be a real number"),
])
def test_bad_resnet_scales(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        rk.ResNet(depth=3, **kwargs)


@pytest.mark.parametrize("x1, x2, exc, match", [
    (X, np.ones((2, 4)), ValueError, "same feature dimension"),
    (np.array([[1.0, 0, 0], [0, 0, 0]]), None, ValueError, "zero-norm rows.*row 1"),
    (np.array([[1.0, np.nan, 0]]), None, ValueError, "non-finite"),
    (X, np.array([[np.inf, 0, 0]]), ValueError, "x2 has non-finite"),
    (np.ones(3), None, ValueError, "rank 2"),
    (np.ones((2, 2, 3)), None, ValueError, "rank 2"),
    (np.ones((0, 3)), None, ValueError, "at least one row"),
    ("abc", None, TypeError, "x1 must be an array"),
    (X + 0j, None, TypeError, "real"),
])
def test_bad_inputs(x1, x2, exc, match):
    with pytest.raises(exc, match=match):
        rk.kernel(rk.FeedForward(2), x1, x2)


def test_bad_kernel_options():
    with pytest.raises(ValueError, match="trained must be one of"):
        rk.kernel(rk.FeedForward(2), X, trained="readout")
    with pytest.raises(TypeError, match="arch must be"):
        rk.kernel("resnet", X)
    with pytest.raises(ValueError, match="beyond the range"):
        rk.kernel(rk.ResNet(10_000, gamma=0.0), X)


def test_bad_network_and_empirical():
    for w in (0, -4):
        with pytest.raises(ValueError, match="width must be >= 1"):
            rk.network(rk.FeedForward(2), w)
    with pytest.raises(TypeError, match="width must be an int"):
        rk.network(rk.FeedForward(2), 8.0)
    net = rk.network(rk.ResNet(2), 8)
    params = net.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(ValueError, match="dimension 3"):
        net.apply(params, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        net.apply(params, np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match="same feature dimension"):
        rk.empirical_kernel(net, params, X, np.ones((2, 4)))
    with pytest.raises(ValueError, match="method must be one of"):
        rk.empirical_kernel(net, params, X, method="ntvp-magic")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        rk.empirical_kernel(net, params, X, batch_size=0)
    with pytest.raises(ValueError, match="zero-norm"):
        rk.empirical_kernel(net, params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="d_in must be >= 1"):
        net.init(jax.random.PRNGKey(0), 0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_are_refused(dtype):
    import jax.numpy as jnp

    x = jnp.asarray(X, dtype=dtype)
    with pytest.raises(TypeError, match=f"x1 has dtype {dtype}; reskernel computes in float32 or float64"):
        rk.kernel(rk.FeedForward(2), x)
    with pytest.raises(TypeError, match=f"x2 has dtype {dtype}"):
        rk.kernel(rk.FeedForward(2), X, np.asarray(x))
    net = rk.network(rk.FeedForward(2), 4)
    with pytest.raises(TypeError, match=f"x1 has dtype {dtype}"):
        rk.empirical_kernel(net, net.init(jax.random.PRNGKey(0), 3), x)


@pytest.mark.parametrize("x1", [[[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, [4.0]]], [[1.0], 2.0]])
def test_ragged_inputs_are_refused(x1):
    with pytest.raises(ValueError, match="x1 is ragged"):
        rk.kernel(rk.FeedForward(2), x1)


@pytest.mark.parametrize("x1, match", [
    (np.array([["a", "b"]]), "x1 must be an array of real numbers, got dtype <U1"),
    (np.array([[None, 1.0]]), "x1 must be an array of real numbers, got dtype object"),
    (np.ones((2, 3), np.longdouble), "x1 has dtype float128"),
])
def test_non_numeric_inputs_are_refused(x1, match):
    if x1.dtype == np.longdouble and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match=match):
        rk.kernel(rk.FeedForward(2), x1)


def test_empirical_method_must_be_a_name():
    net = rk.network(rk.FeedForward(2), 4)
    with pytest.raises(ValueError, match="method must be one of"):
        rk.empirical_kernel(net, net.init(jax.random.PRNGKey(0), 3), X, method=np.array(["jacobian"]))
