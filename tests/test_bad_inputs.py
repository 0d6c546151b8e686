"""Property-based checks of the public contracts (Hypothesis): random shapes, dtypes,
magnitudes and specs. Valid inputs give finite results of the documented shape and dtype;
invalid ones raise TypeError or ValueError with a message naming the problem: never NaN,
never a silent result. Sizes are tiny and the draws few (each new shape compiles)."""
from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reskernel as rk
from reskernel.precision import enable_x64

# derandomize: the same draws on every run (CI reproducible); database=None: nothing written
# into the checkout.
FEW = settings(max_examples=8, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])
MANY = settings(FEW, max_examples=40)

depths = st.integers(1, 3)
archs = st.one_of(
    st.builds(rk.FeedForward, depths),
    st.builds(lambda depth, gamma: rk.ResNet(depth, gamma=gamma), depths, st.sampled_from([0.5, 1.0, 2.0])),
    st.builds(lambda depth, alpha: rk.ResNet(depth, alpha=alpha), depths, st.sampled_from([0.1, 1.0])),
)
sizes = st.sampled_from([1, 3])
dims = st.sampled_from([2, 5])
seeds = st.integers(0, 2 ** 32 - 1)
NOT_A_FLAG = st.sampled_from(["no", "False", "", 0, 1, 2, None, 1.0, []])


def _rows(rng, n, d, scale=1.0):
    """n nonzero rows of dimension d."""
    x = rng.normal(size=(n, d))
    x[:, 0] += np.where(x[:, 0] >= 0, 0.1, -0.1)  # no zero rows
    return x * scale


def _raises_clearly(call, names=()):
    """call() raises TypeError or ValueError whose message names one of `names` (if given)."""
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    msg = str(info.value)
    assert len(msg) > 15, msg
    if names:
        assert any(n in msg for n in names), msg
    return info.value


def _finite(*arrays):
    for a in arrays:
        assert np.isfinite(np.asarray(a)).all(), a


# ---- rk.kernel

@st.composite
def kernel_calls(draw):
    arch = draw(archs)
    n1, n2, d = draw(sizes), draw(sizes), draw(dims)
    rng = np.random.default_rng(draw(seeds))
    scale = 10.0 ** draw(st.floats(-3, 3))
    form = draw(st.sampled_from(["numpy", "jax", "list", "int"]))
    x1, x2 = _rows(rng, n1, d, scale), _rows(rng, n2, d, scale)
    if form == "int":
        x1, x2 = np.rint(x1 / scale * 3).astype(np.int32), np.rint(x2 / scale * 3).astype(np.int64)
        x1[:, 0], x2[:, 0] = np.where(x1[:, 0] == 0, 1, x1[:, 0]), np.where(x2[:, 0] == 0, -1, x2[:, 0])
    elif form == "jax":
        x1, x2 = jnp.asarray(x1, jnp.float32), jnp.asarray(x2, jnp.float32)
    elif form == "list":
        x1, x2 = x1.tolist(), x2.tolist()
    symmetric = draw(st.booleans())
    options = dict(all_depths=draw(st.booleans()), trained=draw(st.sampled_from(rk.TRAINED)),
                   get=draw(st.sampled_from([None, "nngp", "ntk"])))
    return arch, x1, (None if symmetric else x2), options


@FEW
@given(kernel_calls())
def test_kernel_valid_inputs(call):
    arch, x1, x2, options = call
    out = rk.kernel(arch, x1, x2, **options)
    kernels = (out,) if options["get"] else tuple(out)
    if options["get"] is None:
        assert isinstance(out, rk.Kernel)
    n1 = len(x1)
    n2 = n1 if x2 is None else len(x2)
    shape = (arch.depth, n1, n2) if options["all_depths"] else (n1, n2)
    for k in kernels:
        assert k.shape == shape and k.dtype == jnp.float32
        _finite(k)
        if x2 is None:
            np.testing.assert_allclose(np.swapaxes(k, -1, -2), k, rtol=1e-5, atol=0)
            assert (np.diagonal(np.asarray(k), axis1=-2, axis2=-1) > 0).all()


@settings(FEW, max_examples=8)
@given(archs, sizes, dims, seeds)
def test_kernel_float64_in_float64_out(arch, n, d, seed):
    x = _rows(np.random.default_rng(seed), n, d)
    with enable_x64():
        k = rk.kernel(arch, x)
        assert k.nngp.dtype == k.ntk.dtype == jnp.float64 and k.ntk.shape == (n, n)
        _finite(*k)


