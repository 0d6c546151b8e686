"""Run in the pinned reference environment (.venv-nt: jax 0.5.3, neural-tangents 0.6.5).

usage: python compute.py CASES.json INPUTS.npz OUT.npz

INPUTS.npz holds x1 and x2, or pairs GROUP/x1, GROUP/x2 for cases that name their "inputs": GROUP
(tests/test_reference_nt.py runs its dense, mapped and conv cases in one process, each group
at its own inputs: one start-up of jax and neural-tangents instead of three).
For each case {"name", "kind": "ffnet"|"resnet", "depth", "scales": [...], "width"} it
writes, in float64, neural-tangents' analytic NNGP/NTK (every layer trained), and its
empirical NTK at the given width together with the parameters it drew (leaves in
forward order, each stored (fan_in, fan_out) as stax does), by each of neural-tangents'
implementations in "impls" (default [1, 2, 3]). A case that also has
"layer" (a stax activation: [name, *args], e.g. ["ABRelu", -0.5, 1.5], or
["ElementwiseNumerical", "tanh", deg] for jnp.tanh by Gauss-Hermite quadrature of degree deg;
"degs": [deg, ...] computes it at each) and "w_var", "b_var", "in_var", "out_var" is the net
of `stax_mapped` (analytic kernels only). A case of kind "convnet" or "convresnet" is a
convolutional net, computed by tests/nt_reference/conv_compute.py (see there). Imports neither reskernel nor anything of the main
environment. `stax_net` is also imported by
benchmarks/nt_worker.py (importing this module leaves float64 off; `main` turns it on), as is
`shim_structured_derivatives`, which lets neural-tangents' implementation 3 run on jax 0.5.3.
"""
import json
import os
import sys
import time
import types
import warnings

import jax
import numpy as np
import neural_tangents as nt
from neural_tangents import stax


def shim_structured_derivatives():
    """neural-tangents 0.6.5's empirical NTK implementation 3 (structured derivatives) reads
    `jax.interpreters.ad.source_info_util` and `jax.interpreters.ad.config.jax_enable_checks`,
    which jax 0.5.3 no longer re-exports (AttributeError at the first call). Point the first at
    the module it moved to and give the second its default (checks off). Both are read at call
    time, so the shim works after neural_tangents is imported. Idempotent."""
    import jax._src.interpreters.ad as ad_src
    import jax.interpreters.ad as ad
    if not hasattr(ad, "source_info_util"):
        ad.source_info_util = ad_src.source_info_util
    if not hasattr(ad, "config"):
        ad.config = types.SimpleNamespace(jax_enable_checks=False)


def stax_net(kind, depth, scales, width):
    """neural-tangents stax (init_fn, apply_fn, kernel_fn) of reskernel's FeedForward
    (kind "ffnet") or ResNet (kind "resnet", branch scales `scales`), every layer a
    trainable Dense of the given width."""
    if kind == "ffnet":
        layers = [stax.Dense(width, W_std=1.0), stax.Relu()]
        for _ in range(depth - 1):
            layers += [stax.Dense(width, W_std=2**0.5), stax.Relu()]
        return stax.serial(*layers, stax.Dense(1, W_std=2**0.5))
    blocks = []
    for a in scales:
        branch = stax.serial(stax.Dense(width, W_std=2**0.5), stax.Relu(), stax.Dense(width, W_std=float(a)))
        blocks.append(stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum()))
    return stax.serial(stax.Dense(width, W_std=1.0), *blocks, stax.Dense(1, W_std=1.0))


def _dense(width, var, b_var):
    return stax.Dense(width, W_std=var**0.5, b_std=b_var**0.5 if b_var > 0 else None)


def _activation(layer):
    name, *args = layer
    if name == "ElementwiseNumerical":
        fn, deg = args
        return stax.ElementwiseNumerical(getattr(jax.numpy, fn), int(deg))
    return getattr(stax, name)(*args)


