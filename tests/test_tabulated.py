import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from reference import ffnet_pair, gram, resnet_pair
from reskernel.core import analytic, engine, tabulated, tiles

ARCHS = [rk.FeedForward(1), rk.FeedForward(7), rk.FeedForward(100), rk.ResNet(1, gamma=1.0),
         rk.ResNet(100, gamma=1.0), rk.ResNet(30, gamma=0.5), rk.ResNet(10, alpha=2.0),
         rk.ResNet(6, scales=[0.9**l for l in range(1, 7)])]


def _reference(arch, x1, x2, trained):
    if isinstance(arch, rk.FeedForward):
        return gram(ffnet_pair, x1, x2, arch.depth, trained)
    return gram(resnet_pair, x1, x2, arch.branch_scales, trained)


def _table(arch, trained, max_nodes=tabulated.MAX_NODES):
    kind = "ffnet" if isinstance(arch, rk.FeedForward) else "resnet"
    sched = engine.schedule(arch)
    return kind, sched, tabulated.angle_table(kind, tuple(map(tuple, sched)), trained, max_nodes)


def _inputs(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=(n, 1))
    x[1] = 2.5 * x[0]   # parallel
    x[2] = -x[3]        # antipodal
    return x


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("trained", ["hidden", "all"])
def test_table_matches_float64_reference(arch, trained):
    # float32 inputs, interpolated from the table; the float64 reference runs the recursion per pair
    x1, x2 = _inputs(12, 5, 0), _inputs(7, 5, 1)
    x1, x2 = x1.astype(np.float32).astype(np.float64), x2.astype(np.float32).astype(np.float64)
    for y, sym in ((None, True), (x2, False)):
        k = rk.kernel(arch, x1.astype(np.float32), None if sym else y.astype(np.float32), trained=trained,
                      method="table")
        want = _reference(arch, x1, x1 if sym else y, trained)
        for got, ref in zip(k, want):
            assert got.dtype == jnp.float32
            # TOL of the table plus the float32 rounding of rho_0 and of the output
            np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=2e-6 * np.abs(ref).max())
        if sym:
            assert np.array_equal(np.asarray(k.ntk), np.asarray(k.ntk).T)


@pytest.mark.parametrize("arch", [rk.FeedForward(20), rk.ResNet(100, gamma=1.0), rk.ResNet(50, gamma=0.25)])
def test_interpolation_error_within_tol(x64, arch):
    # the table's own error, in float64, against the library's JAX recursion at angles between nodes
    kind, _, cubics = _table(arch, "all")
    assert cubics is not None
    theta = np.random.default_rng(2).uniform(0, math.pi, 20_000)
    theta[:3] = [0.0, 1e-6, math.pi]
    rho = np.cos(theta)
    exact = rk.correlation_kernels(arch, rho, trained="all")
    for q, want in enumerate(exact):
        want = np.asarray(want)
        got = np.asarray(tabulated.evaluate(jnp.asarray(cubics[q]), jnp.asarray(theta)))
        assert np.abs(got - want).max() <= tabulated.TOL * np.abs(want).max()


@pytest.mark.parametrize("arch", [rk.FeedForward(50), rk.ResNet(40, gamma=1.0), rk.ResNet(20, gamma=0.5)])
def test_all_depths_table_matches_float64_reference(arch):
    # every depth l: the net truncated after l layers (ResNet: the full depth's branch scales)
    x = _inputs(20, 6, 9).astype(np.float32)
    x64 = x.astype(np.float64)
    k = rk.kernel(arch, x, trained="all", all_depths=True, method="table")
    assert k.ntk.shape == (arch.depth, 20, 20)
    for depth in (1, 2, arch.depth // 2, arch.depth):
        if isinstance(arch, rk.FeedForward):
            want = gram(ffnet_pair, x64, x64, depth, "all")
        else:
            want = gram(resnet_pair, x64, x64, arch.branch_scales[:depth], "all")
        for got, ref in zip(k, want):
            np.testing.assert_allclose(np.asarray(got[depth - 1]), ref, rtol=0, atol=2e-6 * np.abs(ref).max())


def test_numpy_recursion_matches_library(x64):
    rho = np.cos(np.linspace(0, math.pi, 101))
    for arch in (rk.FeedForward(9), rk.ResNet(9, gamma=0.5)):
        kind = "ffnet" if isinstance(arch, rk.FeedForward) else "resnet"
        for trained in ("hidden", "all"):
            for every in (False, True):
                reads = tuple(range(1, arch.depth + 1)) if every else None
                got = engine.run_numpy(kind, rho.copy(), engine.schedule(arch), trained, reads)
                want = rk.correlation_kernels(arch, rho, trained=trained, all_depths=every)
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-12)


def test_cubics_interpolate_the_nodes():
    nodes = np.random.default_rng(3).normal(size=(2, 65))
    cubics = tabulated._cubics(nodes)
    assert cubics.shape == (2, 4, 64)
    np.testing.assert_allclose(cubics[:, 0, :], nodes[:, :-1], atol=1e-12)          # t = 0
    np.testing.assert_allclose(cubics.sum(axis=1), nodes[:, 1:], atol=1e-12)        # t = 1


