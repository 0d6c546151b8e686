"""One process of the multi-process tests (tests/test_distributed.py launches several).

usage: python tests/distributed_worker.py '<json>' with keys
  mode: "kernels" (sharded kernels in `dtypes`, gathered; with "cg": true, cg_solve on the sharded
        float64 NTK; with "mismatch": true, process 1 then passes other inputs, shapes, arch,
        each of which must raise; with "store": true, then written to a store) or "reference"
        (one process over `devices` CPU devices, sharded_kernel over the first p of them for each
        {p: dtypes} in `dtypes`: what the others must equal);
  port, processes, process_id, out (a folder: this process writes out/<mode>_<id>.npz or .json),
  folder (the store), die_after_first (a process id that SIGKILLs itself after its first block).
Inputs: `inputs(n, d, dtype)` below, the same in every process.
"""
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if __name__ == "__main__":  # the test imports this module for its inputs: no flags set then
    ARGS = json.loads(sys.argv[1])
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS.get('devices', 1)}"

import jax  # noqa: E402

import reskernel as rk  # noqa: E402
from reskernel.core import distributed  # noqa: E402
from reskernel.core.blocked import row_mesh, sharded_kernel  # noqa: E402
from reskernel.inference.cg import cg_solve  # noqa: E402

ARCH = rk.ResNet(10, gamma=0.5)
N, D, BLOCK = 2000, 20, 250


def inputs(dtype):
    """(N, D) inputs; rows 7 and 500 nearly parallel to rows 790 and 3 (float32 tables refine them;
    with 2 processes, the rows of each pair lie in different processes)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)) * rng.uniform(0.5, 2.0, size=(N, 1))
    x[7] = x[790] * 1.3 + 1e-4 * rng.normal(size=D)
    x[500] = x[3] + 1e-4 * rng.normal(size=D)
    return x.astype(dtype)


def kernels(mesh, dtypes):
    out = {}
    for dtype in map(np.dtype, dtypes):
        k = sharded_kernel(ARCH, inputs(dtype), mesh=mesh)
        rows = sorted(s.index[0].start or 0 for s in k.ntk.addressable_shards)
        full = distributed.gather(k)
        out[f"{np.dtype(dtype).name}_nngp"], out[f"{np.dtype(dtype).name}_ntk"] = full
        out[f"{np.dtype(dtype).name}_rows"] = np.asarray(rows)
        if dtype == np.float64 and ARGS.get("cg"):   # CG on the kernel as it lies, sharded
            res = cg_solve(distributed.ShardedRows(k.ntk), rhs(), noise=noise(full[1]), tol=1e-10, rank=50)
            out["cg_solution"], out["cg_iterations"] = res.solution, res.iterations
    return out


def rhs():
    return np.random.default_rng(1).normal(size=(N, 3))


def noise(k):
    """0.1 x the mean diagonal: ~80 iterations (1e-3 took ~270, each a process_allgather or two)."""
    return 1e-1 * float(np.mean(np.diagonal(k)))


def store():
    pid = jax.process_index()

    def progress(r0, r1):
        if ARGS.get("die_after_first") == pid:
            os.kill(os.getpid(), signal.SIGKILL)

    w = distributed.write_kernel(ARGS["folder"], ARCH, inputs(np.float64), block=BLOCK, progress=progress)
    return {"computed": np.asarray(w.computed).reshape(-1, 2), "skipped": np.asarray(w.skipped).reshape(-1, 2)}


def mismatch():
    x = inputs(np.float64)
    other = jax.process_index() == 1
    tries = {"inputs": (ARCH, x * (1 + 1e-12) if other else x),
             "shapes": (ARCH, x[:-2] if other else x),
             "arch": (rk.ResNet(11, gamma=0.5) if other else ARCH, x)}
    messages = {}
    for name, (arch, xs) in tries.items():
        try:
            sharded_kernel(arch, xs)
            messages[name] = "no error"
        except ValueError as e:
            messages[name] = str(e)
    try:
        distributed.write_kernel(ARGS["folder"], ARCH, x[::-1] if other else x, block=BLOCK)
        messages["store"] = "no error"
    except ValueError as e:
        messages["store"] = str(e)
    return messages


def main():
    jax.config.update("jax_enable_x64", True)
    mode = ARGS["mode"]
    if mode != "reference":
        distributed.initialize(f"localhost:{ARGS['port']}", ARGS["processes"], ARGS["process_id"], timeout=60)
    out = Path(ARGS["out"]) / f"{mode}_{jax.process_index()}"
    if mode == "reference":
        res = {}
        for p, dtypes in ARGS["dtypes"].items():   # {device count: dtypes}
            res.update({f"{k}_{p}": v for k, v in kernels(row_mesh(jax.devices()[:int(p)]), dtypes).items()})
        np.savez(out.with_suffix(".npz"), **res)
    else:  # kernels saved before the store starts (whose first collective every process then passed)
        np.savez(out.with_suffix(".npz"), **kernels(None, ARGS["dtypes"]))
        if ARGS.get("mismatch"):
            out.with_suffix(".json").write_text(json.dumps(mismatch()))
        if ARGS.get("store"):
            np.savez(out.parent / f"store_{jax.process_index()}.npz", **store())
    print("done", mode, jax.process_index(), flush=True)


if __name__ == "__main__":
    main()
