"""reskernel's convolutional kernels vs neural-tangents 0.6.5 stax, run in the pinned environment .venv-nt.

docs/conventions.md ("Convolutional nets", neural-tangents stax): ConvNet and ConvResNet are
stax's serial(Conv, phi, ..., Flatten | GlobalAvgPool, Dense) and its conv ResNet
(FanOut(2), parallel(Conv, phi, Conv(W_std = a_l), Identity), FanInSum) with padding 'SAME' or
'CIRCULAR'; the only rescaling is the first Conv's W_std^2 = in_var C0 (stax divides by
k^2 C0, reskernel by k^2). With it the analytic NNGP and NTK (trained="all") are stax's
kernel_fn, and at the same parameters (stax's draws, moved into reskernel's layout) the finite
nets compute the same function, so their empirical NNGP (the readout layer's NTK) and NTK are
equal too. Everything in float64; stax runs once for all cases, together with
test_reference_nt's (test_reference_nt.nt_reference: tests/nt_reference/compute.py, which hands
these cases to tests/nt_reference/conv_compute.py), through its session cache and lock.
"""
import jax
import numpy as np
import pytest

import reskernel as rk
from test_reference_nt import _rel, assert_kernels_match, nt_reference

ERF_B = {"w_var": 1.7, "b_var": 0.3, "in_var": 0.4, "activation": "erf"}
RELU, ERF = ["Relu"], ["Erf"]  # the stax layer of the case's activation, [name, *args]
CASES = [
    ("cnn1-flat-same", rk.ConvNet(1, readout="flatten", padding="same"), RELU),
    ("cnn3-gap-circ", rk.ConvNet(3, readout="gap", padding="circular"), RELU),
    ("cnn3-flat-circ-erf-b", rk.ConvNet(3, readout="flatten", padding="circular", **ERF_B), ERF),
    ("res1-a1-gap-same", rk.ConvResNet(1, gamma=1.0, readout="gap", padding="same"), RELU),
    ("res3-g05-flat-circ", rk.ConvResNet(3, gamma=0.5, readout="flatten", padding="circular"), RELU),
    ("res3-g1-gap-same-erf-b", rk.ConvResNet(3, gamma=1.0, readout="gap", padding="same", out_var=1.3, **ERF_B), ERF),
]
IDS = [n for n, _, _ in CASES]
CHANNELS = 6
# Empirical kernels (their compilations dominate the time) for two cases, a ConvNet and a
# ConvResNet with every kind of parameter (hidden layers, biases; both paddings, both readouts
# between them): name -> reskernel's methods, and neural-tangents' implementations (2:
# NTK-vector products, the cheapest here; test_reference_nt checks that its three
# implementations agree; 1 and 3 add ~20 s). A depth-1 ReLU ConvNet (cnn1-flat-same) was a
# third case, ~20 s for one path the two do not take, a ConvNet without hidden layers (its
# analytic kernels are still checked here; tests/test_conv_nets.py checks ReLU ConvNets' empirical
# kernels against Jacobians written there).
EMPIRICAL = {"cnn3-flat-circ-erf-b": (("structured", "jacobian"), [2]),
             "res3-g1-gap-same-erf-b": (("structured",), [2])}


def _case(i, name, arch, layer):
    resnet = isinstance(arch, rk.ConvResNet)
    return {"name": name, "kind": "convresnet" if resnet else "convnet", "depth": arch.depth,
            "scales": list(arch.branch_scales) if resnet else [], "filter_size": arch.filter_size,
            "readout": arch.readout, "padding": arch.padding.upper(), "layer": layer,
            "w_var": arch.w_var, "b_var": arch.b_var, "in_var": arch.in_var,
            "out_var": arch.out_var if resnet else 1.0, "channels": CHANNELS, "seed": i,
            "impls": EMPIRICAL[name][1] if name in EMPIRICAL else []}


def images():
    """x1: 3 images 5 x 5 x 3 of different norms; x2: 4, one of them x1's first, one x1's third
    negated, one x1's second rolled by a pixel, one fresh."""
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=(3, 5, 5, 3)) * np.array([0.5, 1.0, 1.6])[:, None, None, None]
    x2 = np.stack([x1[0], -x1[2], np.roll(x1[1], 1, axis=1), 0.8 * rng.normal(size=(5, 5, 3))])
    return x1, x2


def nt_cases():
    """compute.py's cases for CASES (run with test_reference_nt's, in one process: nt_reference)."""
    return [_case(i, *c) for i, c in enumerate(CASES)]


@pytest.fixture(scope="module")
def conv_reference(tmp_path_factory):
    inputs, out = nt_reference(tmp_path_factory)
    return *inputs["conv"], out