BAD_INPUTS = ["nan", "inf", "zero_row", "rank1", "rank3", "no_rows", "no_features", "d_mismatch",
              "float16", "bfloat16", "complex", "ragged", "string", "none", "object"]


@st.composite
def bad_kernel_inputs(draw):
    n, d = draw(sizes), draw(dims)
    rng = np.random.default_rng(draw(seeds))
    x1, x2 = _rows(rng, n, d, 10.0 ** draw(st.floats(-3, 3))), _rows(rng, n, d)
    kind = draw(st.sampled_from(BAD_INPUTS))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))
    bad = x1.copy()
    if kind == "nan":
        bad[i, j] = np.nan
    elif kind == "inf":
        bad[i, j] = draw(st.sampled_from([np.inf, -np.inf]))
    elif kind == "zero_row":
        bad[i] = 0.0
    elif kind == "rank1":
        bad = bad[0]
    elif kind == "rank3":
        bad = bad[None]
    elif kind == "no_rows":
        bad = bad[:0]
    elif kind == "no_features":
        bad = bad[:, :0]
    elif kind == "d_mismatch":
        bad = np.concatenate([bad, bad[:, :1]], axis=1)
    elif kind in ("float16", "bfloat16"):
        bad = jnp.asarray(bad, kind)
    elif kind == "complex":
        bad = bad + 1j
    elif kind == "ragged":
        bad = bad.tolist() + [[1.0] * (d + 1)]
    elif kind == "string":
        bad = "x" * d
    elif kind == "object":
        bad = bad.astype(object)
        bad[i, j] = "a"
    if kind == "none":  # (x2=None is the symmetric call)
        return None, x2, ("x1",)
    if kind == "d_mismatch" or draw(st.booleans()):
        return x1, bad, ("x2", "x1 and x2")
    return bad, None, ("x1",)


@MANY
@given(bad_kernel_inputs(), archs)
def test_kernel_bad_inputs_raise(case, arch):
    x1, x2, names = case
    _raises_clearly(lambda: rk.kernel(arch, x1, x2), names)


@MANY
@given(archs, st.one_of(st.text(max_size=6), st.integers(), st.none()),
       st.sampled_from(["trained", "get", "method"]))
def test_kernel_bad_options_raise(arch, value, option):
    valid = {"trained": rk.TRAINED, "get": (None, "nngp", "ntk"), "method": ("auto", "table", "recursion")}
    if value in valid[option]:
        return
    _raises_clearly(lambda: rk.kernel(arch, np.eye(2), **{option: value}), (option,))


@MANY
@given(archs, NOT_A_FLAG)
def test_kernel_all_depths_must_be_a_boolean(arch, value):
    # all_depths="no" is truthy: taken as given it would return every depth.
    with pytest.raises(TypeError, match="all_depths"):
        rk.kernel(arch, np.eye(2), all_depths=value)


# Powers of two: scaling by them is exact, so the homogeneity below is exact up to the
# kernel's own rounding. 2^-100 = 7.9e-31, 2^83 = 9.7e24.
EXTREME = [-101, -100, -99, 82, 83, 84]


@settings(FEW, max_examples=12)
@given(archs, sizes, sizes, dims, seeds, st.sampled_from(EXTREME), st.sampled_from(EXTREME + [0, 1]),
       st.booleans())
def test_kernel_float32_is_homogeneous_at_extreme_norms(arch, n1, n2, d, seed, k1, k2, all_depths):
    """ReLU kernels are homogeneous of degree 1 in each input: K(a x, b x') = a b K(x, x')."""
    if abs(k1 + k2) > 100:  # a product outside float32's range (1e-38 .. 3e38): not representable
        k1, k2 = k1, -k1 // 2
    rng = np.random.default_rng(seed)
    u1, u2 = _rows(rng, n1, d), _rows(rng, n2, d)
    u1 = (u1 / np.linalg.norm(u1, axis=1, keepdims=True)).astype(np.float32)
    u2 = (u2 / np.linalg.norm(u2, axis=1, keepdims=True)).astype(np.float32)
    x1, x2 = u1 * np.float32(2.0 ** k1), u2 * np.float32(2.0 ** k2)
    ref = rk.kernel(arch, u1, u2, all_depths=all_depths)
    got = rk.kernel(arch, x1, x2, all_depths=all_depths)
    for g, r in zip(got, ref):
        assert g.dtype == jnp.float32
        _finite(g)
        np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(r, np.float64) * 2.0 ** (k1 + k2),
                                   rtol=1e-5, atol=0)


