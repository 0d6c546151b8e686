"""Activations and their dual kernels: the one place where an activation phi enters the kernels.

For a centred Gaussian pair (u, v) with covariance [[q1, k], [k, q2]], an activation's duals are

    V(q1, q2, k)    = E[phi(u) phi(v)]      (the NNGP map)
    Vdot(q1, q2, k) = E[phi'(u) phi'(v)]    (the NTK's derivative map; Vdot = dV/dk, Price's theorem)

Closed forms here (each tested against float64 quadrature, tests/test_activations.py):
  ABRelu(a, b)   phi = a x (x < 0), b x (x > 0): ReLU (0, 1), leaky ReLU (s, 1), abs (-1, 1),
                 identity (1, 1). With s = sqrt(q1 q2), rho = k / s = cos theta:
                 V = s [(a^2 + b^2)(sin theta + (pi - theta) rho) - 2ab (sin theta - theta rho)] / (2 pi)
                 Vdot = [(a^2 + b^2)(pi - theta) + 2ab theta] / (2 pi)
  Erf(a, b, c)   phi = a erf(b x) + c:  V = a^2 (2/pi) arcsin(2 b^2 k / sqrt(P)) + c^2,
                 P = (1 + 2 b^2 q1)(1 + 2 b^2 q2);  Vdot = a^2 b^2 (4/pi) / sqrt(P - 4 b^4 k^2)
  Gelu()         phi = x Phi(x) (exact, not the tanh approximation); with Q = (1 + q1)(1 + q2),
                 delta^2 = Q - k^2, A = arcsin(k / sqrt Q):
                 V = k/4 + [k A + (k^2 + q1 q2 delta^2) / (Q delta)] / (2 pi)      (Tsuchida et al. 2020)
                 Vdot = 1/4 + [A + (k / delta)(1 + (1 - q1 q2) / Q + 1 / delta^2)] / (2 pi)
  Sin(a, b, c)   phi = a sin(b x + c) (cos: c = pi/2); with E+- = exp(-b^2 (q1 + q2 +- 2k) / 2):
                 V = a^2 (E- - E+ cos 2c) / 2,  Vdot = a^2 b^2 (E- + E+ cos 2c) / 2
  Identity()     V = k, Vdot = 1
Any other elementwise function: reskernel.core.quadrature.Numerical (tanh by default), its
duals from a Hermite (Mehler) series with a bound on the truncation.

The engine calls `row_terms(q)` once per input and layer (host, float64) and `pair(t1, t2, k)`
per entry (JAX, any float dtype); `diagonal(q)` gives (E[phi(u)^2], E[phi'(u)^2]) on the host.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = ["Activation", "ABRelu", "Erf", "Gelu", "Sin", "Identity", "NAMES", "get", "relu", "leaky_relu"]


def _real(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _xp(x):
    """NumPy for host arrays, jax.numpy otherwise (the duals serve both)."""
    if isinstance(x, (np.ndarray, np.generic, float, int)):
        return np
    import jax.numpy as jnp

    return jnp


def _angle(xp, rho):
    """(arccos rho, sqrt(1 - rho^2)) for rho in [-1, 1]: NumPy's, or in JAX the polynomial of
    reskernel.core.arccos (exact to rounding, and cheaper than XLA's acos in a deep recursion)."""
    if xp is np:
        return np.arccos(rho), np.sqrt(np.maximum((1.0 - rho) * (1.0 + rho), 0.0))
    from .arccos import angle_sine

    return angle_sine(rho)


def _arcsin(xp, x):
    """arcsin on [-1, 1], accurate to rounding relative to its value: the polynomial of
    reskernel.core.arccos for |x| <= 1/2, pi / 2 - arccos |x| above (with the sign of x)."""
    if xp is np:
        return np.arcsin(x)
    from .arccos import _asin_reduced, arccos

    s = xp.abs(x)
    small = _asin_reduced(xp.minimum(s, 0.5))
    return xp.sign(x) * xp.where(s <= 0.5, small, 0.5 * math.pi - arccos(xp.maximum(s, 0.5)))


class Activation:
    """Base of the activations: an elementwise function with closed-form duals.

    Subclasses are frozen dataclasses (hashable: an arch holding one is a static jit argument).
    """

    #: positively homogeneous of degree 1 (phi(c x) = c phi(x), c > 0): kernels without biases
    #: are then |x| |x'| times a function of the input correlation.
    homogeneous = False
    #: closed-form duals (False: numerical, with a truncation bound).
    exact = True

    def _check_reals(self, *names):
        """Each field in names as a finite float (ValueError naming it otherwise)."""
        for name in names:
            object.__setattr__(self, name, _real(name, getattr(self, name)))

    def __call__(self, x):
        raise NotImplementedError

    def duals(self, q1, q2, k):
        """(V, Vdot) at variances q1, q2 and covariance k (broadcasting arrays)."""
        raise NotImplementedError

    def row_terms(self, q):
        """What `pair` needs of each input at variance q (an array): here q itself."""
        return (np.asarray(q, np.float64),)

    def pair(self, t1, t2, k):
        """(V, Vdot) of entries of covariance k between rows with terms t1 and columns with t2."""
        return self.duals(t1[0], t2[0], k)

    def diagonal(self, q):
        """(E[phi(u)^2], E[phi'(u)^2]) for u ~ N(0, q), float64 on the host."""
        q = np.asarray(q, np.float64)
        return tuple(np.asarray(v, np.float64) for v in self.duals(q, q, q))

    @property
    def label(self) -> str:
        return type(self).__name__


@dataclasses.dataclass(frozen=True)
class ABRelu(Activation):
    """phi(x) = a x for x < 0, b x for x > 0 (ReLU: a = 0, b = 1; abs: a = -1, b = 1)."""

    a: float = 0.0
    b: float = 1.0
    homogeneous = True

    def __post_init__(self):
        self._check_reals("a", "b")

    def __call__(self, x):
        xp = _xp(x)
        return xp.where(x > 0, self.b * x, self.a * x)

    def duals(self, q1, q2, k):
        xp = _xp(k)
        s = xp.sqrt(q1) * xp.sqrt(q2)      # not sqrt(q1 q2): no overflow for q ~ 1e160 (deep nets)
        safe = xp.where(s > 0, s, 1.0)
        rho = xp.clip(k / safe, -1.0, 1.0)
        # within 8 ulp of +-1: exactly +-1 (XLA may divide by sqrt as a product with rsqrt, so an
        # entry on its diagonal, k = sqrt(q1 q2), gives 1 - ulp, an angle of 2e-8)
        rho = xp.where(xp.abs(rho) >= 1.0 - 8.0 * xp.finfo(xp.result_type(rho)).eps, xp.sign(rho), rho)
        theta, sine = _angle(xp, rho)
        sq, ab = self.a * self.a + self.b * self.b, self.a * self.b
        v = s * (sq * (sine + (math.pi - theta) * rho) - 2.0 * ab * (sine - theta * rho)) / (2.0 * math.pi)
        vdot = (sq * (math.pi - theta) + 2.0 * ab * theta) / (2.0 * math.pi)
        return v, vdot

    @property
    def label(self) -> str:
        known = {(0.0, 1.0): "relu", (-1.0, 1.0): "abs", (1.0, 1.0): "identity"}
        return known.get((self.a, self.b), f"abrelu(a={self.a:g}, b={self.b:g})")


@dataclasses.dataclass(frozen=True)
class Erf(Activation):
    """phi(x) = a erf(b x) + c."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self):
        self._check_reals("a", "b", "c")

    def __call__(self, x):
        if _xp(x) is np:
            from scipy.special import erf
        else:
            from jax.scipy.special import erf
        return self.a * erf(self.b * x) + self.c

    def duals(self, q1, q2, k):
        xp = _xp(k)
        b2 = self.b * self.b
        p = (1.0 + 2.0 * b2 * q1) * (1.0 + 2.0 * b2 * q2)
        arg = xp.clip(2.0 * b2 * k / xp.sqrt(p), -1.0, 1.0)
        v = self.a * self.a * (2.0 / math.pi) * _arcsin(xp, arg) + self.c * self.c
        vdot = self.a * self.a * b2 * (4.0 / math.pi) / xp.sqrt(p - 4.0 * b2 * b2 * k * k)
        return v, vdot

    @property
    def label(self) -> str:
        return "erf" if (self.a, self.b, self.c) == (1.0, 1.0, 0.0) else f"erf(a={self.a:g}, b={self.b:g}, c={self.c:g})"


@dataclasses.dataclass(frozen=True)
class Gelu(Activation):
    """phi(x) = x Phi(x), Phi the standard normal CDF (the exact GELU)."""

    def __call__(self, x):
        if _xp(x) is np:
            from scipy.special import ndtr
            return x * ndtr(x)
        import jax

        return jax.nn.gelu(x, approximate=False)

    def duals(self, q1, q2, k):
        xp = _xp(k)
        big = (1.0 + q1) * (1.0 + q2)
        prod = q1 * q2
        delta2 = big - k * k
        delta = xp.sqrt(delta2)
        angle = _arcsin(xp, xp.clip(k / xp.sqrt(big), -1.0, 1.0))
        v = 0.25 * k + (k * angle + (k * k + prod * delta2) / (big * delta)) / (2.0 * math.pi)
        vdot = 0.25 + (angle + (k / delta) * (1.0 + (1.0 - prod) / big + 1.0 / delta2)) / (2.0 * math.pi)
        return v, vdot

    @property
    def label(self) -> str:
        return "gelu"


@dataclasses.dataclass(frozen=True)
class Sin(Activation):
    """phi(x) = a sin(b x + c) (cos: Sin(c=pi/2))."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self):
        self._check_reals("a", "b", "c")

    def __call__(self, x):
        return self.a * _xp(x).sin(self.b * x + self.c)

    def duals(self, q1, q2, k):
        xp = _xp(k)
        b2 = self.b * self.b
        minus = xp.exp(-0.5 * b2 * (q1 + q2 - 2.0 * k))
        plus = xp.exp(-0.5 * b2 * (q1 + q2 + 2.0 * k)) * math.cos(2.0 * self.c)
        a2 = self.a * self.a
        return 0.5 * a2 * (minus - plus), 0.5 * a2 * b2 * (minus + plus)

    @property
    def label(self) -> str:
        if (self.a, self.b) == (1.0, 1.0) and self.c in (0.0, math.pi / 2):
            return "sin" if self.c == 0.0 else "cos"
        return f"sin(a={self.a:g}, b={self.b:g}, c={self.c:g})"


@dataclasses.dataclass(frozen=True)
class Identity(Activation):
    """phi(x) = x (the linear net)."""

    homogeneous = True

    def __call__(self, x):
        return x

    def duals(self, q1, q2, k):
        return k, 1.0 + 0.0 * k

    @property
    def label(self) -> str:
        return "identity"


def relu() -> ABRelu:
    return ABRelu(0.0, 1.0)


def leaky_relu(slope: float = 0.01) -> ABRelu:
    """phi(x) = max(x, slope x) for 0 <= slope <= 1 (ABRelu(slope, 1))."""
    return ABRelu(_real("slope", slope), 1.0)


def _tanh():
    from .quadrature import tanh

    return tanh()


# The names `get` accepts; tanh has no closed-form dual and goes through the Hermite series.
NAMES = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "abs": lambda: ABRelu(-1.0, 1.0),
    "erf": Erf,
    "gelu": Gelu,
    "sin": Sin,
    "cos": lambda: Sin(c=math.pi / 2),
    "identity": Identity,
    "tanh": _tanh,
}


def get(activation) -> Activation:
    """An Activation from a name in NAMES, an Activation (returned as is) or an elementwise
    JAX-traceable callable (reskernel.core.quadrature.Numerical, duals by Hermite series)."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        if activation not in NAMES:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(sorted(NAMES))}, "
                             "an Activation (reskernel.activations) or an elementwise callable")
        return NAMES[activation]()
    if callable(activation):
        from .quadrature import Numerical

        return Numerical(activation)
    raise TypeError(f"activation must be a name ({', '.join(sorted(NAMES))}), an Activation or an elementwise "
                    f"callable; got {type(activation).__name__}")
