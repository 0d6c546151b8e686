"""Fused tiled recursion, blocked/host-streamed and row-sharded kernels vs the float64 reference."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from conftest import assert_close
from reference import ffnet_pair, gram, resnet_pair
from reskernel.core import analytic, tiles
from reskernel.core.blocked import blocked_kernel, row_mesh, sharded_kernel

ROOT = Path(__file__).resolve().parents[1]
ARCHS = [rk.FeedForward(6), rk.ResNet(5, gamma=0.5), rk.ResNet(4, scales=[0.9, 0.5, 0.3, 0.2])]


def _inputs(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=(n, 1))


def _reference(arch, x1, x2, trained):
    if isinstance(arch, rk.FeedForward):
        return gram(ffnet_pair, x1, x2, arch.depth, trained)
    return gram(resnet_pair, x1, x2, list(arch.branch_scales), trained)


def _fused(arch, x1, x2, *, trained, tile, all_depths=False):
    kind = "ffnet" if isinstance(arch, rk.FeedForward) else "resnet"
    x1 = jnp.asarray(x1)
    return rk.Kernel(*tiles._kernel(x1, x1 if x2 is None else jnp.asarray(x2),
                                    analytic.schedule(arch, x1.dtype), kind=kind, depth=arch.depth,
                                       trained=trained, all_depths=all_depths, symmetric=x2 is None, tile=tile))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("symmetric,n", [(True, 23), (True, 32), (False, 23)])
def test_tiled_matches_float64_reference(x64, arch, symmetric, n):
    # 23 rows in tiles of 8: a padded last tile, off-diagonal tiles mirrored when symmetric, and
    # an odd number of diagonal tiles (the last one paired with itself); 32 rows: two pairs
    x1 = _inputs(n, 5, 0)
    x2 = None if symmetric else _inputs(11, 5, 1)
    k = _fused(arch, x1, x2, trained="all", tile=8)
    nngp, ntk = _reference(arch, x1, x1 if x2 is None else x2, "all")
    off = ~np.eye(*ntk.shape, dtype=bool) if symmetric else np.ones(ntk.shape, bool)
    assert_close(np.asarray(k.nngp)[off], nngp[off])
    assert_close(np.asarray(k.ntk)[off], ntk[off])
    if symmetric:
        # the reference's own rho(x, x) is 1 - O(eps), which arccos turns into 1e-8 errors;
        # the diagonal is |x|^2 times the normalized kernels at rho = 1 exactly
        np.testing.assert_array_equal(np.asarray(k.ntk), np.asarray(k.ntk).T)
        unit = rk.correlation_kernels(arch, jnp.ones((), jnp.float64), trained="all")
        norm2 = np.sum(x1 * x1, axis=1)
        assert_close(np.diag(k.nngp), norm2 * float(unit.nngp))
        assert_close(np.diag(k.ntk), norm2 * float(unit.ntk))


def test_tiled_all_depths_matches_single_tile(x64):
    arch = rk.ResNet(7, alpha=0.4)
    x = _inputs(19, 4, 2)
    tiled = _fused(arch, x, None, trained="hidden", tile=4, all_depths=True)
    whole = _fused(arch, x, None, trained="hidden", tile=64, all_depths=True)
    assert tiled.ntk.shape == (7, 19, 19)
    assert_close(tiled.ntk, whole.ntk)
    assert_close(tiled.nngp, whole.nngp)
    # every tile is computed from one symmetric rho_0, so the result is symmetric to rounding
    # (bitwise on jax 0.10; on jax 0.5.3 a few entries differ by ~1 ulp of the kernel's scale), and each layer
    # equals the single-depth kernel of the truncated net (same branch scales)
    for k in (tiled, whole):
        for v in (np.asarray(k.ntk), np.asarray(k.nngp)):
            scale = 8 * np.finfo(np.float64).eps * np.abs(v).max()
            np.testing.assert_allclose(v, np.swapaxes(v, -1, -2), rtol=0, atol=scale)
    for depth in (1, 4, 7):
        one = _fused(rk.ResNet(depth, scales=[0.4] * depth), x, None, trained="hidden", tile=4)
        assert_close(tiled.ntk[depth - 1], one.ntk)
        assert_close(tiled.nngp[depth - 1], one.nngp)


def test_float32_agrees_with_float64_reference_on_separated_inputs(x64):
    # unit inputs with pairwise correlations well inside (-1, 1)
    x = _inputs(40, 30, 3)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    arch = rk.ResNet(30, gamma=1.0)
    nngp, ntk = _reference(arch, x, x, "all")
    k = _fused(arch, x.astype(np.float32), None, trained="all", tile=16)
    assert k.ntk.dtype == jnp.float32
    # 1e-5 relative to the kernel's scale (entries near 0 carry the float32 rounding of
    # rho_0 = <x, x'> itself), and 1e-4 elementwise
    for got, want in [(k.ntk, ntk), (k.nngp, nngp)]:
        err = np.abs(np.asarray(got, np.float64) - want)
        assert err.max() < 1e-5 * np.abs(want).max()
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-4)
    ff = rk.FeedForward(30)
    k = _fused(ff, x.astype(np.float32), None, trained="all", tile=16)
    want = _reference(ff, x, x, "all")[1]
    assert np.abs(np.asarray(k.ntk, np.float64) - want).max() < 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("to_host", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_blocked_any_n(x64, to_host, symmetric):
    arch = rk.ResNet(6, gamma=1.0)
    x1 = _inputs(37, 6, 4)
    x2 = None if symmetric else _inputs(20, 6, 5)
    k = blocked_kernel(arch, x1, x2, trained="all", block=16, tile=8, to_host=to_host)
    assert isinstance(k.ntk, np.ndarray) == to_host
    nngp, ntk = _reference(arch, x1, x1 if x2 is None else x2, "all")
    assert_close(k.ntk, ntk)
    assert_close(k.nngp, nngp)
    kd = blocked_kernel(arch, x1, x2, all_depths=True, block=16, tile=8, to_host=to_host)
    assert kd.ntk.shape == (6,) + ntk.shape
    assert_close(kd.ntk, rk.kernel(arch, x1, x2, all_depths=True).ntk)
    only = blocked_kernel(arch, x1, x2, trained="all", block=16, tile=8, to_host=to_host, get="nngp")
    assert isinstance(only, np.ndarray) == to_host and only.shape == nngp.shape
    assert_close(only, nngp)


def test_blocked_and_sharded_trace_and_validate():
    x = _inputs(5, 3, 6).astype(np.float32)
    with pytest.raises(ValueError, match="block"):
        blocked_kernel(rk.FeedForward(2), x, block=0)
    with pytest.raises(TypeError, match="mesh"):
        sharded_kernel(rk.FeedForward(2), x, mesh="rows")
    with pytest.raises(TypeError, match="arch"):
        blocked_kernel("ffnet", x)
    k = sharded_kernel(rk.FeedForward(3), x, mesh=row_mesh(jax.devices()[:1]))
    assert_close(k.ntk, rk.kernel(rk.FeedForward(3), x).ntk, rtol=1e-6)


# One fresh interpreter (4 CPU devices), where compiling dominates: 10 sharded programs, and
# references from 3 all-depths kernels only (the last depth is the single-depth kernel, bitwise
# here; y = x[:7] makes the cross kernel K(x, x)[:, :7]; x[:23]'s is K(x, x)[:23, :23]).
# sharded_kernel's paths: symmetric or not, all depths or not, get, uneven rows, tables; both
# kinds without all depths, each kind with all depths in one of the two symmetries.
_SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    import reskernel as rk
    from reskernel.core.blocked import sharded_kernel
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5)); y = x[:7]
    out = {"devices": len(jax.devices())}

    def rel(got, want):
        return float(np.max(np.abs(np.asarray(got) - want)) / np.abs(want).max())

    archs = {"ff": rk.FeedForward(5), "res": rk.ResNet(6, gamma=0.5)}
    refs = {name: rk.kernel(arch, x, trained="all", all_depths=True) for name, arch in archs.items()}
    for name, sym, ad in [("ff", True, False), ("ff", False, False), ("res", True, False), ("res", False, False),
                          ("ff", True, True), ("res", False, True)]:
        k = sharded_kernel(archs[name], x, None if sym else y, trained="all", all_depths=ad, tile=4)
        want = [r if ad else r[-1] for r in refs[name]]
        want = want if sym else [w[..., :7] for w in want]
        out[f"{name}/{sym}/{ad}"] = {"err": rel(k.ntk, want[1]), "nngp_err": rel(k.nngp, want[0]),
                                    "devices": sorted(d.id for d in k.ntk.sharding.device_set),
                                    "shards": sorted({s.data.shape for s in k.ntk.addressable_shards})}
    k = sharded_kernel(archs["res"], x[:23], trained="all", tile=4)
    out["uneven_err"] = rel(k.ntk, refs["res"].ntk[-1][:23, :23])
    k = sharded_kernel(archs["ff"], x, get="ntk", trained="all", tile=4)
    out["get_err"] = rel(k, refs["ff"].ntk[-1])
    out["get_shards"] = sorted({s.data.shape for s in k.addressable_shards})
    x32 = x.astype(np.float32)  # float32 from tables (method="table"), every depth too
    ref = rk.kernel(archs["res"], x32, trained="all", all_depths=True, method="table")
    for ad in (False, True):
        k = sharded_kernel(archs["res"], x32, trained="all", all_depths=ad, method="table")
        out[f"table/{ad}"] = {"err": rel(k.ntk, ref.ntk if ad else ref.ntk[-1]),
                              "devices": sorted(d.id for d in k.ntk.sharding.device_set)}
    print(json.dumps(out))
""")


