"""General architectures (any activation, weight and bias variances): reskernel.kernel against an
independent float64 recursion written here, the ReLU defaults against stored kernels of the
library before general archs existed, and the general maps against the normalized ReLU maps."""
import dataclasses
import json
import math
import pathlib

import jax
import numpy as np
import pytest
from scipy import special

import reskernel as rk
from reskernel.core import activations as A
from reskernel.core import engine
from reskernel.core import general
from reskernel.precision import enable_x64

GOLDEN = pathlib.Path(__file__).parent / "golden" / "defaults.json"
# The trapezoidal rule on the standard normal (exponentially accurate for functions analytic
# in a strip, uniformly in the variance, where Gauss-Hermite converges slowly for saturating phi).
# Step 0.1: the references of every arch below agree with step 0.05's (4x the nodes) to 1.1e-13
# of their largest value, 100x inside the tightest tolerance here (1e-11)
Z = np.arange(-10.0, 10.0 + 1e-9, 0.1)
W = 0.1 * np.exp(-Z * Z / 2) / math.sqrt(2 * math.pi)


def _acos_j(theta):
    """Cho & Saul's J_1(theta) / pi and J_0(theta) / pi for E[relu(u) relu(v)] / s, E[1 1]."""
    return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi), (np.pi - theta) / (2 * np.pi)


def _abrelu_dual(a, b):
    """phi = b relu(x) - a relu(-x): expand the product into four ReLU terms (arrays of pairs)."""
    def dual(q1, q2, k):
        s = np.sqrt(q1 * q2)
        theta = np.arccos(np.clip(k / s, -1.0, 1.0))
        same, same0 = _acos_j(theta)              # relu(u) relu(v) and relu(-u) relu(-v)
        cross, cross0 = _acos_j(np.pi - theta)    # relu(u) relu(-v): correlation -rho
        v = s * ((a * a + b * b) * same - 2 * a * b * cross)
        vdot = (a * a + b * b) * same0 + 2 * a * b * cross0
        return v, vdot
    return dual


def _smooth_dual(phi, dphi):
    """2-D trapezoidal rule (201 nodes per axis) for smooth phi, vectorized over the pairs
    (q1, q2, k broadcast to one shape; the grid is the last two axes)."""
    def dual(q1, q2, k):
        q1, q2, k = np.broadcast_arrays(*(np.asarray(t, np.float64) for t in (q1, q2, k)))
        rho = np.clip(k / np.sqrt(q1 * q2), -1.0, 1.0)[..., None, None]
        u = np.sqrt(q1)[..., None, None] * Z[:, None]                     # (..., 201, 1)
        v = np.sqrt(q2)[..., None, None] * (rho * Z[:, None] + np.sqrt(np.maximum(1 - rho * rho, 0.0)) * Z[None, :])
        ww = W[:, None] * W[None, :]
        return (ww * phi(u) * phi(v)).sum(axis=(-2, -1)), (ww * dphi(u) * dphi(v)).sum(axis=(-2, -1))
    return dual