def stax_mapped(kind, depth, scales, width, d, layer, w_var, b_var, in_var, out_var):
    """The stax net of reskernel's FeedForward / ResNet with activation `layer` and variances
    w_var, b_var, in_var, out_var (docs/conventions.md, "Rescaling to neural-tangents' stax"):
    the first Dense has W_std = sqrt(in_var d), so that it maps x to in_var x.x' + b_var as
    reskernel's first layer does; the ResNet branch is Dense(W_std = sqrt(w_var), b_std =
    sqrt(b_var)), phi, Dense(W_std = a_l, no bias); the readout Dense(1, W_std = sqrt(w_var)
    (FFNet) or sqrt(out_var) (ResNet), b_std = sqrt(b_var)). No bias where b_var = 0."""
    if kind == "ffnet":
        layers = [_dense(width, in_var * d, b_var), _activation(layer)]
        for _ in range(depth - 1):
            layers += [_dense(width, w_var, b_var), _activation(layer)]
        return stax.serial(*layers, _dense(1, w_var, b_var))
    blocks = []
    for a in scales:
        branch = stax.serial(_dense(width, w_var, b_var), _activation(layer),
                             stax.Dense(width, W_std=float(a), b_std=None))
        blocks.append(stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum()))
    return stax.serial(_dense(width, in_var * d, b_var), *blocks, _dense(1, out_var, b_var))


def _mapped(case, x1, x2, out):
    name, layer = case["name"], case["layer"]
    args = (case["kind"], case["depth"], case["scales"], case["width"], x1.shape[1])
    var = (case["w_var"], case["b_var"], case["in_var"], case["out_var"])
    if "degs" not in case:
        k = stax_mapped(*args, layer, *var)[2](x1, x2, ("nngp", "ntk"))
        out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
        return
    for deg in case["degs"]:
        k = stax_mapped(*args, [*layer, deg], *var)[2](x1, x2, ("nngp", "ntk"))
        out[f"{name}/{deg}/nngp"], out[f"{name}/{deg}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)


def main(cases_path, inputs_path, out_path):
    jax.config.update("jax_enable_x64", True)
    # ElementwiseNumerical warns at construction that its accuracy depends on deg (measured here)
    warnings.filterwarnings("ignore", message="(Numerical Activation Layer|Using JAX autodiff)")
    shim_structured_derivatives()
    cases = json.load(open(cases_path))
    data = np.load(inputs_path)
    out = {"jax_version": np.array(jax.__version__), "nt_version": np.array(nt.__version__)}
    times = os.environ.get("NT_REFERENCE_TIMES")  # a path: where to append when each case starts
    for case in [*cases, {"name": "(end)"}]:
        if times:
            with open(times, "a") as f:
                f.write(f"{case['name']} {time.perf_counter():.2f}\n")
        if case["name"] == "(end)":
            break
        name = case["name"]
        group = case.get("inputs")
        x1, x2 = (data[f"{group}/x1"], data[f"{group}/x2"]) if group else (data["x1"], data["x2"])
        if case["kind"] in ("convnet", "convresnet"):  # tests/test_reference_nt_conv.py
            import conv_compute
            conv_compute.compute_case(case, x1, x2, out)
            continue
        if "layer" in case:
            _mapped(case, x1, x2, out)
            continue
        init_fn, apply_fn, kernel_fn = stax_net(case["kind"], case["depth"], case["scales"], case["width"])
        k = kernel_fn(x1, x2, ("nngp", "ntk"))
        out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
        _, params = init_fn(jax.random.PRNGKey(case.get("seed", 0)), (-1, x1.shape[1]))
        for impl in case.get("impls", (1, 2, 3)):  # Jacobian contraction, NTK-vector products, structured derivatives
            ntk_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl)
            out[f"{name}/empirical_ntk/{impl}"] = np.asarray(ntk_fn(x1, x2, params))
        leaves = jax.tree_util.tree_leaves(params)
        out[f"{name}/num_leaves"] = np.array(len(leaves))
        for i, leaf in enumerate(leaves):
            out[f"{name}/leaf{i}"] = np.asarray(leaf)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
