"""Kernel regression beyond one Cholesky: preconditioned conjugate gradients, block by block.

Solves (K + noise I) X = B for many right-hand sides at once (B (n, k), e.g. one column per
class) without K in one piece: K is a matrix (NumPy, np.memmap or jax.Array; float32 or float64,
read `block` rows at a time) or a `KernelBlocks`, reskernel's analytic kernel recomputed in
square blocks on demand, so that memory is set by the block size, not by n^2.

Every column runs its own preconditioned CG (its own step sizes; columns that converge drop out
of the matrix products), all in float64 whatever K's dtype: a float32 kernel is solved as
stored, not rounded again. A column has converged when its relative residual
|b - (K + noise I) x| / |b| <= tol; the residual reported is recomputed from x at the end (not the
recursively updated one, which drifts from it in finite precision), and a column whose
recursive residual converged while its true one did not is restarted from the true one while
that still halves it (at the attainable floor, restarting proved more robust than continuing
with the true residual in place of the recursive one). Columns that do not converge are
reported in the result and by a RuntimeWarning, never returned silently.

Preconditioners: a rank-r pivoted Cholesky or Nystrom factor L of K, P ~ L L^T + noise I,
inverted by Woodbury in float64 with K's unresolved part taken at the smallest resolved
eigenvalue (reskernel.inference._precondition), or none.

References: Hestenes & Stiefel (1952); Gardner et al., GPyTorch (2018); Rudi et al., Falkon
(2017); Ma & Belkin, EigenPro (2017); Frangella et al., randomized Nystrom PCG (2023).
"""
import dataclasses
import math
import numbers
import warnings
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..core import analytic
from ..precision import enable_x64
from . import _precondition

__all__ = ["CGResult", "KernelBlocks", "cg_solve", "predict", "PRECONDITIONERS"]

PRECONDITIONERS = (None, "pivoted_cholesky", "nystrom")


class CGResult(NamedTuple):
    """What `cg_solve` returns (float64 NumPy arrays; shapes follow B's: (n, k) or (n,)).

    solution: X, (n, k). iterations: CG steps taken per column, (k,). residual: the final
    relative residual |b - (K + noise I) x| / |b| per column, recomputed from X, (k,).
    converged: every residual <= tol. rank: columns of the preconditioner's factor (0: none).
    """

    solution: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    converged: bool
    rank: int


@jax.jit
def _gemm(k, v):
    return jnp.dot(k.astype(jnp.float64), v, precision=jax.lax.Precision.HIGHEST)


@jax.jit
def _gemm2(k, va, vc):
    """K_ij V_j and K_ij^T V_i of one off-diagonal block, read once."""
    k = k.astype(jnp.float64)
    hi = jax.lax.Precision.HIGHEST
    return jnp.dot(k, vc, precision=hi), jnp.dot(k.T, va, precision=hi)


def _edges(n, block):
    return [(s, min(s + block, n)) for s in range(0, n, block)]