DUALS = {
    "relu": _abrelu_dual(0.0, 1.0),
    "leaky_relu": _abrelu_dual(0.01, 1.0),
    "abs": _abrelu_dual(-1.0, 1.0),
    "erf": _smooth_dual(special.erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
    "gelu": _smooth_dual(lambda x: x * special.ndtr(x), lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "sin": _smooth_dual(np.sin, np.cos),
    "cos": _smooth_dual(np.cos, lambda x: -np.sin(x)),
    "identity": lambda q1, q2, k: (np.asarray(k, np.float64), np.ones(np.shape(k))),
    "tanh": _smooth_dual(np.tanh, lambda x: 1 / np.cosh(x) ** 2),
}


def reference(arch, x1, x2):
    """{trained: (nngp, ntk)} for trained "hidden" and "all", every pair at once, by the textbook
    recursions (neural-tangents' form), float64. Each step is elementwise in the pairs (the
    (n1, n2) arrays below); both trained share every dual, only the NTK's start and end differ."""
    dual = next(d for name, d in DUALS.items() if A.get(name) == arch.activation)
    w, b = arch.w_var, arch.b_var
    # one dot product per pair, as for the norms: a pair of identical rows has k == q1 == q2
    # exactly (rho = 1: the ReLU family's square root turns 1e-16 in rho into 1e-8)
    dot = lambda a, c: np.array([[float(u @ v) for v in c] for u in a])
    q1 = arch.in_var * np.array([[float(u @ u)] for u in x1]) + b        # (n1, 1)
    q2 = arch.in_var * np.array([[float(v @ v) for v in x2]]) + b        # (1, n2)
    k = arch.in_var * dot(x1, x2) + b
    if isinstance(arch, rk.FeedForward):
        theta = k                                          # NTK of W_1, b_1: Sigma_1
        for _ in range(arch.depth):
            v, vdot = dual(q1, q2, k)
            v1, v2 = dual(q1, q1, q1)[0], dual(q2, q2, q2)[0]
            k_next = w * v + b
            theta = k_next + w * vdot * theta              # Theta_{l+1} = Sigma_{l+1} + w Vdot Theta_l
            k, q1, q2 = k_next, w * v1 + b, w * v2 + b
        return {"all": (k, theta), "hidden": (k, theta - k)}
    thetas = {"all": k, "hidden": np.zeros_like(k)}        # embedding A, b_0
    for a in arch.branch_scales:
        s1, s2, s = w * q1 + b, w * q2 + b, w * k + b
        v, vdot = dual(s1, s2, s)
        # branch: V_l (v), W_l (vdot w K), b_l (vdot b), and the earlier layers through it
        thetas = {t: th + a * a * (v + vdot * (w * k + b) + vdot * w * th) for t, th in thetas.items()}
        k = k + a * a * v
        q1, q2 = q1 + a * a * dual(s1, s1, s1)[0], q2 + a * a * dual(s2, s2, s2)[0]
    nngp = arch.out_var * k + b
    return {"all": (nngp, arch.out_var * thetas["all"] + nngp), "hidden": (nngp, arch.out_var * thetas["hidden"])}


def _inputs(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x * rng.uniform(0.4, 1.6, size=(n, 1)) / math.sqrt(d)


ARCHS = [
    rk.FeedForward(1, w_var=1.6, b_var=0.2, activation="erf"),
    rk.FeedForward(4, w_var=1.2, b_var=0.05, activation="tanh", in_var=1.3),
    rk.FeedForward(3, w_var=2.5, b_var=0.1, activation="gelu"),
    rk.FeedForward(3, w_var=1.9, b_var=0.3, activation="sin"),
    rk.FeedForward(2, w_var=0.8, b_var=0.4, activation="cos"),
    rk.FeedForward(5, w_var=2.0, b_var=0.1, activation="relu"),
    rk.FeedForward(4, w_var=1.5, b_var=0.0, activation="abs"),
    rk.FeedForward(3, w_var=1.0, b_var=0.2, activation="identity"),
    rk.ResNet(4, gamma=0.5, w_var=1.5, b_var=0.1, activation="erf", out_var=1.7),
    rk.ResNet(3, alpha=0.6, w_var=1.2, b_var=0.2, activation="tanh"),
    rk.ResNet(5, gamma=1.0, w_var=2.0, b_var=0.3, activation="relu", in_var=0.7),
    rk.ResNet(3, gamma=0.5, w_var=1.3, b_var=0.05, activation="leaky_relu"),
    rk.ResNet(3, scales=(0.3, 0.9, 0.5), w_var=1.1, b_var=0.2, activation="gelu"),
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{type(a).__name__}-{a.depth}-{a.activation.label}")
def test_kernel_matches_independent_recursion(arch):
    # both trained in one case: the reference computes both from one pass (the library compiles each)
    x1, x2 = _inputs(3), _inputs(2, seed=1)
    want_cross, want_sym = reference(arch, x1, x2), reference(arch, x1, x1)
    tol = 1e-9 if not arch.activation.exact else 1e-11
    for trained in ("hidden", "all"):
        with enable_x64():
            got = rk.kernel(arch, x1, x2, trained=trained)
            sym = rk.kernel(arch, x1, trained=trained)
        for g, r in zip(got, want_cross[trained]):
            assert np.abs(np.asarray(g) - r).max() <= tol * np.abs(r).max(), trained
        for g, r in zip(sym, want_sym[trained]):
            g = np.asarray(g)
            assert np.array_equal(g, g.T)
            assert np.abs(g - r).max() <= tol * np.abs(r).max(), trained


def test_defaults_are_bit_for_bit_the_kernels_before_general_archs():
    """Stored hex floats of rk.kernel at commit dd9033f (before activations and variances)."""
    golden = json.loads(GOLDEN.read_text())
    x = np.random.default_rng(2026).normal(size=(4, 6))
    archs = {"ffnet": rk.FeedForward(7, w_var=2.0, b_var=0.0, activation="relu", in_var=1.0),
             "resnet": rk.ResNet(9, gamma=0.5, activation=A.ABRelu(0.0, 1.0), out_var=1.0)}
    for name, arch in archs.items():
        assert arch.default
        for dtype in ("float64", "float32"):
            with enable_x64():
                k = rk.kernel(arch, x.astype(dtype), trained="all")
            for field in ("nngp", "ntk"):
                want = np.array([float.fromhex(h) for h in golden["kernels"][f"{name}/{dtype}/{field}"]])
                got = np.asarray(getattr(k, field), np.float64).ravel()
                assert np.array_equal(got, want), (name, dtype, field)


@pytest.mark.parametrize("arch", [rk.FeedForward(6), rk.ResNet(7, gamma=0.5), rk.ResNet(4, alpha=0.8)])
@pytest.mark.parametrize("trained", ["hidden", "all"])
def test_general_maps_at_relu_defaults_equal_the_normalized_relu_maps(arch, trained):
    x = _inputs(6, seed=3)
    with enable_x64():
        want = rk.kernel(arch, x, trained=trained, all_depths=True)
        got = general.general_kernel(arch, trained, ("nngp", "ntk"), x, None, all_depths=True)
    for g, r in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=0, atol=4e-15 * np.abs(np.asarray(r)).max())


def test_all_depths_get_blocked_and_correlations_agree():
    arch = rk.ResNet(5, gamma=0.5, w_var=1.4, b_var=0.1, activation="erf")
    x1, x2 = _inputs(7, seed=4), _inputs(5, seed=5)
    with enable_x64():
        every = rk.kernel(arch, x1, x2, all_depths=True)
        for depth in (1, 3, 5):
            one = rk.kernel(dataclasses.replace(arch, depth=depth, gamma=None, alpha=5 ** -0.5), x1, x2)
            np.testing.assert_allclose(np.asarray(every.ntk[depth - 1]), np.asarray(one.ntk), rtol=1e-13)
        full = rk.kernel(arch, x1, x2)
        np.testing.assert_array_equal(np.asarray(rk.kernel(arch, x1, x2, get="ntk")), np.asarray(full.ntk))
        blocked = rk.blocked_kernel(arch, x1, x2, block=3)
        np.testing.assert_allclose(np.asarray(blocked.nngp), np.asarray(full.nngp), rtol=1e-14)
        # unit-norm inputs: the kernels as functions of the correlation
        u = x1 / np.linalg.norm(x1, axis=1, keepdims=True)
        rho = np.clip(u @ u.T, -1, 1)
        corr = rk.correlation_kernels(arch, rho)
        unit = rk.kernel(arch, u)
        np.testing.assert_allclose(np.asarray(corr.nngp), np.asarray(unit.nngp), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(corr.ntk), np.asarray(unit.ntk), rtol=1e-12, atol=1e-14)


def test_float32_inputs_are_computed_in_float64():
    arch = rk.FeedForward(20, w_var=1.8, b_var=0.05, activation="tanh")
    x = _inputs(5, seed=6).astype(np.float32)
    k32 = rk.kernel(arch, x)
    with enable_x64():
        k64 = rk.kernel(arch, x.astype(np.float64))
    assert k32.ntk.dtype == np.float32
    for a, b in zip(k32, k64):
        b = np.asarray(b)
        assert np.abs(np.asarray(a, np.float64) - b).max() <= 1e-7 * np.abs(b).max()


def test_traced_closed_forms_follow_the_concrete_path_and_numerical_ones_refuse():
    arch = rk.FeedForward(3, w_var=1.5, b_var=0.1, activation="gelu")
    x = _inputs(3, seed=7)   # 3 rows: the concrete call reuses ARCHS[2]'s compiled kernel (variances are traced)
    with enable_x64():
        want = np.asarray(rk.kernel(arch, x).ntk)
        got = np.asarray(jax.jit(lambda v: rk.kernel(arch, v).ntk)(x))
        np.testing.assert_allclose(got, want, rtol=1e-13)
        grad = jax.grad(lambda v: rk.kernel(arch, v).nngp.sum())(x)
        assert np.isfinite(np.asarray(grad)).all()
        with pytest.raises(ValueError, match="numerical duals"):
            jax.jit(lambda v: rk.kernel(dataclasses.replace(arch, activation="tanh"), v).ntk)(x)


def test_homogeneous_activations_without_bias_scale_with_the_norms():
    """ABRelu nets without biases: K(c x, x') = c K(x, x') for c > 0."""
    arch = rk.ResNet(3, gamma=0.5, w_var=1.3, activation="leaky_relu")
    x1, x2 = _inputs(3, seed=8), _inputs(2, seed=9)   # ARCHS[11]'s depth and shapes: its compiled kernel
    with enable_x64():
        k, kc = rk.kernel(arch, x1, x2), rk.kernel(arch, 3.0 * x1, x2)
    np.testing.assert_allclose(np.asarray(kc.ntk), 3.0 * np.asarray(k.ntk), rtol=1e-13)


@pytest.mark.parametrize("arch", [rk.FeedForward(30, w_var=2.0, b_var=0.2, activation="abs"),
                                  rk.FeedForward(40, w_var=3.0, activation="erf"),            # chaotic
                                  rk.FeedForward(2000, w_var=2.0, b_var=0.2, activation="relu"),
                                  rk.ResNet(200, alpha=0.5, w_var=3.0, b_var=0.1, activation="erf")],
                         ids=["abs", "erf-chaotic", "relu-2000", "resnet-erf"])
def test_identical_inputs_stay_on_the_diagonal(arch):
    """Entries between identical inputs equal the diagonal of engine.general_diagonal (host
    float64, computed apart), in the symmetric kernel, between a row and its copy in x2, and in
    correlation_kernels at rho = 1 next to other correlations: a chaotic net amplifies any
    rounding that moves them off it, the ReLU family's square root at rho = 1 turns 1e-16 in rho
    into 1e-8 in the NTK."""
    x = _inputs(4, seed=10)
    kind = "ffnet" if isinstance(arch, rk.FeedForward) else "resnet"
    _, nngp, ntk = engine.general_diagonal(kind, arch, np.sum(x * x, axis=1))
    _, nngp1, ntk1 = engine.general_diagonal(kind, arch, np.ones(1))
    with enable_x64():
        sym = rk.kernel(arch, x)
        cross = rk.kernel(arch, x, x[::-1].copy())
        corr = rk.correlation_kernels(arch, np.array([1.0, -1.0, 0.3]))
    for s, c, d, d1, r in zip(sym, cross, (nngp, ntk), (nngp1, ntk1), corr):
        s, c = np.asarray(s), np.asarray(c)
        np.testing.assert_allclose(np.diag(s), d[-1], rtol=1e-13)
        np.testing.assert_allclose(c[np.arange(4), np.arange(3, -1, -1)], d[-1], rtol=1e-13)
        np.testing.assert_allclose(np.asarray(r)[0], d1[-1, 0], rtol=1e-13)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(w_var=-1.0), ValueError, "w_var must be > 0"),
    (dict(b_var=-0.1), ValueError, "b_var must be >= 0"),
    (dict(in_var=0.0), ValueError, "in_var must be > 0"),
    (dict(w_var=float("nan")), ValueError, "w_var must be finite"),
    (dict(activation="swish"), ValueError, "unknown activation"),
    (dict(activation=3), TypeError, "activation must be"),
    (dict(activation=lambda x: x.sum()), ValueError, "elementwise"),
])
def test_bad_specs_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        rk.FeedForward(3, **kwargs)
    with pytest.raises(error, match=match):
        rk.ResNet(3, **kwargs)


