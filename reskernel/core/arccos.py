"""Arc-cosine maps of the ReLU, normalized so that k0(1) = k1(1) = 1.

  k0(rho) = (pi - arccos rho) / pi             = 2 E[relu'(u) relu'(u')]
  k1(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi = 2 E[relu(u) relu(u')]
for unit-variance Gaussians (u, u') of correlation rho. Inputs are clipped to
[-1, 1]. Derivatives are given explicitly: k1' = k0 (finite everywhere) and
k0' = 1 / (pi sqrt(1 - rho^2)), set to 0 where rho = +-1 so that gradients at
identical or antipodal inputs stay finite (the correlation is extremal there,
so its own derivative vanishes).

The angle comes from `arccos`, a polynomial with range reduction (cheaper than
the library arccos inside a 100-layer recursion, and exact to rounding in
float32 and float64). `angle_sine` gives the angle and its sine in one pass, as
the fused depth recursion (reskernel.analytic) uses them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["k0", "k1", "arccos", "angle_sine", "angle_sine_complement"]

# asin(s) = s + s z P(z), z = s^2, s in [0, 1/2]: least-squares Chebyshev fits of
# (asin(s)/s - 1)/z on z in [0, 1/4] (fit in float64 against the Taylor series).
# Max relative error of asin on [0, 1/2]: 9.4e-10 (degree 5), 2.2e-16 (degree 11).
_P32 = (0.16666666316763593, 0.07500098762726164, 0.044598032229659565, 0.031116156438555725,
        0.017077859371492983, 0.033805748308633775)
_P64 = (0.16666666666666646, 0.0750000000002192, 0.04464285710151007, 0.030381947485514607,
        0.022372043900655655, 0.0173553285680499, 0.013928865146866313, 0.011881309409668795,
        0.007775356962954514, 0.016116835619223457, -0.010884498919439987, 0.028266631025670442)


def _asin_reduced(s):
    """asin(s) for s in [0, 1/2], by the polynomial of s's precision."""
    coeffs = _P64 if jnp.finfo(s.dtype).bits > 32 else _P32
    z = s * s
    p = jnp.asarray(coeffs[-1], s.dtype)
    for c in coeffs[-2::-1]:
        p = p * z + c
    return s + s * z * p


def _acos_parts(x):
    """(arccos x, pi - arccos x) for x in [-1, 1], each accurate to rounding.

    |x| <= 1/2: arccos |x| = pi/2 - asin |x|; |x| > 1/2: arccos |x| = 2 asin sqrt((1 - |x|)/2),
    which keeps the relative accuracy of the small angle near |x| = 1 (where the angle
    is sqrt(2 (1 - |x|)) and a direct polynomial in x cannot be accurate).
    """
    a = jnp.abs(x)
    small = a <= 0.5
    s = jnp.where(small, a, jnp.sqrt(jnp.maximum(1.0 - a, 0.0) * 0.5))
    r = _asin_reduced(s)
    half_pi = jnp.asarray(jnp.pi / 2, x.dtype)
    acos_abs = jnp.where(small, half_pi - r, 2.0 * r)          # arccos |x| in [0, pi/2]
    other = jnp.asarray(jnp.pi, x.dtype) - acos_abs             # arccos(-|x|)
    neg = x < 0
    return jnp.where(neg, other, acos_abs), jnp.where(neg, acos_abs, other)


@jax.custom_jvp
def angle_sine(rho):
    """(theta, sin theta), theta = arccos(rho), for rho in [-1, 1] (any shape), in one pass.

    theta by the range-reduced polynomial of `arccos`, sin theta = sqrt((1 - rho)(1 + rho)).
    Derivatives: dtheta/drho = -1/sin theta, dsin/drho = -rho/sin theta, both set to 0
    where sin theta = 0 (rho = +-1), as in k0; the combinations the kernels use, e.g.
    d(sin - theta rho)/drho = -theta, stay exact there.
    """
    theta = _acos_parts(rho)[0]
    return theta, _sin_angle(rho)


