import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from conftest import assert_close
from reference import ffnet_pair, gram, resnet_pair


def _inputs(n, d, seed, scale_spread=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    if scale_spread:  # any nonzero norms, not only the unit sphere
        x *= rng.uniform(0.2, 3.0, size=(n, 1))
    return x


@pytest.mark.parametrize("depth", [1, 2, 7, 40])
@pytest.mark.parametrize("trained", ["hidden", "all"])
def test_ffnet_matches_float64_reference(x64, depth, trained):
    x1, x2 = _inputs(5, 4, 0), _inputs(3, 4, 1)
    k = rk.kernel(rk.FeedForward(depth), x1, x2, trained=trained)
    nngp, ntk = gram(ffnet_pair, x1, x2, depth, trained)
    assert k.ntk.dtype == jnp.float64
    assert_close(k.nngp, nngp)
    assert_close(k.ntk, ntk)


@pytest.mark.parametrize("arch", [rk.ResNet(1, gamma=1.0), rk.ResNet(5, gamma=0.5), rk.ResNet(30, gamma=0.75),
                                  rk.ResNet(30, gamma=1.0), rk.ResNet(8, alpha=0.3),
                                  rk.ResNet(6, scales=[0.9**l for l in range(1, 7)])])
@pytest.mark.parametrize("trained", ["hidden", "all"])
def test_resnet_matches_float64_reference(x64, arch, trained):
    x1, x2 = _inputs(4, 6, 2), _inputs(5, 6, 3)
    k = rk.kernel(arch, x1, x2, trained=trained)
    nngp, ntk = gram(resnet_pair, x1, x2, arch.branch_scales, trained)
    assert_close(k.nngp, nngp)
    assert_close(k.ntk, ntk)


def test_depth_one_closed_forms(x64):
    x = _inputs(6, 5, 4)
    norms = np.linalg.norm(x, axis=1)
    rho = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    np.fill_diagonal(rho, 1.0)  # arccos(1 - 1e-16) = 1.5e-8: the exact diagonal matters
    theta = np.arccos(rho)
    k0 = (np.pi - theta) / np.pi
    k1 = (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi
    ff = rk.kernel(rk.FeedForward(1), x)
    assert_close(ff.nngp, np.outer(norms, norms) * k1, rtol=1e-12)
    assert_close(ff.ntk, x @ x.T * k0, rtol=1e-12, atol=1e-14)
    a = 0.4
    res = rk.kernel(rk.ResNet(1, alpha=a), x)
    assert_close(res.nngp, x @ x.T + a**2 * np.outer(norms, norms) * k1, rtol=1e-12)
    assert_close(res.ntk, a**2 * np.outer(norms, norms) * (rho * k0 + k1), rtol=1e-12)


def test_orthogonal_inputs(x64):
    x = np.array([[2.0, 0.0], [0.0, 0.5]])
    ff = rk.kernel(rk.FeedForward(1), x)
    np.testing.assert_allclose(ff.nngp[0, 1], 1.0 / np.pi, rtol=1e-14)  # |x||x'| k1(0)
    np.testing.assert_allclose(ff.ntk[0, 1], 0.0, atol=1e-15)          # <x, x'> k0(0)
    np.testing.assert_allclose(rk.kernel(rk.FeedForward(1), x, trained="all").ntk[0, 1], 1.0 / np.pi, rtol=1e-14)
    # depth 2: rho_1 = 1/pi, Theta_2 = (0 + K_1) k0(rho_1) = (1/pi) (1 - arccos(1/pi)/pi)
    ff2 = rk.kernel(rk.FeedForward(2), x)
    np.testing.assert_allclose(ff2.ntk[0, 1], (1 / np.pi) * (1 - np.arccos(1 / np.pi) / np.pi), rtol=1e-13)


@pytest.mark.parametrize("depth", [1, 3, 50])
def test_diagonals(x64, depth):
    x = _inputs(4, 3, 5)
    sq = np.sum(x * x, axis=1)
    ff = rk.kernel(rk.FeedForward(depth), x)
    assert_close(np.diag(ff.nngp), sq)              # the FFNet diagonal stays |x|^2
    assert_close(np.diag(ff.ntk), depth * sq)       # Theta_L(x, x) = L |x|^2
    a = depth ** -1.0
    res = rk.kernel(rk.ResNet(depth, gamma=1.0), x)
    assert_close(np.diag(res.nngp), (1 + a * a) ** depth * sq)
    assert_close(np.diag(res.ntk), 2 * a * a * depth * (1 + a * a) ** (depth - 1) * sq)


def test_all_depths_equals_truncated_nets(x64):
    x1, x2 = _inputs(3, 4, 6), _inputs(4, 4, 7)
    ks = rk.kernel(rk.FeedForward(12), x1, x2, all_depths=True, trained="all")
    assert ks.ntk.shape == (12, 3, 4)
    for l in (1, 5, 12):
        k = rk.kernel(rk.FeedForward(l), x1, x2, trained="all")
        assert_close(ks.nngp[l - 1], k.nngp)
        assert_close(ks.ntk[l - 1], k.ntk)
    arch = rk.ResNet(20, gamma=1.0)  # truncations keep alpha = 20^-1
    ks = rk.kernel(arch, x1, x2, all_depths=True, trained="all")
    for l in (1, 9, 20):
        k = rk.kernel(rk.ResNet(l, alpha=arch.branch_scales[0]), x1, x2, trained="all")
        assert_close(ks.nngp[l - 1], k.nngp)
        assert_close(ks.ntk[l - 1], k.ntk)


@pytest.mark.parametrize("arch", [rk.FeedForward(30), rk.ResNet(30, gamma=0.5), rk.ResNet(200, gamma=1.0)])
def test_symmetric_and_psd(x64, arch):
    x = _inputs(25, 8, 8)
    for trained in ("hidden", "all"):
        k = rk.kernel(arch, x, trained=trained)
        for mat in (k.nngp, k.ntk):
            mat = np.asarray(mat)
            np.testing.assert_allclose(mat, mat.T, rtol=1e-13)
            eig = np.linalg.eigvalsh(mat)
            assert eig.min() > -1e-10 * eig.max()
    # x2 = None and x2 = x1 agree off the diagonal
    k_sym, k_full = rk.kernel(arch, x), rk.kernel(arch, x, x)
    off = ~np.eye(25, dtype=bool)
    assert_close(np.asarray(k_sym.ntk)[off], np.asarray(k_full.ntk)[off])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("arch", [rk.FeedForward(10_000), rk.ResNet(10_000, gamma=0.5), rk.ResNet(10_000, gamma=1.0)])
def test_no_nan_for_hard_inputs(x64, dtype, arch):
    base = np.array([0.3, -1.2, 0.7, 2.0])
    x = np.stack([base, base, -base, base + 1e-6, 3 * base]).astype(dtype)
    k = rk.kernel(arch, x, trained="all")
    assert k.ntk.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    ks = rk.kernel(arch.with_depth(50), x, all_depths=True)
    assert np.all(np.isfinite(ks.ntk))


def test_gradients_finite_at_identical_inputs(x64):
    x = jnp.array([[0.3, -1.2, 0.7], [0.3, -1.2, 0.7], [-0.3, 1.2, -0.7]])
    for arch in (rk.FeedForward(5), rk.ResNet(5, gamma=1.0)):
        g = jax.grad(lambda z: rk.kernel(arch, z).ntk.sum())(x)
        assert np.all(np.isfinite(g))
        g = jax.grad(lambda z: rk.kernel(arch, z, x).nngp.sum())(x)
        assert np.all(np.isfinite(g))


def test_dtype_follows_inputs():
    x = np.ones((2, 3), np.float32) * np.array([[1.0], [2.0]], np.float32) + np.eye(2, 3, dtype=np.float32)
    assert rk.kernel(rk.ResNet(3), x).ntk.dtype == jnp.float32
    assert rk.kernel(rk.FeedForward(3), np.array([[1, 0], [1, 1]])).ntk.dtype == jnp.float32


def test_traces_under_jit(x64):
    x = _inputs(4, 3, 9)
    for arch in (rk.FeedForward(4), rk.ResNet(4, gamma=0.75)):
        jitted = jax.jit(lambda z: rk.kernel(arch, z, trained="all"))
        assert_close(jitted(x).ntk, rk.kernel(arch, x, trained="all").ntk)


def test_correlation_kernels_scale_with_norms(x64):
    x = _inputs(4, 3, 10)
    arch = rk.ResNet(7, gamma=0.75)
    rho, n1, n2 = rk.correlations(x)
    norm = rk.correlation_kernels(arch, rho, trained="all")
    full = rk.kernel(arch, x, trained="all")
    assert_close(np.outer(n1, n2) * norm.ntk, full.ntk)


def test_float32_close_to_float64(x64):
    x = _inputs(6, 5, 11)
    for arch in (rk.FeedForward(20), rk.ResNet(20, gamma=1.0)):
        k64 = rk.kernel(arch, x)
        k32 = rk.kernel(arch, x.astype(np.float32))
        assert_close(k32.ntk, k64.ntk, rtol=1e-4)


@pytest.mark.parametrize("all_depths", [False, True])
@pytest.mark.parametrize("symmetric", [True, False])
def test_get_one_kernel(x64, all_depths, symmetric):
    # get="nngp" / "ntk" returns that array alone, equal to the float64 reference (last depth)
    arch = rk.ResNet(7, gamma=0.5)
    x1 = _inputs(9, 4, 11)
    x2 = None if symmetric else _inputs(5, 4, 12)
    nngp, ntk = gram(resnet_pair, x1, x1 if x2 is None else x2, arch.branch_scales, trained="all")
    for get, want in (("nngp", nngp), ("ntk", ntk)):
        k = rk.kernel(arch, x1, x2, trained="all", all_depths=all_depths, get=get)
        assert not isinstance(k, rk.Kernel)
        assert k.shape == ((7,) if all_depths else ()) + want.shape
        assert_close(k[-1] if all_depths else k, want)
    with pytest.raises(ValueError, match="get must be None, 'nngp' or 'ntk'"):
        rk.kernel(arch, x1, x2, get="both")