def test_kernels_beyond_the_range_raise():
    arch = rk.FeedForward(400, w_var=4.0, activation="relu")
    with pytest.raises(ValueError, match="beyond the range of float32"):
        rk.kernel(arch, _inputs(3).astype(np.float32))


@pytest.mark.parametrize("arch", [rk.FeedForward(40, w_var=1.5, b_var=0.1, activation="erf"),
                                  rk.ResNet(50, gamma=0.5, w_var=1.5, b_var=0.1, activation="gelu"),
                                  rk.FeedForward(4, w_var=1.8, b_var=0.05, activation="tanh")],
                         ids=lambda a: f"{type(a).__name__}-{a.activation.label}")
def test_float32_inputs_of_one_norm_use_tables_within_the_bound(arch):
    """The fast path: inputs of one norm have kernels of the correlation alone, interpolated from
    float64 tables; every entry within tabulated.TOL of the float64 kernel's largest value, also
    for rows normalized in float32 (their squared norms spread by ~3e-7)."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x = np.float32(3.0) * x / np.linalg.norm(x, axis=1, keepdims=True)   # normalized in float32: norms spread
    p = rk.analytic.plan(arch, "hidden", ("nngp", "ntk"), x, None, method="auto", all_depths=False)
    assert p.angles is not None
    k32 = rk.kernel(arch, x)
    # the float64 kernel of the first 50 rows against the first 150 (7,500 entries, 50 of them
    # diagonal): the table's error is a function of the correlation, and 7,500 random pairs span
    # the same correlations as all 90,000; tanh's float64 kernel costs a Hermite series per row of
    # x1 and x2 (~30 ms each: 100 x 300 rows took 13 s of this file's 140)
    with enable_x64():
        k64 = rk.kernel(arch, x[:50].astype(np.float64), x[:150].astype(np.float64))
    for a, b in zip(k32, k64):
        b = np.asarray(b)
        assert np.abs(np.asarray(a, np.float64)[:50, :150] - b).max() <= rk.tabulated.TOL * np.abs(b).max()
    spread = x * np.linspace(1.0, 1.01, 300, dtype=np.float32)[:, None]
    assert rk.analytic.plan(arch, "hidden", ("nngp",), spread, None, method="auto", all_depths=False).angles is None
    with pytest.raises(ValueError, match="share one norm"):
        rk.kernel(arch, spread, method="table")


@pytest.mark.parametrize("family", [rk.FeedForward(1, w_var=1.7, b_var=0.1, activation="erf"),
                                    rk.ResNet(1, gamma=0.5, w_var=1.3, b_var=0.2, activation="sin")],
                         ids=["ffnet", "resnet"])
def test_depth_families_of_general_archs_equal_kernels_per_depth(family):
    x1, x2 = _inputs(3, seed=12), _inputs(2, seed=13)   # depth 1 of ffnet: ARCHS[0]'s compiled kernel
    depths = (7, 1, 3, 7)
    with enable_x64():
        got = rk.regression.depth_kernels(family, x1, x2, depths=depths)
        for j, d in enumerate(depths):
            want = rk.kernel(family.with_depth(d), x1, x2)
            np.testing.assert_allclose(np.asarray(got.ntk[j]), np.asarray(want.ntk), rtol=1e-13)
            np.testing.assert_allclose(np.asarray(got.nngp[j]), np.asarray(want.nngp), rtol=1e-13)


def test_float32_recursion_without_a_table_projects_to_the_common_norm(monkeypatch):
    """Where inputs share a norm to within the tables' check but no table reaches TOL, the float64
    recursion runs on rows projected to that norm: one row of series terms per layer (not one per
    input), and every entry still within TOL of the float64 kernel of the unprojected inputs."""
    arch = rk.FeedForward(6, w_var=1.8, b_var=0.05, activation="tanh")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(140, 12)).astype(np.float32)
    x = np.float32(2.0) * x / np.linalg.norm(x, axis=1, keepdims=True)
    monkeypatch.setattr(rk.tabulated, "value_table", lambda *a, **k: None)
    p = rk.analytic.plan(arch, "hidden", ("nngp", "ntk"), x, None, method="auto", all_depths=False)
    assert p.angles is None and p.norm is not None and abs(p.norm - 4.0) < 1e-5
    rows = []
    real = general.terms
    monkeypatch.setattr(general, "terms", lambda *a, **k: rows.append(real(*a, **k)) or rows[-1])
    k32 = rk.kernel(arch, x)
    assert rows and rows[-1][0][1].shape[1] == 1          # (L, 1, K): one shared row
    with enable_x64():   # the first 70 rows against all 140: 210 rows of float64 series, not 280
        k64 = rk.kernel(arch, x[:70].astype(np.float64), x.astype(np.float64))
    for a, b in zip(k32, k64):
        b = np.asarray(b)
        assert np.abs(np.asarray(a, np.float64)[:70] - b).max() <= rk.tabulated.TOL * np.abs(b).max()


def test_row_terms_beyond_the_memory_bound_are_refused_before_allocating(monkeypatch):
    arch = rk.FeedForward(3, w_var=1.5, b_var=0.1, activation="tanh")
    x = _inputs(6) * np.linspace(1.0, 2.0, 6)[:, None]                 # different norms: a row each
    monkeypatch.setattr(general, "TERMS_BYTES", 1000)
    with enable_x64(), pytest.raises(ValueError, match=r"GiB of series terms \(3 layers x 6 inputs"):
        rk.kernel(arch, x)