@angle_sine.defjvp
def _angle_sine_jvp(primals, tangents):
    (rho,), (t,) = primals, tangents
    theta, sine = angle_sine(rho)
    inv = jnp.where(sine > 0, 1.0 / jnp.where(sine > 0, sine, 1.0), 0.0)
    return (theta, sine), (-inv * t, -rho * inv * t)


@jax.custom_jvp
def angle_sine_complement(u):
    """(theta, sin theta) of the correlation rho = 1 - u, u in [0, 2], from u itself: near
    rho = 1 (u small, theta = 2 asin sqrt(u / 2)) the angle keeps the relative accuracy of u,
    which 1 - u would lose (the FFNet recursion carries u; reskernel.core.engine). One square
    root and one polynomial for the angle, one square root for the sine, as `angle_sine`.
    Derivatives: dtheta/du = 1 / sin theta, dsin/du = (1 - u) / sin theta, 0 where sin theta = 0.
    """
    rho = 1.0 - u
    a = jnp.abs(rho)
    small = a <= 0.5
    neg = rho < 0
    c = jnp.where(neg, 2.0 - u, u)                   # 1 - |rho|, from u: exact near rho = 1
    s = jnp.where(small, a, jnp.sqrt(jnp.maximum(c, 0.0) * 0.5))
    r = _asin_reduced(s)
    acos_abs = jnp.where(small, jnp.asarray(jnp.pi / 2, u.dtype) - r, 2.0 * r)
    theta = jnp.where(neg, jnp.asarray(jnp.pi, u.dtype) - acos_abs, acos_abs)
    return theta, jnp.sqrt(jnp.maximum(u * (2.0 - u), 0.0))


@angle_sine_complement.defjvp
def _angle_sine_complement_jvp(primals, tangents):
    (u,), (t,) = primals, tangents
    theta, sine = angle_sine_complement(u)
    inv = jnp.where(sine > 0, 1.0 / jnp.where(sine > 0, sine, 1.0), 0.0)
    return (theta, sine), (inv * t, (1.0 - u) * inv * t)


def arccos(x):
    """arccos elementwise on [-1, 1] (inputs clipped), same dtype; float64 error ~ 1e-16."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return _acos_parts(_clip(x))[0]


def _clip(rho):
    return jnp.clip(rho, -1.0, 1.0)


def _sin_angle(rho):
    # sqrt((1 - rho)(1 + rho)) keeps its relative accuracy near rho = +-1.
    return jnp.sqrt(jnp.maximum((1.0 - rho) * (1.0 + rho), 0.0))


def _supplement(rho):
    """pi - arccos(rho) for rho in [-1, 1]."""
    return _acos_parts(rho)[1]


@jax.custom_jvp
def k0(rho):
    """Arc-cosine map of degree 0 (elementwise, any shape)."""
    rho = _clip(rho)
    return _supplement(rho) / jnp.pi


@k0.defjvp
def _k0_jvp(primals, tangents):
    (rho,), (t,) = primals, tangents
    out = k0(rho)
    c = _clip(rho)
    s = _sin_angle(c)
    inside = (s > 0) & (rho == c)
    deriv = jnp.where(inside, 1.0 / (jnp.pi * jnp.where(inside, s, 1.0)), 0.0)
    return out, deriv * t


@jax.custom_jvp
def k1(rho):
    """Arc-cosine map of degree 1 (elementwise, any shape)."""
    rho = _clip(rho)
    return (_sin_angle(rho) + _supplement(rho) * rho) / jnp.pi


@k1.defjvp
def _k1_jvp(primals, tangents):
    (rho,), (t,) = primals, tangents
    inside = (rho >= -1.0) & (rho <= 1.0)
    return k1(rho), jnp.where(inside, k0(rho), 0.0) * t
