"""neural-tangents stax of reskernel's ConvNet and ConvResNet, run in the pinned environment
(.venv-nt: jax 0.5.3, neural-tangents 0.6.5); used by tests/test_reference_nt_conv.py.

usage: python conv_compute.py CASES.json INPUTS.npz OUT.npz   (the same as compute.py, whose
`main` hands every case of kind "convnet" / "convresnet" to `compute_case` below)

A case is {"name", "kind": "convnet"|"convresnet", "depth", "scales": [...] (branch scales),
"filter_size", "readout": "flatten"|"gap", "padding": "SAME"|"CIRCULAR", "layer" (a stax
activation, [name, *args]), "w_var", "b_var", "in_var", "out_var", "channels", "seed",
"impls": [...] (neural-tangents' empirical NTK implementations to run; [] for the analytic
kernels alone)}. For images x1, x2
(n, H, W, C0) it writes, in float64, under "NAME/":
  nngp, ntk           stax's analytic kernels (every layer trained);
and, where "impls" is not empty,
  f1, f2              the finite net's outputs at the parameters drawn from `seed`;
  empirical_nngp      the readout-layer NTK at those parameters (its weights and bias): the
                      empirical NNGP, features . features' + b_var;
  empirical_ntk/IMPL  the empirical NTK at those parameters, for each implementation in "impls";
  num_leaves, leafI   those parameters, stax's leaves in forward order (Conv W (k, k, C_in, C),
                      Conv b (1, 1, 1, C) where b_var > 0, readout Dense W (fan_in, 1), b (1, 1)).
Imports neither reskernel nor anything of the main environment.
"""
import sys

import jax
import numpy as np
import neural_tangents as nt
from neural_tangents import stax

from compute import _activation, main


def _b_std(b_var):
    return b_var**0.5 if b_var > 0 else None


def stax_conv(kind, depth, scales, filter_size, readout, padding, channels, in_channels, layer,
              w_var, b_var, in_var, out_var):
    """(init_fn, apply_fn, kernel_fn) of docs/conventions.md's stax net for reskernel's ConvNet
    (kind "convnet") or ConvResNet ("convresnet", branch scales `scales`): the first Conv has
    W_std = sqrt(in_var C0) (stax divides by k^2 C0, reskernel by k^2); a branch is Conv(W_std =
    sqrt(w_var), b_std = sqrt(b_var)), phi, Conv(W_std = a_l, no bias) summed with the stream;
    Flatten or GlobalAvgPool, then Dense(1, W_std = sqrt(w_var) (ConvNet) or sqrt(out_var)
    (ConvResNet), b_std = sqrt(b_var))."""
    shape = (filter_size, filter_size)

    def conv(w_std, b_std):
        return stax.Conv(channels, shape, W_std=w_std, b_std=b_std, padding=padding)

    first = conv((in_var * in_channels)**0.5, _b_std(b_var))
    pool = stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool()
    if kind == "convnet":
        layers = [first, _activation(layer)]
        for _ in range(depth - 1):
            layers += [conv(w_var**0.5, _b_std(b_var)), _activation(layer)]
        return stax.serial(*layers, pool, stax.Dense(1, W_std=w_var**0.5, b_std=_b_std(b_var)))
    blocks = []
    for a in scales:
        branch = stax.serial(conv(w_var**0.5, _b_std(b_var)), _activation(layer), conv(float(a), None))
        blocks.append(stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum()))
    return stax.serial(first, *blocks, pool, stax.Dense(1, W_std=out_var**0.5, b_std=_b_std(b_var)))


def compute_case(case, x1, x2, out):
    """Write `case`'s arrays (module doc) into the dict `out`."""
    name = case["name"]
    init_fn, apply_fn, kernel_fn = stax_conv(
        case["kind"], case["depth"], case["scales"], case["filter_size"], case["readout"], case["padding"],
        case["channels"], x1.shape[-1], case["layer"], case["w_var"], case["b_var"], case["in_var"],
        case["out_var"])
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    if not case["impls"]:
        return
    _, params = init_fn(jax.random.PRNGKey(case["seed"]), (-1,) + x1.shape[1:])
    out[f"{name}/f1"], out[f"{name}/f2"] = np.asarray(apply_fn(params, x1)), np.asarray(apply_fn(params, x2))

    def with_readout(readout_params, x):
        return apply_fn(list(params[:-1]) + [readout_params], x)

    readout_ntk = nt.empirical_ntk_fn(with_readout, trace_axes=(-1,), vmap_axes=0, implementation=2)
    out[f"{name}/empirical_nngp"] = np.asarray(readout_ntk(x1, x2, params[-1]))
    for impl in case["impls"]:
        ntk_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl)
        out[f"{name}/empirical_ntk/{impl}"] = np.asarray(ntk_fn(x1, x2, params))
    leaves = jax.tree_util.tree_leaves(params)
    out[f"{name}/num_leaves"] = np.array(len(leaves))
    for i, leaf in enumerate(leaves):
        out[f"{name}/leaf{i}"] = np.asarray(leaf)


if __name__ == "__main__":
    main(*sys.argv[1:4])
