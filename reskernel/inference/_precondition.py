"""Low-rank preconditioners for (K + noise I) x = b: P = L L^T + noise I, applied by Woodbury.

Both factors L (n, r) are built from r rows of K, in float64 whatever K's dtype:

  pivoted Cholesky (Harbrecht et al. 2012; GPyTorch, Gardner et al. 2018): the greedy partial
    Cholesky factorization that takes as next pivot the largest diagonal of K - L L^T; r rows,
    one at a time. Its error trace(K - L L^T) is what the greedy choice shrinks fastest.
  Nystrom (Williams & Seeger 2001; Falkon, Rudi et al. 2017): r landmarks S drawn uniformly,
    K ~ K[:, S] K[S, S]^+ K[S, :]; the r rows in one call.

P^-1 is applied through the thin SVD L = U diag(s) V^T (U orthonormal, n x r):

  P^-1 v = U diag(1 / (s^2 + noise)) U^T v + (v - U U^T v) / noise,

which is the Woodbury identity (noise I + L L^T)^-1 = (I - L (noise I + L^T L)^-1 L^T) / noise
written in L's singular basis: forming L^T L squares L's condition number, and at noise ~ 1e-6
of the kernel's scale that loses the digits the preconditioner exists to supply.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Woodbury", "pivoted_cholesky", "nystrom", "woodbury"]


class Woodbury(NamedTuple):
    """P = U diag(s2) U^T + noise I with U (n, r) orthonormal; `apply` gives P^-1 v."""

    u: np.ndarray
    s2: np.ndarray
    noise: float

    def apply(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v)
        proj = self.u.T @ v
        return (v - self.u @ proj) / self.noise + self.u @ (proj / (self.s2 + self.noise)[:, None])


def woodbury(factor: np.ndarray, noise: float) -> Woodbury:
    """The preconditioner L L^T + noise I of a factor L (n, r), float64."""
    u, s, _ = np.linalg.svd(np.asarray(factor, np.float64), full_matrices=False)
    return Woodbury(u, s * s, float(noise))


def _floor(op) -> float:
    # Entries of a kernel stored in `dtype` are known to about eps of its largest value: a
    # pivot smaller than this multiple of it adds a column of rounding errors, not of K.
    return 64 * np.finfo(op.dtype).eps


def _finite(rows):
    if not np.isfinite(rows).all():
        raise ValueError("k has non-finite entries (in the rows read for the preconditioner)")
    return rows


def pivoted_cholesky(op, rank: int) -> np.ndarray:
    """L (n, m), m <= rank: the greedy pivoted partial Cholesky factor of the operator's kernel.

    Stops early when every remaining diagonal of K - L L^T is below the kernel's rounding
    (64 eps of its largest diagonal): further columns would be noise.
    """
    d = op.diagonal().copy()
    n = d.shape[0]
    top = float(d.max())
    cols = np.zeros((n, rank))
    for m in range(rank):
        p = int(np.argmax(d))
        if not d[p] > _floor(op) * top:
            return cols[:, :m]
        row = _finite(op.rows(np.array([p])))[0]
        col = (row - cols[:, :m] @ cols[p, :m]) / np.sqrt(d[p])
        cols[:, m] = col
        d -= col * col
        d[p] = 0.0                      # rounding would leave ~eps here; the pivot is exact
    return cols


def nystrom(op, rank: int, *, seed: int = 0) -> np.ndarray:
    """L (n, m), m <= rank: K[:, S] W^-1/2 from `rank` landmarks S drawn uniformly (seeded).

    W = K[S, S] is inverted on its eigenvalues above the kernel's rounding (64 eps of its
    largest), so near-duplicate landmarks or a float32 kernel cannot blow up the factor.
    """
    n = op.shape[0]
    s = np.sort(np.random.default_rng(seed).choice(n, size=rank, replace=False))
    c = _finite(op.rows(s)).T                       # (n, r): K[:, S] = K[S, :]^T, K symmetric
    w = c[s]
    lam, vec = np.linalg.eigh((w + w.T) / 2)
    keep = lam > _floor(op) * lam.max()
    return c @ (vec[:, keep] / np.sqrt(lam[keep]))
