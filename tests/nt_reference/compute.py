"""Run in the pinned reference environment (.venv-nt: jax 0.5.3, neural-tangents 0.6.5).

usage: python compute.py CASES.json INPUTS.npz OUT.npz

For each case {"name", "kind": "ffnet"|"resnet", "depth", "scales": [...], "width"} it
writes, in float64, neural-tangents' analytic NNGP/NTK (every layer trained), and its
empirical NTK at the given width together with the parameters it drew (leaves in
forward order, each stored (fan_in, fan_out) as stax does). Imports neither reskernel
nor anything of the main environment. `stax_net` is also imported by
benchmarks/nt_worker.py (importing this module leaves float64 off; `main` turns it on), as is
`shim_structured_derivatives`, which lets neural-tangents' implementation 3 run on jax 0.5.3.
"""
import json
import sys
import types

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


def main(cases_path, inputs_path, out_path):
    jax.config.update("jax_enable_x64", True)
    shim_structured_derivatives()
    cases = json.load(open(cases_path))
    data = np.load(inputs_path)
    x1, x2 = data["x1"], data["x2"]
    out = {"jax_version": np.array(jax.__version__), "nt_version": np.array(nt.__version__)}
    for case in cases:
        name = case["name"]
        init_fn, apply_fn, kernel_fn = stax_net(case["kind"], case["depth"], case["scales"], case["width"])
        k = kernel_fn(x1, x2, ("nngp", "ntk"))
        out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
        _, params = init_fn(jax.random.PRNGKey(case.get("seed", 0)), (-1, x1.shape[1]))
        for impl in (1, 2, 3):  # Jacobian contraction, NTK-vector products, structured derivatives
            ntk_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl)
            out[f"{name}/empirical_ntk/{impl}"] = np.asarray(ntk_fn(x1, x2, params))
        leaves = jax.tree_util.tree_leaves(params)
        out[f"{name}/num_leaves"] = np.array(len(leaves))
        for i, leaf in enumerate(leaves):
            out[f"{name}/leaf{i}"] = np.asarray(leaf)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