def params_from_stax(arch, leaves, image_size):
    """stax's leaves in forward order -> reskernel.nets.conv's params. Conv filters are HWIO in
    both; stax's Conv biases are (1, 1, 1, C) and only present where b_var > 0; the readout
    Dense weight (H W C or C, 1) in NHWC flatten order is reskernel's v (H, W, C) or (C,)."""
    leaves = [np.asarray(l) for l in leaves]
    biased = arch.b_var > 0
    readout_shape = (*image_size, -1) if arch.readout == "flatten" else (-1,)

    def take(count):
        got, rest = leaves[:count], leaves[count:]
        leaves[:] = rest
        return got

    params = {}
    first = take(2 if biased else 1)
    if isinstance(arch, rk.ConvNet):
        params["input"] = first[0]
        layers = [take(2 if biased else 1) for _ in range(arch.depth - 1)]
        c = first[0].shape[-1]
        params["hidden"] = (np.stack([l[0] for l in layers]) if layers
                            else np.zeros((0,) + first[0].shape[:2] + (c, c)))
        if biased:
            params["input_bias"] = first[1].reshape(-1)
            params["hidden_bias"] = (np.stack([l[1].reshape(-1) for l in layers]) if layers else np.zeros((0, c)))
    else:
        params["embed"] = first[0]
        blocks = [take(3 if biased else 2) for _ in range(arch.depth)]
        params["W"] = np.stack([b[0] for b in blocks])
        params["V"] = np.stack([b[-1] for b in blocks])
        if biased:
            params["embed_bias"] = first[1].reshape(-1)
            params["b"] = np.stack([b[1].reshape(-1) for b in blocks])
    readout = take(2 if biased else 1)
    params["readout"] = readout[0].reshape(readout_shape)
    if biased:
        params["readout_bias"] = readout[1].reshape(())
    assert not leaves, f"{len(leaves)} stax leaves left over"
    return params


@pytest.mark.reference
@pytest.mark.parametrize("name, arch, layer", CASES, ids=IDS)
def test_conv_analytic_matches_neural_tangents(x64, conv_reference, name, arch, layer):
    """Analytic NNGP and NTK (trained="all") = stax's kernel_fn, to 1e-6 of the largest entry.
    In float64 they agree to rounding (~1e-15) except at the antipodal pair (x1[2], -x1[2]),
    where ReLU's NTK map, through arccos(rho) ~ pi - sqrt(2 (1 + rho)) at rho = -1, turns
    rounding in rho into ~1e-9 (measured 7.6e-10, res3-g05-flat-circ): asserted 1e-8."""
    x1, x2, out = conv_reference
    assert_kernels_match(rk.kernel(arch, x1, x2, trained="all"), out, name, 1e-8)


@pytest.mark.reference
@pytest.mark.parametrize("name, arch, layer", [c for c in CASES if c[0] in EMPIRICAL], ids=list(EMPIRICAL))
def test_conv_empirical_matches_neural_tangents(x64, conv_reference, name, arch, layer):
    """At stax's parameters the finite net is stax's (same outputs), and reskernel's empirical
    NNGP and NTK (trained="all", both methods) are stax's readout-layer NTK and its empirical NTK."""
    x1, x2, out = conv_reference
    params = params_from_stax(arch, [out[f"{name}/leaf{i}"] for i in range(int(out[f"{name}/num_leaves"]))],
                              x1.shape[1:3])
    net = rk.network(arch, channels=CHANNELS)
    params = jax.tree_util.tree_map(np.asarray, params)
    # x1 and x2 as one batch (one compilation of each function instead of two): K(x1, x2) is the
    # symmetric kernel's block [:n1, n1:]
    x, n1 = np.concatenate([x1, x2]), x1.shape[0]
    f = net.apply(params, x)
    np.testing.assert_allclose(f[:n1], out[f"{name}/f1"].reshape(-1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f[n1:], out[f"{name}/f2"].reshape(-1), rtol=1e-10, atol=1e-12)
    impls = [k.rsplit("/", 1)[1] for k in out if k.startswith(f"{name}/empirical_ntk/")]
    assert impls
    for method in EMPIRICAL[name][0]:
        e = rk.empirical_kernel(net, params, x, trained="all", method=method)
        err = _rel(e.nngp[:n1, n1:], out[f"{name}/empirical_nngp"])
        assert err <= 1e-10, f"{method} nngp: {err:.3g}"
        for impl in impls:
            err = _rel(e.ntk[:n1, n1:], out[f"{name}/empirical_ntk/{impl}"])
            assert err <= 1e-10, f"{method} ntk vs nt implementation {impl}: {err:.3g}"