def test_table_agrees_with_recursion_float32():
    x = _inputs(300, 16, 4).astype(np.float32)
    for arch in (rk.FeedForward(30), rk.ResNet(100, gamma=1.0)):
        kt = rk.kernel(arch, x, trained="all", method="table")
        kr = rk.kernel(arch, x, trained="all", method="recursion")
        ka = rk.kernel(arch, x, trained="all")  # auto: a table at n = 300
        np.testing.assert_array_equal(np.asarray(ka.ntk), np.asarray(kt.ntk))
        # rows 0-3 hold a parallel and an antipodal pair: there the float32 recursion starts from a
        # correlation rounded by the float32 Gram product (1.6e-3 off on jax 0.5.3), the table's
        # rows are recomputed in float64 (tests/test_precise.py checks them against float64)
        for t, r in zip(kt, kr):
            t, r = np.asarray(t)[4:, 4:], np.asarray(r)[4:, 4:]
            np.testing.assert_allclose(t, r, rtol=0, atol=2e-5 * np.abs(r).max())
        assert np.all(np.diag(np.asarray(kt.nngp)) > 0)


def test_auto_runs_the_recursion_where_tables_do_not_apply(x64):
    arch = rk.ResNet(10, gamma=1.0)
    picked = ("nngp", "ntk")
    big = np.ones((1000, 3), np.float32)

    def plan(arch, picked, x, **kw):
        return analytic.plan(arch, "all", picked, x, None, method=kw.pop("method", "auto"),
                             all_depths=kw.pop("all_depths", False))

    assert plan(arch, picked, big).angles.shape[:2] == (2, 4)
    assert plan(arch, ("ntk",), big).angles.shape[:2] == (1, 4)
    p64 = plan(arch, picked, big.astype(np.float64))             # float64: the recursion in float64
    assert p64.angles is None and p64.dtype == np.float64
    tiny = plan(arch, picked, big[:100])                          # tiny n: the recursion, in float64
    assert tiny.angles is None and tiny.dtype == np.float64
    assert plan(arch, picked, big, all_depths=True).angles.shape[:3] == (2, 10, 4)  # a table per depth
    # a 10,000-layer FFNet varies too fast near theta = 0 for MAX_NODES nodes: the recursion runs,
    # in float64 (a 1000-layer FFNet has a table of 1024 intervals: its float64 recursion carries
    # u = 1 - rho, accurate enough near theta = 0 for the search to succeed)
    assert _table(rk.FeedForward(1000), "all")[2].shape == (2, 4, 1024)
    deep = plan(rk.FeedForward(10_000), picked, big)
    assert deep.angles is None and deep.dtype == np.float64
    rec = plan(arch, picked, big, method="recursion")              # asked for: float32 recursion
    assert rec.angles is None and rec.dtype == np.float32


def test_method_errors():
    x = np.random.default_rng(5).normal(size=(6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        rk.kernel(rk.FeedForward(2), x, method="fast")
    # trained="all": the failed search of test_auto_runs_the_recursion_where_tables_do_not_apply
    # (same arch and trained, up to MAX_NODES) is remembered per process, and refused here without
    # repeating it (10 s); run alone, this test searches again and must fail the same way
    with pytest.raises(ValueError, match="no table"):
        rk.kernel(rk.FeedForward(10_000), x, trained="all", method="table")


def test_under_jit_the_recursion_runs(monkeypatch):
    # inside the caller's jit the inputs are traced: the recursion (differentiable) runs, no table
    x = _inputs(200, 8, 6).astype(np.float32)
    arch = rk.ResNet(20, gamma=1.0)
    recursion = rk.kernel(arch, x, trained="all", get="ntk", method="recursion")

    def no_table(*args):
        raise AssertionError("a table was interpolated under jit")

    monkeypatch.setattr(tabulated, "evaluate", no_table)
    jitted = jax.jit(lambda z: rk.kernel(arch, z, trained="all", get="ntk"))(x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(recursion), rtol=2e-6)
    with pytest.raises(AssertionError, match="interpolated"):
        rk.kernel(arch, x, trained="all", get="ntk")  # concrete float32 at n = 200: auto interpolates


@pytest.mark.parametrize("all_depths", [False, True])
def test_blocked_and_sharded_use_the_table(all_depths):
    x1, x2 = _inputs(150, 6, 7).astype(np.float32), _inputs(90, 6, 8).astype(np.float32)
    arch = rk.ResNet(12, gamma=0.5)
    kw = dict(trained="all", method="table", all_depths=all_depths)
    for y in (x2, None):
        want = rk.kernel(arch, x1, y, **kw)
        blocked = rk.blocked_kernel(arch, x1, y, block=64, **kw)
        sharded = rk.sharded_kernel(arch, x1, y, **kw)
        for got in (blocked, sharded):
            for g, w in zip(got, want):
                np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6,
                                           atol=1e-6 * np.abs(np.asarray(w)).max())


def test_program_size_independent_of_depth():
    # the tabulated program has no loop at all: depth 3 and 300 lower to the same operations
    def operations(arch):
        x = _inputs(20, 4, 10).astype(np.float32)
        kind = analytic.kind_of(arch)
        p = analytic.plan(arch, "all", tiles.GET, x, None, method="table", all_depths=False)
        static = ("kind", "depth", "trained", "all_depths", "symmetric", "tile", "get")
        lowered = jax.jit(tiles._kernel.__wrapped__, static_argnames=static).lower(
            x, x, analytic.schedule(arch, np.float32), p.angles, p.band, kind=kind, depth=arch.depth,
            trained="all", all_depths=False, symmetric=True, get=tiles.GET)
        return sum(1 for line in lowered.as_text().splitlines() if " = " in line and "constant" not in line)

    for make in (rk.FeedForward, lambda depth: rk.ResNet(depth, gamma=1.0)):
        assert operations(make(3)) == operations(make(300))
