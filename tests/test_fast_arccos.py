"""The polynomial arccos behind k0, k1 against NumPy's float64 arccos and closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reskernel.core.arccos import arccos, k0, k1


def _points():
    rng = np.random.default_rng(0)
    near = np.logspace(-16, -0.3, 4000)  # distances to +-1 down to below float64's ulp
    return np.concatenate([np.linspace(-1.0, 1.0, 200001), rng.uniform(-1, 1, 100000),
                           1 - near, -1 + near, [-1.0, -0.5, 0.0, 0.5, 1.0]])


def test_float64_exact(x64):
    x = _points()
    ref = np.arccos(x)
    got = np.asarray(jax.jit(arccos)(jnp.asarray(x)))
    assert got.dtype == np.float64
    assert np.abs(got - ref).max() < 1e-14
    # small angles near rho = 1 keep their relative accuracy (the sqrt(1 - x) reduction)
    small = ref > 0
    assert (np.abs(got - ref)[small] / ref[small]).max() < 1e-14


def test_float32_at_rounding_level(x64):
    x32 = _points().astype(np.float32)
    ref = np.arccos(x32.astype(np.float64))  # exact angle of the float32 input
    got = np.asarray(arccos(jnp.asarray(x32))).astype(np.float64)
    # a float32 angle near pi has ulp 2.4e-7; the error stays within ~1 ulp of the result
    assert np.abs(got - ref).max() < 4e-7
    small = ref > 0
    assert (np.abs(got - ref)[small] / ref[small]).max() < 3e-7


def test_clips_and_keeps_dtype():
    got = arccos(jnp.asarray([-2.0, 2.0], jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), [np.pi, 0.0], atol=1e-7)


@pytest.mark.parametrize("rho, c0, c1", [
    (1.0, 1.0, 1.0), (-1.0, 0.0, 0.0), (0.0, 0.5, 1 / np.pi),
    (0.5, 2 / 3, (np.sqrt(3) / 2 + np.pi / 3) / np.pi),
    (-0.5, 1 / 3, (np.sqrt(3) / 2 - np.pi / 6) / np.pi),
])
def test_arc_cosine_maps_at_known_angles(x64, rho, c0, c1):
    r = jnp.asarray(rho, jnp.float64)
    np.testing.assert_allclose(float(k0(r)), c0, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(float(k1(r)), c1, rtol=1e-15, atol=1e-16)


def test_maps_match_library_arccos(x64):
    x = jnp.asarray(_points())
    theta = jnp.arccos(x)
    np.testing.assert_allclose(np.asarray(k0(x)), np.asarray((jnp.pi - theta) / jnp.pi), rtol=0, atol=1e-15)
    want = (jnp.sqrt(jnp.maximum((1 - x) * (1 + x), 0)) + (jnp.pi - theta) * x) / jnp.pi
    np.testing.assert_allclose(np.asarray(k1(x)), np.asarray(want), rtol=0, atol=1e-15)


def test_angle_sine_values_and_derivatives(x64):
    from reskernel.core.arccos import angle_sine
    x = _points()
    theta, sine = jax.jit(angle_sine)(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(theta), np.arccos(x), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(sine), np.sqrt((1 - x) * (1 + x)), rtol=0, atol=1e-15)
    # derivatives -1/sin and -rho/sin inside, 0 at rho = +-1 (finite gradients at identical inputs)
    rho = jnp.asarray([-1.0, -0.3, 0.0, 0.6, 1.0])
    d_theta = jax.vmap(jax.grad(lambda r: angle_sine(r)[0]))(rho)
    d_sine = jax.vmap(jax.grad(lambda r: angle_sine(r)[1]))(rho)
    s = np.sqrt(1 - np.asarray(rho) ** 2)
    inside = s > 0
    np.testing.assert_allclose(np.asarray(d_theta)[inside], -1 / s[inside], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(d_sine)[inside], -np.asarray(rho)[inside] / s[inside], rtol=1e-14)
    assert np.all(np.asarray(d_theta)[~inside] == 0) and np.all(np.asarray(d_sine)[~inside] == 0)
    # float32 angle within ~1 ulp of the exact angle of the float32 input
    x32 = x.astype(np.float32)
    got = np.asarray(angle_sine(jnp.asarray(x32))[0], np.float64)
    assert np.abs(got - np.arccos(x32.astype(np.float64))).max() < 4e-7
