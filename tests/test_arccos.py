import jax
import math
import jax.numpy as jnp
import numpy as np
from scipy import integrate, stats

from reskernel.core.arccos import k0, k1


def _gauss_expectation(kind, rho):
    """2 E[g(u) g(u')] for unit Gaussians of correlation rho (g = relu or step), by 1-D
    quadrature over u of the conditional expectation given u (u' = rho u + s v)."""
    s = np.sqrt(1 - rho**2)
    if kind == "step":
        inner = lambda u: stats.norm.cdf(rho * u / s)
        outer = lambda u: 1.0
    else:  # E[relu(mu + s v)] = mu Phi(mu/s) + s phi(mu/s)
        inner = lambda u: rho * u * stats.norm.cdf(rho * u / s) + s * stats.norm.pdf(rho * u / s)
        outer = lambda u: u
    val, _ = integrate.quad(lambda u: 2 * outer(u) * inner(u) * stats.norm.pdf(u), 0, np.inf,
                            epsabs=1e-13, epsrel=1e-12)
    return val


def test_closed_values(x64):
    rho = jnp.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(k0(rho), [0.0, 0.5, 1.0], atol=1e-15)
    np.testing.assert_allclose(k1(rho), [0.0, 1 / np.pi, 1.0], atol=1e-15)


def test_against_gaussian_quadrature(x64):
    for rho in (-0.7, 0.3, 0.9):
        np.testing.assert_allclose(float(k1(rho)), _gauss_expectation("relu", rho), rtol=1e-9)
        np.testing.assert_allclose(float(k0(rho)), _gauss_expectation("step", rho), rtol=1e-9)


def test_derivatives_match_finite_differences(x64):
    rho = jnp.linspace(-0.95, 0.95, 9)
    h = 1e-6
    for fn in (k0, k1):
        fd = (fn(rho + h) - fn(rho - h)) / (2 * h)
        np.testing.assert_allclose(jax.vmap(jax.grad(fn))(rho), fd, rtol=1e-6)
    # k1' = k0 is the identity that keeps k1's gradient finite everywhere.
    np.testing.assert_allclose(jax.vmap(jax.grad(k1))(rho), k0(rho), rtol=1e-14)


def test_gradients_finite_at_the_ends():
    for dtype in (jnp.float32,):
        rho = jnp.array([-1.0, 1.0, 1.0 + 1e-7, -1.0 - 1e-7], dtype)
        for fn in (k0, k1):
            g = jax.vmap(jax.grad(fn))(rho)
            assert np.all(np.isfinite(g)), (fn, g)


def test_angle_sine_complement_keeps_small_angles(x64):
    # theta and sin theta of rho = 1 - u from u itself: relative accuracy at u far below eps,
    # where arccos(1 - u) would return 0; and agreement with angle_sine elsewhere
    from reskernel.core.arccos import angle_sine, angle_sine_complement

    u = np.array([1e-30, 1e-20, 1e-12, 1e-6, 0.1, 0.5, 0.9, 1.0, 1.5, 1.9, 2.0])
    theta, sine = (np.asarray(v) for v in angle_sine_complement(jnp.asarray(u)))
    want = 2 * np.arcsin(np.sqrt(u / 2))
    np.testing.assert_allclose(theta, want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(sine, np.sqrt(u * (2 - u)), rtol=1e-14, atol=0)
    for dtype, tol in ((np.float32, 3e-7), (np.float64, 1e-15)):
        rho = np.linspace(-1, 1, 101).astype(dtype)
        a = angle_sine_complement(jnp.asarray((1 - rho).astype(dtype)))
        b = angle_sine(jnp.asarray(rho))
        for p, q in zip(a, b):
            np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=0, atol=tol * 8)
    g = jax.grad(lambda v: angle_sine_complement(v)[0])(jnp.asarray(0.5))
    np.testing.assert_allclose(float(g), 1 / math.sqrt(0.5 * 1.5), rtol=1e-12)