# ---- rk.correlation_kernels

rho_shapes = st.sampled_from([(), (3,), (2, 2)])


@FEW
@given(archs, rho_shapes, seeds, st.booleans(), st.sampled_from(rk.TRAINED))
def test_correlation_kernels_valid(arch, shape, seed, all_depths, trained):
    rng = np.random.default_rng(seed)
    rho = rng.uniform(-1, 1, size=shape).astype(np.float32)
    if rho.size:
        rho.flat[0] = rng.choice([-1.0, 1.0])  # the end points are valid correlations
    k = rk.correlation_kernels(arch, rho, trained=trained, all_depths=all_depths)
    want = ((arch.depth,) if all_depths else ()) + shape
    for a in k:
        assert a.shape == want and a.dtype == jnp.float32
        _finite(a)


@MANY
@given(archs, rho_shapes, seeds,
       st.one_of(st.floats(1.001, 1e6), st.floats(-1e6, -1.001), st.just(np.nan), st.just(np.inf)))
def test_correlation_kernels_outside_the_range_raise(arch, shape, seed, bad):
    rho = np.random.default_rng(seed).uniform(-1, 1, size=shape)
    if rho.ndim:
        rho.flat[-1] = bad
    else:
        rho = np.asarray(bad)
    with pytest.raises(ValueError, match="rho"):
        rk.correlation_kernels(arch, rho)


# ---- specs

@MANY
@given(st.one_of(st.integers(-3, 40), st.integers(1, 40).map(np.int64), st.floats(allow_nan=True),
                 st.booleans(), st.text(max_size=3), st.none()))
def test_feedforward_depth(depth):
    valid = isinstance(depth, numbers.Integral) and not isinstance(depth, (bool, np.bool_)) and depth >= 1
    if valid:
        assert rk.FeedForward(depth).depth == int(depth)
        assert rk.ResNet(depth).branch_scales == (float(depth) ** -1.0,) * int(depth)
    else:
        _raises_clearly(lambda: rk.FeedForward(depth), ("depth",))
        _raises_clearly(lambda: rk.ResNet(depth), ("depth",))


numbers_or_junk = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 3),
                            st.booleans(), st.text(max_size=2))
scale_lists = st.one_of(st.none(), st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-1, 2)), max_size=4))


