"""Numerical duals of any elementwise activation: Gauss-Hermite quadrature and Mehler's series.

With u = sqrt(q1) z1, v = sqrt(q2) z2 and corr(z1, z2) = rho, Mehler's formula gives

    E[phi(u) phi(v)] = sum_k a_k(q1) a_k(q2) rho^k,   a_k(q) = E[phi(sqrt(q) z) h_k(z)],

h_k the orthonormal (probabilists') Hermite polynomials; the same for phi' with b_k(q). Each
input's coefficients come from one 1-D Gauss-Hermite quadrature of N = 2K + 64 nodes, and the
pair costs a degree-K polynomial in rho (Horner), so a layer costs ~6K flops per entry.

Error bound (per layer and entry, Cauchy-Schwarz on the dropped terms): with the tails
t(q) = E[phi(sqrt(q) z)^2] - sum_{k<K} a_k(q)^2,

    |V - V_K| <= sqrt(t(q1) t(q2)) <= tol sqrt(E[phi(u)^2] E[phi(v)^2]),

and likewise for Vdot with phi'. K is the smallest of 16, 32, ..., max_terms for which every
input's tails are within tol of its E[phi^2] (E[phi'^2]); the quadrature of E[phi^2] itself is
checked against twice the nodes. Where neither holds (a function with kinks, or one growing
too fast for its Gaussian integral to exist) a ValueError says which.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import numpy as np

from .activations import Activation, _xp

__all__ = ["Numerical", "tanh", "nodes", "project"]

LADDER = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# The trapezoidal rule's first step on the standard normal, halved until E[phi^2] and E[phi'^2]
# agree with the next halving to tol (at most STEPS halvings); nodes cover |z| <= REACH, beyond
# which the Gaussian density is below 1e-297.
FIRST_STEP, STEPS, REACH = 0.1, 7, 37.0


def nodes(step: float):
    """(z, sqrt(w)): nodes z = step * j on [-REACH, REACH] and the square roots of the trapezoid
    weights w = step * g(z), g the standard normal density."""
    z = step * np.arange(-int(REACH / step), int(REACH / step) + 1)
    return z, np.sqrt(step * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi))


BLOCK = 256   # Hermite functions generated at a time (memory: nodes x BLOCK, not nodes x terms)


# psi matrices up to this many entries (64 MB) are kept (the same network asks again for every
# call); larger ones (thousands of terms) are streamed in blocks and never stored whole.
CACHED = 1 << 23


@functools.lru_cache(maxsize=4)
def _psi(step: float, terms: int):
    return _blocks(step, terms, None)[0]


def project(step: float, terms: int, *values):
    """values[i] @ psi for each (rows, N) array, psi (N, terms) = sqrt(w_j) h_k(z_j) on the nodes
    of `step` (the three-term recurrence on sqrt(w) h_k, bounded by ~1 where h_k alone
    overflows)."""
    if nodes(step)[0].shape[0] * terms <= CACHED:
        psi = _psi(step, terms)
        return [v @ psi for v in values]
    return _blocks(step, terms, values)


def _blocks(step, terms, values):
    """[v @ psi for v in values] with psi generated BLOCK columns at a time; values None: [psi]."""
    z, root = nodes(step)
    out = [np.empty((z.shape[0] if values is None else v.shape[0], terms)) for v in (values or (None,))]
    prev, cur = np.zeros_like(root), root
    for start in range(0, terms, BLOCK):
        block = np.empty((min(BLOCK, terms - start), z.shape[0]))    # rows: contiguous writes
        for j in range(block.shape[0]):
            k = start + j
            if k > 0:
                prev, cur = cur, (z * cur - np.sqrt(k - 1.0) * prev) / np.sqrt(float(k))
            block[j] = cur
        for o, v in zip(out, values or (None,)):
            o[:, start:start + block.shape[0]] = (block if v is None else block @ v.T).T   # (v @ block.T: 15x slower)
    return out


def _series_step(step: float, terms: int) -> float:
    """The step for `terms` Hermite functions: they oscillate on a scale ~ pi / sqrt(2 terms)."""
    return min(step, 0.5 / np.sqrt(terms))


@functools.lru_cache(maxsize=64)
def _compiled(fn, derivative):
    """fn, or its elementwise derivative, jitted (compiled once per input shape)."""
    import jax
    import jax.numpy as jnp

    if not derivative:
        return jax.jit(fn)
    return jax.jit(lambda x: jax.vmap(jax.grad(lambda t: jnp.sum(fn(t))))(x.ravel()).reshape(x.shape))


CHUNK = 1 << 14   # elements per call of the user's function (one compilation per function)


def _chunked(fn, x):
    """fn (jitted, elementwise) on x of any shape, in float64 chunks of CHUNK elements: every
    call has one shape, so fn compiles once (not once per quadrature grid)."""
    import jax.numpy as jnp

    flat = np.asarray(x, np.float64).ravel()
    pad = -flat.size % CHUNK
    flat = np.concatenate([flat, np.zeros(pad)]) if pad else flat
    parts = [np.asarray(fn(jnp.asarray(c))) for c in flat.reshape((-1, CHUNK))]
    out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return out[:x.size].reshape(np.shape(x)) if out.shape == (flat.size,) else out


@functools.lru_cache(maxsize=256)
def _planned(act, data, shape):
    """act._plan of the variances in `data` (bytes of a float64 array; remembered: the same
    network asks again for every call)."""
    return act._plan(np.frombuffer(data, np.float64).reshape(shape))


@dataclasses.dataclass(frozen=True)
class Numerical(Activation):
    """Any elementwise JAX-traceable function phi, its duals by Mehler's series (module doc).

    fn: phi, mapping an array to an array of the same shape (jax.grad gives phi').
    tol: relative bound on each layer's dual (default 1e-12).
    max_terms: the most series terms (a power of two from 16 to 8192). The terms needed grow with
      the variance q the activation sees where phi is steep: tanh reaches tol = 1e-12 up to
      q ~ 70 with 8192 terms (2048: q ~ 17; 1e-8 up to q ~ 150); beyond, the error names the
      tol that is reachable.
    """

    fn: Callable
    name: Optional[str] = None
    tol: float = 1e-12
    max_terms: int = 8192

    exact = False

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"fn must be an elementwise callable, got {type(self.fn).__name__}")
        tol = self.tol
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (1e-15 <= float(tol) < 1):
            raise ValueError(f"tol must be a number in [1e-15, 1), got {tol!r}")
        object.__setattr__(self, "tol", float(tol))
        if self.max_terms not in LADDER:
            raise ValueError(f"max_terms must be one of {LADDER}, got {self.max_terms!r}")
        self._probe()

    @property
    def label(self) -> str:
        return self.name or getattr(self.fn, "__name__", "numerical")

    def __call__(self, x):
        return self.fn(x)

    def _probe(self):
        """fn maps arrays elementwise to finite real arrays, and jax.grad differentiates it."""
        x = np.linspace(-2.0, 2.0, 5)
        y = self._values(x)
        if y.shape != x.shape:
            raise ValueError(f"activation {self.label} must be elementwise: it maps an array of shape {x.shape} "
                             f"to shape {y.shape}")
        self._slopes(x)

    def _values(self, x):
        import jax

        from ..precision import enable_x64

        with enable_x64(), jax.ensure_compile_time_eval():  # eager also inside the caller's trace
            try:
                y = _chunked(_compiled(self.fn, False), x)
            except Exception as e:  # the user's function: report what failed, whatever it raised
                raise TypeError(f"activation {self.label} must be a JAX-traceable elementwise function; it failed "
                                f"under jax.jit on a float64 array: {e}") from e
            y = np.asarray(y)
        if y.dtype.kind not in "fiu":
            raise TypeError(f"activation {self.label} must return real numbers, got dtype {y.dtype}")
        y = y.astype(np.float64)
        if y.shape == x.shape and not np.isfinite(y).all():
            bad = x[~np.isfinite(y)].ravel()[0]
            raise ValueError(f"activation {self.label} returned a non-finite value at x = {bad:.6g} (its Gaussian "
                             "integrals reach |x| ~ 37 sqrt(q): does phi grow too fast?)")
        return y

    def _slopes(self, x):
        import jax

        from ..precision import enable_x64

        with enable_x64(), jax.ensure_compile_time_eval():
            try:
                d = _chunked(_compiled(self.fn, True), x)
            except Exception as e:
                raise TypeError(f"activation {self.label} must be differentiable by jax.grad (the NTK needs "
                                f"phi'): {e}") from e
            d = np.asarray(d, np.float64)
        if not np.isfinite(d).all():
            bad = x[~np.isfinite(d)].ravel()[0]
            raise ValueError(f"the derivative of activation {self.label} is not finite at x = {bad:.6g}")
        return d

    def _moments(self, q, step):
        """(E[phi^2], E[phi'^2]) at variances q (flat array) by the trapezoidal rule of `step`."""
        z, root = nodes(step)
        u = np.sqrt(q)[:, None] * z[None, :]
        w = root * root
        return self._values(u) ** 2 @ w, self._slopes(u) ** 2 @ w

    def series(self, q, terms, step=FIRST_STEP):
        """a, b: (len(q), terms) coefficients of phi and phi' at variances q (flat), and their
        tails relative to E[phi^2], E[phi'^2]; `step`: the diagonal's converged step."""
        step = _series_step(step, terms)
        z, root = nodes(step)
        u = np.sqrt(q)[:, None] * z[None, :]
        f = self._values(u) * root
        g = self._slopes(u) * root
        a, b = project(step, terms, f, g)
        ef, eg = np.einsum("ij,ij->i", f, f), np.einsum("ij,ij->i", g, g)
        tail_a = (ef - np.einsum("ij,ij->i", a, a)) / np.where(ef > 0, ef, 1.0)
        tail_b = (eg - np.einsum("ij,ij->i", b, b)) / np.where(eg > 0, eg, 1.0)
        return a, b, np.maximum(tail_a, tail_b)

    def diagonal(self, q):
        q = np.asarray(q, np.float64)
        return tuple(m.reshape(q.shape) for m in self._converged(q.ravel())[1:])

    def _converged(self, flat):
        """(step, E[phi^2], E[phi'^2]) at variances flat: the first step of the halvings at which
        both moments agree with the next halving to tol."""
        step = FIRST_STEP
        prev = self._moments(flat, step)
        for _ in range(STEPS):
            cur = self._moments(flat, step / 2)
            off = [np.abs(a - b) > self.tol * np.abs(b) + 1e-300 for a, b in zip(prev, cur)]
            if not (off[0].any() or off[1].any()):
                return step, cur[0], cur[1]
            last = (prev, cur, off)
            step, prev = step / 2, cur
        prev, cur, off = last
        j = 0 if off[0].any() else 1
        name, a, b, bad = ("E[phi(u)^2]", "E[phi'(u)^2]")[j], prev[j], cur[j], off[j]
        i = int(np.argmax(bad))
        raise ValueError(f"the Gaussian integral {name} of activation {self.label} does not converge at variance "
                         f"q = {flat[i]:.6g}: steps {step:g} and {step / 2:g} of the trapezoidal rule give "
                         f"{a[i]:.17g} and {b[i]:.17g}, beyond tol = {self.tol:g} (does phi grow too fast, or is it not smooth?)")

    def terms(self, q) -> int:
        """The fewest series terms (from LADDER) meeting tol at every variance in q."""
        return self._plan(q)[0]

    def _plan(self, q):
        """(terms, step) for variances q: see `terms`."""
        flat = np.unique(np.asarray(q, np.float64).ravel())
        step = self._converged(flat)[0]
        worst = None
        for terms in LADDER:
            if terms > self.max_terms:
                break
            tail = self.series(flat, terms, step)[2]
            if (tail <= self.tol).all():
                return terms, step
            worst = (terms, float(tail.max()), float(flat[int(np.argmax(tail))]))
        terms, tail, at = worst
        reach = 10.0 ** np.ceil(np.log10(tail)) if 0 < tail < 0.1 else None
        advice = (f"Numerical(..., tol={reach:.0e}) would pass here (reskernel.quadrature.tanh(tol=...) for tanh)"
                  if reach else "the series cannot represent it")
        raise ValueError(f"the Hermite series of activation {self.label} does not reach tol = {self.tol:g} with "
                         f"{terms} terms at variance q = {at:.6g} (relative tail {tail:.3g}): phi is not smooth "
                         "enough there (a kink, or a steep step at large q: smaller weight variances or inputs "
                         f"keep q lower); {advice}")

    def row_terms(self, q):
        q = np.asarray(q, np.float64)
        terms, step = _planned(self, q.tobytes(), q.shape) if q.size <= 4096 else self._plan(q)
        a, b, _ = self.series(q.ravel(), terms, step)
        return q, a.reshape(q.shape + (terms,)), b.reshape(q.shape + (terms,))

    def pair(self, t1, t2, k):
        """Horner's rule on the rows' and columns' series (NumPy or JAX, as k)."""
        q1, a1, b1 = t1
        q2, a2, b2 = t2
        if _xp(k) is np:
            rho = np.clip(k / np.sqrt(q1 * q2), -1.0, 1.0)
            v = vdot = 0.0
            for j in range(a1.shape[-1] - 1, -1, -1):
                v = v * rho + a1[..., j] * a2[..., j]
                vdot = vdot * rho + b1[..., j] * b2[..., j]
            return v, vdot
        import jax
        import jax.numpy as jnp

        rho = jnp.clip(k / jnp.sqrt(q1 * q2), -1.0, 1.0)
        a1, b1, a2, b2 = (jnp.moveaxis(c, -1, 0) for c in (a1, b1, a2, b2))
        terms = a1.shape[0]

        def horner(i, acc):
            j = terms - 1 - i
            return acc[0] * rho + a1[j] * a2[j], acc[1] * rho + b1[j] * b2[j]

        zero = jnp.zeros_like(rho)
        return jax.lax.fori_loop(0, terms, horner, (zero, zero))

    def duals(self, q1, q2, k):
        """(V, Vdot) at float64 host arrays (for tests and signal propagation)."""
        q1, q2, k = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (q1, q2, k)))
        both = self.row_terms(np.stack([q1, q2]))
        return self.pair(tuple(t[0] for t in both), tuple(t[1] for t in both), k)


def _jnp_tanh(x):
    import jax.numpy as jnp

    return jnp.tanh(x)


def tanh(tol: float = 1e-12) -> Numerical:
    """tanh through the Hermite series (no closed-form dual exists)."""
    return Numerical(_jnp_tanh, name="tanh", tol=tol)