@dataclasses.dataclass(frozen=True, eq=False)
class KernelBlocks:
    """reskernel's analytic kernel between x1 and x2 as an operator, computed block by block.

    `reskernel.kernel(arch, x1[rows], x2[cols], get=get, ...)` on square blocks of `block` rows and
    columns, recomputed at every product and never stored whole: memory ~ block^2 (the block
    and the recursion's tiles) plus the (n, k) vectors. With x2 None (the training kernel,
    symmetric), only blocks i <= j are computed, each used for K_ij V_j and K_ij^T V_i (half the
    kernel's cost), and diagonal blocks are symmetric calls (exact diagonal, as reskernel.kernel).

    Args:
      arch, x1, x2, get ("nngp" or "ntk"), trained, method: as in reskernel.kernel.
      block: rows and columns per block.
    Methods give float64 NumPy arrays: matmul(v) = K v, rows(idx) = K[idx, :], diagonal().
    """

    arch: Any
    x1: Any = dataclasses.field(repr=False)
    x2: Any = dataclasses.field(default=None, repr=False)
    _: dataclasses.KW_ONLY
    get: str = "ntk"
    trained: str = "hidden"
    method: str = "auto"
    block: int = 1024

    def __post_init__(self):
        arch, trained, x1, x2, _ = analytic.prepare(self.arch, self.x1, self.x2, self.trained)
        if not isinstance(self.get, str) or self.get not in ("nngp", "ntk"):
            raise ValueError(f"get must be 'nngp' or 'ntk', got {self.get!r}")
        if not isinstance(self.method, str) or self.method not in analytic.METHODS:
            raise ValueError(f"method must be one of {analytic.METHODS}, got {self.method!r}")
        for name, value in (("arch", arch), ("trained", trained), ("x1", x1), ("x2", x2),
                            ("block", _checks.positive_int("block", self.block))):
            object.__setattr__(self, name, value)

    @property
    def shape(self):
        return (self.x1.shape[0], (self.x1 if self.x2 is None else self.x2).shape[0])

    @property
    def dtype(self):
        return np.dtype(self.x1.dtype)

    def _kernel(self, a, b=None):
        return analytic.kernel(self.arch, a, b, get=self.get, trained=self.trained, method=self.method)

    def matmul(self, v):
        v = np.ascontiguousarray(v, np.float64)      # BLAS is ~50x slower on (n, k) F-ordered
        y = self.x1 if self.x2 is None else self.x2
        rows, cols = _edges(self.shape[0], self.block), _edges(self.shape[1], self.block)
        out = [0.0] * len(rows)
        part = [0.0] * len(cols)          # K_ij^T V_i, symmetric case
        with enable_x64():
            vd = jnp.asarray(v)
        for i, (a0, a1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                if self.x2 is None and j < i:
                    continue
                # the kernel in the caller's precision setting; only the products in float64
                kij = self._kernel(self.x1[a0:a1], None if self.x2 is None and i == j else y[c0:c1])
                with enable_x64():
                    if self.x2 is None and i != j:
                        kv, ktv = _gemm2(kij, vd[a0:a1], vd[c0:c1])
                        out[i], part[j] = out[i] + kv, part[j] + ktv
                    else:
                        out[i] = out[i] + _gemm(kij, vd[c0:c1])
        with enable_x64():
            if self.x2 is None:
                out = [o + p for o, p in zip(out, part)]
            return np.concatenate([np.asarray(o) for o in out])

    def rows(self, idx):
        idx = np.asarray(idx)
        y = self.x1 if self.x2 is None else self.x2
        parts = [np.asarray(self._kernel(self.x1[idx[s:e]], y), np.float64) for s, e in _edges(idx.size, self.block)]
        return np.concatenate(parts)

    def diagonal(self):
        if self.x2 is not None:
            raise ValueError("diagonal() needs the symmetric kernel (x2 None)")
        return np.concatenate([np.diagonal(np.asarray(self._kernel(self.x1[a:b]), np.float64))
                               for a, b in _edges(self.shape[0], self.block)])


class _Matrix:
    """A kernel matrix (NumPy, np.memmap or jax.Array) read `block` rows at a time."""

    def __init__(self, name, a, block):
        if not isinstance(a, (np.ndarray, jax.Array)):
            a = _checks.real_array(name, a)
        if a.ndim != 2:
            raise ValueError(f"{name} must be a matrix (n, n) or a KernelBlocks, got shape {a.shape}")
        self.dtype = _checks.float_dtype(name, a.dtype)
        self.a, self.shape, self.block = a, a.shape, block
        self.host = not isinstance(a, jax.Array)

    def matmul(self, v):
        v = np.ascontiguousarray(v, np.float64)      # BLAS is ~50x slower on (n, k) F-ordered v
        out = np.empty((self.shape[0], v.shape[1]))
        if self.host:
            for s, e in _edges(self.shape[0], self.block):
                # a strided block (a slice of a larger matrix) would send matmul to its slow non-BLAS loop
                out[s:e] = np.ascontiguousarray(self.a[s:e], np.float64) @ v
            return out
        with enable_x64():
            vd = jnp.asarray(v)
            for s, e in _edges(self.shape[0], self.block):
                out[s:e] = np.asarray(_gemm(self.a[s:e], vd))
        return out

    def rows(self, idx):
        return np.asarray(self.a[np.asarray(idx)], np.float64)

    def diagonal(self):
        return np.asarray(np.diagonal(self.a) if self.host else jnp.diagonal(self.a), np.float64)


def _is_operator(k):
    """An object with KernelBlocks' interface (shape, dtype, matmul, rows, diagonal) that is not an
    array, e.g. reskernel.core.distributed.ShardedRows: used as it is."""
    return (not isinstance(k, (np.ndarray, jax.Array))
            and all(hasattr(k, a) for a in ("shape", "dtype", "matmul", "rows", "diagonal")))


def _operator(name, k, block, *, square):
    op = k if isinstance(k, KernelBlocks) or _is_operator(k) else _Matrix(name, k, block)
    if square and op.shape[0] != op.shape[1]:
        raise ValueError(f"{name} must be square (n, n), the training kernel; got shape {op.shape}"
                         + (" (a KernelBlocks with x2: pass x2=None)" if isinstance(k, KernelBlocks) else ""))
    return op


def _check_symmetric(op, diag):
    """A sample of 256 entry pairs K[i, j], K[j, i] of a matrix kernel: CG needs K symmetric."""
    if not isinstance(op, _Matrix):
        return
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, op.shape[0], size=(2, 256))
    kij, kji = np.asarray(op.a[i, j], np.float64), np.asarray(op.a[j, i], np.float64)
    scale = np.abs(diag).max()
    if not np.isfinite(kij).all() or not np.isfinite(kji).all():
        raise ValueError("k has non-finite entries")
    if np.abs(kij - kji).max() > 1e-4 * scale:
        raise ValueError("k must be symmetric: sampled entries k[i, j] and k[j, i] differ by "
                         f"{np.abs(kij - kji).max():.3g} (largest diagonal {scale:.3g})")


