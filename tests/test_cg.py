"""Preconditioned CG for kernel regression (reskernel.inference.cg) against direct float64 solves.

References are written here: scipy's cho_factor / cho_solve and np.linalg.solve in float64 on the
same matrix. The kernel is a real reskernel NTK of random inputs in 2 dimensions (correlated
inputs: its spectrum decays, so small noise makes the system ill-conditioned, unlike nearly
orthogonal inputs in high dimension).
"""
import jax
import numpy as np
import pytest
import scipy.linalg

import reskernel as rk
from reskernel.inference import _precondition
from reskernel.inference.cg import CGResult, KernelBlocks, cg_solve, predict
from reskernel.precision import enable_x64

N, M, D = 500, 60, 2
ARCH = rk.FeedForward(3)


def _inputs(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.fixture(scope="module")
def data():
    """float64 NTK of N training and M test inputs, and 3 right-hand sides (one-hot of 3 classes, centred)."""
    x = _inputs(N + M, D, 0)
    with enable_x64():
        k = np.asarray(rk.kernel(ARCH, x, get="ntk"))
    assert k.dtype == np.float64
    labels = (np.arctan2(x[:N, 1], x[:N, 0]) // (2 * np.pi / 3)).astype(int) % 3
    y = np.eye(3)[labels] - 1 / 3
    return k[:N, :N], k[N:, :N], y


def direct(k, noise, b):
    """The reference: Cholesky of K + noise I in float64 (scipy)."""
    factor = scipy.linalg.cho_factor(np.asarray(k, np.float64) + noise * np.eye(k.shape[0]), lower=True)
    return scipy.linalg.cho_solve(factor, b)


def rel(a, b):
    """Largest relative difference per column."""
    a, b = np.atleast_2d(a.T).T, np.atleast_2d(b.T).T
    return float((np.linalg.norm(a - b, axis=0) / np.linalg.norm(b, axis=0)).max())


def test_kernel_is_ill_conditioned(data):
    """The premise of the conditioning tests: the NTK's spectrum spans many decades."""
    lam = np.linalg.eigvalsh(data[0])
    assert lam[0] / lam[-1] < 1e-8


_SOLVES = {}


def solve(data, noise, pre):
    """cg_solve at `noise` x the mean diagonal, tol 1e-8, rank 100; each case computed once per module."""
    if (noise, pre) not in _SOLVES:
        k, _, y = data
        sigma = noise * np.trace(k) / N
        _SOLVES[noise, pre] = sigma, cg_solve(k, y, noise=sigma, tol=1e-8, maxiter=40 * N, preconditioner=pre, rank=100)
    return _SOLVES[noise, pre]


@pytest.mark.parametrize("pre", [None, "pivoted_cholesky", "nystrom"])
@pytest.mark.parametrize("noise", [1e-1, 1e-4, 1e-6])
def test_predictions_match_direct_solve(data, noise, pre):
    k, kt, y = data
    sigma, res = solve(data, noise, pre)
    assert isinstance(res, CGResult) and res.converged
    assert res.solution.dtype == np.float64 and res.solution.shape == y.shape
    assert res.iterations.shape == res.residual.shape == (3,)
    assert (res.residual <= 1e-8).all()
    ref = direct(k, sigma, y)
    # the reported residual is the true one
    true = np.linalg.norm(y - (k @ res.solution + sigma * res.solution), axis=0) / np.linalg.norm(y, axis=0)
    np.testing.assert_allclose(res.residual, true, rtol=1e-3, atol=1e-15)
    assert rel(predict(kt, res), kt @ ref) < 1e-6
    assert rel(predict(k, res.solution), k @ ref) < 1e-6


@pytest.mark.parametrize("pre", ["pivoted_cholesky", "nystrom"])
def test_preconditioner_cuts_iterations(data, pre):
    """On the ill-conditioned system (noise 1e-6 x mean diagonal: condition number ~1e8)."""
    plain, fast = solve(data, 1e-6, None)[1], solve(data, 1e-6, pre)[1]
    assert plain.converged and fast.converged and fast.rank == 100
    assert plain.iterations.max() >= 3 * fast.iterations.max(), (plain.iterations, fast.iterations)


def test_many_right_hand_sides_equal_one_at_a_time(data):
    k, _, y = data
    sigma = 1e-2 * np.trace(k) / N
    b = np.concatenate([y[:, :2], np.random.default_rng(1).normal(size=(N, 1))], axis=1)
    together = cg_solve(k, b, noise=sigma, tol=1e-10, maxiter=20 * N, preconditioner=None)
    assert together.converged
    for j in range(b.shape[1]):
        alone = cg_solve(k, b[:, j], noise=sigma, tol=1e-10, maxiter=20 * N, preconditioner=None)
        assert alone.solution.shape == (N,) and alone.residual.shape == ()
        assert rel(together.solution[:, j], alone.solution) < 1e-9
        # the same recurrence per column; but BLAS sums (n, 5) and (n, 1) products in different
        # orders, and that rounding moves the step where the residual crosses tol by a few percent
        assert abs(int(together.iterations[j]) - int(alone.iterations)) <= 0.05 * alone.iterations


def test_preconditioner_inverts_low_rank_plus_noise_lifted_off_its_span():
    """P = L L^T + noise I + s2_min (I - Q Q^T), Q an orthonormal basis of L's columns (QR here,
    not the SVD the preconditioner uses), solved densely."""
    rng = np.random.default_rng(2)
    factor = rng.normal(size=(50, 7)) * np.logspace(0, -1, 7)      # s2_min ~ 0.1 >> noise
    v = rng.normal(size=(50, 3))
    q = np.linalg.qr(factor)[0]
    s2_min = np.linalg.eigvalsh(factor.T @ factor)[0]
    p = factor @ factor.T + 1e-3 * np.eye(50) + s2_min * (np.eye(50) - q @ q.T)
    pre = _precondition.preconditioner(factor, 1e-3)
    np.testing.assert_allclose(pre.shift, 1e-3 + s2_min, rtol=1e-12)
    np.testing.assert_allclose(pre.apply(v), np.linalg.solve(p, v), rtol=1e-9)


def test_pivoted_cholesky_of_full_rank_reproduces_the_kernel(data):
    k = data[0][:200, :200] + 1e-3 * np.eye(200)
    from reskernel.inference.cg import _Matrix
    factor = _precondition.pivoted_cholesky(_Matrix("k", k, 64), 200)
    np.testing.assert_allclose(factor @ factor.T, k, atol=1e-10 * k.max())


def test_kernel_blocks_products_equal_dense():
    """KernelBlocks (n not a multiple of block) against the dense reskernel.kernel, float64 and float32."""
    x, xt = _inputs(150, D, 3), _inputs(40, D, 4)
    v = np.random.default_rng(5).normal(size=(150, 2))
    with enable_x64():
        dense = np.asarray(rk.kernel(ARCH, x, get="ntk"))
        ops = KernelBlocks(ARCH, x, block=64)
        np.testing.assert_allclose(ops.matmul(v), dense @ v, rtol=1e-12, atol=1e-12 * np.abs(dense @ v).max())
        np.testing.assert_allclose(ops.diagonal(), np.diagonal(dense), rtol=1e-13)
        np.testing.assert_allclose(ops.rows([5, 100, 149]), dense[[5, 100, 149]], rtol=1e-13)
        for get in ("ntk", "nngp"):
            cross = np.asarray(rk.kernel(ARCH, xt, x, get=get))
            np.testing.assert_allclose(predict(KernelBlocks(ARCH, xt, x, get=get, block=64), v), cross @ v,
                                       rtol=1e-12, atol=1e-12 * np.abs(cross @ v).max())
    x32 = x.astype(np.float32)
    out = KernelBlocks(ARCH, x32, block=64).matmul(v)        # float32 blocks, float64 products
    assert out.dtype == np.float64
    dense32 = np.asarray(rk.kernel(ARCH, x32, get="ntk"), np.float64)
    np.testing.assert_allclose(out, dense32 @ v, atol=1e-5 * np.abs(dense32).max() * np.abs(v).sum(0).max())


def test_cg_over_kernel_blocks_matches_direct():
    """Pivoted Cholesky rows, the products and the predictions all from recomputed blocks."""
    x, xt = _inputs(150, D, 3), _inputs(40, D, 4)
    y = np.sign(x)
    with enable_x64():
        k = np.asarray(rk.kernel(ARCH, x, get="ntk"))
        kt = np.asarray(rk.kernel(ARCH, xt, x, get="ntk"))
    sigma = 1e-3 * np.trace(k) / 150
    with enable_x64():     # float64 blocks (the dtype follows the inputs, as in reskernel.kernel)
        res = cg_solve(KernelBlocks(ARCH, x, block=64), y, noise=sigma, tol=1e-10, rank=40)
        got = predict(KernelBlocks(ARCH, xt, x, block=64), res)
    assert res.converged and res.rank == 40
    assert rel(got, kt @ direct(k, sigma, y)) < 1e-6


@pytest.mark.parametrize("store", ["numpy", "memmap", "jax"])
def test_float32_kernel_solved_in_float64(data, store, tmp_path):
    """A float32 matrix is solved exactly as stored (products accumulated in float64)."""
    k32 = data[0].astype(np.float32)
    y = data[2]
    sigma = 1e-2 * np.trace(data[0]) / N
    if store == "memmap":
        mm = np.lib.format.open_memmap(tmp_path / "k.npy", mode="w+", dtype=np.float32, shape=k32.shape)
        mm[:] = k32
        mm.flush()
        k = np.load(tmp_path / "k.npy", mmap_mode="r")
    else:
        k = jax.numpy.asarray(k32) if store == "jax" else k32
    res = cg_solve(k, y, noise=sigma, tol=1e-10, block=256)
    assert res.converged and res.solution.dtype == np.float64
    assert rel(res.solution, direct(k32, sigma, y)) < 1e-6


def test_not_converged_is_reported(data):
    k, _, y = data
    with pytest.warns(RuntimeWarning, match="did not converge in 3 of 3"):
        res = cg_solve(k, y, noise=1e-6 * np.trace(k) / N, tol=1e-10, maxiter=3, preconditioner=None)
    assert not res.converged and (res.residual > 1e-10).all() and (res.iterations == 3).all()


def test_indefinite_matrix_is_reported():
    k = np.array([[1.0, 2.0], [2.0, 1.0]])                 # eigenvalues 3 and -1
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        res = cg_solve(k, np.array([1.0, -1.0]), noise=0.0, preconditioner=None)
    assert not res.converged


def test_zero_column_and_exact_start(data):
    k, _, y = data
    sigma = 1e-2 * np.trace(k) / N
    b = np.stack([y[:, 0], np.zeros(N)], axis=1)
    res = cg_solve(k, b, noise=sigma, tol=1e-10, preconditioner=None)
    assert res.converged and (res.solution[:, 1] == 0).all() and res.iterations[1] == 0
    again = cg_solve(k, b, noise=sigma, tol=1e-8, x0=res.solution, preconditioner=None)
    assert again.converged and (again.iterations == 0).all()


def _bad_calls(k, y):
    n = k.shape[0]
    nan_k = k.copy()
    nan_k[3, 4] = nan_k[4, 3] = np.nan
    skew = k.copy()
    skew[:, 0] += k.max()
    return [
        (dict(b=y[:-1]), "b must have shape"),
        (dict(b=np.full_like(y, np.nan)), "b has non-finite"),
        (dict(noise=-1.0), "noise must be a finite real >= 0"),
        (dict(noise=np.nan), "noise must be a finite real"),
        (dict(rank=n + 1), "rank must be <= n"),
        (dict(rank=0), "rank must be >= 1"),
        (dict(preconditioner="ichol"), "preconditioner must be one of"),
        (dict(tol=0.0), "tol must be a finite real > 0"),
        (dict(tol=1.0), "tol must be < 1"),
        (dict(maxiter=0), "maxiter must be >= 1"),
        (dict(noise=0.0), "noise must be > 0 with a preconditioner"),
        (dict(k=k[:, :-1]), "k must be square"),
        (dict(k=nan_k), "k has non-finite entries"),
        (dict(k=skew), "k must be symmetric"),
        (dict(k=-k), "diagonal must be finite and >= 0"),
        (dict(k=KernelBlocks(ARCH, _inputs(n, D, 0), _inputs(4, D, 1))), "k must be square"),
        (dict(x0=y[:, :1]), "x0 must have the shape of b"),
    ]


@pytest.mark.parametrize("case", range(17))
def test_bad_inputs_raise(data, case):
    k, _, y = data[0][:50, :50], None, data[2][:50]
    change, match = _bad_calls(k, y)[case]
    kw = dict(k=k, b=y, noise=1e-3)
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        cg_solve(kw.pop("k"), kw.pop("b"), **kw)


def test_bad_operator_and_predict_inputs():
    x = _inputs(20, D, 0)
    with pytest.raises(ValueError, match="get must be 'nngp' or 'ntk'"):
        KernelBlocks(ARCH, x, get=None)
    with pytest.raises(ValueError, match="block must be >= 1"):
        KernelBlocks(ARCH, x, block=0)
    with pytest.raises(ValueError, match="x1 has non-finite"):
        KernelBlocks(ARCH, np.full((3, D), np.nan))
    with pytest.raises(ValueError, match=r"solution must have shape \(20,\)"):
        predict(np.ones((5, 20)), np.ones(19))
