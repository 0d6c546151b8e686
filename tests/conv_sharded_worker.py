"""One process of tests/test_conv_sharded.py: conv kernels over devices and processes.

usage: python tests/conv_sharded_worker.py '<json>' with keys devices (CPU devices of this
process), processes, process_id, port (processes > 1: jax.distributed on localhost), out (this
process writes out/conv_<process_id>.npz: the sharded kernels and conv_kernel's, computed here),
mismatch (process 1 passes other images: must raise ValueError, written as "mismatch_error"),
store (reskernel.core.distributed.write_kernel of a conv kernel, a rerun, read_kernel).
"""
import json
import os
import sys
from pathlib import Path

ARGS = json.loads(sys.argv[1])
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS['devices']}"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import reskernel as rk  # noqa: E402
from reskernel.core import distributed  # noqa: E402
from reskernel.core.conv import conv_kernel  # noqa: E402
from reskernel.core.conv_sharded import sharded_conv_kernel  # noqa: E402

CASES = {   # name: (arch, kwargs); block 2 on 7 images: 4 x 4 blocks, 10 with x2 = None
    "resnet_gap": (rk.ConvResNet(depth=3, gamma=0.5, filter_size=3, readout="gap"), {}),
    "cnn_flatten_all": (rk.ConvNet(depth=3, filter_size=3, readout="flatten", activation="erf", b_var=0.1),
                        {"all_depths": True, "trained": "all"}),
}


def images(n=7, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, 4, 4, 2)).astype(dtype)


def main():
    import jax

    jax.config.update("jax_enable_x64", True)   # float64 kernels (without it JAX computes in float32)
    if ARGS["processes"] > 1:
        distributed.initialize(f"localhost:{ARGS['port']}", ARGS["processes"], ARGS["process_id"], timeout=120)
    out = {}
    x = images()
    for name, (arch, kw) in CASES.items():
        for x2 in (None, images(5, seed=1)):
            tag = f"{name}_{'sym' if x2 is None else 'cross'}"
            if x2 is None:
                k = sharded_conv_kernel(arch, x, x2, block=2, **kw)
                ref = conv_kernel(arch, x, x2, block=2, **kw)
            else:   # the public entry point, at its default block
                k, ref = rk.sharded_kernel(arch, x, x2, **kw), conv_kernel(arch, x, x2, **kw)
            out[f"{tag}_nngp"], out[f"{tag}_ntk"] = k
            out[f"{tag}_ref_nngp"], out[f"{tag}_ref_ntk"] = ref
    import jax

    from reskernel.core.conv import _plan, run_block

    plan = _plan(CASES["resnet_gap"][0], x, None, all_depths=False, trained="hidden", get=None, block=2, method="auto")
    last = jax.local_devices()[-1]
    out["placed_on"] = np.asarray([d.id for d in run_block(plan, 0, 1, last)[0].devices()] + [last.id])
    if ARGS.get("store"):   # the disk store: 3 row blocks of 3 rows dealt over the processes, then a rerun
        folder = Path(ARGS["out"]) / "store"
        arch = CASES["resnet_gap"][0]
        first = distributed.write_kernel(folder, arch, x, block=3)
        again = distributed.write_kernel(folder, arch, x, block=3)
        out["store_nngp"], out["store_ntk"] = distributed.read_kernel(folder)
        out["store_counts"] = np.asarray([len(first.computed), len(first.skipped), len(again.computed),
                                          len(again.skipped)])
    if ARGS.get("mismatch"):
        arch = CASES["resnet_gap"][0]
        try:
            sharded_conv_kernel(arch, images(seed=ARGS["process_id"]), block=2)
        except ValueError as e:
            out["mismatch_error"] = np.asarray(str(e))
    np.savez(Path(ARGS["out"]) / f"conv_{ARGS['process_id']}.npz", **out)


if __name__ == "__main__":
    main()