def _real(name, value, lo, *, closed=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= lo if closed else value > lo):
        raise ValueError(f"{name} must be a finite real {'>=' if closed else '>'} {lo}, got {value!r}")
    return float(value)


def _rhs(name, b, n):
    b = np.asarray(_checks.real_array(name, b), np.float64)
    if b.ndim not in (1, 2) or b.shape[0] != n or b.size == 0:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k) to match the kernel, got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"{name} has non-finite entries")
    return b


def cg_solve(k, b, *, noise: float, tol: float = 1e-8, maxiter: Optional[int] = None,
             preconditioner: Optional[str] = "pivoted_cholesky", rank: Optional[int] = None,
             block: int = 1024, seed: int = 0, x0=None) -> CGResult:
    """X = (K + noise I)^-1 B by preconditioned conjugate gradients, every column at once, in float64.

    Args:
      k: the training kernel (n, n), symmetric positive semi-definite: a matrix (NumPy,
        np.memmap, jax.Array; float32 or float64), a KernelBlocks with x2 None, or an object with
        KernelBlocks' methods (e.g. reskernel.core.distributed.ShardedRows: rows on several processes).
      b: right-hand sides, (n,) or (n, k) (e.g. one-hot labels of 10 classes).
      noise: >= 0, added to K's diagonal (absolute; e.g. 1e-6 * mean diagonal). > 0 with a
        preconditioner.
      tol: a column has converged when |b - (K + noise I) x| / |b| <= tol, in (0, 1). Rounding
        bounds what any solver attains, about eps |K + noise I| |x| / |b| (1e-10 to 1e-9 at
        noise 1e-6 x the mean diagonal in the tests); a column stuck above tol stops there, and
        is reported.
      maxiter: most CG steps (products with K) in all, restarts included (default n); each
        check of the true residual adds a product.
      preconditioner: "pivoted_cholesky" (default), "nystrom" (uniform landmarks drawn with
        `seed`) or None.
      rank: the preconditioner's rank, 1..n (default min(100, n)); a pivoted Cholesky stops
        earlier when K's remaining diagonal is at its rounding.
      block: rows read at a time from a matrix k (memory ~ block n float64; a KernelBlocks has
        its own block).
      x0: starting guess, shaped as b (default 0).
    Returns:
      CGResult(solution, iterations, residual, converged, rank). Columns that do not reach tol
      also give a RuntimeWarning. Not traceable under jit (the iteration count is data-dependent
      and K may live in host memory or on disk).
    """
    block = _checks.positive_int("block", block)
    op = _operator("k", k, block, square=True)
    n = op.shape[0]
    noise = _real("noise", noise, 0.0)
    tol = _real("tol", tol, 0.0, closed=False)
    if tol >= 1:
        raise ValueError(f"tol must be < 1 (a relative residual), got {tol!r}")
    maxiter = n if maxiter is None else _checks.positive_int("maxiter", maxiter)
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    rhs = _rhs("b", b, n)
    x0 = None if x0 is None else _rhs("x0", x0, n)
    if x0 is not None and x0.shape != rhs.shape:
        raise ValueError(f"x0 must have the shape of b, {rhs.shape}; got {x0.shape}")
    diag = op.diagonal()
    if not np.isfinite(diag).all() or (diag < 0).any():
        raise ValueError("k's diagonal must be finite and >= 0 (a positive semi-definite kernel)")
    _check_symmetric(op, diag)
    precond, used = None, 0
    if preconditioner is not None:
        rank = min(100, n) if rank is None else _checks.positive_int("rank", rank)
        if rank > n:
            raise ValueError(f"rank must be <= n = {n}, got {rank}")
        if noise == 0:
            raise ValueError("noise must be > 0 with a preconditioner (P ~ L L^T + noise I); "
                             "use preconditioner=None for noise 0")
        factor = (_precondition.pivoted_cholesky(op, rank) if preconditioner == "pivoted_cholesky"
                  else _precondition.nystrom(op, rank, seed=seed))
        precond, used = _precondition.preconditioner(factor, noise), factor.shape[1]
    b2 = rhs.reshape((n, -1))
    x, iters, resid, broken = _pcg(op, b2, noise, precond, tol, maxiter, None if x0 is None else x0.reshape(b2.shape))
    converged = bool((resid <= tol).all())
    if not converged:
        bad = np.flatnonzero(resid > tol)
        why = (" (K + noise I was not positive definite along a search direction: an indefinite kernel, "
               "or noise 0 on a singular one)" if broken.any() else "")
        warnings.warn(f"cg_solve did not converge in {bad.size} of {resid.size} column(s){why}: relative "
                      f"residual up to {resid[bad].max():.3g} > tol {tol:g} after {iters.max()} steps "
                      f"(maxiter {maxiter}); raise maxiter, the preconditioner's rank or noise, or tol",
                      RuntimeWarning, stacklevel=2)
    shape = rhs.shape[1:]
    return CGResult(x.reshape(rhs.shape), iters.reshape(shape), resid.reshape(shape), converged, used)