def test_sharded_over_four_cpu_devices():
    # XLA_FLAGS must be set before jax is imported: a fresh interpreter.
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run([sys.executable, "-c", _SHARDED], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    for key in ("ff/True/False", "ff/False/False", "res/True/False", "res/False/False"):
        assert out[key]["err"] < 1e-12 and out[key]["nngp_err"] < 1e-12, (key, out[key])
        assert out[key]["devices"] == [0, 1, 2, 3]
        n2 = 24 if "True" in key.split("/")[1] else 7
        assert out[key]["shards"] == [[6, n2]], (key, out[key])
    assert out["get_err"] < 1e-12 and out["get_shards"] == [[6, 24]], out
    for key in ("table/False", "table/True"):
        assert out[key]["err"] < 1e-6 and out[key]["devices"] == [0, 1, 2, 3], (key, out[key])
    for key in ("ff/True/True", "res/False/True"):
        assert out[key]["err"] < 1e-12 and out[key]["nngp_err"] < 1e-12, (key, out[key])
        assert out[key]["shards"][0][1] == 6  # (L, rows per device, n2)
    # 23 rows over 4 devices: padded, laid out as XLA chooses (relative now; was 1e-5 absolute)
    assert out["uneven_err"] < 1e-12, out["uneven_err"]


def _program_lines(arch, n, *, all_depths, symmetric):
    """Operations of the lowered (StableHLO) program of the tiled kernel, tile edge 8; constants
    are left out (jax 0.5.3 prints small and large constant arrays in different places)."""
    x = _inputs(n, 4, 9).astype(np.float32)
    kind = "ffnet" if isinstance(arch, rk.FeedForward) else "resnet"
    static = ("kind", "depth", "trained", "all_depths", "symmetric", "tile", "get")
    lowered = jax.jit(tiles._kernel.__wrapped__, static_argnames=static).lower(
        x, x, analytic.schedule(arch, np.float32), kind=kind, depth=arch.depth, trained="all",
        all_depths=all_depths, symmetric=symmetric, tile=8, get=tiles.GET)
    return sum(1 for line in lowered.as_text().splitlines() if " = " in line and "constant" not in line)


@pytest.mark.parametrize("all_depths", [False, True])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("make", [rk.FeedForward, lambda depth: rk.ResNet(depth, gamma=1.0)])
def test_program_size_independent_of_depth_and_n(make, symmetric, all_depths):
    # no Python loop over layers or tiles: depth 3 and 300, 3 tiles and 8 tiles per side
    # lower to programs of the same length (only shapes and constants differ)
    kw = dict(all_depths=all_depths, symmetric=symmetric)
    base = _program_lines(make(3), 20, **kw)
    assert _program_lines(make(300), 20, **kw) == base
    assert _program_lines(make(3), 60, **kw) == base


@pytest.mark.parametrize("arch", [rk.ResNet(4, gamma=0.5, activation="erf", b_var=0.1),
                                  rk.FeedForward(3, w_var=1.45, b_var=0.28)])
def test_sharded_general_arch_matches_kernel(x64, arch):
    """Activations and variances reach the sharded rows (before: the bias-free ReLU kernel was
    computed for every dense arch; off by ~2x for the erf ResNet), x2 None and given, all depths."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 7)) * rng.uniform(0.5, 2.0, size=(6, 1)), rng.normal(size=(4, 7))
    for x2 in (None, y):
        want = rk.kernel(arch, x, x2, all_depths=True, trained="all")
        got = sharded_kernel(arch, x, x2, all_depths=True, trained="all")
        assert got.ntk.shape == want.ntk.shape
        assert_close(got, want, rtol=1e-13)
    # the check can fail: the ReLU bias-free kernel is far from these
    plain = rk.kernel(rk.ResNet(arch.depth) if isinstance(arch, rk.ResNet) else rk.FeedForward(arch.depth), x)
    assert np.abs(np.asarray(plain.nngp) - np.asarray(rk.kernel(arch, x).nngp)).max() > 0.1
