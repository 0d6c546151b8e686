"""One process of tests/test_conv_sharded.py: conv kernels over devices and processes.

usage: python tests/conv_sharded_worker.py '<json>' with keys devices (CPU devices of this
process), processes, process_id, port (processes > 1: jax.distributed on localhost), out (this
process writes out/conv_<process_id>.npz: the sharded kernels of `kernels` below), cases (names
in CASES), public (also the one call through reskernel.sharded_kernel), mismatch (process 1
passes other images: must raise ValueError, written as "mismatch_error"), store
(reskernel.core.distributed.write_kernel of a conv kernel, a rerun, read_kernel), dense (a dense
kernel of 2,000 points, DENSE below).

The test imports this module for CASES, images and kernels (importing it sets no flags and
starts nothing), and computes the references, conv_kernel's, once in its own process with the
same `kernels` function: every block is the same program on the same inputs, so they must be
equal bit for bit (as the one-process dense reference of tests/test_distributed.py, computed in
another process, is).
"""
import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    ARGS = json.loads(sys.argv[1])
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS['devices']}"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import reskernel as rk  # noqa: E402

# block 2 on 7 images: 4 x 4 blocks, 10 with x2 = None; x2 of 5 images: 4 x 3 blocks. x2 = None
# and x2 given use the same block shapes, so one compiled program per case and device.
BLOCK = 2
CASES = {   # name: (arch, kwargs)
    "resnet_gap": (rk.ConvResNet(depth=3, gamma=0.5, filter_size=3, readout="gap"), {}),
    "cnn_flatten_all": (rk.ConvNet(depth=3, filter_size=3, readout="flatten", activation="erf", b_var=0.1),
                        {"all_depths": True, "trained": "all"}),
}
PUBLIC = "cnn_flatten_all"   # also through reskernel.sharded_kernel, at the default block (one block pair)
# With "dense": also a dense kernel of 2,000 points over every process's devices (rows dealt by
# reskernel.sharded_kernel, gathered), beside the conv kernels of the same launch.
DENSE = rk.ResNet(depth=5, gamma=0.5, activation="erf", b_var=0.1)


def dense_inputs(n=2000, d=12):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(n, 1))


def images(n=7, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, 4, 4, 2)).astype(dtype)


def kernels(fn, cases, public_fn=None):
    """{f"{case}_{sym|cross}_{nngp|ntk}": array} of fn(arch, x, x2, block=BLOCK, **kwargs) for the
    named cases, x2 None and 5 other images; with public_fn, also public_fn(arch, x, x2, **kwargs)
    of PUBLIC (no block: the default) as "public_{nngp|ntk}"."""
    out = {}
    x, y = images(), images(5, seed=1)
    for name in cases:
        arch, kw = CASES[name]
        for tag, x2 in (("sym", None), ("cross", y)):
            out[f"{name}_{tag}_nngp"], out[f"{name}_{tag}_ntk"] = fn(arch, x, x2, block=BLOCK, **kw)
    if public_fn is not None:
        arch, kw = CASES[PUBLIC]
        out["public_nngp"], out["public_ntk"] = public_fn(arch, x, y, **kw)
    return out


def main():
    import jax

    from reskernel.core import distributed
    from reskernel.core.conv import _plan, run_block
    from reskernel.core.conv_sharded import sharded_conv_kernel

    jax.config.update("jax_enable_x64", True)   # float64 kernels (without it JAX computes in float32)
    if ARGS["processes"] > 1:
        distributed.initialize(f"localhost:{ARGS['port']}", ARGS["processes"], ARGS["process_id"], timeout=120)
    out = kernels(sharded_conv_kernel, ARGS["cases"], rk.sharded_kernel if ARGS.get("public") else None)
    x = images()
    arch = CASES["resnet_gap"][0]
    plan = _plan(arch, x, None, all_depths=False, trained="hidden", get=None, block=BLOCK, method="auto")
    last = jax.local_devices()[-1]
    out["placed_on"] = np.asarray([d.id for d in run_block(plan, 0, 1, last)[0].devices()] + [last.id])
    if ARGS.get("store"):   # the disk store: 3 row blocks of 3 rows dealt over the processes, then a rerun
        folder = Path(ARGS["out"]) / "store"
        first = distributed.write_kernel(folder, arch, x, block=3)
        again = distributed.write_kernel(folder, arch, x, block=3)
        out["store_nngp"], out["store_ntk"] = distributed.read_kernel(folder)
        out["store_counts"] = np.asarray([len(first.computed), len(first.skipped), len(again.computed),
                                          len(again.skipped)])
    if ARGS.get("dense"):
        k = rk.sharded_kernel(DENSE, dense_inputs())
        out["dense_rows"] = np.asarray(sorted(s.index[0].start or 0 for s in k.ntk.addressable_shards))
        out["dense_nngp"], out["dense_ntk"] = distributed.gather(k)
    if ARGS.get("mismatch"):
        try:
            sharded_conv_kernel(arch, images(seed=ARGS["process_id"]), block=BLOCK)
        except ValueError as e:
            out["mismatch_error"] = np.asarray(str(e))
    np.savez(Path(ARGS["out"]) / f"conv_{ARGS['process_id']}.npz", **out)


if __name__ == "__main__":
    main()