def _pcg(op, b, noise, precond, tol, maxiter, x0):
    """(x, iterations, true relative residuals, broken) for the columns of b (n, k)."""
    def a_times(v):
        q = op.matmul(v) + noise * v
        if not np.isfinite(q).all():
            raise ValueError("k has non-finite entries (K v is not finite)")
        return q

    def m_inv(v):
        return v.copy() if precond is None else precond.apply(v)

    n, k = b.shape
    bnorm = np.linalg.norm(b, axis=0)
    zero = bnorm == 0                               # x = 0 exactly
    x = np.zeros((n, k)) if x0 is None else np.where(zero, 0.0, x0)
    r = b - a_times(x) if x0 is not None else b.copy()
    resid = np.where(zero, 0.0, np.linalg.norm(r, axis=0) / np.where(zero, 1.0, bnorm))
    iters = np.zeros(k, dtype=np.int64)
    broken = np.zeros(k, bool)
    stalled = np.zeros(k, bool)
    steps = 0
    while steps < maxiter:
        cols = np.flatnonzero((resid > tol) & ~broken & ~stalled)
        if cols.size == 0:
            break
        rr = r[:, cols]
        p = m_inv(rr)
        rz = np.einsum("ij,ij->j", rr, p)
        active = np.ones(cols.size, bool)
        while active.any() and steps < maxiter:
            a = np.flatnonzero(active)
            q = a_times(p[:, a])
            pq = np.einsum("ij,ij->j", p[:, a], q)
            ok = pq > 0
            if not ok.all():                        # p^T (K + noise I) p <= 0: not positive definite
                broken[cols[a[~ok]]] = True
                active[a[~ok]] = False
                a, q, pq = a[ok], q[:, ok], pq[ok]
                if a.size == 0:
                    break
            alpha = rz[a] / pq
            x[:, cols[a]] += alpha * p[:, a]
            rr[:, a] -= alpha * q
            iters[cols[a]] += 1
            steps += 1
            done = np.linalg.norm(rr[:, a], axis=0) <= tol * bnorm[cols[a]]
            active[a[done]] = False
            go = a[~done]
            if go.size:
                z = m_inv(rr[:, go])
                rz_new = np.einsum("ij,ij->j", rr[:, go], z)
                p[:, go] = z + (rz_new / rz[go]) * p[:, go]
                rz[go] = rz_new
        r[:, cols] = b[:, cols] - a_times(x[:, cols])      # the true residual, not the recursive one
        new = np.linalg.norm(r[:, cols], axis=0) / bnorm[cols]
        stalled[cols] = new > 0.5 * resid[cols]            # restarting would not halve it: at its floor
        resid[cols] = new
    return x, iters, resid, broken


def predict(k_test_train, solution, *, block: int = 1024) -> np.ndarray:
    """Predictions K_test,train X in float64, block by block.

    Args:
      k_test_train: (m, n) kernel between test and training points: a matrix (NumPy, np.memmap,
        jax.Array) read `block` rows at a time, or KernelBlocks(arch, x_test, x_train, ...).
      solution: X (n,) or (n, k), or the CGResult of cg_solve.
    Returns:
      (m,) or (m, k) float64 NumPy array.
    """
    block = _checks.positive_int("block", block)
    op = _operator("k_test_train", k_test_train, block, square=False)
    x = solution.solution if isinstance(solution, CGResult) else solution
    x = _rhs("solution", x, op.shape[1])
    return op.matmul(x.reshape((x.shape[0], -1))).reshape(op.shape[:1] + x.shape[1:])
