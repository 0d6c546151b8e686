"""Analytic convolutional kernels (reskernel.core.conv) against an independent float64
implementation written here: the covariance of every (image, position) pair as one matrix, its
k x k windowed sums by loops over positions and taps, and the activations' duals written out
(ReLU, erf in closed form; tanh by a 2-D trapezoidal rule). Also: 1 x 1 images and 1 x 1
filters against the dense kernels, circular padding's translation invariance, blocked =
unblocked, all depths = each depth, jit, float32, the memory formula, and bad input."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reskernel.core import conv
from reskernel.core.analytic import kernel
from reskernel.core.conv import BLOCK_ARRAYS, _block, block_bytes, conv_kernel
from reskernel.core.conv_arch import ConvNet, ConvResNet
from reskernel.precision import enable_x64


def _relu(q1, q2, k):
    s = np.sqrt(q1 * q2)
    rho = np.clip(k / np.where(s > 0, s, 1.0), -1.0, 1.0)
    theta = np.arccos(rho)
    return s * (np.sin(theta) + (math.pi - theta) * rho) / (2 * math.pi), (math.pi - theta) / (2 * math.pi)


def _erf(q1, q2, k):
    p = (1 + 2 * q1) * (1 + 2 * q2)
    return 2 / math.pi * np.arcsin(2 * k / np.sqrt(p)), 4 / math.pi / np.sqrt(p - 4 * k * k)


Z = np.arange(-9.0, 9.0 + 1e-9, 0.1)
WZ = 0.1 * np.exp(-Z * Z / 2) / math.sqrt(2 * math.pi)


def _tanh(q1, q2, k):
    """E[phi(u) phi(v)], E[phi'(u) phi'(v)] on the product trapezoidal rule (exponentially
    accurate for tanh), entry by entry."""
    q1, q2, k = np.broadcast_arrays(q1, q2, k)
    v, vd = np.empty(k.shape), np.empty(k.shape)
    z1, z2 = Z[:, None], Z[None, :]
    w = WZ[:, None] * WZ[None, :]
    for i in np.ndindex(k.shape):
        rho = k[i] / math.sqrt(q1[i] * q2[i])
        u = math.sqrt(q1[i]) * z1
        t = math.sqrt(q2[i]) * (rho * z1 + math.sqrt(max(1 - rho * rho, 0.0)) * z2)
        v[i] = np.sum(w * np.tanh(u) * np.tanh(t))
        vd[i] = np.sum(w / np.cosh(u) ** 2 / np.cosh(t) ** 2)
    return v, vd


DUALS = {"relu": _relu, "erf": _erf, "tanh": _tanh}


def reference(arch, x, trained):
    """(nngp, ntk), (n, n), of arch on images x (n, H, W, C) in float64 (module doc)."""
    n, height, width, _ = x.shape
    pos = [(h, w) for h in range(height) for w in range(width)]
    k = arch.filter_size
    lo = (k - 1) // 2
    tap = [(a, b) for a in range(-lo, k - lo) for b in range(-lo, k - lo)]

    def at(h, w):
        if arch.padding == "circular":
            return (h % height) * width + w % width
        return h * width + w if 0 <= h < height and 0 <= w < width else None

    def window(m):
        out = np.zeros_like(m)
        for i, (h, w) in enumerate(pos):
            for j, (h2, w2) in enumerate(pos):
                for a, b in tap:
                    s, t = at(h + a, w + b), at(h2 + a, w2 + b)
                    if s is not None and t is not None:
                        out[:, i, :, j] += m[:, s, :, t]
        return out / (k * k)

    def read(m):
        if arch.readout == "flatten":
            return np.mean([m[:, i, :, i] for i in range(len(pos))], axis=0)
        return m.mean(axis=(1, 3))

    def duals(s):
        d = np.einsum("ipip->ip", s)
        return DUALS[arch.activation.label](d[:, :, None, None], d[None, None], s)

    xs = np.asarray(x, np.float64).reshape(n, height * width, -1)
    g = np.einsum("ipc,jqc->ipjq", xs, xs)
    w_var, b_var = arch.w_var, arch.b_var
    if isinstance(arch, ConvNet):
        s, t = arch.in_var * window(g) + b_var, np.zeros_like(g)
        for layer in range(arch.depth):
            v, vd = duals(s)
            a, b = w_var * v, w_var * vd * (t + s)
            if layer < arch.depth - 1:
                s, t = window(a) + b_var, window(b)
        nngp, ntk = read(a) + b_var, read(b)
    else:
        kk = arch.in_var * window(g) + b_var
        th = kk.copy() if trained == "all" else np.zeros_like(kk)
        for a in arch.branch_scales:
            s = w_var * window(kk) + b_var
            v, vd = duals(s)
            kk, th = kk + a * a * window(v), th + a * a * window(v + vd * (s + w_var * window(th)))
        nngp, ntk = arch.out_var * read(kk) + b_var, arch.out_var * read(th)
    return nngp, (ntk + nngp if trained == "all" else ntk)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def close(got, want, rtol):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.abs(w).max())


# Each case its own compilation: together they cover both specs, readouts, paddings, trained
# sets, ReLU and erf, even and odd filters, depths 1-3, biases and per-block scales.
CASES = [
    (ConvNet(2, filter_size=3, readout="flatten", padding="same"), "hidden", (4, 4, 4, 2)),
    (ConvNet(3, filter_size=2, readout="gap", padding="same", activation="erf", b_var=0.1), "all", (3, 5, 3, 1)),
    (ConvNet(1, filter_size=3, readout="gap", padding="circular", w_var=1.5, in_var=0.7), "hidden", (3, 4, 4, 2)),
    (ConvNet(2, filter_size=3, readout="flatten", padding="circular", activation="erf"), "all", (3, 5, 3, 1)),
    (ConvResNet(2, gamma=0.5, filter_size=3, readout="gap", padding="same"), "all", (4, 4, 4, 2)),
    (ConvResNet(3, scales=(0.9, 0.3, 0.6), filter_size=3, readout="flatten", padding="same", activation="erf",
                b_var=0.2, out_var=1.3), "hidden", (3, 5, 3, 1)),
    (ConvResNet(1, alpha=0.7, filter_size=2, readout="flatten", padding="circular"), "all", (3, 4, 4, 2)),
    (ConvResNet(2, filter_size=3, readout="gap", padding="circular", activation="erf", w_var=1.2), "hidden",
     (3, 5, 3, 1)),
]


@pytest.mark.parametrize("arch, trained, shape", CASES)
def test_matches_loop_reference(arch, trained, shape):
    x = images(shape, seed=sum(shape))
    with enable_x64():
        got = conv_kernel(arch, x, trained=trained)
        assert got.nngp.dtype == np.float64 and got.nngp.shape == (shape[0],) * 2
    close(got, reference(arch, x, trained), 1e-12)
    np.testing.assert_allclose(got.ntk, got.ntk.T, rtol=0, atol=1e-14 * np.abs(got.ntk).max())


@pytest.mark.parametrize("arch, trained, shape", [CASES[1], CASES[4], CASES[5]])
def test_row_tiles_match_loop_reference(monkeypatch, arch, trained, shape):
    """Each layer's elementwise maps one row of positions at a time (conv._by_rows; a CPU's path
    for large images, here forced by TILE_BYTES = 1), every depth, against the loop reference;
    get="nngp" of every depth (no NTK carried) equal to the NNGP of the full call."""
    monkeypatch.setattr(conv, "TILE_BYTES", 1)
    assert conv.default_tile(2, 2, shape[1], shape[2], arch.readout) == 1
    x = images(shape, seed=sum(shape))
    with enable_x64():
        every = conv_kernel(arch, x, trained=trained, all_depths=True)
        close(tuple(v[-1] for v in every), reference(arch, x, trained), 1e-12)
        np.testing.assert_allclose(conv_kernel(arch, x, trained=trained, all_depths=True, get="nngp"), every.nngp,
                                   rtol=1e-13)


@pytest.mark.parametrize("tile_bytes", [conv.TILE_BYTES, 1])
def test_tanh_matches_quadrature(monkeypatch, tile_bytes):
    """Numerical duals (the Hermite series, per-position terms from the host, whose diagonal pass
    runs here one image at a time) against the 2-D trapezoidal rule, on images whose positions
    see different variances (zero padding); whole layers and tiles of one row (the terms cut
    with the state)."""
    monkeypatch.setattr(conv, "CHUNK", 1)
    monkeypatch.setattr(conv, "TILE_BYTES", tile_bytes)
    arch = ConvResNet(2, gamma=0.5, filter_size=3, readout="gap", activation="tanh", b_var=0.1)
    x = 0.7 * images((2, 3, 3, 1), seed=3)
    with enable_x64():
        got = conv_kernel(arch, x, trained="all")
    close(got, reference(arch, x, "all"), 1e-9)


@pytest.mark.parametrize("arch, trained", [
    (ConvNet(3, filter_size=3, padding="circular", readout="gap", b_var=0.1), "hidden"),
    (ConvResNet(3, gamma=0.5, filter_size=4, padding="circular", readout="flatten", activation="erf", b_var=0.2),
     "all"),
])
def test_one_pixel_circular_is_dense(arch, trained):
    """A 1 x 1 image with circular padding: every tap reads the one pixel, the dense net."""
    x = images((5, 1, 1, 3), seed=1)
    with enable_x64():
        close(conv_kernel(arch, x, trained=trained), kernel(arch.dense, x.reshape(5, 3), trained=trained), 1e-13)


@pytest.mark.parametrize("readout", ["flatten", "gap"])
def test_one_by_one_filters_are_dense_per_pixel(readout):
    """filter_size=1 (either padding): the dense net on every pixel's channels, then the readout's
    mean over positions (flatten: same positions; gap: every pair)."""
    arch = ConvResNet(2, gamma=1.0, filter_size=1, readout=readout, padding="same", activation="erf", b_var=0.1)
    n, h, w, c = 3, 2, 3, 2
    x = images((n, h, w, c), seed=2)
    with enable_x64():
        got = conv_kernel(arch, x, trained="all")
        dense = kernel(arch.dense, x.reshape(n * h * w, c), trained="all")
    for g, d in zip(got, dense):
        d = d.reshape(n, h * w, n, h * w)
        want = np.einsum("ipjp->ij", d) / (h * w) if readout == "flatten" else d.mean(axis=(1, 3))
        np.testing.assert_allclose(g, want, rtol=1e-13)


@pytest.mark.parametrize("readout", ["flatten", "gap"])
def test_circular_translation_invariance(readout):
    arch = ConvNet(2, filter_size=3, readout=readout, padding="circular", activation="erf")
    x = images((3, 4, 5, 2), seed=4)
    shifted = np.roll(x, (1, 3), axis=(1, 2))
    with enable_x64():
        close(conv_kernel(arch, shifted), conv_kernel(arch, x), 1e-13)
        if readout == "gap":   # zero padding is not translation invariant: the check above can fail
            zero = ConvNet(2, filter_size=3, readout=readout, padding="same", activation="erf")
            assert np.abs(conv_kernel(zero, shifted).nngp - conv_kernel(zero, x).nngp).max() > 1e-3


def test_blocked_equals_unblocked():
    arch = ConvResNet(2, gamma=0.5, filter_size=3, readout="gap")
    x = images((7, 3, 3, 2), seed=5)
    with enable_x64():
        whole = conv_kernel(arch, x, all_depths=True)
        for n in (4, 5, 7):                   # not multiples of the block
            for b in (3,):
                part = conv_kernel(arch, x[:n], block=b, all_depths=True)
                close(part, tuple(v[:, :n, :n] for v in whole), 1e-13)
        # every depth, as above: the block-3 program compiled once serves the cross kernel too
        cross = conv_kernel(arch, x[:5], x[2:], block=3, all_depths=True)
        close(cross, tuple(v[:, :5, 2:] for v in whole), 1e-13)


def test_all_depths_and_get():
    arch = ConvNet(3, filter_size=3, readout="flatten", activation="erf", b_var=0.1)
    x = images((3, 4, 4, 1), seed=6)
    with enable_x64():
        every = conv_kernel(arch, x, all_depths=True, trained="all")
        close(conv_kernel(arch.with_depth(2), x, trained="all"), tuple(v[1] for v in every), 1e-13)
        np.testing.assert_allclose(conv_kernel(arch, x, get="nngp"), every.nngp[-1], rtol=1e-13)
        np.testing.assert_allclose(conv_kernel(arch, x, get="ntk", trained="all"), every.ntk[-1], rtol=1e-13)


def test_float32_and_jit():
    arch = ConvResNet(2, filter_size=3, readout="gap")
    x = images((3, 4, 4, 2), seed=7)
    with enable_x64():
        want = conv_kernel(arch, x)
    got = conv_kernel(arch, x.astype(np.float32))
    assert got.nngp.dtype == np.float32
    close(got, want, 2e-5)
    close(kernel(arch, x.astype(np.float32)), got, 0)     # reskernel.kernel dispatches here
    traced = jax.jit(lambda a: conv_kernel(arch, a).ntk)(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(traced), want.ntk, rtol=2e-5)


def test_block_memory_formula():
    """XLA's own count of a gap block's buffers stays within block_bytes (the docstring's formula)."""
    arch = ConvResNet(3, filter_size=3, readout="gap")
    b, h, w = 2, 12, 12
    x = jnp.zeros((b, h, w, 3), jnp.float32)
    compiled = jax.jit(lambda a, c: _block.__wrapped__(a, c, (), (), arch=arch, trained="hidden", all_depths=False,
                                                        pick=(0, 1))).lower(x, x).compile()
    mem = compiled.memory_analysis()
    used = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
    assert used <= block_bytes(b, h, w, "gap", 4)
    assert used >= block_bytes(b, h, w, "gap", 4) / BLOCK_ARRAYS   # the state itself at least


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 4, 4)), "rank 4"),
    (np.ones((2, 1, 8, 8)), "larger than.*channels-first"),
    (np.full((2, 4, 4, 1), np.nan), "non-finite"),
])
def test_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        conv_kernel(ConvNet(2), x)


def test_bad_arguments():
    x = np.ones((2, 4, 4, 3))
    with pytest.raises(ValueError, match="another order"):
        conv_kernel(ConvNet(2), x, np.ones((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="block"):
        conv_kernel(ConvNet(2), x, block=0)
    with pytest.raises(ValueError, match="method"):
        conv_kernel(ConvNet(2), x, method="table")
    with pytest.raises(ValueError, match="get"):
        conv_kernel(ConvNet(2), x, get="both")
    with pytest.raises(ValueError, match="trained"):
        conv_kernel(ConvNet(2), x, trained="readout")
    with pytest.raises(TypeError, match="ConvNet or ConvResNet"):
        conv_kernel("cnn", x)
    with pytest.raises(TypeError, match="float32 or float64"):
        conv_kernel(ConvNet(2), x.astype(np.float16))
    with pytest.raises(ValueError, match="beyond the range"):
        conv_kernel(ConvResNet(2, alpha=1e20), x.astype(np.float32))