def _resnet_valid(depth, gamma, alpha, scales):
    def real(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    given = [v for v in (gamma, alpha, scales) if v is not None]
    if len(given) > 1:
        return False
    if gamma is not None:
        return real(gamma) and gamma >= 0
    if alpha is not None:
        return real(alpha) and alpha > 0
    if scales is not None:
        return len(scales) == depth and all(real(s) and s >= 0 for s in scales)
    return True


@MANY
@given(st.integers(1, 4), numbers_or_junk, numbers_or_junk, scale_lists)
def test_resnet_spec(depth, gamma, alpha, scales):
    kwargs = dict(gamma=gamma, alpha=alpha, scales=scales)
    if _resnet_valid(depth, gamma, alpha, scales):
        a = rk.ResNet(depth, **kwargs).branch_scales
        assert len(a) == depth and all(math.isfinite(v) and v >= 0 for v in a)
    else:
        _raises_clearly(lambda: rk.ResNet(depth, **kwargs), ("gamma", "alpha", "scales"))


# ---- rk.network, net.init, rk.empirical_kernel

@st.composite
def nets(draw, widths=(1, 3), dims=(1, 3)):
    arch = draw(st.one_of(st.builds(rk.FeedForward, st.integers(1, 2)),
                          st.builds(lambda depth: rk.ResNet(depth), st.integers(1, 2))))
    return rk.network(arch, draw(st.sampled_from(widths))), draw(st.sampled_from(dims))


@settings(FEW, max_examples=6)
@given(nets(widths=(3,), dims=(2,)), st.sampled_from([1, 3]), seeds, st.sampled_from(rk.TRAINED),
       st.sampled_from(rk.empirical.METHODS), st.sampled_from(["float32", "float64", "int"]))
def test_empirical_kernel_valid(net_d, n2, seed, trained, method, form):
    # Few distinct shapes: each (net, shape, method) compiles.
    net, d = net_d
    n1 = 2
    rng = np.random.default_rng(seed)
    x1, x2 = _rows(rng, n1, d), _rows(rng, n2, d)
    if form == "int":
        x1, x2 = np.where(x1 > 0, 1, -1), np.where(x2 > 0, 2, -1)
    elif form == "float32":
        x1, x2 = x1.astype(np.float32), x2.astype(np.float32)
    params = net.init(jax.random.PRNGKey(seed % 1000), d, dtype=jnp.float32)
    e = rk.empirical_kernel(net, params, x1, x2, trained=trained, method=method)
    for k in e:
        assert k.shape == (n1, n2) and k.dtype == jnp.float32  # params' dtype
        _finite(k)
    out = net.apply(params, x1)
    assert out.shape == (n1,) and out.dtype == jnp.float32
    _finite(out)


BAD_PARAMS = ["drop", "extra", "deeper", "wider", "narrower_input", "int", "float16", "mixed", "nan", "inf",
              "list", "not_a_dict"]


@st.composite
def bad_params(draw):
    net, d = draw(nets(widths=(3,), dims=(2,)))
    params = net.init(jax.random.PRNGKey(0), d, dtype=jnp.float32)
    kind = draw(st.sampled_from(BAD_PARAMS))
    name = draw(st.sampled_from(sorted(params)))
    p = dict(params)
    leaf = p[name]
    if kind == "drop":
        del p[name]
    elif kind == "extra":
        p["bias"] = leaf
    elif kind == "deeper":
        stack = "hidden" if "hidden" in p else draw(st.sampled_from(["W", "V"]))
        p[stack] = jnp.concatenate([p[stack], jnp.ones((1,) + p[stack].shape[1:], jnp.float32)])
    elif kind == "wider":
        p[name] = jnp.ones(tuple(s + 1 for s in leaf.shape), jnp.float32)
    elif kind == "narrower_input":
        first = "input" if "input" in p else "embed"
        p[first] = jnp.ones((p[first].shape[0], d + 1), jnp.float32)
    elif kind == "int":
        p[name] = leaf.astype(jnp.int32)
    elif kind == "float16":
        p[name] = leaf.astype(draw(st.sampled_from([jnp.float16, jnp.bfloat16])))
    elif kind == "mixed":
        p[name] = np.asarray(leaf, np.float64)
    elif kind in ("nan", "inf"):
        if leaf.size == 0:  # FeedForward(1) has no hidden matrices
            name = "readout"
            leaf = p[name]
        flat = np.asarray(leaf).copy().reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = np.nan if kind == "nan" else -np.inf
        p[name] = jnp.asarray(flat.reshape(leaf.shape))
    elif kind == "list":
        p[name] = np.asarray(leaf).tolist()
    elif kind == "not_a_dict":
        p = list(p.values())
    return net, d, p


@MANY
@given(bad_params(), st.sampled_from(["empirical_kernel", "apply", "features"]))
def test_bad_params_raise(case, entry):
    net, d, params = case
    x = _rows(np.random.default_rng(0), 2, d).astype(np.float32)
    call = {"empirical_kernel": lambda: rk.empirical_kernel(net, params, x),
            "apply": lambda: net.apply(params, x), "features": lambda: net.features(params, x)}[entry]
    _raises_clearly(call, ("params",))


@MANY
@given(st.one_of(st.integers(-3, 0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2), st.none()))
def test_network_width(width):
    _raises_clearly(lambda: rk.network(rk.FeedForward(2), width), ("width",))


@MANY
@given(nets(), st.one_of(st.integers(-2, 0), st.floats(), st.text(max_size=2)),
       st.sampled_from([None, "int32", "float16", "bfloat16", "complex64", "float32"]))
def test_init_bad_arguments(net_d, d_in, dtype):
    net, d = net_d
    if dtype in (None, "float32"):
        _raises_clearly(lambda: net.init(jax.random.PRNGKey(0), d_in, dtype=dtype), ("d_in",))
    else:
        _raises_clearly(lambda: net.init(jax.random.PRNGKey(0), d, dtype=dtype), ("dtype",))
